/**
 * onnxruntime's fused MoE kernel has had more than one weight layout; an older one passes the
 * shape check and silently computes something else. Before the first model loads, run the kernel
 * once on small known weights and compare with a plain TypeScript SwiGLU expert mixture. The
 * quantized experts kernel (QMoE) is checked the same way, against the float weights our quantizer
 * says it stored, before the first quantized model loads.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { ElemType, GraphBuilder, MS_DOMAIN } from '../graph/builder.ts';
import { moeKernelAttrs } from '../graph/moe.ts';
import { dequantizeMatrix, QUANT_BLOCK, quantizeMatrix, type QuantBits } from '../graph/quant.ts';
import { OrtModel } from './ort.ts';

const E = 4;
const D = 8;
const F = 6;
const T = 3;
type FeedTensor = Parameters<OrtModel['run']>[0][string];

/** Deterministic values in [-0.5, 0.5). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

/** Σ_e w_e · down_e(silu(gate_e x) · up_e x) for weights w [T, E] (0 = not routed). */
function reference(x: Float32Array, w: Float32Array, gate: Float32Array, up: Float32Array, down: Float32Array, D: number, F: number): Float32Array {
  const y = new Float32Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let e = 0; e < E; e++) {
      const we = w[t * E + e]!;
      if (we === 0) continue;
      const h = new Float32Array(F);
      for (let f = 0; f < F; f++) {
        let g = 0;
        let u = 0;
        for (let d = 0; d < D; d++) {
          g += gate[(e * F + f) * D + d]! * x[t * D + d]!;
          u += up[(e * F + f) * D + d]! * x[t * D + d]!;
        }
        h[f] = (g / (1 + Math.exp(-g))) * u;
      }
      for (let d = 0; d < D; d++) {
        let o = 0;
        for (let f = 0; f < F; f++) o += down[(e * D + d) * F + f]! * h[f]!;
        y[t * D + d]! += we * o;
      }
    }
  }
  return y;
}

let verified: Promise<void> | null = null;

export function verifyMoeKernel(cacheDir: string): Promise<void> {
  verified ??= runCheck(cacheDir).catch((e) => {
    verified = null;
    throw e;
  });
  return verified;
}

/** Builds a one-node graph, runs it once, and returns output `y`. */
async function runOnce(
  cacheDir: string,
  name: string,
  build: (b: GraphBuilder) => void,
  feeds: Record<string, FeedTensor>,
  prepack = true,
): Promise<Float32Array> {
  const b = new GraphBuilder(null);
  build(b);
  mkdirSync(cacheDir, { recursive: true });
  const file = join(cacheDir, `${name}-check-${process.pid}.onnx`);
  writeFileSync(file, b.toModelBytes());
  try {
    const model = await OrtModel.create(file, { threads: 1, prepack });
    try {
      return (await model.run(feeds))['y']!.data as Float32Array;
    } finally {
      await model.dispose();
    }
  } finally {
    rmSync(file, { force: true });
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): { err: number; scale: number } {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return { err, scale };
}

/** Two experts per token with unequal weights that sum to 1. */
function routingWeights(): Float32Array {
  const w = new Float32Array(T * E);
  [[0, 2], [1, 3], [3, 0]].forEach(([a, c], t) => {
    w[t * E + a!] = 0.7;
    w[t * E + c!] = 0.3;
  });
  return w;
}

function interleave(gate: Float32Array, up: Float32Array, f: number, d: number): Float32Array {
  const fc1 = new Float32Array(E * 2 * f * d);
  for (let e = 0; e < E; e++) {
    for (let r = 0; r < f; r++) {
      fc1.set(gate.subarray((e * f + r) * d, (e * f + r + 1) * d), (e * 2 * f + 2 * r) * d);
      fc1.set(up.subarray((e * f + r) * d, (e * f + r + 1) * d), (e * 2 * f + 2 * r + 1) * d);
    }
  }
  return fc1;
}

async function runCheck(cacheDir: string): Promise<void> {
  const x = values(T * D, 1);
  const gate = values(E * F * D, 2);
  const up = values(E * F * D, 3);
  const down = values(E * D * F, 4);
  const w = routingWeights();
  // Fed as log-weights (our contract).
  const scores = Float32Array.from(w, (v) => (v > 0 ? Math.log(v) : -Infinity));
  const y = await runOnce(
    cacheDir,
    'moe-kernel',
    (b) => {
      b.input('x', ElemType.float, [T, D]);
      b.input('scores', ElemType.float, [T, E]);
      b.initializer('fc1', interleave(gate, up, F, D), [E, 2 * F, D]);
      b.initializer('fc2', down, [E, D, F]);
      b.node('MoE', ['x', 'scores', 'fc1', '', 'fc2'], moeKernelAttrs(E), { domain: MS_DOMAIN, names: ['y'] });
      b.output('y', ElemType.float, [T, D]);
    },
    { x: { type: 'float32', data: x, dims: [T, D] }, scores: { type: 'float32', data: scores, dims: [T, E] } },
  );
  const { err } = maxAbsDiff(y, reference(x, w, gate, up, down, D, F));
  if (!(err < 1e-5)) {
    throw new EngineError(
      EngineErrorCode.KERNEL_MISMATCH,
      `onnxruntime's com.microsoft.MoE kernel does not compute interleaved SwiGLU experts as expected (max error ${err}); this onnxruntime-node version is not supported`,
      { maxError: err },
    );
  }
}

const quantVerified = new Map<QuantBits, Promise<void>>();

export function verifyQuantKernels(cacheDir: string, bits: QuantBits): Promise<void> {
  let p = quantVerified.get(bits);
  if (!p) {
    p = runQuantCheck(cacheDir, bits).catch((e) => {
      quantVerified.delete(bits);
      throw e;
    });
    quantVerified.set(bits, p);
  }
  return p;
}

async function runQuantCheck(cacheDir: string, bits: QuantBits): Promise<void> {
  // Block-sized dims: the kernel needs whole blocks.
  const Dq = 2 * QUANT_BLOCK;
  const Fq = QUANT_BLOCK;
  const x = values(T * Dq, 5);
  const gate = values(E * Fq * Dq, 6);
  const up = values(E * Fq * Dq, 7);
  const down = values(E * Dq * Fq, 8);
  const w = routingWeights();
  const scores = Float32Array.from(w, (v) => (v > 0 ? Math.log(v) : -Infinity));
  const q1 = quantizeMatrix(interleave(gate, up, Fq, Dq), E * 2 * Fq, Dq, bits);
  const q2 = quantizeMatrix(down, E * Dq, Fq, bits);
  // What the kernel should compute: the float experts the quantized values stand for.
  const d1 = dequantizeMatrix(q1);
  const dq = { gate: new Float32Array(E * Fq * Dq), up: new Float32Array(E * Fq * Dq) };
  for (let e = 0; e < E; e++) {
    for (let r = 0; r < Fq; r++) {
      dq.gate.set(d1.subarray((e * 2 * Fq + 2 * r) * Dq, (e * 2 * Fq + 2 * r + 1) * Dq), (e * Fq + r) * Dq);
      dq.up.set(d1.subarray((e * 2 * Fq + 2 * r + 1) * Dq, (e * 2 * Fq + 2 * r + 2) * Dq), (e * Fq + r) * Dq);
    }
  }
  const ref = reference(x, w, dq.gate, dq.up, dequantizeMatrix(q2), Dq, Fq);
  const y = await runOnce(
    cacheDir,
    `qmoe${bits}-kernel`,
    (b) => {
      b.input('x', ElemType.float, [T, Dq]);
      b.input('scores', ElemType.float, [T, E]);
      b.initializer('fc1', q1.data, [E, 2 * Fq, q1.layout.bytesPerRow], ElemType.uint8);
      b.initializer('s1', q1.scales, [E, 2 * Fq, q1.layout.blocksPerRow]);
      b.initializer('fc2', q2.data, [E, Dq, q2.layout.bytesPerRow], ElemType.uint8);
      b.initializer('s2', q2.scales, [E, Dq, q2.layout.blocksPerRow]);
      b.node('QMoE', ['x', 'scores', 'fc1', 's1', '', 'fc2', 's2'], { ...moeKernelAttrs(E), expert_weight_bits: bits, block_size: QUANT_BLOCK }, {
        domain: MS_DOMAIN,
        names: ['y'],
      });
      b.output('y', ElemType.float, [T, Dq]);
    },
    { x: { type: 'float32', data: x, dims: [T, Dq] }, scores: { type: 'float32', data: scores, dims: [T, E] } },
    false, // as quantized sessions run (runner.ts)
  );
  const moe = maxAbsDiff(y, ref);
  if (!(moe.err <= 1e-5 * Math.max(1, moe.scale))) {
    throw new EngineError(
      EngineErrorCode.KERNEL_MISMATCH,
      `onnxruntime's com.microsoft.QMoE kernel does not read ${bits}-bit block-quantized experts as expected (max error ${moe.err}); this onnxruntime-node version is not supported`,
      { maxError: moe.err, bits },
    );
  }
}
