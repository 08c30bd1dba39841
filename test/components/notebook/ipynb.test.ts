/** Export to `.ipynb`, checked against nbformat's own 4.5 schema, and import back. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import Ajv, { type ValidateFunction } from 'ajv';
import {
  FormatWarningCode,
  IPYNB_KERNELSPEC,
  NotebookFormatError,
  NotebookFormatErrorCode,
  exportIpynb,
  importIpynb,
  isCellKind,
  serializeIpynb,
  serializeNotebook,
  splitLines,
} from '../../../components/notebook/format/index.ts';
import { fullNotebook, randomNotebook, seeded } from './fixtures.ts';

const SCHEMA_PATH = new URL('../../schemas/nbformat.v4.5.schema.json', import.meta.url);

type JsonTree = null | boolean | number | string | JsonTree[] | { [k: string]: JsonTree };

/**
 * Keywords whose meaning changed after draft-04: `id` (now `$id`) and boolean exclusiveMinimum /
 * exclusiveMaximum. A schema using none of them means the same under draft-07.
 */
function draft04OnlyKeywords(node: JsonTree, path = '#'): string[] {
  if (node === null || typeof node !== 'object') return [];
  if (Array.isArray(node)) return node.flatMap((v, i) => draft04OnlyKeywords(v, `${path}/${i}`));
  const found: string[] = [];
  for (const [key, value] of Object.entries(node)) {
    if (key === 'id' && typeof value === 'string') found.push(`${path}/id`);
    if ((key === 'exclusiveMinimum' || key === 'exclusiveMaximum') && typeof value === 'boolean') found.push(`${path}/${key}`);
    found.push(...draft04OnlyKeywords(value, `${path}/${key}`));
  }
  return found;
}

/**
 * The shipped schema declares draft-04, which Ajv 8 no longer bundles. It uses no keyword whose
 * meaning differs in draft-07 (checked below), so it is compiled as draft-07 with `$schema` removed.
 */
function nbformatValidator(): ValidateFunction {
  const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as { [k: string]: JsonTree };
  assert.equal(schema.$schema, 'http://json-schema.org/draft-04/schema#');
  assert.deepEqual(draft04OnlyKeywords(schema), []);
  const { $schema: _draft, ...rest } = schema;
  return new Ajv({ strict: false, allErrors: true }).compile(rest);
}

const validate = nbformatValidator();

function assertValidIpynb(doc: unknown, label = ''): void {
  const ok = validate(doc);
  assert.ok(ok, `${label} ${JSON.stringify(validate.errors, null, 1)}`);
  // nbformat's validator also requires unique cell ids, which JSON Schema cannot express.
  const ids = (doc as { cells: { id: string }[] }).cells.map((c) => c.id);
  assert.equal(new Set(ids).size, ids.length, `${label} duplicate cell ids`);
}

function rejectsWith(fn: () => unknown, code: string): NotebookFormatError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof NotebookFormatError, `expected NotebookFormatError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

describe('.ipynb export', () => {
  it('validates against the nbformat 4.5 schema for a notebook with every cell kind and output type', () => {
    const doc = exportIpynb(fullNotebook());
    assertValidIpynb(doc);
    assertValidIpynb(JSON.parse(serializeIpynb(fullNotebook())), 'serialized');
    const outputTypes = new Set(doc.cells.flatMap((c) => (c.cell_type === 'code' ? c.outputs.map((o) => o.output_type) : [])));
    assert.deepEqual([...outputTypes].sort(), ['display_data', 'error', 'execute_result', 'stream']);
  });

  it('has a validator that actually rejects broken notebooks', () => {
    const broken = structuredClone(exportIpynb(fullNotebook())) as unknown as { cells: Record<string, unknown>[]; nbformat_minor: number };
    const cases: [string, (d: typeof broken) => void][] = [
      ['code cell without execution_count', (d) => delete d.cells[1]!.execution_count],
      ['id with a dot', (d) => (d.cells[0]!.id = 'a.b')],
      ['nbformat_minor 4', (d) => (d.nbformat_minor = 4)],
      ['markdown cell with outputs', (d) => (d.cells[0]!.outputs = [])],
    ];
    for (const [what, edit] of cases) {
      const doc = structuredClone(broken);
      edit(doc);
      assert.equal(validate(doc), false, what);
    }
  });

  it('validates for 200 random notebooks', () => {
    const rand = seeded(99);
    for (let i = 0; i < 200; i++) assertValidIpynb(exportIpynb(randomNotebook(rand)), `case ${i}`);
  });

  it('declares TypeScript and a MoE Lab kernel, and pins the model and app version', () => {
    const doc = exportIpynb(fullNotebook());
    assert.deepEqual(doc.metadata.kernelspec, IPYNB_KERNELSPEC);
    assert.equal(doc.metadata.language_info.name, 'typescript');
    assert.deepEqual(doc.metadata.moelab, fullNotebook().metadata.moelab);
    assert.equal(doc.metadata.title, fullNotebook().metadata.title);
  });

  it('writes prompt cells as code cells with their settings under metadata.moelab', () => {
    const doc = exportIpynb(fullNotebook());
    const cell = doc.cells[1]!;
    assert.equal(cell.cell_type, 'code');
    assert.deepEqual(cell.metadata.moelab, fullNotebook().cells[1]!.metadata.moelab);
    assert.deepEqual(cell.source, ['Write a haiku about routers <img src=x onerror=alert(1)>']);
  });

  it('adds the generated text as a text/plain fallback next to the run bundle, marked as derived', () => {
    const cell = exportIpynb(fullNotebook()).cells[1]!;
    assert.equal(cell.cell_type, 'code');
    if (cell.cell_type !== 'code') return;
    const out = cell.outputs[0]!;
    assert.equal(out.output_type, 'display_data');
    if (out.output_type !== 'display_data') return;
    assert.deepEqual(out.data['text/plain'], ['Packets drift east <img src=x onerror=alert(1)>']);
    assert.equal((out.data['application/vnd.moelab.run+json'] as { runId: string }).runId, 'run_01');
    assert.deepEqual(out.metadata, { moelab: { derived: ['text/plain'] } });
  });

  it("keeps an output's own text/plain and marks nothing derived", () => {
    const cell = exportIpynb(fullNotebook()).cells[3]!;
    if (cell.cell_type !== 'code') return assert.fail('expected a code cell');
    const out = cell.outputs[0]!;
    if (out.output_type !== 'display_data') return assert.fail('expected display_data');
    assert.deepEqual(out.data['text/plain'], ['the run failed']);
    assert.deepEqual(out.metadata, {});
  });

  it('describes a viz cell in text when it has no cached output', () => {
    const cell = exportIpynb(fullNotebook()).cells[6]!;
    if (cell.cell_type !== 'code') return assert.fail('expected a code cell');
    assert.equal(cell.outputs.length, 1);
    const out = cell.outputs[0]!;
    if (out.output_type !== 'display_data') return assert.fail('expected display_data');
    assert.match((out.data['text/plain'] as string[]).join(''), /token strip of run run_01/);
  });

  it('splits text into lines the way Jupyter stores them', () => {
    assert.deepEqual(splitLines(''), []);
    assert.deepEqual(splitLines('a'), ['a']);
    assert.deepEqual(splitLines('a\nb\n'), ['a\n', 'b\n']);
    assert.deepEqual(splitLines('\n\nx'), ['\n', '\n', 'x']);
  });
});

describe('.ipynb import', () => {
  it('round-trips: moenb → ipynb → moenb gives the original notebook', () => {
    const original = fullNotebook();
    const { notebook, warnings } = importIpynb(serializeIpynb(original));
    assert.deepEqual(warnings, []);
    assert.deepEqual(notebook, original);
    assert.equal(serializeNotebook(notebook), serializeNotebook(original));
  });

  it('round-trips 200 random notebooks byte for byte', () => {
    const rand = seeded(4242);
    for (let i = 0; i < 200; i++) {
      const nb = randomNotebook(rand);
      const { notebook, warnings } = importIpynb(serializeIpynb(nb));
      assert.deepEqual(warnings, [], `case ${i}`);
      assert.equal(serializeNotebook(notebook), serializeNotebook(nb), `case ${i}`);
    }
  });

  it('opens a notebook written by Jupyter: older minor version, no ids, raw cells, HTML outputs, attachments', () => {
    const jupyter = {
      nbformat: 4,
      nbformat_minor: 4,
      metadata: { kernelspec: { name: 'python3', display_name: 'Python 3' }, language_info: { name: 'python' } },
      cells: [
        { cell_type: 'markdown', metadata: {}, source: ['# Notes\n', 'see ![plot](attachment:p.png)'], attachments: { 'p.png': { 'image/png': 'iVBOR' } } },
        {
          cell_type: 'code',
          metadata: { collapsed: false },
          execution_count: 1,
          source: 'df.head()',
          outputs: [
            { output_type: 'execute_result', execution_count: 1, metadata: {}, data: { 'text/html': '<table onclick="x()"></table>', 'text/plain': ['   a\n', '0  1'] } },
            { output_type: 'display_data', metadata: {}, data: { 'application/javascript': 'alert(1)' } },
          ],
        },
        { cell_type: 'raw', metadata: { format: 'text/latex' }, source: '\\LaTeX' },
      ],
    };
    const { notebook, warnings } = importIpynb(JSON.stringify(jupyter), { appVersion: '0.1.0' });
    assert.deepEqual(notebook.metadata, { moelab: { format_version: 1, app_version: '0.1.0', model: null } });
    assert.deepEqual(
      notebook.cells.map((c) => c.metadata.moelab.kind),
      ['markdown', 'code', 'markdown'],
    );
    const code = notebook.cells[1]!;
    assert.ok(isCellKind(code, 'code'));
    assert.deepEqual(code.outputs, [{ output_type: 'execute_result', execution_count: 1, metadata: {}, data: { 'text/plain': '   a\n0  1' } }]);
    assert.deepEqual(warnings.map((w) => w.code).sort(), [
      FormatWarningCode.ATTACHMENTS_DROPPED,
      FormatWarningCode.CELL_CONVERTED,
      FormatWarningCode.MIME_STRIPPED,
      FormatWarningCode.MIME_STRIPPED,
      FormatWarningCode.OUTPUT_DROPPED,
    ]);
    const ids = notebook.cells.map((c) => c.id);
    assert.equal(new Set(ids).size, 3);
    // Once imported it is an ordinary MoE Lab notebook: it saves, and exports to valid nbformat.
    assertValidIpynb(exportIpynb(notebook));
  });

  it('replaces malformed and repeated cell ids, keeping the first use', () => {
    const doc = exportIpynb(fullNotebook()) as unknown as { cells: { id: string }[] };
    doc.cells[1]!.id = doc.cells[0]!.id;
    doc.cells[2]!.id = 'not valid!';
    const { notebook, warnings } = importIpynb(JSON.stringify(doc));
    assert.equal(notebook.cells[0]!.id, 'intro');
    assert.notEqual(notebook.cells[1]!.id, 'intro');
    assert.equal(new Set(notebook.cells.map((c) => c.id)).size, notebook.cells.length);
    assert.deepEqual(
      warnings.map((w) => [w.code, w.cellId]),
      [
        [FormatWarningCode.CELL_ID_REPLACED, notebook.cells[1]!.id],
        [FormatWarningCode.CELL_ID_REPLACED, notebook.cells[2]!.id],
      ],
    );
  });

  it('applies format migrations to MoE Lab metadata carried in an ipynb', () => {
    const doc = exportIpynb(fullNotebook()) as unknown as { metadata: { moelab: Record<string, unknown> } };
    doc.metadata.moelab = { format_version: 0, app_version: '0.0.1', model: 'moe-lab-tiny' };
    const { notebook, warnings } = importIpynb(JSON.stringify(doc));
    assert.deepEqual(notebook.metadata.moelab.model, { id: 'moe-lab-tiny', hash: null });
    assert.deepEqual(
      warnings.map((w) => w.code),
      [FormatWarningCode.MIGRATED],
    );
  });

  it('refuses what it cannot read, with stable codes', () => {
    rejectsWith(() => importIpynb('not json'), NotebookFormatErrorCode.INVALID_JSON);
    rejectsWith(() => importIpynb(JSON.stringify({ nbformat: 3, nbformat_minor: 0, worksheets: [] })), NotebookFormatErrorCode.INVALID);
    rejectsWith(() => importIpynb(JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: {} })), NotebookFormatErrorCode.INVALID);
    rejectsWith(() => importIpynb(JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: {}, cells: [{ cell_type: 'code' }] })), NotebookFormatErrorCode.INVALID);
    const newer = exportIpynb(fullNotebook()) as unknown as { metadata: { moelab: { format_version: number } } };
    newer.metadata.moelab.format_version = 9;
    rejectsWith(() => importIpynb(JSON.stringify(newer)), NotebookFormatErrorCode.TOO_NEW);
    const badPrompt = exportIpynb(fullNotebook()) as unknown as { cells: { metadata: { moelab: { sampling?: { temperature: number } } } }[] };
    badPrompt.cells[1]!.metadata.moelab.sampling!.temperature = -5;
    rejectsWith(() => importIpynb(JSON.stringify(badPrompt)), NotebookFormatErrorCode.INVALID);
  });
});
