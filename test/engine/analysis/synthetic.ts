/** Synthetic traces for tests and benchmarks: uniformly random routing, or routing given by hand. */
import type { Random } from '../../../engine/generate/sampling.ts';
import { emptyMeta, type PositionRouting, type RunMeta, type RunTrace, type TraceToken } from '../../../engine/analysis/trace.ts';

/** k distinct experts of E, uniformly (a partial Fisher–Yates shuffle). */
export function randomTopK(random: Random, E: number, k: number): number[] {
  const pool = Array.from({ length: E }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (E - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, k);
}

export interface SyntheticOptions {
  readonly runId?: string;
  readonly tokens: number;
  readonly layers: readonly number[];
  readonly E: number;
  readonly k: number;
  readonly promptTokens?: number;
  /** Weights, entropies and selected probabilities as well as ids. */
  readonly full?: boolean;
  readonly meta?: Partial<RunMeta>;
  readonly tokenText?: (i: number) => string | null;
  readonly tokenId?: (i: number) => number | null;
}

/** A run whose every position is routed uniformly at random. */
export function randomTrace(random: Random, o: SyntheticOptions): RunTrace {
  const L = o.layers.length;
  const P = o.promptTokens ?? Math.ceil(o.tokens / 2);
  const tokens: TraceToken[] = [];
  const routing: PositionRouting[] = [];
  for (let t = 0; t < o.tokens; t++) {
    const phase = t < P ? 'prefill' : 'decode';
    tokens.push({ index: t, id: o.tokenId ? o.tokenId(t) : Math.floor(random() * 256), text: o.tokenText ? o.tokenText(t) : `t${t}`, phase });
    const ids = new Int32Array(L * o.k);
    for (let l = 0; l < L; l++) ids.set(randomTopK(random, o.E, o.k), l * o.k);
    const weights = o.full ? Float32Array.from({ length: L * o.k }, () => random()) : null;
    routing.push({
      index: t,
      phase,
      ids,
      weights,
      entropy: o.full ? Float32Array.from({ length: L }, () => random() * 2) : null,
      selectedProbs: o.full ? Float32Array.from({ length: L * o.k }, () => random() / o.k) : null,
      probs: null,
    });
  }
  return {
    runId: o.runId ?? 'run-0',
    modelId: 'synthetic',
    modelHash: 'f00d',
    meta: emptyMeta('moe-lab', o.meta),
    moeLayers: [...o.layers],
    numExperts: o.E,
    k: o.k,
    tokens,
    routing,
  };
}

/** A one-layer run with the given top-k lists, position by position. */
export function handTrace(lists: readonly (readonly number[])[], E: number, opts: { runId?: string; tokenIds?: readonly number[]; fields?: Record<string, string> } = {}): RunTrace {
  const k = lists[0]!.length;
  return {
    runId: opts.runId ?? 'hand',
    modelId: 'hand',
    modelHash: null,
    meta: emptyMeta('moe-lab', { fields: opts.fields ?? {} }),
    moeLayers: [0],
    numExperts: E,
    k,
    tokens: lists.map((_, i) => ({ index: i, id: opts.tokenIds?.[i] ?? i, text: null, phase: 'decode' as const })),
    routing: lists.map((ids, i) => ({ index: i, phase: 'decode' as const, ids: Int32Array.from(ids), weights: null, entropy: null, selectedProbs: null, probs: null })),
  };
}
