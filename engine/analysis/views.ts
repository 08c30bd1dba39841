/**
 * Array views of traces in the layouts other tools use: `[tokens, layers, k]` expert ids (what
 * vLLM and SGLang return) and the `[layers, experts]` load matrix EPLB rebalances from.
 */
import { badInput } from './errors.ts';
import type { RunTrace } from './trace.ts';

export interface ExpertIdsView {
  /** [T, L, k]: positions, MoE layers (in `layers` order), ranks. */
  readonly shape: readonly [number, number, number];
  /** Model layer index of each entry of the layer axis. */
  readonly layers: readonly number[];
  /** Row-major; −1 where a position has no routing, as vLLM marks prefix-cached tokens. */
  readonly data: Int32Array;
}

export function expertIds(t: RunTrace): ExpertIdsView {
  const T = t.tokens.length;
  const lk = t.moeLayers.length * t.k;
  const data = new Int32Array(T * lk).fill(-1);
  for (const r of t.routing) data.set(r.ids, r.index * lk);
  return { shape: [T, t.moeLayers.length, t.k], layers: t.moeLayers, data };
}

export interface LoadMatrix {
  /** [L, E] */
  readonly shape: readonly [number, number];
  readonly layers: readonly number[];
  /** Tokens routed to each expert at each layer (every rank counts once). */
  readonly data: Float64Array;
}

/** Checks that traces share a model layout, so their counts can be added. */
export function commonLayout(traces: readonly RunTrace[]): { layers: readonly number[]; numExperts: number } {
  const first = traces[0];
  if (!first) throw badInput('no runs to aggregate');
  for (const t of traces) {
    if (t.numExperts !== first.numExperts || t.moeLayers.join(',') !== first.moeLayers.join(',')) {
      throw badInput(`run '${t.runId}' has another layout (${t.moeLayers.length} MoE layers × ${t.numExperts} experts) than run '${first.runId}'; aggregate runs of one model`);
    }
  }
  return { layers: first.moeLayers, numExperts: first.numExperts };
}

export function loadMatrix(traces: readonly RunTrace[]): LoadMatrix {
  const { layers, numExperts: E } = commonLayout(traces);
  const L = layers.length;
  const data = new Float64Array(L * E);
  for (const t of traces) {
    for (const r of t.routing) {
      for (let i = 0; i < r.ids.length; i++) data[Math.floor(i / t.k) * E + r.ids[i]!]!++;
    }
  }
  return { shape: [L, E], layers, data };
}
