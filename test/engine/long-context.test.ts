/**
 * max_position_embeddings: nothing is sized by it up front (RoPE is computed in the graph for the
 * positions a step feeds), so DeepSeek-V3's 163,840 costs what 256 does, while a value past what
 * float32 positions can encode is refused with ENGINE_BAD_CONFIG instead of failing an allocation.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openCheckpoint } from '../../engine/checkpoint/checkpoint.ts';
import { MAX_POSITIONS_LIMIT } from '../../engine/checkpoint/config.ts';
import { parseRopeScaling, ropeFrequencies } from '../../engine/checkpoint/rope-scaling.ts';
import { EngineError, EngineErrorCode } from '../../engine/errors.ts';
import { ElemType, GraphBuilder } from '../../engine/graph/builder.ts';
import { compileGraph } from '../../engine/graph/compile.ts';
import { ropeCosSin } from '../../engine/graph/layers.ts';
import { OrtModel } from '../../engine/runtime/ort.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { fixtureDir } from '../helpers/fixtures.ts';

const scratch: string[] = [];
after(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(d);
  return d;
};

/** A fixture's weights (linked) under its config with another max_position_embeddings. */
function withContext(arch: string, maxPositions: number): string {
  const src = fixtureDir(arch);
  const dir = tempDir('moe-lab-context-');
  const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, max_position_embeddings: maxPositions }));
  symlinkSync(join(src, 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

describe('max_position_embeddings', () => {
  it('past 2^24 is ENGINE_BAD_CONFIG naming the field, not a RangeError from an allocation', () => {
    for (const n of [1e12, 2 ** 40, MAX_POSITIONS_LIMIT + 1]) {
      assert.throws(
        () => openCheckpoint(withContext('mixtral', n)),
        (e: unknown) => e instanceof EngineError && e.code === EngineErrorCode.BAD_CONFIG && e.message.includes('max_position_embeddings'),
        String(n),
      );
    }
    assert.equal(openCheckpoint(withContext('mixtral', MAX_POSITIONS_LIMIT)).config.maxPositions, MAX_POSITIONS_LIMIT);
  });

  it("DeepSeek-V3's 163,840 builds the same weights and computes the same logits as the fixture's 256", async () => {
    const cacheDir = tempDir('moe-lab-cache-');
    const ids = [5, 17, 42, 9, 77, 3];
    const run = async (dir: string) => {
      const graph = await compileGraph(openCheckpoint(dir), { routingOutputs: true }, cacheDir);
      const r = await ModelRunner.load(dir, { cacheDir });
      try {
        const out = await r.step({ ids, logitIndex: ids.map((_, i) => i), routeBias: null, topK: r.config.moe.topK });
        return { weightBytes: graph.weightBytes, logits: out.logits };
      } finally {
        await r.dispose();
      }
    };
    const short = await run(fixtureDir('deepseek_v3'));
    const long = await run(withContext('deepseek_v3', 163840));
    assert.equal(long.weightBytes, short.weightBytes, 'no table grows with the context');
    assert.deepEqual(long.logits, short.logits);
  });

  it('RoPE computed in the graph matches the float32 host computation up to the last position allowed', async () => {
    const dr = 64;
    const scaling = parseRopeScaling({ type: 'yarn', factor: 40, original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 0.5 }, 'deepseek_v3', 163840);
    const positions = [0, 1, 2, 255, 4095, 65535, 163839, MAX_POSITIONS_LIMIT - 1];
    const b = new GraphBuilder(null);
    b.input('position_ids', ElemType.int64, ['T']);
    const { cos, sin } = ropeCosSin(b, 'position_ids', dr, 10000, scaling);
    b.node('Identity', [cos], {}, { names: ['cos'] });
    b.node('Identity', [sin], {}, { names: ['sin'] });
    b.output('cos', ElemType.float, ['T', 1, dr]);
    b.output('sin', ElemType.float, ['T', 1, dr]);
    const file = join(tempDir('moe-lab-rope-'), 'rope.onnx');
    writeFileSync(file, b.toModelBytes());
    const model = await OrtModel.create(file, { threads: 1 });
    try {
      const out = await model.run({ position_ids: { type: 'int64', data: BigInt64Array.from(positions, BigInt), dims: [positions.length] } });
      const got = { cos: out['cos']!.data as Float32Array, sin: out['sin']!.data as Float32Array };
      const { inv, attentionFactor } = ropeFrequencies(dr, 10000, scaling);
      const af = Math.fround(attentionFactor);
      assert.notEqual(af, 1, 'the attention factor is exercised');
      let worst = 0;
      positions.forEach((p, t) => {
        for (let i = 0; i < dr; i++) {
          const angle = Math.fround(p * inv[i % (dr / 2)]!);
          worst = Math.max(worst, Math.abs(got.cos[t * dr + i]! - Math.fround(Math.cos(angle)) * af), Math.abs(got.sin[t * dr + i]! - Math.fround(Math.sin(angle)) * af));
        }
      });
      // A few float32 ulps of a value ≤ af, at every position.
      assert.ok(worst < 1e-6, `max error ${worst}`);
    } finally {
      await model.dispose();
    }
  });
});
