/** Editing a cell while a run writes its outputs: the edit merges into the notebook as it is then. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newCell, patchCell, updateCell, type Cell } from '../../../components/notebook/model.ts';

const ran = (c: Cell, n: number): Cell => ({ ...c, executionCount: n, outputs: [{ type: 'stream', name: 'stdout', text: `out ${n}\n` }] });

describe('cell edits', () => {
  it('keep outputs a run wrote after the editor last rendered', () => {
    const code = { ...newCell('code'), source: 'console.log(1)' };
    let cells: Cell[] = [code];
    // The run starts and writes output; the editor still holds the copy it rendered before.
    cells = updateCell(cells, code.id, (c) => ran(c, 2));
    cells = patchCell(cells, code.id, { source: 'console.log(1) ' });
    assert.equal(cells[0]!.source, 'console.log(1) ');
    assert.equal(cells[0]!.executionCount, 2);
    assert.deepEqual(cells[0]!.outputs, [{ type: 'stream', name: 'stdout', text: 'out 2\n' }]);
  });

  it('mark later cells that ran as stale when the source changes, and only then', () => {
    const [a, b, c] = [newCell('code'), ran(newCell('code'), 1), newCell('code')];
    const edited = patchCell([a, b, c], a.id, { source: 'let x = 1' });
    assert.deepEqual(edited.map((x) => x.stale ?? false), [false, true, false]);
    const prompt = { ...newCell('prompt', 'm'), source: 'Hi' };
    const settings = patchCell([prompt, b], prompt.id, { prompt: { ...prompt.prompt!, maxNewTokens: 8 } });
    assert.equal(settings[0]!.prompt!.maxNewTokens, 8);
    assert.equal(settings[1]!.stale ?? false, false, 'sampling settings are not a source change');
    const same = patchCell([a, b], a.id, { source: a.source });
    assert.equal(same[1]!.stale ?? false, false);
  });

  it('leave the notebook as it is for a cell that is gone', () => {
    const a = newCell('code');
    assert.deepEqual(patchCell([a], 'missing', { source: 'x' }), [a]);
  });
});

describe('viz captions', () => {
  it("editing a viz cell's caption marks nothing stale, since no cell uses it", () => {
    const cells: Cell[] = [
      { ...newCell('viz', 'tiny'), id: 'v' },
      { ...newCell('code', 'tiny'), id: 'c', outputs: [{ type: 'stream', name: 'stdout', text: 'x' }], executionCount: 1 },
    ];
    const after = patchCell(cells, 'v', { source: 'Expert use for the Python prompt' });
    assert.equal(after[0]!.source, 'Expert use for the Python prompt');
    assert.equal(after[1]!.stale ?? false, false);
  });
});
