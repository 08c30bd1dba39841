/**
 * Building blocks shared by every architecture: linear layers, RMSNorm, SwiGLU MLP, RoPE.
 * Each takes and returns value names; shapes are noted as [T, D] etc. (T = new tokens).
 */
import { ElemType, type GraphBuilder } from './builder.ts';
import { toFloat16 } from './quant.ts';
import type { WeightSource } from './weights.ts';
import { ropeFrequencies, type RopeScaling } from '../checkpoint/rope-scaling.ts';

/**
 * y = x · Wᵀ (+ b). HF stores W as [out, in]; the graph keeps Wᵀ [in, out] so MatMul needs no
 * transpose. In quantized graphs (where only the routed experts are block-quantized) these matrices
 * are stored in float16 behind a Cast, which the runtime folds into float32 when the session loads:
 * half the file, float32 arithmetic.
 */
export function linear(b: GraphBuilder, w: WeightSource, x: string, name: string, inDim: number, outDim: number, bias = false): string {
  const wt = transpose2d(w.read(name + '.weight', [outDim, inDim]), outDim, inDim); // [in, out]
  let y = b.matmul(x, storedMatrix(b, name + '.T', wt, [inDim, outDim])); // [T, out]
  if (bias) y = b.add(y, b.initializer(name + '.bias', w.read(name + '.bias', [outDim]), [outDim]));
  return y;
}

/** A float32 matrix as the graph stores it: as is, or (quantized graphs) float16 cast back at load. */
export function storedMatrix(b: GraphBuilder, name: string, data: Float32Array, dims: number[]): string {
  if (!b.quant) return b.initializer(name, data, dims);
  return b.op('Cast', [b.initializer(name + '.f16', toFloat16(data), dims)], { to: ElemType.float });
}

/** RMSNorm over the last axis, in float32: x · rsqrt(mean(x²) + eps) · weight. */
export function rmsNorm(b: GraphBuilder, w: WeightSource, x: string, name: string, dim: number, eps: number): string {
  const weight = b.initializer(name, w.read(name, [dim]), [dim]);
  const ms = b.op('ReduceMean', [b.mul(x, x)], { axes: [-1], keepdims: 1 });
  const inv = b.op('Reciprocal', [b.op('Sqrt', [b.add(ms, b.constF32(eps))])]);
  return b.mul(b.mul(x, inv), weight);
}

export function silu(b: GraphBuilder, x: string): string {
  return b.mul(x, b.op('Sigmoid', [x]));
}

/** Dense SwiGLU MLP: down(silu(gate(x)) · up(x)). x: [T, D] → [T, D]. */
export function swigluMlp(b: GraphBuilder, w: WeightSource, x: string, names: { gate: string; up: string; down: string }, d: number, f: number): string {
  const g = linear(b, w, x, names.gate, d, f); // [T, F]
  const u = linear(b, w, x, names.up, d, f); // [T, F]
  return linear(b, w, b.mul(silu(b, g), u), names.down, f, d); // [T, D]
}

/**
 * Rotary embedding, HF "rotate_half" convention: x·cos + rotate_half(x)·sin.
 * x: [T, heads, Dh]; cos/sin: [T, 1, Dh] (already gathered for this step's positions).
 */
export function applyRope(b: GraphBuilder, x: string, cos: string, sin: string): string {
  const [x1, x2] = b.node('Split', [x], { axis: -1 }, { outputs: 2 }) as [string, string];
  const rotated = b.concat([b.op('Neg', [x2]), x1], -1); // [T, heads, Dh]
  return b.add(b.mul(x, cos), b.mul(rotated, sin));
}

/**
 * cos/sin [T, 1, Dh] for this step's positions, computed in the graph the way HF's rotary embedding
 * does in float32: angle = position · inv_freq (checkpoint/rope-scaling.ts: 1/θ^(2i/Dh), or as
 * rope_scaling stretches them), the Dh/2 angles repeated twice, cos and sin times the scaling's
 * attention factor. Nothing is sized by max_position_embeddings: a table of every position would cost
 * maxPos·Dh·8 bytes of weights (1M positions × 128 dims: 1 GiB) for the few positions a step uses.
 */
export function ropeCosSin(b: GraphBuilder, positionIds: string, dh: number, theta: number, scaling: RopeScaling): { cos: string; sin: string } {
  const { inv, attentionFactor } = ropeFrequencies(dh, theta, scaling);
  const af = Math.fround(attentionFactor);
  const pos = b.op('Unsqueeze', [b.op('Cast', [positionIds], { to: ElemType.float }), b.constI64([1])]); // [T, 1]
  const freqs = b.mul(pos, b.initializer('rope.inv_freq', inv, [dh / 2])); // [T, Dh/2]
  const angles = b.concat([freqs, freqs], -1); // [T, Dh]
  const scaled = (x: string) => (af !== 1 ? b.mul(x, b.constF32(af)) : x);
  const unsq1 = (x: string) => b.op('Unsqueeze', [x, b.constI64([1])]); // [T, 1, Dh]
  return { cos: unsq1(scaled(b.op('Cos', [angles]))), sin: unsq1(scaled(b.op('Sin', [angles]))) };
}

/**
 * The same cos/sin written out on the host as tables [maxPos, Dh], for tests of the scaling
 * (rope-scaling.test.ts); long-context.test.ts checks `ropeCosSin` against this float32 formula.
 */
export function ropeTables(maxPos: number, dh: number, theta: number, scaling: RopeScaling): { cos: Float32Array; sin: Float32Array } {
  const half = dh / 2;
  const { inv, attentionFactor } = ropeFrequencies(dh, theta, scaling);
  const af = Math.fround(attentionFactor);
  const cos = new Float32Array(maxPos * dh);
  const sin = new Float32Array(maxPos * dh);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * inv[i]!);
      const c = Math.fround(Math.cos(angle)) * af;
      const s = Math.fround(Math.sin(angle)) * af;
      cos[p * dh + i] = cos[p * dh + i + half] = c;
      sin[p * dh + i] = sin[p * dh + i + half] = s;
    }
  }
  return { cos, sin };
}

export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}
