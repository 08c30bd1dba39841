/**
 * Block quantization (engine/graph/quant.ts) and the runtime kernel that reads it: the packed
 * layout, rounding and padding by hand, and onnxruntime's QMoE computing exactly with the weights
 * our quantizer says it stored.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '../../engine/generate/sampling.ts';
import { readFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import { compileGraph } from '../../engine/graph/compile.ts';
import { dequantizeMatrix, expertBitsPerLayer, floatToHalf, quantizeMatrix, quantLayout } from '../../engine/graph/quant.ts';
import { verifyQuantKernels } from '../../engine/runtime/kernel-check.ts';
import { halfToFloat } from '../../engine/checkpoint/safetensors.ts';
import { checkBudget, memoryBudget } from '../../engine/runtime/memory.ts';
import { EngineErrorCode } from '../../engine/errors.ts';
import { openCheckpoint } from '../../engine/checkpoint/checkpoint.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { fixtureDir } from '../helpers/fixtures.ts';
import { normalFrom } from '../helpers/normal.ts';

function gaussian(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, normalFrom(seededRandom(seed)));
}

describe('block quantization', () => {
  it('packs int4 two values per byte, even index in the low nibble, zero point 8', () => {
    // One block of 32: the extreme value is -8 (negative side has room), so the scale is 1.
    const w = Float32Array.from({ length: 32 }, (_, i) => (i === 0 ? -8 : i === 1 ? 7 : i === 2 ? 1 : 0));
    const m = quantizeMatrix(w, 1, 32, 4);
    assert.equal(m.scales[0], 1);
    assert.equal(m.data[0], 0x0 | (0xf << 4)); // q(-8) = 0 low, q(7) = 15 high
    assert.equal(m.data[1], 0x9 | (0x8 << 4)); // q(1) = 9, q(0) = 8
    assert.deepEqual([...dequantizeMatrix(m)], [...w]);
  });

  it('puts a positive extreme on the bottom level with a negative scale, so int4 keeps eight steps on its side', () => {
    const w = Float32Array.from({ length: 32 }, (_, i) => (i === 0 ? 8 : i === 1 ? -7 : i === 2 ? 3 : 0));
    const m = quantizeMatrix(w, 1, 32, 4);
    assert.equal(m.scales[0], -1);
    assert.equal(m.data[0], 0x0 | (0xf << 4)); // q(8) = -8 + 8 = 0 low, q(-7) = 7 + 8 = 15 high
    // + 0: zero times a negative scale is -0, which deepEqual tells from 0.
    assert.deepEqual(Array.from(dequantizeMatrix(m), (v) => v + 0), [...w]);
  });

  it('stores int8 as one byte per value around 128', () => {
    const w = Float32Array.from({ length: 32 }, (_, i) => (i - 16) / 16); // extreme -1 → -128
    const m = quantizeMatrix(w, 1, 32, 8);
    assert.equal(m.scales[0], 1 / 128);
    assert.equal(m.data[0], 0);
    assert.equal(m.data[16], 128);
    assert.deepEqual([...dequantizeMatrix(m)], [...w]);
  });

  it('pads a row that is not a whole number of blocks with the zero point', () => {
    const lay = quantLayout(40, 4);
    assert.deepEqual([lay.blocksPerRow, lay.bytesPerRow], [2, 32]);
    const m = quantizeMatrix(gaussian(80, 1), 2, 40, 4);
    for (const row of [0, 1]) for (let b = 20; b < 32; b++) assert.equal(m.data[row * 32 + b], 0x88, `row ${row} byte ${b}`);
    assert.equal(dequantizeMatrix(m).length, 80);
  });

  it('rounds each value to its nearest level: int8 within half a step (a step at the clipped top), int4 about 8 % rms on gaussian weights', () => {
    const w = gaussian(64 * 256, 2);
    const m8 = quantizeMatrix(w, 64, 256, 8);
    const d8 = dequantizeMatrix(m8);
    for (let i = 0; i < w.length; i++) {
      // The top level (127) can clip a value of the opposite sign to the block's extreme, which sits on -128.
      const step = Math.abs(m8.scales[Math.floor(i / 32)]!);
      assert.ok(Math.abs(w[i]! - d8[i]!) <= (m8.data[i] === 255 ? step : step / 2) * (1 + 1e-6), `value ${i}`);
    }
    const d4 = dequantizeMatrix(quantizeMatrix(w, 64, 256, 4));
    let num = 0;
    let den = 0;
    for (let i = 0; i < w.length; i++) {
      num += (w[i]! - d4[i]!) ** 2;
      den += w[i]! ** 2;
    }
    const rel = Math.sqrt(num / den);
    // 8.7 % when a positive extreme took the +7 level (seven steps on its side instead of eight).
    assert.ok(rel > 0.07 && rel < 0.085, `int4 relative error ${rel}`);
  });

  it('converts float32 to float16 with round-to-nearest-even, subnormals and infinities', () => {
    assert.equal(floatToHalf(1), 0x3c00);
    assert.equal(floatToHalf(-2), 0xc000);
    assert.equal(floatToHalf(65504), 0x7bff);
    assert.equal(floatToHalf(70000), 0x7c00);
    assert.equal(floatToHalf(-0), 0x8000);
    assert.equal(floatToHalf(2 ** -24), 0x0001);
    assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // halfway, rounds to even
    assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02);
    assert.ok(Number.isNaN(halfToFloat(floatToHalf(NaN))));
    const r = seededRandom(3);
    for (let i = 0; i < 1000; i++) {
      const v = (r() - 0.5) * 100;
      assert.ok(Math.abs(halfToFloat(floatToHalf(v)) - v) <= Math.abs(v) * 2 ** -11, `${v}`);
    }
  });
});

describe('int4 mixed with int8', () => {
  it('keeps the first eighth of the MoE layers at int8, at least one and never the last', () => {
    const int8Layers = (n: number) => expertBitsPerLayer('int4', n).filter((b) => b === 8).length;
    assert.deepEqual(expertBitsPerLayer('int4', 1), [4]);
    assert.deepEqual(expertBitsPerLayer('int4', 2), [8, 4]);
    assert.deepEqual(expertBitsPerLayer('int4', 4), [8, 4, 4, 4]);
    assert.deepEqual([8, 9, 16, 17, 58].map(int8Layers), [1, 2, 2, 3, 8]);
    assert.deepEqual(expertBitsPerLayer('int4', 16).slice(0, 3), [8, 8, 4]);
    assert.deepEqual(expertBitsPerLayer('int8', 3), [8, 8, 8]);
    assert.deepEqual(expertBitsPerLayer('none', 3), []);
  });

  it('builds each MoE layer with the kernel bits its experts were stored with', async () => {
    const ckpt = openCheckpoint(fixtureDir('mixtral'));
    const graph = await compileGraph(ckpt, { routingOutputs: true, quant: 'int4' }, testCacheDir());
    const model = onnxProto.onnx.ModelProto.decode(readFileSync(graph.modelPath));
    const qmoe = model.graph!.node!.filter((n) => n.opType === 'QMoE');
    const bits = qmoe.map((n) => Number(n.attribute!.find((a) => a.name === 'expert_weight_bits')!.i));
    assert.deepEqual(bits, expertBitsPerLayer('int4', ckpt.config.moeLayers.length));
    assert.deepEqual(bits, [8, 4, 4]);
    // The stored bytes follow: an int8 layer's fc1 rows hold one byte per input, int4's half a byte.
    const dims = (name: string) => model.graph!.initializer!.find((t) => t.name === name)!.dims!.map(Number);
    const D = ckpt.config.hiddenSize;
    assert.deepEqual(qmoe.map((n) => dims(n.input![2]!).at(-1)), [D, D / 2, D / 2]);
  });

  it('counts MoE layers, not decoder layers, where the first layers are dense', async () => {
    const ckpt = openCheckpoint(fixtureDir('deepseek_v3'));
    assert.deepEqual(ckpt.config.moeLayers, [1, 2]); // first_k_dense_replace = 1
    const graph = await compileGraph(ckpt, { routingOutputs: true, quant: 'int4' }, testCacheDir());
    const model = onnxProto.onnx.ModelProto.decode(readFileSync(graph.modelPath));
    const bits = model.graph!.node!.filter((n) => n.opType === 'QMoE').map((n) => Number(n.attribute!.find((a) => a.name === 'expert_weight_bits')!.i));
    assert.deepEqual(bits, [8, 4]);
  });
});

describe('quantized kernels', () => {
  for (const bits of [4, 8] as const) {
    it(`onnxruntime's QMoE computes with the ${bits}-bit experts we store`, async () => {
      await verifyQuantKernels(testCacheDir(), bits);
    });
  }
});

describe('memory budget', () => {
  it('counts weights, a full-context KV cache and the runtime, and refuses a model that cannot fit', () => {
    const cfg = openCheckpoint(fixtureDir('mixtral')).config;
    const b = memoryBudget(cfg, 1000);
    assert.equal(b.kvCache, cfg.numLayers * cfg.numKvHeads * (cfg.headDim + cfg.vHeadDim) * cfg.maxPositions * 4);
    assert.equal(b.total, b.weights + b.kvCache + b.runtime);
    checkBudget(b, 'none');
    assert.throws(
      () => checkBudget({ ...b, weights: b.machine, total: b.machine + b.kvCache + b.runtime }, 'none'),
      (e: { code?: string; message?: string }) => e.code === EngineErrorCode.MEMORY_BUDGET && /--quant int8 or int4/.test(e.message ?? ''),
    );
  });
});
