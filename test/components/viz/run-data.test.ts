/** The incremental run accumulator: counts kept while streaming, arrival order, growth and change tracking. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RunEvent } from '../../../server/protocol.ts';
import { RunData } from '../../../components/viz/run-data.ts';
import { countExperts } from '../../../components/viz/stats.ts';
import { seededRandom, syntheticTrace } from '../../../components/viz/synthetic.ts';

const started = (over: Partial<Extract<RunEvent, { t: 'started' }>> = {}): RunEvent => ({
  t: 'started', model: 'm', modelHash: 'h', promptTokens: 1, maxNewTokens: 1, moeLayers: [1, 3], numExperts: 4, topK: 2, seed: 0, ...over,
});
const token = (index: number, id: number, text: string | null, phase: 'prefill' | 'decode' = 'prefill'): RunEvent => ({
  t: 'token', index, id, text, delta: null, phase, logprob: phase === 'decode' ? -0.5 : null, top: [],
});
const routing = (index: number, ids: number[], w: number[], h: number[], p?: number[]): RunEvent => ({ t: 'routing', index, phase: 'prefill', ids, w, h, ...(p ? { p } : {}) });

/** Counts straight from the routing events seen so far (last event per position wins). */
function recountFromEvents(events: readonly RunEvent[], L: number, k: number, E: number): number[] {
  const latest = new Map<number, readonly number[]>();
  for (const e of events) if (e.t === 'routing') latest.set(e.index, e.ids);
  const counts = new Array<number>(L * E).fill(0);
  for (const ids of latest.values()) for (let l = 0; l < L; l++) for (let j = 0; j < k; j++) counts[l * E + ids[l * k + j]!]!++;
  return counts;
}

describe('RunData', () => {
  it("labels a token with the text it adds when it has one, so a character split over two tokens reads whole", () => {
    const data = new RunData();
    const withDelta = (index: number, text: string, delta: string): RunEvent => ({ ...(token(index, index, text) as Extract<RunEvent, { t: 'token' }>), delta });
    data.append([started({ promptTokens: 3 }), withDelta(0, '\uFFFD', ''), withDelta(1, '\uFFFD', 'М'), withDelta(2, 'о', 'о'), token(3, 9, 'x')]);
    assert.deepEqual([0, 1, 2, 3].map((i) => data.tokenLabel(i)), ['\uFFFD', 'М', 'о', 'x']);
  });

  it('keeps per-layer expert counts equal to a full recount after every streamed batch', () => {
    const events = syntheticTrace({ tokens: 300, layers: 4, experts: 16, topK: 3, seed: 7 });
    const data = new RunData();
    const rand = seededRandom(3);
    let at = 0;
    while (at < events.length) {
      const n = 1 + Math.floor(rand() * 40);
      data.append(events.slice(at, at + n));
      at += n;
      assert.deepEqual([...data.counts], recountFromEvents(events.slice(0, at), 4, 3, 16), `after ${at} events`);
      assert.deepEqual(data.counts, countExperts(data.routingIds, data.length, 4, 3, 16));
    }
    assert.equal(data.routedCount, 300);
    assert.equal(data.tokenCount, 300);
  });

  it('places routing that arrives after its token', () => {
    const d = new RunData();
    d.append([started(), token(0, 11, ' a')]);
    assert.equal(d.hasToken(0), true);
    assert.equal(d.hasRouting(0), false);
    assert.equal(d.topExpert(0, 0), -1);
    d.append([routing(0, [2, 0, 1, 3], [0.7, 0.3, 0.6, 0.4], [0.5, 0.9])]);
    assert.equal(d.topExpert(0, 0), 2);
    assert.equal(d.topExpert(0, 1), 1);
    assert.deepEqual([...d.layerIds(0, 1)], [1, 3]);
    assert.deepEqual([...d.layerWeights(0, 0)].map((w) => Number(w.toFixed(6))), [0.7, 0.3]);
    close(d.entropy[1]!, 0.9);
    // layer 0: e2, e0; layer 1: e1, e3
    assert.deepEqual([...d.counts], [1, 0, 1, 0, 0, 1, 0, 1]);
  });

  it('places routing that arrives before its token, and the token later', () => {
    const d = new RunData();
    d.append([started(), token(0, 11, ' a'), routing(0, [2, 0, 1, 3], [0.7, 0.3, 0.6, 0.4], [0.5, 0.9])]);
    d.append([routing(1, [2, 1, 3, 1], [0.5, 0.5, 0.8, 0.2], [0.6, 0.4])]);
    assert.equal(d.length, 2);
    assert.equal(d.hasRouting(1), true);
    assert.equal(d.hasToken(1), false);
    assert.equal(d.tokenLabel(1), '');
    assert.equal(d.topExpert(1, 0), 2);
    // layer 0: e2 ×2, e0, e1; layer 1: e1 ×2, e3 ×2
    assert.deepEqual([...d.counts], [1, 1, 2, 0, 0, 2, 0, 2]);
    d.append([token(1, 12, null, 'decode')]);
    assert.equal(d.hasToken(1), true);
    assert.equal(d.tokenLabel(1), '[12]');
    assert.equal(d.phaseOf(1), 'decode');
    close(d.logprobs[1]!, -0.5);
    assert.deepEqual([...d.counts], [1, 1, 2, 0, 0, 2, 0, 2], 'a token does not touch the counts');
  });

  it('replaces a position routed twice instead of counting it twice', () => {
    const d = RunData.fromEvents([started(), routing(0, [0, 1, 2, 3], [0.5, 0.5, 0.5, 0.5], [0, 0]), routing(0, [3, 2, 1, 0], [0.5, 0.5, 0.5, 0.5], [0, 0])]);
    assert.equal(d.routedCount, 1);
    assert.deepEqual([...d.counts], [0, 0, 1, 1, 1, 1, 0, 0]);
  });

  it('names layers by their model layer index', () => {
    const d = RunData.fromEvents([started()]);
    assert.equal(d.layerLabel(0), 'L1');
    assert.equal(d.layerLabel(1), 'L3');
  });

  it('grows its arrays past the initial capacity without losing data', () => {
    const d = new RunData();
    d.append([started({ promptTokens: 1, maxNewTokens: 1 })]);
    const events: RunEvent[] = [];
    for (let i = 0; i < 500; i++) events.push(token(i, i, `t${i}`), routing(i, [i % 4, (i + 1) % 4, (i + 2) % 4, (i + 3) % 4], [0.6, 0.4, 0.6, 0.4], [1, 1]));
    for (let i = 0; i < events.length; i += 37) d.append(events.slice(i, i + 37));
    assert.equal(d.length, 500);
    assert.equal(d.tokenLabel(0), 't0');
    assert.equal(d.tokenLabel(499), 't499');
    assert.equal(d.topExpert(0, 0), 0);
    assert.equal(d.topExpert(257, 1), (257 + 2) % 4);
    // each layer picks 2 consecutive experts mod 4, so every expert is in 2 of 4 residues: 500 · 2/4
    assert.deepEqual([...d.counts], [250, 250, 250, 250, 250, 250, 250, 250]);
  });

  it('builds the same arrays from a complete list as from a stream', () => {
    const events = syntheticTrace({ tokens: 120, layers: 3, experts: 8, topK: 2, seed: 2, full: true });
    const whole = RunData.fromEvents(events);
    const streamed = new RunData();
    for (let i = 0; i < events.length; i += 5) streamed.append(events.slice(i, i + 5));
    assert.deepEqual(streamed.counts, whole.counts);
    assert.deepEqual(streamed.routingIds.subarray(0, 120 * 3 * 2), whole.routingIds.subarray(0, 120 * 3 * 2));
    assert.deepEqual(streamed.weights.subarray(0, 120 * 3 * 2), whole.weights.subarray(0, 120 * 3 * 2));
    assert.deepEqual(streamed.layerProbs(50, 2), whole.layerProbs(50, 2));
    assert.deepEqual(streamed.texts, whole.texts);
    assert.deepEqual(streamed.steps, whole.steps);
  });

  it('bumps the version once per non-empty append and notifies subscribers', () => {
    const d = new RunData();
    const seen: number[] = [];
    const off = d.subscribe((x) => seen.push(x.version));
    d.append([started(), token(0, 1, 'a')]);
    d.append([]);
    d.append([token(1, 2, 'b')]);
    off();
    d.append([token(2, 3, 'c')]);
    assert.deepEqual(seen, [1, 2]);
    assert.equal(d.version, 3);
  });

  it('keeps timing steps, TTFT and the final summary', () => {
    const d = RunData.fromEvents([
      started(),
      { t: 'timing', phase: 'prefill', tokens: 4, ms: 20 },
      { t: 'timing', phase: 'decode', tokens: 1, ms: 8, ttftMs: 31 },
      { t: 'timing', phase: 'decode', tokens: 1, ms: 9 },
      { t: 'done', reason: 'length', promptTokens: 4, generatedTokens: 2, text: 'x', ttftMs: 31, totalMs: 40, prefillTokensPerSecond: 200, decodeTokensPerSecond: 117.6 },
    ]);
    assert.deepEqual(d.steps, [
      { phase: 'prefill', tokens: 4, ms: 20 },
      { phase: 'decode', tokens: 1, ms: 8 },
      { phase: 'decode', tokens: 1, ms: 9 },
    ]);
    assert.equal(d.ttftMs, 31);
    assert.equal(d.done?.reason, 'length');
  });

  it('returns the full router distribution only where the event carried one', () => {
    const d = RunData.fromEvents([
      started(),
      routing(0, [2, 0, 1, 3], [0.7, 0.3, 0.6, 0.4], [0.5, 0.9], [0.3, 0, 0.7, 0, 0, 0.6, 0, 0.4]),
      routing(1, [2, 0, 1, 3], [0.7, 0.3, 0.6, 0.4], [0.5, 0.9]),
    ]);
    assert.deepEqual([...d.layerProbs(0, 1)!].map((v) => Number(v.toFixed(6))), [0, 0.6, 0, 0.4]);
    assert.equal(d.layerProbs(1, 0), null);
    assert.equal(d.layerProbs(5, 0), null);
  });

  it('infers the routing shape when the stream starts without a started event', () => {
    const d = new RunData();
    d.append([routing(3, [5, 1, 0, 2], [0.5, 0.5, 0.5, 0.5], [1, 1])]);
    assert.equal(d.numLayers, 2);
    assert.equal(d.topK, 2);
    assert.equal(d.numExperts, 6);
    // a larger id widens E and keeps the earlier counts in place
    d.append([routing(4, [9, 1, 0, 2], [0.5, 0.5, 0.5, 0.5], [1, 1])]);
    assert.equal(d.numExperts, 10);
    assert.deepEqual([...d.layerCounts(0)], [0, 2, 0, 0, 0, 1, 0, 0, 0, 1]);
    assert.deepEqual([...d.layerCounts(1)], [2, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(d.hasRouting(3), true);
    assert.equal(d.hasRouting(0), false);
  });

  it('ignores routing that contradicts the shape the run declared', () => {
    const d = RunData.fromEvents([started(), routing(0, [1, 2, 3], [1, 1, 1], [0])]);
    assert.equal(d.hasRouting(0), false);
    assert.equal(d.routedCount, 0);
  });

  it('records a run error', () => {
    const d = RunData.fromEvents([started(), { t: 'error', code: 'ENGINE_BAD_TOP_K', message: 'bad k' }]);
    assert.deepEqual(d.error, { code: 'ENGINE_BAD_TOP_K', message: 'bad k' });
  });
});

function close(a: number, b: number, tol = 1e-6): void {
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
}

describe('RunData with a load-balancing bias (DeepSeek-V3)', () => {
  const ub = (index: number, ids: number[], without: number[]): RunEvent => ({ t: 'routing', index, phase: 'prefill', ids, w: [0.6, 0.4, 0.7, 0.3], h: [1, 1], ub: without });

  it('says which experts the bias brought in and which it displaced, per layer', () => {
    const d = new RunData();
    d.append([started(), ub(0, [2, 1, 0, 3], [2, 1, 3, 0]), ub(1, [3, 0, 1, 2], [3, 2, 1, 0])]);
    assert.deepEqual(d.biasChange(0, 0), { added: [], dropped: [] }, 'same experts in another order: nothing changed');
    assert.deepEqual(d.biasChange(0, 1), { added: [], dropped: [] });
    assert.deepEqual(d.biasChange(1, 0), { added: [0], dropped: [2] });
    assert.deepEqual(d.biasChange(1, 1), { added: [2], dropped: [0] });
    assert.equal(d.biasChange(5, 0), null, 'no routing at that position');
    // Grows with the run like every other per-position array.
    d.append(Array.from({ length: 300 }, (_, i) => ub(i + 2, [1, 2, 3, 0], [1, 3, 3, 2])));
    assert.deepEqual(d.biasChange(301, 0), { added: [2], dropped: [3] });
    assert.deepEqual(d.biasChange(1, 0), { added: [0], dropped: [2] }, 'kept across growth');
  });

  it('has no bias change for routers without a bias', () => {
    const d = RunData.fromEvents([started(), routing(0, [0, 1, 2, 3], [0.5, 0.5, 0.5, 0.5], [1, 1])]);
    assert.equal(d.unbiasedIds, null);
    assert.equal(d.biasChange(0, 0), null);
  });
});
