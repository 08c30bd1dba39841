/** The routing metrics against hand-computed cases, and random routing against the random baselines. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  binomial,
  coactivation,
  coefficientOfVariation,
  consecutiveRates,
  contiguousPlacement,
  domainShare,
  eplbBalancedness,
  entropy,
  expertCounts,
  layerTransitions,
  loadShare,
  maxOverMean,
  randomCoactivation,
  randomLoadCv,
  randomOverlap,
  randomSameTop1,
  topKMass,
  topPairs,
  vocabularySpecialization,
} from '../../../engine/analysis/metrics/index.ts';
import { analyzeTraces, formatReport } from '../../../engine/analysis/report.ts';
import { seededRandom } from '../../../engine/generate/sampling.ts';
import { handTrace, randomTrace } from './synthetic.ts';

const close = (a: number, b: number, tol = 1e-12, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} is not within ${tol} of ${b}`);
const ids = (rows: number[][]) => Int32Array.from(rows.flat());

describe('load balance', () => {
  // Four tokens, top-2 of 4 experts: counts [3, 2, 2, 1], mean 2, σ² = (1 + 0 + 0 + 1) / 4.
  const routed = ids([[0, 1], [0, 2], [0, 3], [1, 2]]);

  it('counts every rank once and shares sum to one', () => {
    assert.deepEqual([...expertCounts(routed, 4)], [3, 2, 2, 1]);
    assert.deepEqual([...loadShare(expertCounts(routed, 4))], [3 / 8, 2 / 8, 2 / 8, 1 / 8]);
  });

  it('CV is the population σ over the mean; max/mean the peak over the mean', () => {
    close(coefficientOfVariation([3, 2, 2, 1]), Math.sqrt(0.5) / 2);
    close(maxOverMean([3, 2, 2, 1]), 1.5);
    assert.equal(coefficientOfVariation([5, 5, 5]), 0);
    close(maxOverMean([8, 0, 0, 0]), 4, 1e-12, 'one expert takes all: E');
  });

  it('the random CV baseline is √((E − k) / (N k))', () => {
    close(randomLoadCv(8, 2, 1000), Math.sqrt(6 / 2000));
  });
});

describe('router distribution', () => {
  it('entropy in nats: 0 when certain, ln 2 for a fair coin, ln E when uniform', () => {
    assert.equal(entropy([1, 0, 0]), 0);
    close(entropy([0.5, 0.5]), Math.LN2);
    close(entropy([0.25, 0.25, 0.25, 0.25]), Math.log(4));
  });

  it('top-k mass sums each token\'s selected probabilities', () => {
    const m = topKMass(Float32Array.from([0.5, 0.25, 0.125, 0.0625]), 2);
    assert.deepEqual([...m], [0.75, 0.1875]);
  });
});

describe('specialization', () => {
  it('share_D(e) is the fraction of the domain\'s tokens routed to e; shares of a domain sum to k', () => {
    const { share, tokens } = domainShare(ids([[0, 1], [0, 2], [3, 1], [3, 2]]), 2, 4, Int32Array.from([0, 0, 1, 1]), 2);
    assert.deepEqual([...tokens], [2, 2]);
    assert.deepEqual([...share], [1, 0.5, 0.5, 0, 0, 0.5, 0.5, 1]);
  });

  it('vocabulary specialization is max_e N(x→e)/N(x) over tokens seen at least 10 times', () => {
    // Token 7 ten times: expert 1 seven times, expert 2 three times. Token 8 nine times: excluded.
    const experts = [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3];
    const tokens = [...new Array(10).fill(7), ...new Array(9).fill(8)];
    const v = vocabularySpecialization(Int32Array.from(experts), 1, 4, Int32Array.from(tokens));
    assert.deepEqual([...v.tokenIds], [7]);
    assert.deepEqual([...v.counts], [10]);
    close(v.specialization[0]!, 0.7);
    assert.equal(v.topExpert[0], 1);
    close(v.mean, 0.7);
    const lower = vocabularySpecialization(Int32Array.from(experts), 1, 4, Int32Array.from(tokens), 9);
    assert.deepEqual([...lower.tokenIds], [7, 8]);
    assert.equal(lower.specialization[1], 1);
  });
});

describe('co-activation and transitions', () => {
  it('P(j | i) = N(i, j) / N(i) over every pair in the top-k', () => {
    const m = coactivation(ids([[0, 1], [0, 1], [0, 2], [1, 2]]), 2, 3);
    const expected = [0, 2 / 3, 1 / 3, 2 / 3, 0, 1 / 3, 1 / 2, 1 / 2, 0];
    m.forEach((x, i) => close(x, expected[i]!));
    assert.deepEqual(topPairs(m, 3, 2).map((p) => [p.i, p.j]), [[0, 1], [1, 0]]);
    close(randomCoactivation(8, 2), 1 / 7);
  });

  it('cross-layer P(j at b | i at a) counts each token\'s pairs of experts', () => {
    const m = layerTransitions(ids([[0], [0], [1]]), ids([[1], [2], [1]]), 1, 3);
    assert.deepEqual([...m], [0, 0.5, 0.5, 0, 1, 0, 0, 0, 0]);
    // Expert 1 of one layer and expert 1 of the next are different experts: that pair ranks too.
    assert.deepEqual(topPairs(m, 3, 2, true).map((p) => [p.i, p.j, p.p]), [[1, 1, 1], [0, 1, 0.5]]);
  });
});

describe('consecutive tokens', () => {
  it('pairs only neighbouring positions of the same run', () => {
    // Run 0: positions 0-3. Run 1: positions 0 and 2 (1 missing), then run 2 at position 4.
    const routed = ids([[0, 1], [0, 2], [3, 2], [1, 0], [5, 6], [5, 6], [5, 6]]);
    const r = consecutiveRates(routed, 2, Int32Array.from([0, 0, 0, 0, 1, 1, 2]), Int32Array.from([0, 1, 2, 3, 0, 2, 4]));
    assert.equal(r.pairs, 3);
    close(r.sameTop1, 1 / 3);
    close(r.anyOverlap, 2 / 3);
  });

  it('the random baselines are 1/E and 1 − C(E−k, k)/C(E, k)', () => {
    assert.equal(binomial(8, 2), 28);
    assert.equal(binomial(6, 2), 15);
    assert.equal(randomSameTop1(8), 0.125);
    close(randomOverlap(8, 2), 13 / 28);
    close(randomOverlap(64, 8), 1 - binomial(56, 8) / binomial(64, 8));
    assert.equal(randomOverlap(4, 3), 1, 'two 3-of-4 sets always meet');
  });

  it('uniformly random routing reproduces every random baseline (E = 8, k = 2)', () => {
    // One run of T = 50 000 positions, two layers: n = 49 999 consecutive pairs per layer. Under
    // uniform routing the pair indicators are pairwise independent (given the shared middle
    // set, each neighbour matches with the same fixed probability), so a rate's standard error
    // is exactly √(p(1−p)/n): 0.0015 for 12.5 %, 0.0022 for 46.4 %. We allow 5 SE (a false
    // failure has probability ≈ 6e-7 for any seed; the seed is fixed anyway). Co-activation
    // pools ≈ 12 500 tokens per expert (SE ≈ 0.003 around 1/7); domain shares use 25 000
    // tokens per domain (SE ≈ 0.003 around 0.25). Their reported values are maxima over 56 or 8
    // estimates, which sit ≈ 2–3 SE above the mean; we allow 0.015 (5 SE) for those.
    const E = 8;
    const k = 2;
    const trace = randomTrace(seededRandom(2024), { tokens: 50_000, layers: [0, 1], E, k });
    // Grouping by phase splits the run in two halves of 25 000 positions: two "domains".
    const report = analyzeTraces([trace], { by: 'phase' });
    for (const l of report.perLayer) {
      const n = l.consecutive.pairs;
      assert.equal(n, 49_999);
      const se = (p: number) => Math.sqrt((p * (1 - p)) / n);
      close(l.consecutive.sameTop1!, 0.125, 5 * se(0.125), 'same top-1');
      close(l.consecutive.anyOverlap!, 13 / 28, 5 * se(13 / 28), 'any overlap');
      close(l.coactivation[0]!.p, 1 / 7, 0.015, 'largest co-activation');
      // Load CV of multinomial counts: its own spread is wide, so only its scale is checked.
      assert.ok(l.load.cv! < 3 * l.load.randomCv!, `load CV ${l.load.cv} vs random ${l.load.randomCv}`);
    }
    for (const g of report.by!.groups) for (const l of g.layers) close(l.maxShare, 0.25, 0.015, `max share of ${g.value}`);
    assert.equal(report.baselines.sameTop1, 0.125);
    close(report.baselines.anyOverlap, 0.4642857142857143);
  });

  it('a routing that repeats its experts is far above the baselines', () => {
    const r = analyzeTraces([handTrace(new Array(20).fill([3, 4]), 8)]);
    assert.equal(r.perLayer[0]!.consecutive.sameTop1, 1);
    assert.equal(r.perLayer[0]!.consecutive.anyOverlap, 1);
  });
});

describe('EPLB balancedness', () => {
  it('is mean over max of device loads, summed over layers as vLLM reports it', () => {
    // Layer 0: loads [4, 2, 1, 1] on 2 devices → [6, 2]: mean 4, max 6. Layer 1: even, 2 and 2.
    const b = eplbBalancedness(Float64Array.from([4, 2, 1, 1, 1, 1, 1, 1]), 2, 4, contiguousPlacement(4, 2));
    assert.deepEqual([...b.deviceLoad], [6, 2, 2, 2]);
    close(b.perLayer[0]!, 4 / 6);
    close(b.perLayer[1]!, 1);
    close(b.overall, (4 + 2) / (6 + 2));
  });

  it('replicas split an expert\'s load evenly, which can balance a skewed layer', () => {
    // Six slots, three per device: [0, 1, 2 | 0, 3, 1]. Expert 0 (4) and 1 (2) are replicated.
    const b = eplbBalancedness(Float64Array.from([4, 2, 1, 1]), 1, 4, { slots: 6, phy2log: Int32Array.from([0, 1, 2, 0, 3, 1]), devices: 2 });
    assert.deepEqual([...b.deviceLoad], [4, 4]);
    assert.equal(b.overall, 1);
  });

  it('refuses a placement that drops a loaded expert or does not split over the devices', () => {
    assert.throws(() => eplbBalancedness(Float64Array.from([1, 1, 1, 1]), 1, 4, { slots: 4, phy2log: Int32Array.from([0, 1, 2, 2]), devices: 2 }), { code: 'TRACE_BAD_INPUT' });
    assert.throws(() => eplbBalancedness(Float64Array.from([1, 1, 1, 1]), 1, 4, contiguousPlacement(4, 3)), { code: 'TRACE_BAD_INPUT' });
  });
});

describe('analysis report', () => {
  const runs = [
    handTrace([[0, 1], [0, 1], [0, 2]], 4, { runId: 'a', fields: { domain: 'code' }, tokenIds: [5, 5, 6] }),
    handTrace([[3, 2], [3, 1]], 4, { runId: 'b', fields: { domain: 'prose' }, tokenIds: [5, 7] }),
  ];

  it('groups by a run field: shares per group and the experts that dominate it', () => {
    const r = analyzeTraces(runs, { by: 'domain', top: 2 });
    const code = r.by!.groups.find((g) => g.value === 'code')!;
    assert.equal(code.positions, 3);
    assert.deepEqual(code.layers[0]!.top.map((e) => [e.expert, e.share]), [[0, 1], [1, 2 / 3]]);
    close(code.layers[0]!.top[0]!.lift!, 1 / (3 / 5), 1e-12, 'share 1 against 3 of 5 positions overall');
    assert.equal(r.perLayer[0]!.load.counts.reduce((a, b) => a + b, 0), 10);
    assert.equal(r.perLayer[0]!.consecutive.pairs, 3, 'pairs never cross runs');
  });

  it('keeps runs without the field apart from a run whose value merely reads "(none)", and lists --top experts per group', () => {
    const more = [...runs, handTrace([[1, 2]], 4, { runId: 'c', fields: {} }), handTrace([[2, 3]], 4, { runId: 'd', fields: { domain: '(none)' } })];
    const r = analyzeTraces(more, { by: 'domain', top: 4 });
    assert.deepEqual(r.by!.groups.map((g) => [g.value, g.runs]), [['code', 1], ['prose', 1], [null, 1], ['(none)', 1]]);
    assert.equal(r.by!.groups[0]!.layers[0]!.top.length, 4);
    assert.match(formatReport(r), /domain not set {2}\(1 run\(s\)/);
  });

  it('gives every co-activation pair the positions it rests on', () => {
    const r = analyzeTraces(runs);
    // Expert 0 was chosen at 3 positions, with 1 at two of them: P(1 | 0) = 2/3 of 3.
    const pair = r.perLayer[0]!.coactivation.find((p) => p.i === 0 && p.j === 1)!;
    close(pair.p, 2 / 3);
    assert.equal(pair.n, 3);
    assert.match(formatReport(r), /0→1 66\.7 ?% of 3/);
  });

  it('is plain JSON: no NaN, undefined or Infinity hides in it', () => {
    const r = analyzeTraces(runs, { by: 'phase', devices: 2 });
    assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
    assert.equal(r.perLayer[0]!.entropy, null, 'hand traces carry no router distribution');
    assert.equal(r.perLayer[0]!.vocabulary.tokens, 0, 'no token id seen 10 times');
  });

  it('refuses an unknown grouping field and runs of different k', () => {
    assert.throws(() => analyzeTraces(runs, { by: 'colour' }), { code: 'TRACE_UNKNOWN_FIELD' });
    assert.throws(() => analyzeTraces([runs[0]!, handTrace([[1]], 4)]), { code: 'TRACE_BAD_INPUT' });
  });
});
