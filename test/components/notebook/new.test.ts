/** Creating notebooks and cells, and switching a cell's kind. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CELL_ID_PATTERN,
  convertCell,
  isCellKind,
  newCellId,
  newCodeCell,
  newMarkdownCell,
  newNotebook,
  newPromptCell,
  newVizCell,
  parseNotebook,
  serializeNotebook,
  type Cell,
} from '../../../components/notebook/format/index.ts';

describe('new notebooks and cells', () => {
  it('makes valid, distinct nbformat ids', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newCellId()));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.ok(CELL_ID_PATTERN.test(id), id);
  });

  it('makes ids from getRandomValues where randomUUID is unavailable (plain http pages)', () => {
    let calls = 0;
    const id = newCellId({
      getRandomValues: <T extends ArrayBufferView | null>(array: T): T => {
        calls++;
        if (array instanceof Uint8Array) array.fill(0xab);
        return array;
      },
    });
    assert.equal(calls, 1);
    assert.equal(id, 'ab'.repeat(16));
  });

  it('builds an empty notebook and one of every kind that validate and round-trip', () => {
    const nb = newNotebook({
      appVersion: '0.1.0',
      model: { id: 'moe-lab-tiny', hash: null },
      title: 'New',
      cells: [
        newMarkdownCell('# hi'),
        newCodeCell('1 + 1'),
        newPromptCell({ source: 'Hello', sampling: { seed: 1 }, interventions: { ban: [{ layer: 'all', expert: 2 }] } }),
        newVizCell({ view: 'routing-grid', source: { runId: 'r1' } }),
        newVizCell({ view: 'compare', source: { runId: 'a' }, sourceB: { runId: 'b' }, caption: 'A vs B' }),
      ],
    });
    const { notebook, warnings } = parseNotebook(serializeNotebook(nb));
    assert.deepEqual(notebook, nb);
    assert.deepEqual(warnings, []);
    assert.deepEqual(parseNotebook(serializeNotebook(newNotebook({ appVersion: '0.1.0' }))).notebook.cells, []);
  });

  describe('convertCell (Jupyter M / Y)', () => {
    const ran: Cell = {
      ...newCodeCell('console.log(1)', 'keep-me'),
      execution_count: 4,
      outputs: [{ output_type: 'stream', name: 'stdout', text: '1\n' }],
    };

    it('keeps id and source, and clears outputs and execution count', () => {
      for (const to of ['markdown', 'prompt'] as const) {
        const c = convertCell(ran, to);
        assert.equal(c.id, 'keep-me');
        assert.equal(c.source, 'console.log(1)');
        assert.equal(c.metadata.moelab.kind, to);
        if (c.cell_type === 'code') {
          assert.deepEqual(c.outputs, []);
          assert.equal(c.execution_count, null);
        }
      }
    });

    it('goes markdown → code → prompt → markdown and back to the same markdown cell', () => {
      const md = newMarkdownCell('text', 'm1');
      const back = convertCell(convertCell(convertCell(md, 'code'), 'prompt'), 'markdown');
      assert.deepEqual(back, md);
    });

    it('gives a prompt cell default settings', () => {
      const p = convertCell(newMarkdownCell('Tell me', 'p1'), 'prompt');
      assert.ok(isCellKind(p, 'prompt'));
      assert.deepEqual(p.metadata.moelab, { kind: 'prompt', model: null, sampling: {}, interventions: {} });
      assert.equal(p.cell_type, 'code');
    });

    it('returns a cell already of the requested kind unchanged', () => {
      assert.equal(convertCell(ran, 'code'), ran);
    });

    it('turns a viz cell into another kind, keeping its caption as source', () => {
      const v = newVizCell({ view: 'latency', caption: 'Latency', id: 'v1' });
      const c = convertCell(v, 'markdown');
      assert.deepEqual(c, newMarkdownCell('Latency', 'v1'));
    });
  });
});
