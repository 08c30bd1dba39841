/**
 * The router as ONNX ops, mirroring engine/routing.ts (the pure reference). Given router logits
 * z [T, E], a per-expert intervention bias [E] and the runtime top-k, it yields the experts used
 * and their combine weights. Adding a routing function means adding a case here and there.
 */
import type { GraphBuilder } from './builder.ts';
import type { RoutingSpec } from '../routing.ts';

export interface GraphRouting {
  /** [T, k] int64, by descending selection score. */
  ids: string;
  /** [T, k] float: the weights the expert outputs are multiplied by. */
  weights: string;
  /** [T, k] int64: the experts selection would pick without the correction bias (routers with one). */
  unbiasedIds?: string;
}

/**
 * @param z        router logits [T, E]
 * @param bias     intervention bias [E]: -inf bans (also masks the logit), +FORCE_BIAS forces
 * @param topK     int64 [1], the number of experts per token for this run
 * @param correction DeepSeek's e_score_correction_bias [E] (selection only), when the spec has one
 * @param reportUnbiased also select without the correction bias (`unbiasedIds`), for reporting
 */
export function buildRouting(b: GraphBuilder, spec: RoutingSpec, z: string, bias: string, topK: string, correction?: string, reportUnbiased = false): GraphRouting {
  // A ban removes the expert's logit before any normalisation; Min(bias, 0) keeps only bans.
  const bans = b.op('Min', [bias, b.constF32(0)]); // [E]
  const zb = b.add(z, bans); // [T, E]
  const topk = (scores: string) => b.node('TopK', [scores, topK], { axis: -1, largest: 1, sorted: 1 }, { outputs: 2 })[1]!;
  switch (spec.kind) {
    case 'softmax_topk': {
      const p = b.op('Softmax', [zb], { axis: -1 }); // [T, E]
      const ids = topk(b.add(p, bias)); // [T, k]
      let w = b.op('GatherElements', [p, ids], { axis: 1 }); // [T, k]
      if (spec.renormalize) w = normalizeRows(b, w);
      return { ids, weights: w };
    }
    case 'topk_softmax': {
      const ids = topk(b.add(zb, bias)); // [T, k]
      const w = b.op('Softmax', [b.op('GatherElements', [zb, ids], { axis: 1 })], { axis: -1 }); // [T, k]
      return { ids, weights: w };
    }
    case 'sigmoid_group_topk': {
      const s = b.op('Sigmoid', [zb]); // [T, E]
      // Group-limited selection: group score = sum of the top-2 scores in each group; experts
      // outside the best topkGroup groups score 0 (as HF does), then the top-k of what is left.
      // A banned expert adds 0 to its group's score, not -inf, so its group-mates stay eligible.
      const isBanned = b.op('Less', [bans, b.constF32(0)]); // [E] bool
      const select = (c: string) => {
        const grouped = b.reshape(b.op('Where', [isBanned, b.constF32(0), c]), [0, spec.nGroup, -1]); // [T, G, E/G]
        const top2 = b.node('TopK', [grouped, b.constI64([2])], { axis: -1, largest: 1, sorted: 1 }, { outputs: 2 })[0]!; // [T, G, 2]
        const groupScore = b.op('ReduceSum', [top2, b.constI64([-1])], { keepdims: 0 }); // [T, G]
        const keepGroups = b.node('TopK', [groupScore, b.constI64([spec.topkGroup])], { axis: -1, largest: 1, sorted: 1 }, { outputs: 2 })[1]!; // [T, topkGroup]
        // Mask of kept groups [T, G] → experts [T, E].
        const zerosG = b.op('ConstantOfShape', [b.op('Shape', [groupScore])]); // [T, G] of 0
        const ones = b.op('Add', [b.op('GatherElements', [zerosG, keepGroups], { axis: 1 }), b.constF32(1)]); // [T, topkGroup] of 1
        const groupMask = b.op('ScatterElements', [zerosG, keepGroups, ones], { axis: 1 }); // [T, G]
        const expertMask = b.reshape(b.add(b.op('Unsqueeze', [groupMask, b.constI64([-1])]), b.op('ConstantOfShape', [b.op('Shape', [grouped])])), [0, -1]); // [T, G, E/G] → [T, E]
        const kept = b.op('Cast', [expertMask], { to: 9 /* bool */ });
        // A banned expert stays at -inf even outside the kept groups, so it can never fill a slot.
        return topk(b.op('Where', [kept, c, bans])); // [T, k]
      };
      // The correction bias shifts selection only; interventions shift both selections alike,
      // so the two differ exactly where the correction bias changed the choice.
      const ids = select(b.add(correction ? b.add(s, correction) : s, bias));
      const unbiasedIds = correction && reportUnbiased ? select(b.add(s, bias)) : undefined;
      let w = b.op('GatherElements', [s, ids], { axis: 1 }); // [T, k]: from the unbiased scores
      if (spec.renormalize) w = normalizeRows(b, w);
      return { ids, weights: b.mul(w, b.constF32(spec.scale)), ...(unbiasedIds ? { unbiasedIds } : {}) };
    }
  }
}

/** w [T, k] over its row sums; the 1e-20 keeps a forced expert whose probability underflowed at 0, not NaN. */
function normalizeRows(b: GraphBuilder, w: string): string {
  const sum = b.add(b.op('ReduceSum', [w, b.constI64([-1])], { keepdims: 1 }), b.constF32(1e-20)); // [T, 1]
  return b.op('Div', [w, sum]);
}
