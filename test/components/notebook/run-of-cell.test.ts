/** Which run a cell stands for, as viz cells and comparisons pick it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newCell, runIdOf, type Cell } from '../../../components/notebook/model.ts';

describe('the run of a cell', () => {
  it("is a prompt cell's run, or the last run a code cell showed with lab.show", () => {
    const prompt: Cell = { ...newCell('prompt', 'm'), outputs: [{ type: 'run', runId: 'p1', modelId: 'm', modelHash: null, status: 'done' }] };
    assert.equal(runIdOf(prompt), 'p1');
    const code: Cell = {
      ...newCell('code'),
      outputs: [
        { type: 'stream', name: 'stdout', text: 'hi\n' },
        { type: 'display', kind: 'heatmap', data: { runId: 'c1', routing: [] } },
        { type: 'display', kind: 'table', data: { rows: [] } },
        { type: 'display', kind: 'token-strip', data: { runId: 'c2', routing: [] } },
      ],
    };
    assert.equal(runIdOf(code), 'c2');
    assert.equal(runIdOf({ ...newCell('code'), outputs: [{ type: 'stream', name: 'stdout', text: 'x' }] }), null);
    assert.equal(runIdOf(undefined), null);
  });
});
