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

/**
 * Σ_e w_e · down_e(silu(gate_e x) · up_e x) for weights w [T, E] (0 = not routed), with the
 * kernel's layout as the contract: fc1 [E, 2F, D] holds gate_f in row 2f and up_f in row 2f+1,
 * fc2 [E, D, F] is down.
 */
function reference(x: Float32Array, w: Float32Array, fc1: Float32Array, fc2: Float32Array, D: number, F: number): Float32Array {
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
          g += fc1[(e * 2 * F + 2 * f) * D + d]! * x[t * D + d]!;
          u += fc1[(e * 2 * F + 2 * f + 1) * D + d]! * x[t * D + d]!;
        }
        h[f] = (g / (1 + Math.exp(-g))) * u;
      }
      for (let d = 0; d < D; d++) {
        let o = 0;
        for (let f = 0; f < F; f++) o += fc2[(e * D + d) * F + f]! * h[f]!;
        y[t * D + d]! += we * o;
      }
    }
  }
  return y;
}

/** Each check runs once per process; a failed one is tried again next time. */
const checks = new Map<string, Promise<void>>();

function once(key: string, run: () => Promise<void>): Promise<void> {
  let p = checks.get(key);
  if (!p) {
    p = run().catch((e) => {
      checks.delete(key);
      throw e;
    });
    checks.set(key, p);
  }
  return p;
}

export function verifyMoeKernel(cacheDir: string): Promise<void> {
  return once('moe', () => runCheck(cacheDir));
}

export function verifyQuantKernels(cacheDir: string, bits: QuantBits): Promise<void> {
  return once(`qmoe${bits}`, () => runQuantCheck(cacheDir, bits));
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

/** Two experts per token with unequal weights that sum to 1, and the log-weights the kernel is fed (our contract). */
function routing(): { w: Float32Array; scores: Float32Array } {
  const w = new Float32Array(T * E);
  [[0, 2], [1, 3], [3, 0]].forEach(([a, c], t) => {
    w[t * E + a!] = 0.7;
    w[t * E + c!] = 0.3;
  });
  return { w, scores: Float32Array.from(w, (v) => (v > 0 ? Math.log(v) : -Infinity)) };
}

async function runCheck(cacheDir: string): Promise<void> {
  const x = values(T * D, 1);
  const fc1 = values(E * 2 * F * D, 2);
  const fc2 = values(E * D * F, 4);
  const { w, scores } = routing();
  const y = await runOnce(
    cacheDir,
    'moe-kernel',
    (b) => {
      b.input('x', ElemType.float, [T, D]);
      b.input('scores', ElemType.float, [T, E]);
      b.initializer('fc1', fc1, [E, 2 * F, D]);
      b.initializer('fc2', fc2, [E, D, F]);
      b.node('MoE', ['x', 'scores', 'fc1', '', 'fc2'], moeKernelAttrs(E), { domain: MS_DOMAIN, names: ['y'] });
      b.output('y', ElemType.float, [T, D]);
    },
    { x: { type: 'float32', data: x, dims: [T, D] }, scores: { type: 'float32', data: scores, dims: [T, E] } },
  );
  const { err } = maxAbsDiff(y, reference(x, w, fc1, fc2, D, F));
  if (!(err < 1e-5)) {
    throw new EngineError(
      EngineErrorCode.KERNEL_MISMATCH,
      `onnxruntime's com.microsoft.MoE kernel does not compute interleaved SwiGLU experts as expected (max error ${err}); this onnxruntime-node version is not supported`,
      { maxError: err },
    );
  }
}

async function runQuantCheck(cacheDir: string, bits: QuantBits): Promise<void> {
  // Block-sized dims: the kernel needs whole blocks.
  const Dq = 2 * QUANT_BLOCK;
  const Fq = QUANT_BLOCK;
  const x = values(T * Dq, 5);
  const { w, scores } = routing();
  const q1 = quantizeMatrix(values(E * 2 * Fq * Dq, 6), E * 2 * Fq, Dq, bits);
  const q2 = quantizeMatrix(values(E * Dq * Fq, 8), E * Dq, Fq, bits);
  // What the kernel should compute: the float experts the quantized values stand for.
  const ref = reference(x, w, dequantizeMatrix(q1), dequantizeMatrix(q2), Dq, Fq);
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
