/**
 * Aggregations behind the views, over plain arrays so they can be checked by hand: expert load per
 * layer, co-activation, A/B differences and latency summaries.
 */
import type { Phase } from '../../server/protocol';
import type { StepTiming } from './run-data';

// ---- load balance ----------------------------------------------------------------------------

export interface LoadStats {
  /** Expert selections in the layer (routed tokens × k). */
  readonly total: number;
  /** Mean count per expert: total / E. */
  readonly mean: number;
  /** Population standard deviation of the counts. */
  readonly std: number;
  /** Coefficient of variation, std / mean: 0 when perfectly balanced. NaN without data. */
  readonly cv: number;
  /** Busiest expert's count over the mean: 1 when balanced, E when one expert takes everything. */
  readonly maxOverMean: number;
  /** Shannon entropy of the share distribution, in bits (log2). */
  readonly entropyBits: number;
  /** entropyBits / log2(E): 1 = uniform, 0 = one expert. This is what the heatmap shows as "H". */
  readonly normalizedEntropy: number;
}

/** Load statistics of one layer's counts, `counts[offset … offset+experts)`. */
export function layerLoad(counts: ArrayLike<number>, experts = counts.length, offset = 0): LoadStats {
  let total = 0;
  let max = 0;
  for (let e = 0; e < experts; e++) {
    const c = counts[offset + e]!;
    total += c;
    if (c > max) max = c;
  }
  if (experts === 0 || total === 0) return { total, mean: 0, std: 0, cv: NaN, maxOverMean: NaN, entropyBits: 0, normalizedEntropy: NaN };
  const mean = total / experts;
  let sq = 0;
  let h = 0;
  for (let e = 0; e < experts; e++) {
    const c = counts[offset + e]!;
    sq += (c - mean) ** 2;
    if (c > 0) {
      const p = c / total;
      h -= p * Math.log2(p);
    }
  }
  const std = Math.sqrt(sq / experts);
  return {
    total,
    mean,
    std,
    cv: std / mean,
    maxOverMean: max / mean,
    entropyBits: h,
    normalizedEntropy: experts > 1 ? h / Math.log2(experts) : 1,
  };
}

/** Load statistics of every layer of an [L × E] count matrix. */
export function loadStats(counts: ArrayLike<number>, layers: number, experts: number): LoadStats[] {
  return Array.from({ length: layers }, (_, l) => layerLoad(counts, experts, l * experts));
}

/** [L × E] shares: each layer's counts over that layer's total (0 for a layer without data). */
export function shares(counts: ArrayLike<number>, layers: number, experts: number): Float64Array {
  const out = new Float64Array(layers * experts);
  for (let l = 0; l < layers; l++) {
    let total = 0;
    for (let e = 0; e < experts; e++) total += counts[l * experts + e]!;
    if (total === 0) continue;
    for (let e = 0; e < experts; e++) out[l * experts + e] = counts[l * experts + e]! / total;
  }
  return out;
}

/** [L × E] counts recomputed from routing ids [T × L × k] (negative ids are "no routing"). */
export function countExperts(ids: ArrayLike<number>, tokens: number, layers: number, k: number, experts: number): Uint32Array {
  const counts = new Uint32Array(layers * experts);
  for (let t = 0; t < tokens; t++) {
    for (let l = 0; l < layers; l++) {
      for (let j = 0; j < k; j++) {
        const id = ids[(t * layers + l) * k + j]!;
        if (id >= 0 && id < experts) counts[l * experts + id]++;
      }
    }
  }
  return counts;
}

// ---- co-activation ---------------------------------------------------------------------------

export interface Coactivation {
  readonly experts: number;
  /** Tokens that had routing at this layer. */
  readonly tokens: number;
  /** N(i): tokens whose top-k contains expert i. */
  readonly single: Uint32Array;
  /** N(i, j), symmetric [E × E]: tokens whose top-k contains both i and j (i ≠ j). */
  readonly pair: Uint32Array;
}

/**
 * Counts, at one layer, every unordered pair of distinct experts in each token's top-k. Routing ids
 * are [T × L × k]; positions with negative ids (no routing yet) are skipped.
 */
export function coactivation(ids: ArrayLike<number>, tokens: number, layers: number, k: number, experts: number, layer: number): Coactivation {
  const single = new Uint32Array(experts);
  const pair = new Uint32Array(experts * experts);
  const chosen = new Int32Array(k);
  let counted = 0;
  for (let t = 0; t < tokens; t++) {
    const o = (t * layers + layer) * k;
    // Distinct valid ids only: a repeated id would count a token twice for one expert.
    let n = 0;
    for (let j = 0; j < k; j++) {
      const id = ids[o + j]!;
      if (id < 0 || id >= experts) continue;
      let dup = false;
      for (let q = 0; q < n; q++) if (chosen[q] === id) dup = true;
      if (!dup) chosen[n++] = id;
    }
    if (n === 0) continue;
    counted++;
    for (let a = 0; a < n; a++) {
      const i = chosen[a]!;
      single[i]++;
      for (let b = a + 1; b < n; b++) {
        const j = chosen[b]!;
        pair[i * experts + j]++;
        pair[j * experts + i]++;
      }
    }
  }
  return { experts, tokens: counted, single, pair };
}

/**
 * [E × E] P(j | i) = N(i, j) / N(i), row i = given expert i. Rows of experts never chosen are NaN
 * (undefined, not zero); the diagonal is 1 for chosen experts, as P(i | i) is.
 */
export function conditionalMatrix(co: Coactivation): Float64Array {
  const E = co.experts;
  const out = new Float64Array(E * E);
  for (let i = 0; i < E; i++) {
    const n = co.single[i]!;
    for (let j = 0; j < E; j++) out[i * E + j] = n === 0 ? NaN : i === j ? 1 : co.pair[i * E + j]! / n;
  }
  return out;
}

// ---- A/B -------------------------------------------------------------------------------------

export type DiffKind = 'same' | 'different' | 'only-a' | 'only-b';

export interface TokenSequence {
  readonly length: number;
  /** Token id per position, negative where unknown. */
  readonly tokenIds: ArrayLike<number>;
}

export interface TokenDiff {
  /** One entry per position of the longer run. */
  readonly kinds: DiffKind[];
  /** First position whose tokens differ (or exist in one run only); -1 when identical. */
  readonly firstDivergence: number;
  /** Positions that are not 'same'. */
  readonly differing: number;
}

/** Aligns two runs by position (same prompt, different continuations) and labels each position. */
export function tokenDiff(a: TokenSequence, b: TokenSequence): TokenDiff {
  const n = Math.max(a.length, b.length);
  const kinds: DiffKind[] = [];
  let first = -1;
  let differing = 0;
  for (let i = 0; i < n; i++) {
    const x = i < a.length ? a.tokenIds[i]! : -1;
    const y = i < b.length ? b.tokenIds[i]! : -1;
    const kind: DiffKind = x < 0 && y < 0 ? 'same' : y < 0 ? 'only-a' : x < 0 ? 'only-b' : x === y ? 'same' : 'different';
    kinds.push(kind);
    if (kind !== 'same') {
      differing++;
      if (first < 0) first = i;
    }
  }
  return { kinds, firstDivergence: first, differing };
}

export interface UtilizationDiff {
  /** [L × E] share in B minus share in A. */
  readonly delta: Float64Array;
  /** Largest |delta|, for a symmetric colour scale. */
  readonly maxAbs: number;
  /** Per layer total variation distance, ½ Σ|delta|: 0 = same load, 1 = disjoint experts. */
  readonly totalVariation: Float64Array;
}

/** Difference of expert shares between two runs of the same model (equal L and E). */
export function utilizationDiff(countsA: ArrayLike<number>, countsB: ArrayLike<number>, layers: number, experts: number): UtilizationDiff {
  const sa = shares(countsA, layers, experts);
  const sb = shares(countsB, layers, experts);
  const delta = new Float64Array(layers * experts);
  const tv = new Float64Array(layers);
  let maxAbs = 0;
  for (let l = 0; l < layers; l++) {
    let sum = 0;
    for (let e = 0; e < experts; e++) {
      const d = sb[l * experts + e]! - sa[l * experts + e]!;
      delta[l * experts + e] = d;
      sum += Math.abs(d);
      if (Math.abs(d) > maxAbs) maxAbs = Math.abs(d);
    }
    tv[l] = sum / 2;
  }
  return { delta, maxAbs, totalVariation: tv };
}

// ---- latency ---------------------------------------------------------------------------------

export interface LatencySummary {
  readonly ttftMs: number | null;
  readonly prefillMs: number | null;
  readonly prefillTokens: number;
  readonly prefillTokensPerSecond: number | null;
  /** Decode steps (one generated token each). */
  readonly decodeTokens: number;
  readonly decodeMs: number;
  readonly meanDecodeMs: number | null;
  readonly medianDecodeMs: number | null;
  readonly decodeTokensPerSecond: number | null;
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Summarises the timing steps the engine streams; tokens/s follow the engine's own definitions. */
export function latencySummary(steps: readonly StepTiming[], ttftMs: number | null): LatencySummary {
  let prefillMs = 0;
  let prefillTokens = 0;
  let sawPrefill = false;
  const decode: number[] = [];
  let decodeTokens = 0;
  let decodeMs = 0;
  for (const s of steps) {
    if (s.phase === 'prefill') {
      sawPrefill = true;
      prefillMs += s.ms;
      prefillTokens += s.tokens;
    } else {
      decode.push(s.ms / Math.max(1, s.tokens));
      decodeTokens += s.tokens;
      decodeMs += s.ms;
    }
  }
  return {
    ttftMs,
    prefillMs: sawPrefill ? prefillMs : null,
    prefillTokens,
    prefillTokensPerSecond: sawPrefill && prefillMs > 0 ? (prefillTokens / prefillMs) * 1000 : null,
    decodeTokens,
    decodeMs,
    meanDecodeMs: decode.length > 0 ? decode.reduce((a, b) => a + b, 0) / decode.length : null,
    medianDecodeMs: median(decode),
    decodeTokensPerSecond: decodeTokens > 0 && decodeMs > 0 ? (decodeTokens / decodeMs) * 1000 : null,
  };
}

/**
 * Milliseconds attributed to each position, in step order: a prefill step's time is shared evenly by
 * the prompt tokens it fed (what each cost, amortised), a decode step's time belongs to its token.
 */
export function tokenTimes(steps: readonly StepTiming[]): { ms: Float64Array; phase: Phase[] } {
  const n = steps.reduce((a, s) => a + Math.max(0, s.tokens), 0);
  const ms = new Float64Array(n);
  const phase: Phase[] = [];
  let i = 0;
  for (const s of steps) {
    const per = s.tokens > 0 ? s.ms / s.tokens : 0;
    for (let t = 0; t < s.tokens; t++) {
      ms[i++] = per;
      phase.push(s.phase);
    }
  }
  return { ms, phase };
}

/** The per-layer timing the engine's diagnostic mode records (see engine/runtime/profile.ts). */
export interface LayerTiming {
  readonly layer: number;
  readonly attentionMs: number;
  readonly mlpMs: number;
  readonly otherMs: number;
}

export interface ProfileStep {
  readonly phase: Phase;
  readonly totalMs: number;
  readonly layers: readonly LayerTiming[];
  readonly outsideLayersMs?: number;
}

export interface LatencyProfile {
  readonly steps: readonly ProfileStep[];
}

/** Mean per-step time of each layer's sub-blocks over the steps of one phase; [] if there are none. */
export function layerBreakdown(profile: LatencyProfile, phase: Phase): LayerTiming[] {
  const steps = profile.steps.filter((s) => s.phase === phase);
  if (steps.length === 0) return [];
  const byLayer = new Map<number, { attentionMs: number; mlpMs: number; otherMs: number }>();
  for (const s of steps) {
    for (const l of s.layers) {
      const acc = byLayer.get(l.layer) ?? { attentionMs: 0, mlpMs: 0, otherMs: 0 };
      acc.attentionMs += l.attentionMs;
      acc.mlpMs += l.mlpMs;
      acc.otherMs += l.otherMs;
      byLayer.set(l.layer, acc);
    }
  }
  const n = steps.length;
  return [...byLayer.entries()]
    .sort((x, y) => x[0] - y[0])
    .map(([layer, a]) => ({ layer, attentionMs: a.attentionMs / n, mlpMs: a.mlpMs / n, otherMs: a.otherMs / n }));
}
