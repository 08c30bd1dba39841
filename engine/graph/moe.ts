/**
 * The routed MoE block. Routing is computed by our own ops (graph/routing.ts) so that every
 * routing function and every intervention is exact; the experts run in onnxruntime's fused
 * `com.microsoft.MoE` kernel (or `QMoE` for quantized weights, same contract), which only
 * computes experts that tokens were routed to.
 *
 * The kernel applies softmax to the scores it is given and takes its own top-k. We feed it
 * log(w) at the chosen experts and -inf elsewhere, with k = E: softmax then yields w / Σw at
 * exactly the chosen experts (zero weights are skipped by the kernel), and multiplying the
 * output by Σw restores Σ w_i · E_i(x) for any routing function, renormalised or not.
 */
import { EngineError, EngineErrorCode } from '../errors.ts';
import { ElemType, MS_DOMAIN, type GraphBuilder } from './builder.ts';
import { QUANT_BLOCK, quantizeRowsInto, quantLayout, type QuantBits } from './quant.ts';
import type { ExpertsNames, WeightSource } from './weights.ts';

/** One expert's weights in the kernel's row order: fc1 [2F, D] (gate/up rows interleaved), fc2 [D, F]. */
interface ExpertRows {
  fc1(e: number): Float32Array;
  fc2(e: number): Float32Array;
}

/**
 * Reads experts one at a time (fc1 row 2f = gate_f, row 2f+1 = up_f for swiglu_fusion=1; fc2 =
 * down_proj). Granite stacks all experts in two tensors, read once per layer.
 */
function expertRows(w: WeightSource, names: ExpertsNames, E: number, D: number, F: number): ExpertRows {
  if (names.layout === 'stacked') {
    let input: Float32Array | null = null;
    let output: Float32Array | null = null;
    return {
      fc1: (e) => {
        input ??= w.read(names.input, [E, 2 * F, D]); // [E, 2F, D], each expert's gate rows then its up rows
        const rows = input.subarray(e * 2 * F * D, (e + 1) * 2 * F * D);
        return interleaveGateUp(rows.subarray(0, F * D), rows.subarray(F * D), F, D);
      },
      fc2: (e) => (output ??= w.read(names.output, [E, D, F])).subarray(e * D * F, (e + 1) * D * F),
    };
  }
  return {
    fc1: (e) => {
      const n = names.expert(e);
      return interleaveGateUp(w.read(n.gate + '.weight', [F, D]), w.read(n.up + '.weight', [F, D]), F, D);
    },
    fc2: (e) => w.read(names.expert(e).down + '.weight', [D, F]),
  };
}

/** gate [F, D] and up [F, D] → [2F, D] with alternating rows. */
function interleaveGateUp(gate: Float32Array, up: Float32Array, F: number, D: number): Float32Array {
  const out = new Float32Array(2 * F * D);
  for (let f = 0; f < F; f++) {
    out.set(gate.subarray(f * D, (f + 1) * D), 2 * f * D);
    out.set(up.subarray(f * D, (f + 1) * D), (2 * f + 1) * D);
  }
  return out;
}

/** The initializers one layer's experts became, float32 or block-quantized. */
export type ExpertWeights =
  | { readonly kind: 'float'; readonly fc1: string; readonly fc2: string }
  | { readonly kind: 'quant'; readonly bits: QuantBits; readonly blockSize: number | null; readonly fc1: string; readonly fc1Scales: string; readonly fc2: string; readonly fc2Scales: string };

/**
 * Writes a layer's experts into the graph, one expert at a time, so converting a checkpoint
 * holds one expert (plus, quantized, the layer's scales) in memory, never the layer.
 * Float: fc1 [E, 2F, D], fc2 [E, D, F]. Quantized (graph/quant.ts layout): fc1 [E, 2F, D/pack]
 * with scales [E, 2F, D/block], fc2 [E, D, F/pack] with scales [E, D, F/block].
 */
export function expertInitializers(b: GraphBuilder, w: WeightSource, names: ExpertsNames, prefix: string, E: number, D: number, F: number, bits: QuantBits | null): ExpertWeights {
  const rows = expertRows(w, names, E, D, F);
  const each = function* <T>(f: (e: number) => T): Generator<T> {
    for (let e = 0; e < E; e++) yield f(e);
  };
  if (!bits) {
    const fc1 = b.initializerChunks(`${prefix}.fc1`, ElemType.float, [E, 2 * F, D], E * 2 * F * D * 4, each(rows.fc1));
    const fc2 = b.initializerChunks(`${prefix}.fc2`, ElemType.float, [E, D, F], E * D * F * 4, each(rows.fc2));
    return { kind: 'float', fc1, fc2 };
  }
  const blockSize = expertBlockSize(D, F, bits);
  const one = (name: string, n: number, k: number, read: (e: number) => Float32Array): [string, string] => {
    const lay = quantLayout(k, bits, blockSize ?? k);
    const scales = new Float32Array(E * n * lay.blocksPerRow);
    const data = b.initializerChunks(name, ElemType.uint8, [E, n, lay.bytesPerRow], E * n * lay.bytesPerRow, each((e) => {
      const q = new Uint8Array(n * lay.bytesPerRow);
      quantizeRowsInto(read(e), n, k, lay, q, scales.subarray(e * n * lay.blocksPerRow));
      return q;
    }));
    const scaleDims = blockSize ? [E, n, lay.blocksPerRow] : [E, n];
    return [data, b.initializer(`${name}.scales`, scales, scaleDims)];
  };
  const [fc1, fc1Scales] = one(`${prefix}.fc1`, 2 * F, D, rows.fc1);
  const [fc2, fc2Scales] = one(`${prefix}.fc2`, D, F, rows.fc2);
  return { kind: 'quant', bits, blockSize, fc1, fc1Scales, fc2, fc2Scales };
}

/**
 * The kernel needs D and F to be multiples of the block; small models that are not fall back to
 * one scale per row (null), which needs an even row length at 4 bits.
 */
export function expertBlockSize(D: number, F: number, bits: QuantBits): number | null {
  for (const size of [QUANT_BLOCK, 16]) if (D % size === 0 && F % size === 0) return size;
  if (bits === 4 && (D % 2 !== 0 || F % 2 !== 0)) {
    throw new EngineError(EngineErrorCode.BAD_CONFIG, `int4 experts need even hidden (${D}) and expert intermediate (${F}) sizes`);
  }
  return null;
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
export function moeExperts(b: GraphBuilder, x: string, ids: string, weights: string, experts: ExpertWeights, numExperts: number, z: string): string {
  const minusInf = b.op('ConstantOfShape', [b.op('Shape', [z])]); // [T, E] of 0 …
  const allMasked = b.add(minusInf, b.constF32(-Infinity)); // … then -inf
  const logW = b.op('Log', [weights]); // [T, k]
  const scores = b.op('ScatterElements', [allMasked, ids, logW], { axis: 1 }); // [T, E]
  const attrs = moeKernelAttrs(numExperts);
  const y = // [T, D], = Σ (w_i/Σw) E_i(x)
    experts.kind === 'float'
      ? b.op('MoE', [x, scores, experts.fc1, '', experts.fc2], attrs, { domain: MS_DOMAIN })
      : b.op(
          'QMoE',
          [x, scores, experts.fc1, experts.fc1Scales, '', experts.fc2, experts.fc2Scales],
          { ...attrs, expert_weight_bits: experts.bits, ...(experts.blockSize ? { block_size: experts.blockSize } : {}) },
          { domain: MS_DOMAIN },
        );
  const sumW = b.op('ReduceSum', [weights, b.constI64([-1])], { keepdims: 1 }); // [T, 1]
  return b.mul(y, sumW);
}
