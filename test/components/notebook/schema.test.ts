/** Loading `.moenb` text: what validates, what is refused, and with which code. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CELL_ID_PATTERN,
  NotebookFormatError,
  NotebookFormatErrorCode,
  RUN_STATUSES,
  isCellKind,
  parseNotebook,
  serializeNotebook,
  type RunStatus as FormatRunStatus,
} from '../../../components/notebook/format/index.ts';
import type { RunStatus as ServerRunStatus } from '../../../server/protocol.ts';
import { fullNotebook } from './fixtures.ts';

type Mutable = Record<string, any>;

function docText(edit: (doc: Mutable) => void = () => {}): string {
  const doc = structuredClone(fullNotebook()) as Mutable;
  edit(doc);
  return JSON.stringify(doc);
}

function rejects(text: string, code: string, pathHint?: RegExp): NotebookFormatError {
  let caught: unknown;
  try {
    parseNotebook(text);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof NotebookFormatError, `expected NotebookFormatError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (pathHint) assert.match(caught.message, pathHint);
  return caught;
}

// The run bundle's status must accept exactly what the server reports; this fails to compile if
// either side gains or loses a status.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const statusesAgree: Same<FormatRunStatus, ServerRunStatus> = true;

describe('notebook schema', () => {
  it('accepts a notebook with every cell kind and output type, unchanged and without warnings', () => {
    const { notebook, warnings } = parseNotebook(docText());
    assert.deepEqual(warnings, []);
    assert.deepEqual(notebook, fullNotebook());
    assert.deepEqual(
      notebook.cells.map((c) => c.metadata.moelab.kind),
      ['markdown', 'prompt', 'prompt', 'prompt', 'code', 'code', 'viz', 'viz'],
    );
    assert.ok(statusesAgree);
    assert.equal(RUN_STATUSES.length, 6);
  });

  it("normalises nbformat's line-list sources and texts to strings", () => {
    const { notebook } = parseNotebook(
      docText((d) => {
        d.cells[0].source = ['# Title\n', '\n', 'body'];
        d.cells[4].outputs[0].text = ['a\n', 'b\n'];
      }),
    );
    assert.equal(notebook.cells[0]!.source, '# Title\n\nbody');
    const cell = notebook.cells[4]!;
    assert.ok(isCellKind(cell, 'code'));
    assert.deepEqual(cell.outputs[0], { output_type: 'stream', name: 'stdout', text: 'a\nb\n' });
  });

  it('drops metadata keys it does not own, silently', () => {
    const { notebook, warnings } = parseNotebook(
      docText((d) => {
        d.metadata.kernelspec = { name: 'x', display_name: 'X' };
        d.cells[0].metadata.collapsed = true;
        d.cells[4].outputs[2].metadata = { isolated: true };
      }),
    );
    assert.deepEqual(warnings, []);
    assert.deepEqual(notebook, fullNotebook());
  });

  it('accepts max new tokens 0 (route the prompt, generate nothing), as the server does', () => {
    const { notebook } = parseNotebook(docText((d) => (d.cells[1].metadata.moelab.sampling.maxNewTokens = 0)));
    const cell = notebook.cells[1]!;
    assert.ok(isCellKind(cell, 'prompt'));
    assert.equal(cell.metadata.moelab.sampling.maxNewTokens, 0);
    assert.equal(serializeNotebook(notebook), serializeNotebook(parseNotebook(serializeNotebook(notebook)).notebook));
  });

  it('accepts ban and force text kept as typed when it is not an expert list', () => {
    const { notebook } = parseNotebook(docText((d) => (d.cells[2].metadata.moelab.unparsed = { ban: '3:5, 4;6', force: 'x' })));
    const cell = notebook.cells[2]!;
    assert.ok(isCellKind(cell, 'prompt'));
    assert.deepEqual(cell.metadata.moelab.unparsed, { ban: '3:5, 4;6', force: 'x' });
  });

  it('refuses text that is not JSON with NOTEBOOK_FORMAT_INVALID_JSON', () => {
    rejects('{"nbformat": 4,', NotebookFormatErrorCode.INVALID_JSON);
    rejects('', NotebookFormatErrorCode.INVALID_JSON);
  });

  const invalidCases: [string, (d: Mutable) => void, RegExp?][] = [
    ['a document without MoE Lab metadata', (d) => delete d.metadata.moelab, /moelab/],
    ['nbformat 3', (d) => (d.nbformat = 3), /nbformat/],
    ['nbformat_minor 4', (d) => (d.nbformat_minor = 4), /nbformat_minor/],
    ['a cell id with a space', (d) => (d.cells[0].id = 'has space'), /cells\.0\.id/],
    ['a 65-character cell id', (d) => (d.cells[0].id = 'a'.repeat(65)), /cells\.0\.id/],
    ['an empty cell id', (d) => (d.cells[0].id = ''), /cells\.0\.id/],
    ['duplicate cell ids', (d) => (d.cells[1].id = d.cells[0].id), /duplicate cell id/],
    ['a prompt cell typed as markdown', (d) => (d.cells[1].cell_type = 'markdown'), /cells\.1/],
    ['an unknown cell kind', (d) => (d.cells[4].metadata.moelab.kind = 'sql'), /cells\.4/],
    ['a raw cell', (d) => (d.cells[0].cell_type = 'raw'), /cells\.0/],
    ['a negative temperature', (d) => (d.cells[1].metadata.moelab.sampling.temperature = -1), /temperature/],
    ['topP of 0', (d) => (d.cells[1].metadata.moelab.sampling.topP = 0), /topP/],
    ['a fractional seed', (d) => (d.cells[1].metadata.moelab.sampling.seed = 1.5), /seed/],
    ['negative max new tokens', (d) => (d.cells[1].metadata.moelab.sampling.maxNewTokens = -1), /maxNewTokens/],
    ['unparsed ban text that is not a string', (d) => (d.cells[1].metadata.moelab.unparsed = { ban: [{ layer: 1, expert: 2 }] }), /unparsed\.ban/],
    ['an unknown unparsed field', (d) => (d.cells[1].metadata.moelab.unparsed = { topK: 'x' }), /unparsed/],
    ['an unknown sampling field', (d) => (d.cells[1].metadata.moelab.sampling.beam = 4), /sampling/],
    ['a ban on layer "first"', (d) => (d.cells[1].metadata.moelab.interventions.ban[0].layer = 'first'), /layer/],
    ['a top-k override of 0', (d) => (d.cells[1].metadata.moelab.interventions.topK = 0), /topK/],
    ['a run bundle without a run id', (d) => delete d.cells[1].outputs[0].data['application/vnd.moelab.run+json'].runId, /runId/],
    ['an unknown run status', (d) => (d.cells[1].outputs[0].data['application/vnd.moelab.run+json'].status = 'exploded'), /status/],
    ['an unknown view kind', (d) => (d.cells[6].metadata.moelab.view = 'pie-chart'), /view/],
    ['a viz source naming both a run and a cell', (d) => (d.cells[6].metadata.moelab.source = { runId: 'r', cellId: 'c' }), /source/],
    ['a stream named stdin', (d) => (d.cells[4].outputs[0].name = 'stdin'), /name/],
    ['an execute_result without execution_count', (d) => delete d.cells[4].outputs[2].execution_count, /execution_count/],
    ['a code cell without outputs', (d) => delete d.cells[4].outputs, /outputs/],
    ['a markdown cell with outputs', (d) => (d.cells[0].outputs = []), /cells\.0/],
    ['a model without a hash field', (d) => delete d.metadata.moelab.model.hash, /hash/],
    ['an empty app version', (d) => (d.metadata.moelab.app_version = ''), /app_version/],
    ['an unknown top-level key', (d) => (d.extra = 1), /extra/],
    ['a non-finite-looking number as a string', (d) => (d.cells[1].execution_count = '1'), /execution_count/],
  ];
  for (const [what, edit, hint] of invalidCases) {
    it(`refuses ${what} with NOTEBOOK_FORMAT_INVALID`, () => {
      const err = rejects(docText(edit), NotebookFormatErrorCode.INVALID, hint);
      assert.ok(Array.isArray(err.details?.issues) || /moelab|nbformat/.test(err.message));
    });
  }

  it('refuses a newer format_version with NOTEBOOK_FORMAT_TOO_NEW, naming both versions', () => {
    const err = rejects(docText((d) => (d.metadata.moelab.format_version = 2)), NotebookFormatErrorCode.TOO_NEW);
    assert.deepEqual(err.details, { formatVersion: 2, supported: 1 });
  });

  it('refuses absurdly deep nesting instead of overflowing the stack', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    rejects(docText((d) => (d.cells[6].metadata.moelab.options = { x: 0 })).replace('{"x":0}', `{"x":${deep}}`), NotebookFormatErrorCode.INVALID, /nested/);
  });

  it('reports the error of the branch the cell was meant as, not of every union branch', () => {
    const err = rejects(docText((d) => (d.cells[1].metadata.moelab.sampling.temperature = 500)), NotebookFormatErrorCode.INVALID);
    const issues = err.details?.issues as string[];
    assert.equal(issues.length, 1, issues.join('\n'));
    assert.match(issues[0]!, /^cells\.1\.metadata\.moelab\.sampling\.temperature: /);
  });

  it('ignores a "__proto__" key in free-form options rather than changing the prototype', () => {
    const text = docText((d) => (d.cells[6].metadata.moelab.options = { safe: 1 })).replace('{"safe":1}', '{"safe":1,"__proto__":{"polluted":true}}');
    const { notebook } = parseNotebook(text);
    const cell = notebook.cells[6]!;
    assert.ok(isCellKind(cell, 'viz'));
    assert.deepEqual(Object.keys(cell.metadata.moelab.options), ['safe']);
    assert.equal(Object.getPrototypeOf(cell.metadata.moelab.options), Object.prototype);
    assert.equal(({} as Mutable).polluted, undefined);
  });

  it('uses nbformat 4.5 cell id rules', () => {
    for (const ok of ['a', 'A-b_9', 'x'.repeat(64), '123e4567-e89b-12d3-a456-426614174000']) assert.ok(CELL_ID_PATTERN.test(ok), ok);
    for (const bad of ['', 'x'.repeat(65), 'a.b', 'a/b', 'é', 'a b', 'a\n']) assert.ok(!CELL_ID_PATTERN.test(bad), JSON.stringify(bad));
  });
});
