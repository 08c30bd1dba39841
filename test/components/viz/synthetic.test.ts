/** The seeded synthetic trace used by the benchmark: shaped like the engine's stream, reproducible. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { syntheticTrace } from '../../../components/viz/synthetic.ts';

describe('synthetic trace', () => {
  it('is reproducible from its seed and differs between seeds', () => {
    const a = syntheticTrace({ tokens: 50, layers: 4, experts: 16, topK: 4, seed: 9 });
    const b = syntheticTrace({ tokens: 50, layers: 4, experts: 16, topK: 4, seed: 9 });
    const c = syntheticTrace({ tokens: 50, layers: 4, experts: 16, topK: 4, seed: 10 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it('emits the engine’s events in the engine’s order', () => {
    const ev = syntheticTrace({ tokens: 10, layers: 2, experts: 8, topK: 2, promptTokens: 3 });
    // started, 3 prompt tokens, prefill timing, 3 routings, then 7 × (token, timing, routing), done
    assert.equal(ev.length, 1 + 3 + 1 + 3 + 7 * 3 + 1);
    assert.deepEqual(ev.slice(0, 9).map((e) => e.t), ['started', 'token', 'token', 'token', 'timing', 'routing', 'routing', 'routing', 'token']);
    assert.equal(ev[ev.length - 1]!.t, 'done');
    const ttft = ev.filter((e) => e.t === 'timing' && e.ttftMs !== undefined);
    assert.equal(ttft.length, 1);
  });

  it('routes each token to k distinct experts per layer, by weight, weights summing to 1', () => {
    const ev = syntheticTrace({ tokens: 40, layers: 3, experts: 12, topK: 4, full: true });
    for (const e of ev) {
      if (e.t !== 'routing') continue;
      const p = e.p ?? [];
      assert.equal(e.ids.length, 12);
      assert.equal(e.h.length, 3);
      assert.equal(e.p?.length, 36);
      for (let l = 0; l < 3; l++) {
        const ids: number[] = e.ids.slice(l * 4, l * 4 + 4);
        const w: number[] = e.w.slice(l * 4, l * 4 + 4);
        assert.equal(new Set(ids).size, 4);
        for (let j = 1; j < 4; j++) assert.ok(w[j - 1]! >= w[j]!, 'largest weight first');
        assert.ok(Math.abs(w.reduce((s, x) => s + x, 0) - 1) < 1e-5);
        const pl: number[] = p.slice(l * 12, l * 12 + 12);
        assert.ok(Math.abs(pl.reduce((s, x) => s + x, 0) - 1) < 1e-3);
        // the chosen experts are the k most probable ones
        const smallestChosen = Math.min(...ids.map((id) => pl[id]!));
        const largestOther = Math.max(...pl.filter((_, id) => !ids.includes(id)));
        assert.ok(smallestChosen >= largestOther);
      }
    }
  });
});
