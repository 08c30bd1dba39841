/**
 * A model whose weights hold NaN fails its step with ENGINE_NON_FINITE, naming the layer and
 * position where it first shows, instead of sampling from nonsense.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readSafetensorsHeader } from '../../engine/checkpoint/safetensors.ts';
import { EngineError, EngineErrorCode } from '../../engine/errors.ts';
import { generate } from '../../engine/generate/generate.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { makeCheckpoint } from '../helpers/checkpoints.ts';

/** A copy of the mixtral fixture (float32) with `rows` of tensor `name` set to NaN (all rows when null). */
function poisoned(name: string, rows: number[] | null): string {
  const dir = makeCheckpoint();
  const file = join(dir, 'model.safetensors');
  const t = readSafetensorsHeader(file).find((x) => x.name === name)!;
  assert.equal(t.dtype, 'F32');
  const bytes = readFileSync(file);
  const values = new Float32Array(bytes.buffer, bytes.byteOffset + t.begin, (t.end - t.begin) / 4);
  const width = t.shape[t.shape.length - 1]!;
  for (const r of rows ?? Array.from({ length: values.length / width }, (_, i) => i)) values.fill(NaN, r * width, (r + 1) * width);
  writeFileSync(file, bytes);
  return dir;
}

async function run(runner: ModelRunner, ids: number[]): Promise<unknown> {
  try {
    for await (const ev of generate(runner, { promptIds: ids, maxNewTokens: 3 })) void ev;
    return null;
  } catch (e) {
    return e;
  }
}

describe('non-finite values', () => {
  const runners: ModelRunner[] = [];
  after(async () => {
    for (const r of runners) await r.dispose();
  });
  const load = async (dir: string) => {
    const r = await ModelRunner.load(dir, { cacheDir: testCacheDir() });
    runners.push(r);
    return r;
  };

  it('a NaN embedding row fails the step that feeds it with ENGINE_NON_FINITE, at the first layer and its position; prompts without it run', async () => {
    const runner = await load(poisoned('model.embed_tokens.weight', [5]));
    assert.equal(await run(runner, [7, 8, 9]), null);
    runner.cache.reset();
    const topK = runner.ckpt.config.moe.topK;
    await runner.step({ ids: [7, 8, 9], logitIndex: [2], routeBias: null, topK });
    const e = await runner.step({ ids: [5], logitIndex: [0], routeBias: null, topK }).then(() => null, (x: unknown) => x);
    assert.ok(e instanceof EngineError, String(e));
    assert.equal(e.code, EngineErrorCode.NON_FINITE);
    assert.deepEqual(e.details, { layer: 0, position: 3 });
    // Within one step attention reads every key before masking, so NaN shows at the step's first position.
    assert.deepEqual(((await run(runner, [7, 8, 5, 9])) as EngineError).details, { layer: 0, position: 0 });
  });

  it('NaN in a later layer is reported at that layer', async () => {
    const runner = await load(poisoned('model.layers.1.self_attn.o_proj.weight', null));
    const e = await run(runner, [7, 8, 9]);
    assert.ok(e instanceof EngineError, String(e));
    assert.equal(e.code, EngineErrorCode.NON_FINITE);
    assert.deepEqual(e.details, { layer: 1, position: 0 });
  });

  it('NaN in the output head alone is reported at the output', async () => {
    const runner = await load(poisoned('lm_head.weight', [3]));
    const e = await run(runner, [7, 8, 9]);
    assert.ok(e instanceof EngineError, String(e));
    assert.equal(e.code, EngineErrorCode.NON_FINITE);
    assert.deepEqual(e.details, { position: 2 });
    assert.match(e.message, /output logits are NaN at position 2/);
  });
});
