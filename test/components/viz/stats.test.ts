/** Aggregations behind the views, each checked against numbers worked out by hand. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StepTiming } from '../../../components/viz/run-data.ts';
import {
  coactivation,
  conditionalMatrix,
  countExperts,
  latencySummary,
  layerBreakdown,
  layerLoad,
  loadStats,
  median,
  shares,
  tokenDiff,
  tokenTimes,
  utilizationDiff,
} from '../../../components/viz/stats.ts';

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe('load statistics', () => {
  it('computes CV, max/mean and entropy of a skewed layer', () => {
    // counts 3, 1, 0, 0: total 4, mean 1; deviations 2, 0, −1, −1 → variance (4 + 0 + 1 + 1) / 4 = 1.5
    const s = layerLoad([3, 1, 0, 0]);
    assert.equal(s.total, 4);
    assert.equal(s.mean, 1);
    close(s.std, Math.sqrt(1.5));
    close(s.cv, Math.sqrt(1.5));
    assert.equal(s.maxOverMean, 3);
    // shares ¾, ¼: H = ¾·log2(4/3) + ¼·log2(4) = 0.311278 + 0.5 bits
    close(s.entropyBits, 0.75 * Math.log2(4 / 3) + 0.5);
    close(s.entropyBits, 0.8112781244591328);
    close(s.normalizedEntropy, 0.8112781244591328 / 2);
  });

  it('reports a perfectly balanced layer as CV 0, max/mean 1, entropy log2 E', () => {
    const s = layerLoad([5, 5, 5, 5, 5, 5, 5, 5]);
    assert.equal(s.cv, 0);
    assert.equal(s.maxOverMean, 1);
    close(s.entropyBits, 3);
    close(s.normalizedEntropy, 1);
  });

  it('reports one expert taking everything as max/mean E and entropy 0', () => {
    const s = layerLoad([0, 12, 0, 0]);
    assert.equal(s.maxOverMean, 4);
    // mean 3, deviations −3, 9, −3, −3 → variance 108 / 4 = 27
    close(s.cv, Math.sqrt(27) / 3);
    assert.equal(s.entropyBits, 0);
    assert.equal(s.normalizedEntropy, 0);
  });

  it('leaves the ratios undefined for a layer with no routing yet', () => {
    const s = layerLoad([0, 0, 0]);
    assert.equal(s.total, 0);
    assert.ok(Number.isNaN(s.cv));
    assert.ok(Number.isNaN(s.maxOverMean));
  });

  it('reads each layer of an [L × E] matrix at its own offset', () => {
    const stats = loadStats([3, 1, 0, 0, 1, 1, 1, 1], 2, 4);
    assert.equal(stats.length, 2);
    assert.equal(stats[0]!.maxOverMean, 3);
    assert.equal(stats[1]!.cv, 0);
    assert.deepEqual([...shares([3, 1, 0, 0, 1, 1, 1, 1], 2, 4)], [0.75, 0.25, 0, 0, 0.25, 0.25, 0.25, 0.25]);
  });

  it('recounts experts from routing ids, skipping positions without routing', () => {
    // T = 3, L = 2, k = 2; position 1 has no routing (−1)
    const ids = [0, 1, 2, 3, -1, -1, -1, -1, 1, 0, 3, 3];
    assert.deepEqual([...countExperts(ids, 3, 2, 2, 4)], [2, 2, 0, 0, 0, 0, 1, 3]);
  });
});

describe('co-activation', () => {
  // Three tokens, L = 2, k = 3, E = 4; only layer 1 matters, layer 0 holds decoys.
  // layer 1 top-3: {0, 1, 2}, {0, 2, 3}, {1, 0, 3}
  const ids = [
    3, 3, 3, 0, 1, 2, //
    1, 1, 1, 0, 2, 3, //
    2, 2, 2, 1, 0, 3,
  ];

  it('counts each unordered pair once per token', () => {
    const co = coactivation(ids, 3, 2, 3, 4, 1);
    assert.equal(co.tokens, 3);
    // N(i): expert 0 in all three, 1 in tokens 0 and 2, 2 in tokens 0 and 1, 3 in tokens 1 and 2
    assert.deepEqual([...co.single], [3, 2, 2, 2]);
    // pairs: t0 (0,1) (0,2) (1,2); t1 (0,2) (0,3) (2,3); t2 (0,1) (1,3) (0,3)
    const N = (i: number, j: number) => co.pair[i * 4 + j];
    assert.equal(N(0, 1), 2);
    assert.equal(N(0, 2), 2);
    assert.equal(N(0, 3), 2);
    assert.equal(N(1, 2), 1);
    assert.equal(N(1, 3), 1);
    assert.equal(N(2, 3), 1);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) assert.equal(N(i, j), N(j, i), 'symmetric');
  });

  it('turns pair counts into P(j | i) = N(i, j) / N(i), row = given expert', () => {
    const p = conditionalMatrix(coactivation(ids, 3, 2, 3, 4, 1));
    const P = (j: number, i: number) => p[i * 4 + j]!;
    close(P(1, 0), 2 / 3);
    close(P(0, 1), 1); // every token with expert 1 also had expert 0
    close(P(2, 1), 1 / 2);
    close(P(3, 2), 1 / 2);
    assert.equal(P(0, 0), 1);
  });

  it('leaves the row of a never-chosen expert undefined rather than zero', () => {
    // k = 2, E = 3, one layer: {0, 1}, {1, 0}; expert 2 never chosen
    const p = conditionalMatrix(coactivation([0, 1, 1, 0], 2, 1, 2, 3, 0));
    assert.ok(Number.isNaN(p[2 * 3 + 0]!));
    assert.equal(p[0 * 3 + 2], 0);
    assert.equal(p[0 * 3 + 1], 1);
  });

  it('skips positions without routing and counts a repeated id once', () => {
    const co = coactivation([-1, -1, 2, 2], 2, 1, 2, 3, 0);
    assert.equal(co.tokens, 1);
    assert.deepEqual([...co.single], [0, 0, 1]);
    assert.ok(co.pair.every((v) => v === 0));
  });
});

describe('A/B differences', () => {
  it('aligns tokens by position and finds the first divergence', () => {
    const d = tokenDiff({ length: 5, tokenIds: [1, 2, 3, 4, 5] }, { length: 4, tokenIds: [1, 2, 9, 4] });
    assert.deepEqual(d.kinds, ['same', 'same', 'different', 'same', 'only-a']);
    assert.equal(d.firstDivergence, 2);
    assert.equal(d.differing, 2);
  });

  it('marks positions only the longer run has, and identical runs as no divergence', () => {
    assert.deepEqual(tokenDiff({ length: 1, tokenIds: [7] }, { length: 3, tokenIds: [7, 8, 9] }).kinds, ['same', 'only-b', 'only-b']);
    const same = tokenDiff({ length: 2, tokenIds: [7, 8] }, { length: 2, tokenIds: [7, 8] });
    assert.equal(same.firstDivergence, -1);
    assert.equal(same.differing, 0);
  });

  it('treats a position whose token has not arrived (id −1) as missing', () => {
    assert.deepEqual(tokenDiff({ length: 2, tokenIds: [4, -1] }, { length: 2, tokenIds: [4, 6] }).kinds, ['same', 'only-b']);
  });

  it('subtracts shares per layer and measures total variation', () => {
    // layer 0: A ½ ½ 0 0, B ¼ ¼ ¼ ¼ → Δ −¼ −¼ +¼ +¼, TV ½; layer 1 identical → 0
    const u = utilizationDiff([2, 2, 0, 0, 1, 0, 0, 1], [1, 1, 1, 1, 3, 0, 0, 3], 2, 4);
    assert.deepEqual([...u.delta], [-0.25, -0.25, 0.25, 0.25, 0, 0, 0, 0]);
    assert.equal(u.maxAbs, 0.25);
    assert.deepEqual([...u.totalVariation], [0.5, 0]);
  });

  it('shows a banned expert as its whole share lost', () => {
    // A: expert 3 takes 40 of 100; B: banned, its load spread over 0 and 1
    const u = utilizationDiff([20, 20, 20, 40], [40, 40, 20, 0], 1, 4);
    close(u.delta[3]!, -0.4);
    close(u.totalVariation[0]!, 0.4);
  });
});

describe('latency', () => {
  const steps: StepTiming[] = [
    { phase: 'prefill', tokens: 5, ms: 50 },
    { phase: 'decode', tokens: 1, ms: 10 },
    { phase: 'decode', tokens: 1, ms: 20 },
    { phase: 'decode', tokens: 1, ms: 12 },
    { phase: 'decode', tokens: 1, ms: 30 },
  ];

  it('summarises prefill, decode and TTFT like the engine does', () => {
    const s = latencySummary(steps, 61);
    assert.equal(s.ttftMs, 61);
    assert.equal(s.prefillMs, 50);
    assert.equal(s.prefillTokens, 5);
    assert.equal(s.prefillTokensPerSecond, 100); // 5 tokens / 50 ms
    assert.equal(s.decodeTokens, 4);
    assert.equal(s.decodeMs, 72);
    assert.equal(s.meanDecodeMs, 18);
    assert.equal(s.medianDecodeMs, 16); // (12 + 20) / 2
    close(s.decodeTokensPerSecond!, (4 / 72) * 1000);
  });

  it('has no rates before any step', () => {
    const s = latencySummary([], null);
    assert.equal(s.prefillMs, null);
    assert.equal(s.meanDecodeMs, null);
    assert.equal(s.decodeTokensPerSecond, null);
  });

  it('shares a prefill step among its tokens and gives each decode step to its token', () => {
    const t = tokenTimes(steps);
    assert.deepEqual([...t.ms], [10, 10, 10, 10, 10, 10, 20, 12, 30]);
    assert.deepEqual(t.phase, ['prefill', 'prefill', 'prefill', 'prefill', 'prefill', 'decode', 'decode', 'decode', 'decode']);
  });

  it('takes the median of odd and even lists', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([]), null);
  });

  it('averages the profiled per-layer times over the steps of one phase', () => {
    const profile = {
      steps: [
        { phase: 'prefill' as const, totalMs: 9, layers: [{ layer: 0, attentionMs: 4, mlpMs: 4, otherMs: 1 }] },
        { phase: 'decode' as const, totalMs: 3, layers: [{ layer: 1, attentionMs: 1, mlpMs: 2, otherMs: 0 }, { layer: 0, attentionMs: 1, mlpMs: 1, otherMs: 0.5 }] },
        { phase: 'decode' as const, totalMs: 5, layers: [{ layer: 0, attentionMs: 3, mlpMs: 1, otherMs: 0.5 }, { layer: 1, attentionMs: 1, mlpMs: 4, otherMs: 0 }] },
      ],
    };
    assert.deepEqual(layerBreakdown(profile, 'decode'), [
      { layer: 0, attentionMs: 2, mlpMs: 1, otherMs: 0.5 },
      { layer: 1, attentionMs: 1, mlpMs: 3, otherMs: 0 },
    ]);
    assert.deepEqual(layerBreakdown(profile, 'prefill'), [{ layer: 0, attentionMs: 4, mlpMs: 4, otherMs: 1 }]);
    assert.deepEqual(layerBreakdown({ steps: [] }, 'decode'), []);
  });
});
