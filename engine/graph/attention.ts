/**
 * Causal grouped-query attention over a host-held KV cache.
 *
 * The cache lives on the host in the layouts the matmuls want — Kᵀ as [Hkv, Dh, C] and V as
 * [Hkv, C, Dh], C = capacity (≥ past length, padded positions masked with -inf) — so it is fed
 * in without a copy and never concatenated or transposed inside the graph. Only this step's new
 * K/V come out ([Hkv, Dh, T] and [Hkv, T, Dh]); the host writes them into its buffers.
 * Scores against the past and against the new tokens are computed separately and meet in one
 * softmax.
 */
import type { GraphBuilder } from './builder.ts';
import type { AttentionSpec, ModelConfig } from '../checkpoint/config.ts';
import { applyRope, linear, rmsNorm } from './layers.ts';
import type { LayerNames, WeightSource } from './weights.ts';

export interface AttentionIO {
  /** Normalised hidden states [T, D]. */
  x: string;
  cos: string; // [T, 1, Dr], Dr = RoPE width
  sin: string; // [T, 1, Dr]
  pastKt: string; // [Hkv, Dk, C]
  pastV: string; // [Hkv, C, Dv]
  pastMask: string; // [C]: 0 for filled positions, -inf for padding
  causalMask: string; // [G·T, T]: 0 where a new token may attend to a new token, else -inf
}

export type GqaSpec = Extract<AttentionSpec, { kind: 'gqa' }>;

export function attention(b: GraphBuilder, w: WeightSource, cfg: ModelConfig, spec: GqaSpec, names: LayerNames['attn'], io: AttentionIO) {
  const { hiddenSize: D, numHeads: H, numKvHeads: Hkv, headDim: Dh } = cfg;
  const G = H / Hkv;
  const bias = spec.qkvBias;

  let q = linear(b, w, io.x, names.q, D, H * Dh, bias); // [T, H·Dh]
  let k = linear(b, w, io.x, names.k, D, Hkv * Dh, bias); // [T, Hkv·Dh]
  const v = linear(b, w, io.x, names.v, D, Hkv * Dh, bias); // [T, Hkv·Dh]

  if (spec.qkNorm === 'full') {
    // OLMoE: one RMSNorm over the whole projection, before the split into heads.
    q = rmsNorm(b, w, q, names.qNorm, H * Dh, cfg.rmsNormEps);
    k = rmsNorm(b, w, k, names.kNorm, Hkv * Dh, cfg.rmsNormEps);
  }
  q = b.reshape(q, [-1, H, Dh]); // [T, H, Dh]
  k = b.reshape(k, [-1, Hkv, Dh]); // [T, Hkv, Dh]
  if (spec.qkNorm === 'per_head') {
    // Qwen3: RMSNorm over each head's Dh.
    q = rmsNorm(b, w, q, names.qNorm, Dh, cfg.rmsNormEps);
    k = rmsNorm(b, w, k, names.kNorm, Dh, cfg.rmsNormEps);
  }
  q = applyRope(b, q, io.cos, io.sin);
  k = applyRope(b, k, io.cos, io.sin);

  // Query head h = j·G + g reads KV head j (HF repeat_kv order).
  q = b.mul(q, b.constF32(spec.scale));
  q = b.reshape(q, [-1, Hkv, G, Dh]); // [T, Hkv, G, Dh]
  q = b.transpose(q, [1, 2, 0, 3]); // [Hkv, G, T, Dh]
  q = b.reshape(q, [Hkv, -1, Dh]); // [Hkv, G·T, Dh]

  const newKt = b.transpose(k, [1, 2, 0]); // [Hkv, Dh, T]
  const newV = b.transpose(b.reshape(v, [-1, Hkv, Dh]), [1, 0, 2]); // [Hkv, T, Dh]

  let out = attendCached(b, q, newKt, newV, io); // [Hkv, G·T, Dh]

  out = b.reshape(out, [Hkv, G, -1, Dh]); // [Hkv, G, T, Dh]
  out = b.transpose(out, [2, 0, 1, 3]); // [T, Hkv, G, Dh]
  out = b.reshape(out, [-1, H * Dh]); // [T, H·Dh]
  const y = linear(b, w, out, names.o, H * Dh, D, spec.oBias); // [T, D]
  return { y, newKt, newV };
}

/**
 * softmax(q·[past | new]ᵀ)·[past | new] without concatenating the cache: scores against the
 * past and the new keys are computed apart and meet in one softmax.
 * q: [Hkv, G·T, Dk], already scaled; newKt: [Hkv, Dk, T]; newV: [Hkv, T, Dv] → [Hkv, G·T, Dv].
 */
export function attendCached(b: GraphBuilder, q: string, newKt: string, newV: string, io: AttentionIO): string {
  const pastScores = b.add(b.matmul(q, io.pastKt), io.pastMask); // [Hkv, G·T, C]
  const newScores = b.add(b.matmul(q, newKt), io.causalMask); // [Hkv, G·T, T]
  const probs = b.op('Softmax', [b.concat([pastScores, newScores], -1)], { axis: -1 }); // [Hkv, G·T, C+T]
  const sizes = b.concat([b.op('Shape', [io.pastMask]), b.op('Shape', [io.causalMask], { start: 1 })], 0); // [C, T]
  const [pPast, pNew] = b.node('Split', [probs, sizes], { axis: -1 }, { outputs: 2 }) as [string, string];
  return b.add(b.matmul(pPast, io.pastV), b.matmul(pNew, newV)); // [Hkv, G·T, Dv]
}
