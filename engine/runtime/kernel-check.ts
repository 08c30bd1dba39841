/**
 * onnxruntime's fused MoE kernel has had more than one weight layout; an older one passes the
 * shape check and silently computes something else. Before the first model loads, run the kernel
 * once on small known weights and compare with a plain TypeScript SwiGLU expert mixture.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { ElemType, GraphBuilder, MS_DOMAIN } from '../graph/builder.ts';
import { moeKernelAttrs } from '../graph/moe.ts';
import { OrtModel } from './ort.ts';

const E = 4;
const D = 8;
const F = 6;
const T = 3;

/** Deterministic values in [-0.5, 0.5). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

/** Σ_e w_e · down_e(silu(gate_e x) · up_e x) for weights w [T, E] (0 = not routed). */
function reference(x: Float32Array, w: Float32Array, gate: Float32Array, up: Float32Array, down: Float32Array): Float32Array {
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

async function runCheck(cacheDir: string): Promise<void> {
  const x = values(T * D, 1);
  const gate = values(E * F * D, 2);
  const up = values(E * F * D, 3);
  const down = values(E * D * F, 4);
  // Two experts per token with unequal weights that sum to 1, fed as log-weights (our contract).
  const w = new Float32Array(T * E);
  [[0, 2], [1, 3], [3, 0]].forEach(([a, c], t) => {
    w[t * E + a!] = 0.7;
    w[t * E + c!] = 0.3;
  });
  const scores = Float32Array.from(w, (v) => (v > 0 ? Math.log(v) : -Infinity));

  const fc1 = new Float32Array(E * 2 * F * D);
  for (let e = 0; e < E; e++) {
    for (let f = 0; f < F; f++) {
      fc1.set(gate.subarray((e * F + f) * D, (e * F + f + 1) * D), (e * 2 * F + 2 * f) * D);
      fc1.set(up.subarray((e * F + f) * D, (e * F + f + 1) * D), (e * 2 * F + 2 * f + 1) * D);
    }
  }
  const b = new GraphBuilder(null);
  b.input('x', ElemType.float, [T, D]);
  b.input('scores', ElemType.float, [T, E]);
  b.initializer('fc1', fc1, [E, 2 * F, D]);
  b.initializer('fc2', down, [E, D, F]);
  b.node('MoE', ['x', 'scores', 'fc1', '', 'fc2'], moeKernelAttrs(E), { domain: MS_DOMAIN, names: ['y'] });
  b.output('y', ElemType.float, [T, D]);
  mkdirSync(cacheDir, { recursive: true });
  const file = join(cacheDir, `moe-kernel-check-${process.pid}.onnx`);
  writeFileSync(file, b.toModelBytes());
  const model = await OrtModel.create(file, { threads: 1 });
  try {
    const out = await model.run({
      x: { type: 'float32', data: x, dims: [T, D] },
      scores: { type: 'float32', data: scores, dims: [T, E] },
    });
    const y = out['y']!.data as Float32Array;
    const ref = reference(x, w, gate, up, down);
    let err = 0;
    for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(y[i]! - ref[i]!));
    if (!(err < 1e-5)) {
      throw new EngineError(
        EngineErrorCode.KERNEL_MISMATCH,
        `onnxruntime's com.microsoft.MoE kernel does not compute interleaved SwiGLU experts as expected (max error ${err}); this onnxruntime-node version is not supported`,
        { maxError: err },
      );
    }
  } finally {
    await model.dispose();
    (await import('node:fs')).rmSync(file, { force: true });
  }
}
