/**
 * rope_scaling: linear and YaRN stretch RoPE's frequencies as the YaRN paper and HF define them,
 * DeepSeek's attention carries YaRN's correction in its softmax scale, and a scaled model runs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseModelConfig } from '../../engine/checkpoint/config.ts';
import { parseRopeScaling, ropeFrequencies, yarnMscale, type RopeScaling } from '../../engine/checkpoint/rope-scaling.ts';
import { EngineError, EngineErrorCode } from '../../engine/errors.ts';
import { ropeTables } from '../../engine/graph/layers.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { fixtureDir } from '../helpers/fixtures.ts';

/** DeepSeek-V3's own rope_scaling. */
const DEEPSEEK_V3 = { type: 'yarn', factor: 40, original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1, mscale: 1.0, mscale_all_dim: 1.0 };

const isBadConfig = (e: unknown) => e instanceof EngineError && e.code === EngineErrorCode.BAD_CONFIG;

describe('rope_scaling in config.json', () => {
  it('reads linear and yarn, and runs default and dynamic as plain RoPE', () => {
    assert.deepEqual(parseRopeScaling(null, 'm', 4096), { kind: 'none' });
    assert.deepEqual(parseRopeScaling({ rope_type: 'default' }, 'm', 4096), { kind: 'none' });
    assert.deepEqual(parseRopeScaling({ type: 'dynamic', factor: 2 }, 'm', 4096), { kind: 'none' });
    assert.deepEqual(parseRopeScaling({ rope_type: 'linear', factor: 4 }, 'm', 4096), { kind: 'linear', factor: 4 });
    const ds = parseRopeScaling(DEEPSEEK_V3, 'deepseek_v3', 163840);
    assert.ok(ds.kind === 'yarn');
    assert.equal(ds.attentionFactor, 1, 'equal mscale and mscale_all_dim leave cos/sin unscaled');
    assert.equal(ds.mscaleAllDim, 1);
    assert.equal(ds.originalMaxPositions, 4096);
    const qwen = parseRopeScaling({ rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 }, 'qwen3_moe', 131072);
    assert.ok(qwen.kind === 'yarn' && Math.abs(qwen.attentionFactor - (0.1 * Math.log(4) + 1)) < 1e-15);
    assert.ok(qwen.kind === 'yarn' && qwen.betaFast === 32 && qwen.betaSlow === 1 && qwen.truncate);
    const explicit = parseRopeScaling({ rope_type: 'yarn', factor: 4, attention_factor: 1.5 }, 'm', 4096);
    assert.ok(explicit.kind === 'yarn' && explicit.attentionFactor === 1.5 && explicit.originalMaxPositions === 4096);
  });

  it('refuses kinds it does not implement and malformed factors with ENGINE_BAD_CONFIG', () => {
    for (const raw of [{ type: 'longrope', factor: 2 }, { rope_type: 'llama3', factor: 8 }, { type: 'yarn' }, { type: 'linear', factor: 0.5 }, { type: 'yarn', factor: '4' }, 'yarn']) {
      assert.throws(() => parseRopeScaling(raw, 'm', 4096), isBadConfig, JSON.stringify(raw));
    }
  });

  it('DeepSeek-V3 scales its softmax by mscale(factor, mscale_all_dim)²', () => {
    const raw = JSON.parse(readFileSync(join(fixtureDir('deepseek_v3'), 'config.json'), 'utf8')) as Record<string, unknown>;
    const plain = parseModelConfig(raw);
    const scaled = parseModelConfig({ ...raw, rope_scaling: DEEPSEEK_V3 });
    assert.ok(plain.attention.kind === 'mla' && scaled.attention.kind === 'mla');
    const m = 0.1 * Math.log(40) + 1;
    assert.ok(Math.abs(scaled.attention.scale - plain.attention.scale * m * m) < 1e-15);
    assert.equal(yarnMscale(40, 1), m);
    // GQA models keep 1/√d: their correction is in the tables.
    const mixtral = JSON.parse(readFileSync(join(fixtureDir('mixtral'), 'config.json'), 'utf8')) as Record<string, unknown>;
    const g = parseModelConfig({ ...mixtral, rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 64 } });
    assert.ok(g.attention.kind === 'gqa' && g.attention.scale === 1 / Math.sqrt(g.headDim));
    assert.throws(() => parseModelConfig({ ...mixtral, rope_scaling: { type: 'longrope', factor: 4 } }), isBadConfig);
  });
});

describe('stretched RoPE frequencies', () => {
  const plain = (dim: number, theta: number) => Array.from({ length: dim / 2 }, (_, i) => theta ** (-(2 * i) / dim));

  it('linear scaling divides every frequency by the factor', () => {
    const { inv, attentionFactor } = ropeFrequencies(16, 10000, { kind: 'linear', factor: 4 });
    assert.equal(attentionFactor, 1);
    plain(16, 10000).forEach((p, i) => assert.ok(Math.abs(inv[i]! - p / 4) <= 1e-6 * p, `dim ${i}`));
  });

  it('yarn keeps fast dimensions, interpolates slow ones and ramps between (DeepSeek-V3 shape)', () => {
    const dim = 64;
    const theta = 10000;
    const s = parseRopeScaling(DEEPSEEK_V3, 'deepseek_v3', 163840);
    const { inv } = ropeFrequencies(dim, theta, s);
    // The paper's boundaries: dimension d turns orig/(2π·θ^(2d/dim)) times over the original context;
    // more than beta_fast turns → kept, fewer than beta_slow → divided by the factor.
    const boundary = (turns: number) => (dim * Math.log(4096 / (turns * 2 * Math.PI))) / (2 * Math.log(theta));
    const low = Math.floor(boundary(32));
    const high = Math.ceil(boundary(1));
    assert.deepEqual([low, high], [10, 23]);
    const p = plain(dim, theta);
    let kept = 0;
    let interpolated = 0;
    for (let i = 0; i < dim / 2; i++) {
      const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
      const want = (p[i]! / 40) * ramp + p[i]! * (1 - ramp);
      assert.ok(Math.abs(inv[i]! - want) <= 2e-6 * want, `dim ${i}: ${inv[i]} vs ${want}`);
      if (ramp === 0) kept++;
      if (ramp === 1) interpolated++;
    }
    assert.equal(kept, 11);
    assert.equal(interpolated, 9);
  });

  it('yarn with factor 1 is plain RoPE, table for table', () => {
    const one: RopeScaling = parseRopeScaling({ type: 'yarn', factor: 1, original_max_position_embeddings: 256 }, 'm', 256);
    assert.deepEqual(ropeTables(32, 8, 10000, one), ropeTables(32, 8, 10000, { kind: 'none' }));
  });

  it('multiplies cos and sin by the attention factor', () => {
    const s = parseRopeScaling({ type: 'yarn', factor: 4, original_max_position_embeddings: 64 }, 'm', 256);
    assert.ok(s.kind === 'yarn');
    const t = ropeTables(8, 8, 10000, s);
    const af = Math.fround(0.1 * Math.log(4) + 1);
    assert.ok(Math.abs(t.cos[0]! - af) < 1e-7 && t.sin[0] === 0, 'position 0: cos = factor, sin = 0');
    for (let i = 0; i < t.cos.length; i++) assert.ok(Math.abs(Math.hypot(t.cos[i]!, t.sin[i]!) - af) < 1e-6);
  });
});

describe('a deepseek_v3 checkpoint with YaRN', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  /** The fixture's weights under a config with `rope_scaling`. */
  function withScaling(ropeScaling: unknown): string {
    const src = fixtureDir('deepseek_v3');
    const dir = mkdtempSync(join(tmpdir(), 'moe-lab-yarn-'));
    dirs.push(dir);
    const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, rope_scaling: ropeScaling }));
    symlinkSync(join(src, 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }
  async function logits(dir: string, ids: number[]): Promise<Float32Array> {
    const r = await ModelRunner.load(dir, { cacheDir: testCacheDir() });
    try {
      const out = await r.step({ ids, logitIndex: ids.map((_, i) => i), routeBias: null, topK: r.config.moe.topK });
      return out.logits;
    } finally {
      await r.dispose();
    }
  }

  it('changes attention from the second position on and leaves the first untouched', async () => {
    const ids = [5, 17, 42, 9, 77, 3];
    const base = await logits(fixtureDir('deepseek_v3'), ids);
    const yarn = await logits(withScaling({ ...DEEPSEEK_V3, factor: 4, original_max_position_embeddings: 64 }), ids);
    const V = base.length / ids.length;
    const diff = (p: number) => Math.max(...Array.from({ length: V }, (_, v) => Math.abs(base[p * V + v]! - yarn[p * V + v]!)));
    // One key: softmax is 1 whatever the angles and the scale.
    assert.ok(diff(0) < 1e-5, `position 0 differs by ${diff(0)}`);
    for (let p = 1; p < ids.length; p++) assert.ok(diff(p) > 1e-4, `position ${p} unchanged (${diff(p)})`);
    assert.ok(yarn.every(Number.isFinite));
  });

  it('runs as the plain model when the stretch is 1', async () => {
    const ids = [5, 17, 42, 9, 77, 3];
    const base = await logits(fixtureDir('deepseek_v3'), ids);
    const one = await logits(withScaling({ type: 'yarn', factor: 1, original_max_position_embeddings: 256, mscale: 1, mscale_all_dim: 1 }), ids);
    for (let i = 0; i < base.length; i++) assert.ok(Math.abs(base[i]! - one[i]!) < 1e-5);
  });
});
