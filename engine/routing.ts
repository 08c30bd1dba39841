/**
 * Routing maths as small pure functions over typed arrays. The ONNX graph computes the same
 * thing (graph/routing.ts); these are the reference the tests hold it to, and what the host
 * uses to turn router logits into probabilities and entropies for the routing events.
 */

/** How a router turns logits z [E] into the experts used and their combine weights. */
export type RoutingSpec =
  /** p = softmax(z); top-k of p; w = p_top (÷ Σ p_top when renormalising). Mixtral, Qwen, OLMoE. */
  | { readonly kind: 'softmax_topk'; readonly renormalize: boolean }
  /** top-k of z, then w = softmax(z_top). Granite-MoE (equal to softmax_topk with renormalisation). */
  | { readonly kind: 'topk_softmax' }
  /**
   * s = sigmoid(z); selection on c = s + bias, limited to the best `topkGroup` of `nGroup` groups
   * (group score = sum of the group's top-2 c); w = s_sel (÷ Σ s_sel) × scale. DeepSeek-V3.
   */
  | {
      readonly kind: 'sigmoid_group_topk';
      readonly nGroup: number;
      readonly topkGroup: number;
      readonly renormalize: boolean;
      readonly scale: number;
      /**
       * The router has a learned per-expert bias (DeepSeek's e_score_correction_bias) added to the
       * scores for selection only; its values are weights, passed as `correction`.
       */
      readonly correctionBias?: boolean;
    };

export interface TokenRouting {
  /** Expert ids, ordered by combine weight, largest first. */
  readonly ids: Int32Array;
  readonly weights: Float32Array;
}

export function softmax(z: ArrayLike<number>): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < z.length; i++) if (z[i]! > max) max = z[i]!;
  const out = new Float32Array(z.length);
  let sum = 0;
  for (let i = 0; i < z.length; i++) {
    const e = Math.exp(z[i]! - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < z.length; i++) out[i]! /= sum;
  return out;
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Indices of the k largest values; ties go to the lower index (as ONNX TopK and torch.topk do). */
export function topKIndices(values: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => values[b]! - values[a]! || a - b);
  return idx.slice(0, k);
}

/**
 * The router's probability distribution over experts for one token: softmax of the logits, or
 * for sigmoid routers the sigmoid scores normalised to sum to one (so entropy is comparable).
 */
export function routerProbs(spec: RoutingSpec, logits: ArrayLike<number>): Float32Array {
  if (spec.kind !== 'sigmoid_group_topk') return softmax(logits);
  const s = Float32Array.from(logits, sigmoid);
  const sum = s.reduce((a, b) => a + b, 0);
  return s.map((v) => v / sum);
}

/** Shannon entropy in nats. */
export function entropy(p: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < p.length; i++) if (p[i]! > 0) h -= p[i]! * Math.log(p[i]!);
  return h;
}

/**
 * Interventions, as the graph sees them: a per-expert additive bias on the selection scores.
 * Banned experts get -Infinity (also applied to the logits, so they get no probability mass);
 * forced experts get FORCE_BIAS, which outranks any score a router can produce.
 */
export const FORCE_BIAS = 1e4;

/** Routes one token. `selectionBias` holds interventions; `correction` is DeepSeek's e_score_correction_bias. */
export function routeToken(
  spec: RoutingSpec,
  logits: ArrayLike<number>,
  k: number,
  selectionBias?: ArrayLike<number>,
  correction?: ArrayLike<number>,
): TokenRouting {
  const E = logits.length;
  const bias = (e: number) => selectionBias?.[e] ?? 0;
  const banned = (e: number) => bias(e) === -Infinity;
  const z = Float32Array.from(logits, (v, e) => (banned(e) ? -Infinity : v));

  let ids: number[];
  let w: number[];
  switch (spec.kind) {
    case 'softmax_topk': {
      const p = softmax(z);
      ids = topKIndices(Float32Array.from(p, (v, e) => v + bias(e)), k);
      w = ids.map((e) => p[e]!);
      if (spec.renormalize) w = normalize(w);
      break;
    }
    case 'topk_softmax': {
      ids = topKIndices(Float32Array.from(z, (v, e) => v + bias(e)), k);
      w = Array.from(softmax(ids.map((e) => z[e]!)));
      break;
    }
    case 'sigmoid_group_topk': {
      const s = Float32Array.from(z, sigmoid);
      const c = Float32Array.from(s, (v, e) => v + (correction?.[e] ?? 0) + bias(e));
      const groupSize = E / spec.nGroup;
      // A banned expert adds nothing to its group's score (0, not -inf): banning one expert of a
      // group must not take its group-mates out with it.
      const cg = Float32Array.from(c, (v, e) => (banned(e) ? 0 : v));
      const groupScores = Array.from({ length: spec.nGroup }, (_, g) => {
        const top2 = topKIndices(cg.subarray(g * groupSize, (g + 1) * groupSize), 2);
        return top2.reduce((acc, i) => acc + cg[g * groupSize + i]!, 0);
      });
      const keep = new Set(topKIndices(groupScores, spec.topkGroup));
      // Experts outside the kept groups score 0, as in the reference implementation; a banned
      // expert stays at -inf so it can never fill a slot.
      const masked = Float32Array.from(c, (v, e) => (keep.has(Math.floor(e / groupSize)) ? v : banned(e) ? -Infinity : 0));
      ids = topKIndices(masked, k);
      w = ids.map((e) => s[e]!);
      if (spec.renormalize) w = normalize(w);
      w = w.map((v) => v * spec.scale);
      break;
    }
  }
  return sortByWeight(ids, w);
}

/** Weights over their sum; the 1e-20 keeps a forced expert whose probability underflowed at 0, not NaN. */
function normalize(w: number[]): number[] {
  const sum = w.reduce((a, b) => a + b, 0) + 1e-20;
  return w.map((v) => v / sum);
}

/** Orders (id, weight) pairs by weight, largest first; equal weights by id. */
export function sortByWeight(ids: ArrayLike<number>, weights: ArrayLike<number>): TokenRouting {
  const order = Array.from({ length: ids.length }, (_, i) => i).sort(
    (a, b) => weights[b]! - weights[a]! || ids[a]! - ids[b]!,
  );
  return {
    ids: Int32Array.from(order, (i) => ids[i]!),
    weights: Float32Array.from(order, (i) => weights[i]!),
  };
}
