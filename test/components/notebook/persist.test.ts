/** The editor's model and the `.moenb` file: what is loaded is saved back as it was, and what the editor adds is saved fully. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MIME, exportHtml, newNotebook, newPromptCell, newVizCell, parseNotebook, serializeIpynb, serializeNotebook,
  type Notebook, type Output, type PromptCell,
} from '../../../components/notebook/format/index.ts';
import { endedRunOutput, newCell, promptParams, type Cell, type CellOutput, type PromptSettings } from '../../../components/notebook/model.ts';
import { fromFile, notebookUrl, toFile } from '../../../components/notebook/persist.ts';
import { fullNotebook, randomNotebook, seeded } from './fixtures.ts';

/** Load → save, as the editor does with an untouched notebook. */
const resave = (nb: Notebook): Notebook => parseNotebook(serializeNotebook(toFile(nb, fromFile(nb)))).notebook;

const notebookOf = (...cells: Notebook['cells']) => newNotebook({ appVersion: '0.1.0', model: { id: 'tiny', hash: null }, cells });

/** Saves cells the editor holds into an empty notebook whose model is `tiny`. */
const save = (...cells: Cell[]): Notebook => {
  const base = notebookOf();
  return parseNotebook(serializeNotebook(toFile(base, { cells, model: base.metadata.moelab.model }))).notebook;
};

const promptCell = (settings: Partial<PromptSettings>, outputs: CellOutput[] = []): Cell => {
  const c = newCell('prompt', 'tiny');
  return { ...c, id: 'p1', source: 'Hi', outputs, prompt: { ...c.prompt!, ...settings } };
};

const outputsOf = (nb: Notebook, i = 0): Output[] => {
  const cell = nb.cells[i]!;
  assert.equal(cell.cell_type, 'code');
  return cell.cell_type === 'code' ? cell.outputs : [];
};

const promptMeta = (nb: Notebook, i = 0) => (nb.cells[i] as PromptCell).metadata.moelab;

describe('saving a loaded notebook', () => {
  it('writes back the file it loaded byte for byte: every cell kind, output and setting', () => {
    assert.equal(serializeNotebook(resave(fullNotebook())), serializeNotebook(fullNotebook()));
    const rand = seeded(11);
    for (let i = 0; i < 200; i++) {
      const nb = randomNotebook(rand);
      assert.equal(serializeNotebook(resave(nb)), serializeNotebook(nb), `random notebook ${i}`);
    }
  });

  it("keeps a viz cell's options", () => {
    const nb = notebookOf(newVizCell({ id: 'v1', view: 'heatmap', source: { runId: 'r1' }, options: { layer: 3, normalize: true } }));
    const viz = resave(nb).cells[0]!;
    assert.deepEqual(viz.metadata.moelab, { kind: 'viz', view: 'heatmap', source: { runId: 'r1' }, options: { layer: 3, normalize: true } });
  });

  it("keeps a run's whole summary: token counts, reason and timings as well as the text", () => {
    const summary = { text: 'out', promptTokens: 3, generatedTokens: 5, reason: 'eos' as const, totalMs: 12, ttftMs: null };
    const prompt = newPromptCell({ id: 'p1', source: 'Hi' });
    prompt.outputs = [{ output_type: 'display_data', metadata: {}, data: { [MIME.RUN]: { runId: 'r1', modelId: 'tiny', modelHash: null, status: 'done', summary } } }];
    assert.deepEqual(outputsOf(resave(notebookOf(prompt))), prompt.outputs);
  });

  it('keeps an execute_result with its execution count, and every MIME entry of a bundle', () => {
    const outputs: Output[] = [
      { output_type: 'execute_result', execution_count: 3, metadata: {}, data: { 'text/plain': '2' } },
      { output_type: 'display_data', metadata: {}, data: { 'text/plain': 'txt', 'application/json': { a: 1 } } },
      { output_type: 'execute_result', execution_count: null, metadata: {}, data: { 'text/plain': 'heatmap', [MIME.VIZ]: { kind: 'heatmap', data: [1] } } },
      // A run held by an execute_result, with its own text: both survive.
      { output_type: 'execute_result', execution_count: 4, metadata: {}, data: { 'text/plain': 'said', [MIME.RUN]: { runId: 'r2', modelId: 'tiny', modelHash: null, status: 'done' } } },
    ];
    const code = { id: 'c1', cell_type: 'code' as const, source: '1+1', metadata: { moelab: { kind: 'code' as const } }, execution_count: 3, outputs };
    assert.deepEqual(outputsOf(resave(notebookOf(code))), outputs);
  });

  it("keeps a prompt cell's model null (the notebook's) and its max tokens absent", () => {
    const prompt = newPromptCell({ id: 'p1', source: 'Hi', model: null, sampling: { temperature: 0.5 } });
    const meta = promptMeta(resave(notebookOf(prompt)));
    assert.equal(meta.model, null);
    assert.deepEqual(meta.sampling, { temperature: 0.5 });
  });

  it("shows a null model as the notebook's in the editor, not as a copy of its id", () => {
    const model = fromFile(notebookOf(newPromptCell({ id: 'p1', model: null })));
    assert.equal(model.cells[0]!.prompt!.model, null);
    assert.equal(model.cells[0]!.prompt!.maxNewTokens, undefined);
  });
});

describe('saving what the editor made', () => {
  it('saves a prompt cell with max tokens 0 (route the prompt, generate nothing)', () => {
    const nb = save(promptCell({ maxNewTokens: 0 }));
    assert.deepEqual(promptMeta(nb).sampling, { maxNewTokens: 0 });
    assert.equal(fromFile(nb).cells[0]!.prompt!.maxNewTokens, 0);
  });

  it('saves a finished run with the full summary of its done event', () => {
    const running: CellOutput = { type: 'run', runId: 'r1', modelId: 'tiny', modelHash: null, status: 'running' };
    const ended = endedRunOutput(running, {
      t: 'done', reason: 'length', promptTokens: 4, generatedTokens: 2, text: 'ab', ttftMs: 3, totalMs: 9, prefillTokensPerSecond: 100, decodeTokensPerSecond: null,
    });
    assert.deepEqual(outputsOf(save(promptCell({}, [ended]))), [
      {
        output_type: 'display_data',
        metadata: {},
        data: {
          [MIME.RUN]: {
            runId: 'r1', modelId: 'tiny', modelHash: null, status: 'done',
            summary: { text: 'ab', reason: 'length', promptTokens: 4, generatedTokens: 2, ttftMs: 3, totalMs: 9, prefillTokensPerSecond: 100, decodeTokensPerSecond: null },
          },
        },
      },
    ]);
  });

  it('records a run cancelled before it produced text as cancelled, as the server does', () => {
    const running: CellOutput = { type: 'run', runId: 'r3', modelId: 'tiny', modelHash: null, status: 'running' };
    const ended = endedRunOutput(running, {
      t: 'done', reason: 'cancelled', promptTokens: 0, generatedTokens: 0, text: null, ttftMs: null, totalMs: 0, prefillTokensPerSecond: null, decodeTokensPerSecond: null,
    });
    assert.equal(ended.status, 'cancelled');
    const html = exportHtml(save(promptCell({}, [ended])));
    assert.match(html, /<pre>\[run r3: cancelled\]<\/pre>/);
  });

  it('exports a failed run that has no text as its status line, in HTML and in .ipynb', () => {
    const failed = endedRunOutput({ type: 'run', runId: 'r9', modelId: 'tiny', modelHash: null, status: 'running' }, { t: 'error', code: 'E', message: 'boom' });
    const nb = save(promptCell({}, [failed]));
    // Nothing stands in for the missing text in the file; the exports derive it.
    assert.deepEqual(Object.keys((outputsOf(nb)[0] as { data: object }).data), [MIME.RUN]);
    assert.match(exportHtml(nb), /<div class="output"><div class="meta">run <code>r9<\/code> · failed · model <code>tiny<\/code><\/div><pre>\[run r9: failed\]<\/pre>/);
    const ipynbOut = JSON.parse(serializeIpynb(nb)).cells[0].outputs[0];
    assert.deepEqual(ipynbOut.data['text/plain'], ['[run r9: failed]']);
    assert.deepEqual(ipynbOut.metadata, { moelab: { derived: ['text/plain'] } });
  });

  it('keeps ban and force text that is not a valid expert list, as typed, and runs nothing from it', () => {
    const nb = save(promptCell({ ban: '3:5, 4;6, 12:x', force: '0:1' }));
    const meta = promptMeta(nb);
    assert.deepEqual(meta.unparsed, { ban: '3:5, 4;6, 12:x' });
    assert.deepEqual(meta.interventions, { force: [{ layer: 0, expert: 1 }] });
    const back = fromFile(nb).cells[0]!.prompt!;
    assert.equal(back.ban, '3:5, 4;6, 12:x');
    assert.equal(back.force, '0:1');
    assert.throws(() => promptParams(fromFile(nb).cells[0]!), { message: "'4;6' is not LAYER:EXPERT (e.g. 3:5, or *:5 for every MoE layer)" });
    assert.match(exportHtml(nb), /<li>ban \(not a valid expert list\) 3:5, 4;6, 12:x<\/li>/);
  });

  it('saves ban text as an expert list again once it is fixed', () => {
    const meta = promptMeta(save(promptCell({ ban: '3:5, 4:6, *:2' })));
    assert.equal(meta.unparsed, undefined);
    assert.deepEqual(meta.interventions, { ban: [{ layer: 3, expert: 5 }, { layer: 4, expert: 6 }, { layer: 'all', expert: 2 }] });
  });
});

describe('notebook API URLs', () => {
  it("refuses a '.' or '..' segment by name, which a URL would otherwise resolve away before the server saw it", () => {
    for (const p of ['../evil.moenb', 'a/../../b.moenb', './x.moenb', '%2e%2E/x.moenb', 'a/./b.moenb']) {
      assert.throws(() => notebookUrl(p), /^Error: NOTEBOOK_BAD_PATH: /, p);
    }
    assert.equal(notebookUrl('lessons/..two dots.moenb'), '/api/notebooks/lessons/..two%20dots.moenb');
    // What the URL keeps is what the server is asked for.
    assert.equal(new URL(notebookUrl('a b/c.moenb'), 'http://127.0.0.1').pathname, '/api/notebooks/a%20b/c.moenb');
  });
});
