/**
 * DeepSeek's multi-head latent attention (MLA) over the host-held KV cache.
 *
 * Keys and values come from a small latent c_kv (kv_lora_rank wide) expanded per head, plus one
 * RoPE key shared by all heads. The cache holds the expanded per-head K and V rather than the
 * latent: that keeps the cache contract (Kᵀ [H, Dk, C], V [H, C, Dv]) and the attention core of
 * the other architectures, at the price of a larger cache than the latent would need.
 * Dk = qk_nope + qk_rope, Dv = v_head_dim, Dr = qk_rope, R = kv_lora_rank.
 */
import type { GraphBuilder } from './builder.ts';
import type { AttentionSpec, ModelConfig } from '../checkpoint/config.ts';
import { attendCached, type AttentionIO } from './attention.ts';
import { applyRope, linear, rmsNorm } from './layers.ts';
import type { LayerNames, WeightSource } from './weights.ts';

export type MlaSpec = Extract<AttentionSpec, { kind: 'mla' }>;

/** The latent norms are built with their module default eps, not config.rms_norm_eps. */
const LATENT_NORM_EPS = 1e-6;

export function mlaAttention(b: GraphBuilder, w: WeightSource, cfg: ModelConfig, spec: MlaSpec, names: LayerNames['attn'], io: AttentionIO) {
  const { hiddenSize: D, numHeads: H } = cfg;
  const { qkNopeDim: Dn, qkRopeDim: Dr, vDim: Dv, kvLoraRank: R } = spec;
  const Dk = Dn + Dr;
  const split2 = (x: string, a: number, c: number) => b.node('Split', [x, b.constI64([a, c])], { axis: -1 }, { outputs: 2 }) as [string, string];

  // ---- queries: optionally through the low-rank bottleneck ----------------------------------
  let q: string;
  if (spec.qLoraRank !== null) {
    const qa = linear(b, w, io.x, names.qA, D, spec.qLoraRank, spec.bias); // [T, Rq]
    const qaNormed = rmsNorm(b, w, qa, names.qANorm, spec.qLoraRank, LATENT_NORM_EPS);
    q = linear(b, w, qaNormed, names.qB, spec.qLoraRank, H * Dk); // [T, H·Dk]
  } else {
    q = linear(b, w, io.x, names.q, D, H * Dk, spec.bias); // [T, H·Dk]
  }
  q = b.reshape(q, [-1, H, Dk]); // [T, H, Dk]
  let [qNope, qRope] = split2(q, Dn, Dr); // [T, H, Dn], [T, H, Dr]

  // ---- keys and values: latent + shared RoPE key, latent expanded per head ------------------
  const kvA = linear(b, w, io.x, names.kvA, D, R + Dr, spec.bias); // [T, R + Dr]
  const [cKv, kRopeFlat] = split2(kvA, R, Dr); // [T, R], [T, Dr]
  let kv = linear(b, w, rmsNorm(b, w, cKv, names.kvANorm, R, LATENT_NORM_EPS), names.kvB, R, H * (Dn + Dv)); // [T, H·(Dn+Dv)]
  kv = b.reshape(kv, [-1, H, Dn + Dv]); // [T, H, Dn+Dv]
  const [kNope, v] = split2(kv, Dn, Dv); // [T, H, Dn], [T, H, Dv]
  let kRope = b.reshape(kRopeFlat, [-1, 1, Dr]); // [T, 1, Dr]

  // Interleaved checkpoints store each rotated pair as adjacent dims (x0, x1), (x2, x3) …;
  // gathering evens then odds turns that into the rotate-half layout the RoPE tables use.
  if (spec.ropeInterleave) {
    qRope = deinterleave(b, qRope, H, Dr);
    kRope = deinterleave(b, kRope, 1, Dr);
  }
  qRope = applyRope(b, qRope, io.cos, io.sin); // [T, H, Dr]
  kRope = applyRope(b, kRope, io.cos, io.sin); // [T, 1, Dr]
  const kRopeHeads = b.op('Tile', [kRope, b.constI64([1, H, 1])]); // [T, H, Dr]: one key shared by every head

  q = b.concat([qNope, qRope], -1); // [T, H, Dk]
  const k = b.concat([kNope, kRopeHeads], -1); // [T, H, Dk]

  // Every head is its own KV head here (no grouping), so G = 1.
  q = b.mul(q, b.constF32(spec.scale));
  q = b.transpose(q, [1, 0, 2]); // [H, T, Dk]
  const newKt = b.transpose(k, [1, 2, 0]); // [H, Dk, T]
  const newV = b.transpose(v, [1, 0, 2]); // [H, T, Dv]

  let out = attendCached(b, q, newKt, newV, io); // [H, T, Dv]
  out = b.transpose(out, [1, 0, 2]); // [T, H, Dv]
  out = b.reshape(out, [-1, H * Dv]); // [T, H·Dv]
  const y = linear(b, w, out, names.o, H * Dv, D, spec.bias); // [T, D]
  return { y, newKt, newV };
}

/** [T, h, Dr] with pairs adjacent → [T, h, Dr] with all first elements, then all second ones. */
function deinterleave(b: GraphBuilder, x: string, heads: number, dr: number): string {
  const pairs = b.reshape(x, [-1, heads, dr / 2, 2]); // [T, h, Dr/2, 2]
  return b.reshape(b.transpose(pairs, [0, 1, 3, 2]), [-1, heads, dr]); // [T, h, 2, Dr/2] → [T, h, Dr]
}
