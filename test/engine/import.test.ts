/**
 * `moe-lab import`: converts a checkpoint into the cached graph ahead of time, printing the memory
 * budget first and progress while it works; the engine then loads that graph without rebuilding.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openCheckpoint } from '../../engine/checkpoint/checkpoint.ts';
import { runImport } from '../../engine/cli/import.ts';
import { Engine } from '../../engine/engine.ts';
import { EngineErrorCode } from '../../engine/errors.ts';
import { estimateWeightBytes } from '../../engine/runtime/memory.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { capture } from '../helpers/capture.ts';
import { REPO_ROOT } from '../helpers/fixtures.ts';
import { scaledMixtral } from '../helpers/scaled-mixtral.ts';
import { randomMixtral } from '../bench/random-checkpoint.ts';

describe('moe-lab import', () => {
  const cache = mkdtempSync(join(tmpdir(), 'moe-lab-import-'));
  after(() => rmSync(cache, { recursive: true, force: true }));

  it('prints the memory budget, then progress, and writes the graph the engine then loads as is', async () => {
    const dir = await scaledMixtral(testCacheDir());
    const out = capture();
    const err = capture();
    const r = await runImport([dir, '--quant', 'int4', '--cache', cache], out.stream, err.stream);
    const text = out.text();
    assert.ok(r.built);
    assert.match(text.split('\n')[1]!, /^memory budget: weights .* \[estimated, --quant int4\]$/);
    assert.match(text, /built: .*-int4\/model\.onnx/);
    assert.match(text, /^weights file [\d.]+ MiB \(int4: routed experts int4, those of the first MoE layer int8\); memory budget/m);
    assert.match(text, /import took [\d.]+ s, peak memory of the import [\d.]+ (MiB|GiB)/);
    const progress = err.text().trim().split('\n');
    assert.match(progress[0]!, /^hashing/);
    assert.match(progress.at(-1)!, /^converting \[#{20}\] 100\.0 %/);

    const again = capture();
    const second = await runImport([dir, '--quant', 'int4', '--cache', cache], again.stream, capture().stream);
    assert.equal(second.built, false);
    assert.match(again.text(), /already cached/);

    const runner = await ModelRunner.load(dir, { cacheDir: cache, quant: 'int4' });
    try {
      // In memory the float16 matrices are widened to float32; the experts stay as stored.
      const est = estimateWeightBytes(openCheckpoint(dir).config, openCheckpoint(dir).tensors, 'int4');
      assert.equal(runner.memory.weights, r.weightBytes + est.resident - est.file);
      const step = await runner.step({ ids: [3, 4, 5], logitIndex: [2], routeBias: null, topK: 2 });
      assert.ok(step.logits.every(Number.isFinite));
    } finally {
      await runner.dispose();
    }
  });

  it('generates through the engine worker from the imported graph, labelling the weights that ran', async () => {
    const dir = await scaledMixtral(testCacheDir());
    const engine = await Engine.load(dir, { cacheDir: cache, quant: 'int4' });
    try {
      assert.equal(engine.info.quant, 'int4');
      assert.match(engine.info.hash, /^[0-9a-f]{64}:int4$/);
      assert.ok(engine.info.memory.total > engine.info.memory.weights);
      let routed = 0;
      let fed = 0;
      for await (const ev of engine.generate({ promptIds: [3, 4, 5], maxNewTokens: 4 })) {
        if (ev.type === 'routing') routed++;
        // Every prompt position and every new token is routed (the engine runs the last one through
        // the model too, so its routing is known).
        if (ev.type === 'done') fed = ev.promptTokens + ev.generatedTokens;
      }
      assert.ok(fed >= 3);
      assert.equal(routed, fed);
    } finally {
      await engine.dispose();
    }
  });

  it('estimates weight memory from tensor shapes within 3 % of what the graph stores', async () => {
    // The third has an expert width (40) no block divides, so its experts keep one scale per row.
    const oddWidth = await randomMixtral(join(cache, 'odd-width'), { layers: 2, hidden: 64, heads: 4, kvHeads: 2, experts: 4, topK: 2, ffn: 40, vocab: 64, context: 64 });
    for (const dir of [await scaledMixtral(testCacheDir()), join(REPO_ROOT, 'models', 'moe-lab-tiny'), oddWidth]) {
      const ckpt = openCheckpoint(dir);
      for (const quant of ['none', 'int8', 'int4'] as const) {
        const r = await runImport([dir, '--quant', quant, '--cache', cache], capture().stream, capture().stream);
        const est = estimateWeightBytes(ckpt.config, ckpt.tensors, quant).file;
        assert.ok(Math.abs(est / r.weightBytes - 1) < 0.03, `${ckpt.id} ${quant}: estimated ${est}, stored ${r.weightBytes}`);
      }
    }
  });

  it('refuses an unknown --quant with a stable code', async () => {
    await assert.rejects(runImport(['x', '--quant', 'int3'], capture().stream, capture().stream), (e: { code?: string }) => e.code === EngineErrorCode.BAD_CONFIG);
  });
});
