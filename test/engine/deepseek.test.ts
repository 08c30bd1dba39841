/**
 * DeepSeek-V3 and Granite-MoE beyond the golden comparison: what the correction bias changed,
 * interventions on a group-limited sigmoid router, the MLA KV cache across a capacity growth,
 * and the config fields both architectures add.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseModelConfig } from '../../engine/checkpoint/config.ts';
import { TensorStore } from '../../engine/checkpoint/safetensors.ts';
import { EngineError, EngineErrorCode } from '../../engine/errors.ts';
import { generate } from '../../engine/generate/generate.ts';
import { resolveInterventions } from '../../engine/generate/interventions.ts';
import type { GenerateRequest, GenerationEvent, Interventions } from '../../engine/generate/types.ts';
import { routeToken } from '../../engine/routing.ts';
import { CACHE_BLOCK } from '../../engine/runtime/kv-cache.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { fixtureDir, loadExpected, readArray } from '../helpers/fixtures.ts';

const ARCH = 'deepseek_v3';
const rawConfig = (arch: string): Record<string, unknown> => JSON.parse(readFileSync(join(fixtureDir(arch), 'config.json'), 'utf8'));
const sameSet = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).sort().join() === Array.from(b).sort().join();

async function collect(runner: ModelRunner, req: GenerateRequest): Promise<GenerationEvent[]> {
  const out: GenerationEvent[] = [];
  for await (const ev of generate(runner, req)) out.push(ev);
  return out;
}
const routings = (evs: GenerationEvent[]) => evs.flatMap((e) => (e.type === 'routing' ? [e] : []));
const decoded = (evs: GenerationEvent[]) => evs.flatMap((e) => (e.type === 'token' && e.phase === 'decode' ? [e.id] : []));

describe('deepseek_v3 on the reference checkpoint', () => {
  const expected = loadExpected(ARCH);
  const cfg = parseModelConfig(rawConfig(ARCH));
  const spec = cfg.moe.routing;
  const E = expected.num_experts;
  const k = expected.top_k;
  const Lm = expected.moe_layers.length;
  const store = new TensorStore(fixtureDir(ARCH));
  const correction = expected.moe_layers.map((l) => store.read(`model.layers.${l}.mlp.gate.e_score_correction_bias`, [E]));
  let runner: ModelRunner;
  before(async () => {
    runner = await ModelRunner.load(fixtureDir(ARCH), { cacheDir: testCacheDir() });
  });
  after(async () => runner.dispose());

  it('reports the experts chosen without the correction bias, differing exactly where the bias changed the choice', async () => {
    let decisions = 0;
    let changed = 0;
    for (const p of expected.prompts) {
      const evs = await collect(runner, { promptIds: p.input_ids, maxNewTokens: 16, ignoreEos: true });
      const T = p.input_ids.length;
      const z = readArray(ARCH, p, 'router_logits'); // [L, T, E]
      const genZ = readArray(ARCH, p, 'gen_router_logits'); // [S, L, E]: position T+s
      const S = genZ.length / (Lm * E);
      for (const ev of routings(evs)) {
        if (ev.index >= T + S) continue; // the fixture has no router logits for the last token
        for (let m = 0; m < Lm; m++) {
          const logits = ev.index < T ? z.subarray((m * T + ev.index) * E, (m * T + ev.index + 1) * E) : genZ.subarray(((ev.index - T) * Lm + m) * E, ((ev.index - T) * Lm + m + 1) * E);
          const withBias = routeToken(spec, logits, k, undefined, correction[m]);
          const withoutBias = routeToken(spec, logits, k);
          const layer = ev.layers[m]!;
          const where = `${p.name} position ${ev.index} layer ${layer.layer}`;
          assert.ok(layer.unbiasedIds, `${where}: unbiasedIds reported`);
          assert.ok(sameSet(layer.ids, withBias.ids), `${where}: selected ${layer.ids} vs ${[...withBias.ids]}`);
          assert.ok(sameSet(layer.unbiasedIds, withoutBias.ids), `${where}: unbiased ${layer.unbiasedIds} vs ${[...withoutBias.ids]}`);
          const biasChanged = !sameSet(withBias.ids, withoutBias.ids);
          assert.equal(!sameSet(layer.ids, layer.unbiasedIds), biasChanged, `${where}: bias changed the choice`);
          decisions++;
          if (biasChanged) changed++;
        }
      }
    }
    // As the fixture's README counts them: every prefill token and decode step, at both MoE layers.
    assert.equal(decisions, 98);
    assert.equal(changed, 64);
  });

  it('other routers report no unbiased selection', async () => {
    const mixtral = await ModelRunner.load(fixtureDir('mixtral'), { cacheDir: testCacheDir() });
    try {
      const out = await mixtral.step({ ids: [5, 6, 7], logitIndex: [2], routeBias: null, topK: 2 });
      assert.equal(out.routing!.unbiasedIds, undefined);
      const evs = await collect(mixtral, { promptIds: [5, 6, 7], maxNewTokens: 1, ignoreEos: true });
      for (const r of routings(evs)) for (const l of r.layers) assert.ok(!('unbiasedIds' in l));
    } finally {
      await mixtral.dispose();
    }
  });

  it('under interventions the graph routes as the reference router does, bans included', async () => {
    const prompt = expected.prompts[1]!.input_ids;
    const T = prompt.length;
    const bias = new Float32Array(Lm * E);
    bias[0 * E + 2] = -Infinity;
    bias[0 * E + 5] = 1e4;
    bias[1 * E + 7] = -Infinity;
    runner.reset();
    const step = await runner.step({ ids: prompt, logitIndex: [T - 1], routeBias: bias, topK: 3 });
    runner.reset();
    const r = step.routing!;
    assert.equal(r.k, 3);
    for (let m = 0; m < Lm; m++) {
      const b = bias.subarray(m * E, (m + 1) * E);
      for (let t = 0; t < T; t++) {
        const z = r.routerLogits.subarray((m * T + t) * E, (m * T + t + 1) * E);
        const want = routeToken(spec, z, 3, b, correction[m]);
        const wantUnbiased = routeToken(spec, z, 3, b);
        const at = (m * T + t) * 3;
        const ids = r.ids.subarray(at, at + 3);
        assert.ok(sameSet(ids, want.ids), `layer ${m} token ${t}: ${[...ids]} vs ${[...want.ids]}`);
        assert.ok(sameSet(r.unbiasedIds!.subarray(at, at + 3), wantUnbiased.ids));
        const got = new Map([...ids].map((id, i) => [id, r.weights[at + i]!]));
        want.ids.forEach((id, i) => assert.ok(Math.abs(got.get(id)! - want.weights[i]!) < 1e-5));
        for (let e = 0; e < E; e++) if (b[e] === -Infinity) assert.ok(![...ids].includes(e), `banned expert ${e} used`);
        if (m === 0) assert.ok([...ids].includes(5), 'forced expert used');
      }
    }
  });

  it('the MLA cache (keys 24 wide, values 16) gives the same tokens and routing as a full forward, across a capacity growth', async () => {
    const prompt = expected.prompts[1]!.input_ids;
    const n = CACHE_BLOCK + 8 - prompt.length; // ends past the first block of the cache
    const evs = await collect(runner, { promptIds: prompt, maxNewTokens: n, ignoreEos: true });
    const tokens = decoded(evs);
    assert.equal(tokens.length, n);
    assert.deepEqual(tokens.slice(0, 16), expected.prompts[1]!.generated_ids);

    const seq = [...prompt, ...tokens.slice(0, -1)];
    runner.reset();
    const full = await runner.step({ ids: seq, logitIndex: [...seq.keys()], routeBias: null, topK: k });
    assert.ok(runner.cache.capacity >= 2 * CACHE_BLOCK, 'the cache grew');
    runner.reset();
    const V = cfg.vocabSize;
    const T = seq.length;
    for (let i = prompt.length - 1; i < T; i++) {
      const row = full.logits.subarray(i * V, (i + 1) * V);
      const argmax = row.indexOf(Math.max(...row));
      assert.equal(argmax, tokens[i - prompt.length + 1], `token after position ${i}`);
    }
    const r = full.routing!;
    for (const ev of routings(evs)) {
      if (ev.index >= T) continue;
      for (let m = 0; m < Lm; m++) {
        const at = (m * T + ev.index) * k;
        assert.ok(sameSet(ev.layers[m]!.ids, r.ids.subarray(at, at + k)), `position ${ev.index} layer ${m}`);
      }
    }
  });
});

describe('config fields of deepseek_v3 and granitemoe', () => {
  const badConfig = (raw: unknown) =>
    assert.throws(() => parseModelConfig(raw), (e: unknown) => e instanceof EngineError && e.code === EngineErrorCode.BAD_CONFIG);

  it('deepseek_v3: MLA dims (head_dim is the RoPE width), dense first layers, group-limited routing, ungated shared experts', () => {
    const c = parseModelConfig(rawConfig('deepseek_v3'));
    assert.equal(c.headDim, 24);
    assert.equal(c.vHeadDim, 16);
    assert.equal(c.ropeDim, 8);
    assert.equal(c.numKvHeads, 4);
    assert.deepEqual(c.moeLayers, [1, 2]);
    assert.equal(c.denseIntermediate, 64);
    assert.deepEqual(c.moe.routing, { kind: 'sigmoid_group_topk', nGroup: 4, topkGroup: 2, renormalize: true, scale: 2.5, correctionBias: true });
    assert.deepEqual(c.moe.shared, { intermediate: 32, gated: false });
    assert.equal(c.attention.kind, 'mla');
    assert.ok(c.attention.kind === 'mla' && Math.abs(c.attention.scale - 1 / Math.sqrt(24)) < 1e-12 && c.attention.ropeInterleave && c.attention.qLoraRank === 32);
  });

  it('deepseek_v3: interventions group-limited routing cannot honour are refused', () => {
    // 8 experts in 4 groups of 2, the best 2 groups kept: at most 4 experts to choose from.
    const c = parseModelConfig(rawConfig('deepseek_v3'));
    const code = (iv: Interventions) => {
      try {
        resolveInterventions(c, iv);
        return 'ok';
      } catch (e) {
        return e instanceof EngineError ? e.code : String(e);
      }
    };
    assert.equal(code({ topK: 4 }), 'ok');
    assert.equal(code({ topK: 5 }), EngineErrorCode.BAD_TOP_K);
    assert.equal(code({ force: [{ layer: 1, expert: 0 }, { layer: 1, expert: 2 }] }), 'ok');
    assert.equal(code({ topK: 3, force: [{ layer: 1, expert: 0 }, { layer: 1, expert: 2 }, { layer: 1, expert: 4 }] }), EngineErrorCode.BAD_INTERVENTION);
    assert.equal(code({ topK: 3, force: [{ layer: 1, expert: 0 }, { layer: 1, expert: 1 }, { layer: 1, expert: 4 }] }), 'ok');
  });

  it("missing keys take transformers' defaults; more experts per token than experts is refused", () => {
    const ds = rawConfig('deepseek_v3');
    delete ds['n_shared_experts'];
    assert.deepEqual(parseModelConfig(ds).moe.shared, { intermediate: 32, gated: false }, 'DeepseekV3Config: n_shared_experts = 1');
    assert.equal(parseModelConfig({ ...rawConfig('deepseek_v3'), n_shared_experts: null }).moe.shared, null);
    const q2 = rawConfig('qwen2_moe');
    delete q2['shared_expert_intermediate_size'];
    assert.deepEqual(parseModelConfig(q2).moe.shared, { intermediate: 5632, gated: true }, 'Qwen2MoeConfig: 5632');
    assert.equal(parseModelConfig(rawConfig('qwen3_moe')).moe.shared, null);
    const odd = rawConfig('mixtral');
    delete odd['head_dim'];
    badConfig({ ...odd, num_attention_heads: 3, num_key_value_heads: 3 }); // hidden 64 / 3 heads: no whole head width
    for (const arch of ['mixtral', 'qwen2_moe', 'olmoe', 'granitemoe']) {
      const raw = rawConfig(arch);
      const experts = Number(raw['num_local_experts'] ?? raw['num_experts']);
      badConfig({ ...raw, num_experts_per_tok: experts + 1 });
    }
  });

  it('deepseek_v3: routing options it cannot honour are refused', () => {
    const raw = rawConfig('deepseek_v3');
    badConfig({ ...raw, n_group: 3 });
    badConfig({ ...raw, n_group: 8 });
    badConfig({ ...raw, topk_group: 5 });
    badConfig({ ...raw, scoring_func: 'softmax' });
    badConfig({ ...raw, topk_method: 'greedy' });
    badConfig({ ...raw, moe_layer_freq: 2 });
    badConfig({ ...raw, rope_scaling: { type: 'longrope', factor: 40 } });
  });

  it('granitemoe: multipliers, attention scale and top-k-then-softmax routing', () => {
    const c = parseModelConfig(rawConfig('granitemoe'));
    assert.deepEqual(c.scaling, { embedding: 12, residual: 0.22, logitDivisor: 6 });
    assert.ok(c.attention.kind === 'gqa' && c.attention.scale === 0.015625);
    assert.deepEqual(c.moe.routing, { kind: 'topk_softmax' });
    assert.equal(c.moe.expertIntermediate, 32);
    assert.deepEqual(c.moeLayers, [0, 1, 2]);
    badConfig({ ...rawConfig('granitemoe'), logits_scaling: 0 });
  });

  it('architectures without multipliers keep 1 and 1/√d', () => {
    const c = parseModelConfig(rawConfig('mixtral'));
    assert.deepEqual(c.scaling, { embedding: 1, residual: 1, logitDivisor: 1 });
    assert.ok(c.attention.kind === 'gqa' && c.attention.scale === 1 / Math.sqrt(c.headDim));
    assert.equal(c.vHeadDim, c.headDim);
    assert.equal(c.ropeDim, c.headDim);
  });
});
