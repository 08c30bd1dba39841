/**
 * The routed MoE block. Routing is computed by our own ops (graph/routing.ts) so that every
 * routing function and every intervention is exact; the experts run in onnxruntime's fused
 * `com.microsoft.MoE` kernel, which only computes experts that tokens were routed to.
 *
 * The kernel applies softmax to the scores it is given and takes its own top-k. We feed it
 * log(w) at the chosen experts and -inf elsewhere, with k = E: softmax then yields w / Σw at
 * exactly the chosen experts (zero weights are skipped by the kernel), and multiplying the
 * output by Σw restores Σ w_i · E_i(x) for any routing function, renormalised or not.
 */
import { MS_DOMAIN, type GraphBuilder } from './builder.ts';
import type { ExpertsNames, WeightSource } from './weights.ts';

/**
 * Packs HF expert weights into the kernel's layout: fc1 [E, 2F, D] with gate and up rows
 * interleaved (row 2f = gate_f, row 2f+1 = up_f; swiglu_fusion=1), fc2 [E, D, F] (= down_proj).
 */
export function packExperts(w: WeightSource, names: ExpertsNames, E: number, D: number, F: number): { fc1: Float32Array; fc2: Float32Array } {
  if (names.layout === 'stacked') return packStackedExperts(w, names.input, names.output, E, D, F);
  const fc1 = new Float32Array(E * 2 * F * D);
  const fc2 = new Float32Array(E * D * F);
  for (let e = 0; e < E; e++) {
    const n = names.expert(e);
    const gate = w.read(n.gate + '.weight', [F, D]);
    const up = w.read(n.up + '.weight', [F, D]);
    interleaveGateUp(fc1, e, gate, up, F, D);
    fc2.set(w.read(n.down + '.weight', [D, F]), e * D * F);
  }
  return { fc1, fc2 };
}

/** Granite: input [E, 2F, D] holds each expert's gate rows then its up rows; output [E, D, F] is already fc2. */
function packStackedExperts(w: WeightSource, input: string, output: string, E: number, D: number, F: number) {
  const all = w.read(input, [E, 2 * F, D]);
  const fc1 = new Float32Array(E * 2 * F * D);
  for (let e = 0; e < E; e++) {
    const rows = all.subarray(e * 2 * F * D, (e + 1) * 2 * F * D);
    interleaveGateUp(fc1, e, rows.subarray(0, F * D), rows.subarray(F * D), F, D);
  }
  return { fc1, fc2: w.read(output, [E, D, F]) };
}

/** Writes expert e's gate [F, D] and up [F, D] into fc1 as alternating rows. */
function interleaveGateUp(fc1: Float32Array, e: number, gate: Float32Array, up: Float32Array, F: number, D: number): void {
  for (let f = 0; f < F; f++) {
    fc1.set(gate.subarray(f * D, (f + 1) * D), (e * 2 * F + 2 * f) * D);
    fc1.set(up.subarray(f * D, (f + 1) * D), (e * 2 * F + 2 * f + 1) * D);
  }
}

/** Kernel attributes: standard SwiGLU (silu(gate)·up), no clamping, weights as given. */
export function moeKernelAttrs(numExperts: number) {
  return {
    k: numExperts,
    activation_type: 'swiglu',
    swiglu_fusion: 1,
    activation_alpha: { float: 1 },
    activation_beta: { float: 0 },
    normalize_routing_weights: 0,
  };
}

/**
 * x [T, D], chosen experts ids [T, k] (int64), weights [T, k] → Σ_i w_i · E_i(x)  [T, D].
 */
export function moeExperts(b: GraphBuilder, x: string, ids: string, weights: string, fc1: string, fc2: string, numExperts: number, z: string): string {
  const minusInf = b.op('ConstantOfShape', [b.op('Shape', [z])]); // [T, E] of 0 …
  const allMasked = b.add(minusInf, b.constF32(-Infinity)); // … then -inf
  const logW = b.op('Log', [weights]); // [T, k]
  const scores = b.op('ScatterElements', [allMasked, ids, logW], { axis: 1 }); // [T, E]
  const y = b.op('MoE', [x, scores, fc1, '', fc2], moeKernelAttrs(numExperts), { domain: MS_DOMAIN }); // [T, D], = Σ (w_i/Σw) E_i(x)
  const sumW = b.op('ReduceSum', [weights, b.constI64([-1])], { keepdims: 1 }); // [T, 1]
  return b.mul(y, sumW);
}
