/** Behaviour of generation: sampling, interventions, stops, cancellation and error codes. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../engine/engine.ts';
import { EngineError, EngineErrorCode } from '../../engine/errors.ts';
import { generate } from '../../engine/generate/generate.ts';
import type { GenerateRequest, GenerationEvent } from '../../engine/generate/types.ts';
import { routeToken } from '../../engine/routing.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { makeCheckpoint } from '../helpers/checkpoints.ts';
import { fixtureDir } from '../helpers/fixtures.ts';

const PROMPT = [105, 116, 158, 23, 27, 211, 69];

async function collect(runner: ModelRunner, req: GenerateRequest): Promise<GenerationEvent[]> {
  const out: GenerationEvent[] = [];
  for await (const ev of generate(runner, req)) out.push(ev);
  return out;
}
const decoded = (evs: GenerationEvent[]) => evs.flatMap((e) => (e.type === 'token' && e.phase === 'decode' ? [e.id] : []));
const routings = (evs: GenerationEvent[]) => evs.flatMap((e) => (e.type === 'routing' ? [e] : []));
const done = (evs: GenerationEvent[]) => evs.find((e) => e.type === 'done') as Extract<GenerationEvent, { type: 'done' }>;

async function rejectsWithCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  await assert.rejects(async () => (typeof p === 'function' ? p() : p), (e: unknown) => {
    assert.ok(e instanceof EngineError, `expected EngineError, got ${String(e)}`);
    assert.equal(e.code, code);
    return true;
  });
}

describe('generation on the mixtral reference checkpoint', () => {
  let runner: ModelRunner;
  before(async () => {
    runner = await ModelRunner.load(makeCheckpoint({ tokenizer: true }), { cacheDir: testCacheDir() });
  });
  after(async () => runner.dispose());

  it('prompt tokens carry the text they add: a character split over tokens reads whole, and the deltas make the prompt', async () => {
    const prompt = 'naïve €5';
    const toks = (await collect(runner, { prompt, maxNewTokens: 0 })).flatMap((e) => (e.type === 'token' && e.phase === 'prefill' ? [e] : []));
    assert.equal(toks.map((t) => t.delta).join(''), prompt);
    assert.ok(toks.some((t) => t.text?.includes('\uFFFD')), 'some token is only part of a character');
    assert.ok(toks.every((t) => !t.delta!.includes('\uFFFD')), JSON.stringify(toks.map((t) => t.delta)));
  });

  it('seeded sampling is reproducible, and another seed gives other tokens', async () => {
    const req = { promptIds: PROMPT, maxNewTokens: 24, ignoreEos: true, sampling: { temperature: 1.2, topP: 0.98 } };
    const a = decoded(await collect(runner, { ...req, seed: 7 }));
    const b = decoded(await collect(runner, { ...req, seed: 7 }));
    const c = decoded(await collect(runner, { ...req, seed: 8 }));
    assert.equal(a.length, 24);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    const greedy = decoded(await collect(runner, { promptIds: PROMPT, maxNewTokens: 24, ignoreEos: true }));
    assert.notDeepEqual(a, greedy, 'sampling at temperature 1.2 should leave the greedy path');
  });

  it('a banned expert never appears in the routing and changes the output', async () => {
    const base = await collect(runner, { promptIds: PROMPT, maxNewTokens: 16, ignoreEos: true });
    // Ban the expert the model uses most at layer 1.
    const counts = new Map<number, number>();
    for (const r of routings(base)) for (const id of r.layers[1]!.ids) counts.set(id, (counts.get(id) ?? 0) + 1);
    const top = [...counts.entries()].sort((x, y) => y[1] - x[1])[0]![0];
    const banned = await collect(runner, { promptIds: PROMPT, maxNewTokens: 16, ignoreEos: true, interventions: { ban: [{ layer: 'all', expert: top }] } });
    for (const r of routings(banned)) for (const l of r.layers) assert.ok(!l.ids.includes(top), `expert ${top} used at position ${r.index} layer ${l.layer}`);
    assert.equal(routings(banned).length, PROMPT.length + 16);
    assert.notDeepEqual(decoded(banned), decoded(base));
  });

  it('a forced expert is always among the experts used', async () => {
    const evs = await collect(runner, { promptIds: PROMPT, maxNewTokens: 12, ignoreEos: true, interventions: { force: [{ layer: 1, expert: 0 }] } });
    const rs = routings(evs);
    assert.equal(rs.length, PROMPT.length + 12);
    for (const r of rs) assert.ok(r.layers[1]!.ids.includes(0), `position ${r.index}: ${r.layers[1]!.ids}`);
    // Other layers are untouched: expert 0 is not forced there.
    assert.ok(rs.some((r) => !r.layers[0]!.ids.includes(0)));
  });

  it('the routing reported under interventions is what the reference router computes from the same logits', async () => {
    const E = 8;
    const bias = new Float32Array(3 * E);
    bias[0 * E + 3] = -Infinity;
    bias[2 * E + 6] = 1e4;
    const step = await runner.step({ ids: PROMPT, logitIndex: [PROMPT.length - 1], routeBias: bias, topK: 3 });
    runner.reset();
    const r = step.routing!;
    assert.equal(r.k, 3);
    const T = PROMPT.length;
    for (let m = 0; m < 3; m++) {
      for (let t = 0; t < T; t++) {
        const z = r.routerLogits.subarray((m * T + t) * E, (m * T + t + 1) * E);
        const want = routeToken({ kind: 'softmax_topk', renormalize: true }, z, 3, bias.subarray(m * E, (m + 1) * E));
        const at = (m * T + t) * 3;
        const got = new Map([...r.ids.subarray(at, at + 3)].map((id, i) => [id, r.weights[at + i]!]));
        assert.deepEqual([...got.keys()].sort(), [...want.ids].sort());
        want.ids.forEach((id, i) => assert.ok(Math.abs(got.get(id)! - want.weights[i]!) < 1e-6));
      }
    }
  });

  it('a top-k override changes how many experts each token uses', async () => {
    const evs = await collect(runner, { promptIds: PROMPT, maxNewTokens: 4, ignoreEos: true, interventions: { topK: 4 } });
    for (const r of routings(evs)) for (const l of r.layers) {
      assert.equal(l.ids.length, 4);
      assert.ok(Math.abs(l.weights.reduce((a, b) => a + b, 0) - 1) < 1e-5, 'mixtral renormalises over the chosen experts');
    }
  });

  it('a stop string ends generation and is cut from the text', async () => {
    const full = done(await collect(runner, { prompt: 'The', maxNewTokens: 40, ignoreEos: true }));
    const text = full.text!;
    const at = [...Array(text.length - 2).keys()].find((i) => i >= 3 && !/\uFFFD/.test(text.slice(i, i + 2)))!;
    const stop = text.slice(at, at + 2);
    const stopped = await collect(runner, { prompt: 'The', maxNewTokens: 40, ignoreEos: true, stop: [stop] });
    const d = done(stopped);
    assert.equal(d.reason, 'stop');
    assert.equal(d.text, text.slice(0, text.indexOf(stop)));
    assert.ok(d.generatedTokens < 40);
    // Every emitted token still has its routing.
    assert.equal(routings(stopped).length, d.promptTokens + d.generatedTokens);
  });

  it('EOS ends generation', async () => {
    const greedy = decoded(await collect(runner, { promptIds: PROMPT, maxNewTokens: 8, ignoreEos: true }));
    const evs = await collect(runner, { promptIds: PROMPT, maxNewTokens: 8, stopTokenIds: [greedy[2]!] });
    assert.equal(done(evs).reason, 'eos');
    assert.deepEqual(decoded(evs), greedy.slice(0, greedy.indexOf(greedy[2]!) + 1));
  });

  it('cancel stops within one token', async () => {
    const controller = new AbortController();
    let afterAbort = 0;
    let last: GenerationEvent | undefined;
    for await (const ev of generate(runner, { promptIds: PROMPT, maxNewTokens: 50, ignoreEos: true }, { signal: controller.signal })) {
      last = ev;
      if (ev.type !== 'token' || ev.phase !== 'decode') continue;
      if (controller.signal.aborted) afterAbort++;
      else if (ev.index === PROMPT.length + 2) controller.abort();
    }
    assert.ok(last?.type === 'done');
    assert.equal(last.reason, 'cancelled');
    assert.ok(afterAbort <= 1, `${afterAbort} tokens after cancel`);
    assert.equal(last.generatedTokens, 3 + afterAbort);
  });

  it('rejects bad requests with stable codes', async () => {
    await rejectsWithCode(collect(runner, { promptIds: Array(256).fill(5) }), EngineErrorCode.PROMPT_TOO_LONG);
    await rejectsWithCode(collect(runner, { promptIds: PROMPT, interventions: { topK: 9 } }), EngineErrorCode.BAD_TOP_K);
    await rejectsWithCode(collect(runner, { promptIds: PROMPT, interventions: { topK: 0 } }), EngineErrorCode.BAD_TOP_K);
    await rejectsWithCode(collect(runner, { promptIds: PROMPT, interventions: { ban: [{ layer: 7, expert: 1 }] } }), EngineErrorCode.BAD_INTERVENTION);
    await rejectsWithCode(collect(runner, { promptIds: PROMPT, interventions: { ban: [{ layer: 0, expert: 8 }] } }), EngineErrorCode.BAD_INTERVENTION);
    await rejectsWithCode(
      collect(runner, { promptIds: PROMPT, interventions: { ban: [0, 1, 2, 3, 4, 5, 6].map((expert) => ({ layer: 0, expert })) } }),
      EngineErrorCode.BAD_INTERVENTION,
    );
    await rejectsWithCode(collect(runner, { promptIds: [300] }), EngineErrorCode.BAD_PROMPT);
    await rejectsWithCode(collect(runner, { promptIds: [] }), EngineErrorCode.BAD_PROMPT);
    await rejectsWithCode(collect(runner, { promptIds: PROMPT, sampling: { topP: 0 } }), EngineErrorCode.BAD_SAMPLING);
  });
});

describe('loading checkpoints', () => {
  const load = (dir: string) => ModelRunner.load(dir, { cacheDir: testCacheDir() });

  it('a folder without config.json is a missing file', async () => {
    await rejectsWithCode(load(makeCheckpoint({ withConfig: false })), EngineErrorCode.MISSING_FILE);
  });
  it('a folder without weights is a missing file', async () => {
    await rejectsWithCode(load(makeCheckpoint({ weights: 'none' })), EngineErrorCode.MISSING_FILE);
  });
  it('an unknown model_type is unsupported', async () => {
    await rejectsWithCode(load(makeCheckpoint({ patchConfig: (c) => ({ ...c, model_type: 'llama' }) })), EngineErrorCode.UNSUPPORTED_MODEL_TYPE);
  });
  it('a corrupt safetensors header is reported as such', async () => {
    await rejectsWithCode(load(makeCheckpoint({ weights: 'corrupt-header' })), EngineErrorCode.CORRUPT_SAFETENSORS);
  });
  it('a generation_config.json or tokenizer.json that cannot be read is a bad config naming the file', async () => {
    const withFile = (name: string, text: string) => {
      const dir = makeCheckpoint();
      writeFileSync(join(dir, name), text);
      return dir;
    };
    for (const [name, text] of [['generation_config.json', '{"eos_token_id": '], ['tokenizer.json', '{"version": "1.0", "model": {}}']] as const) {
      await assert.rejects(load(withFile(name, text)), (e: unknown) => e instanceof EngineError && e.code === EngineErrorCode.BAD_CONFIG && e.message.includes(name), name);
    }
  });
  it('FP8 weights are refused as bad weights, saying what to convert them to', async () => {
    await assert.rejects(load(makeCheckpoint({ weights: 'fp8' })), (e: unknown) => {
      assert.ok(e instanceof EngineError && e.code === EngineErrorCode.BAD_WEIGHTS, String(e));
      assert.match(e.message, /F8_E4M3.*BF16/);
      return true;
    });
  });
  it('weights that do not match the config are bad weights', async () => {
    await rejectsWithCode(load(makeCheckpoint({ patchConfig: (c) => ({ ...c, intermediate_size: 48 }) })), EngineErrorCode.BAD_WEIGHTS);
  });
  it('text without a tokenizer asks for prompt ids', async () => {
    const r = await load(fixtureDir('mixtral'));
    try {
      await rejectsWithCode(collect(r, { prompt: 'hello' }), EngineErrorCode.NO_TOKENIZER);
    } finally {
      await r.dispose();
    }
  });
});

describe('the engine worker', () => {
  it('cancelling through an AbortSignal ends the run early and leaves the engine usable', async () => {
    const engine = await Engine.load(fixtureDir('mixtral'), { cacheDir: testCacheDir() });
    try {
      const controller = new AbortController();
      let last: GenerationEvent | undefined;
      for await (const ev of engine.generate({ promptIds: PROMPT, maxNewTokens: 240, ignoreEos: true }, { signal: controller.signal })) {
        last = ev;
        if (ev.type === 'token' && ev.phase === 'decode') controller.abort();
      }
      assert.ok(last?.type === 'done');
      assert.equal(last.reason, 'cancelled');
      // The worker runs ahead of this loop, so some tokens were already made when abort() ran;
      // what matters is that the shared flag stopped it long before the 240 it was asked for.
      assert.ok(last.generatedTokens < 240, `${last.generatedTokens} tokens generated`);
      let n = 0;
      for await (const ev of engine.generate({ promptIds: PROMPT, maxNewTokens: 3, ignoreEos: true })) if (ev.type === 'token' && ev.phase === 'decode') n++;
      assert.equal(n, 3);
    } finally {
      await engine.dispose();
    }
  });

  it('concurrent generations take turns and each matches its solo run', async () => {
    const engine = await Engine.load(fixtureDir('mixtral'), { cacheDir: testCacheDir() });
    try {
      const reqA = { promptIds: PROMPT, maxNewTokens: 16, ignoreEos: true };
      const reqB = { promptIds: [42, 238, 148, 144, 98], maxNewTokens: 16, ignoreEos: true, sampling: { temperature: 1 }, seed: 3 };
      const solo = async (req: GenerateRequest) => {
        const evs: GenerationEvent[] = [];
        for await (const ev of engine.generate(req)) evs.push(ev);
        return evs;
      };
      const soloA = await solo(reqA);
      const soloB = await solo(reqB);
      const order: string[] = [];
      const tag = async (name: string, req: GenerateRequest) => {
        const evs: GenerationEvent[] = [];
        for await (const ev of engine.generate(req)) {
          evs.push(ev);
          if (ev.type === 'token' && ev.phase === 'decode') order.push(name);
        }
        return evs;
      };
      const [a, b] = await Promise.all([tag('a', reqA), tag('b', reqB)]);
      const strip = (evs: GenerationEvent[]) => evs.filter((e) => e.type === 'token' || e.type === 'routing');
      assert.deepEqual(strip(a), strip(soloA));
      assert.deepEqual(strip(b), strip(soloB));
      // They streamed side by side, not one after the other.
      const firstB = order.indexOf('b');
      assert.ok(firstB >= 0 && firstB < order.lastIndexOf('a'), `token order ${order.join('')}`);
    } finally {
      await engine.dispose();
    }
  });

  it('errors from the worker keep their codes', async () => {
    await rejectsWithCode(Engine.load(makeCheckpoint({ patchConfig: (c) => ({ ...c, model_type: 'gpt2' }) }), { cacheDir: testCacheDir() }), EngineErrorCode.UNSUPPORTED_MODEL_TYPE);
    const engine = await Engine.load(fixtureDir('mixtral'), { cacheDir: testCacheDir() });
    try {
      await rejectsWithCode(async () => {
        for await (const _ of engine.generate({ promptIds: PROMPT, interventions: { topK: 99 } })) void _;
      }, EngineErrorCode.BAD_TOP_K);
    } finally {
      await engine.dispose();
    }
  });
});

describe('execution providers', () => {
  for (const provider of ['cuda', 'webgpu'] as const) {
    it(`asking for ${provider} where it cannot run names what is missing`, async () => {
      await assert.rejects(ModelRunner.load(fixtureDir('mixtral'), { cacheDir: testCacheDir(), provider }), (e: unknown) => {
        assert.ok(e instanceof EngineError);
        assert.equal(e.code, EngineErrorCode.PROVIDER_UNAVAILABLE);
        assert.match(e.message, provider === 'cuda' ? /libonnxruntime_providers_cuda\.so/ : /MoE/);
        return true;
      });
    });
  }
});

describe('diagnostic mode', () => {
  it('breaks each step down per layer into attention and MLP time', async () => {
    const runner = await ModelRunner.load(fixtureDir('mixtral'), { cacheDir: testCacheDir(), diagnostics: true });
    try {
      for (let round = 0; round < 2; round++) {
        const evs = await collect(runner, { promptIds: PROMPT, maxNewTokens: 5, ignoreEos: true });
        const profile = evs.find((e) => e.type === 'profile');
        assert.ok(profile && profile.type === 'profile');
        // One breakdown per step: the prefill, then one per generated token (the last one's routing step included).
        assert.deepEqual(profile.steps.map((s) => s.phase), ['prefill', 'decode', 'decode', 'decode', 'decode', 'decode']);
        assert.equal(profile.steps[0]!.tokens, PROMPT.length);
        for (const s of profile.steps) {
          assert.deepEqual(s.layers.map((l) => l.layer), [0, 1, 2]);
          for (const l of s.layers) assert.ok(l.attentionMs > 0 && l.mlpMs > 0, JSON.stringify(l));
          const inLayers = s.layers.reduce((a, l) => a + l.attentionMs + l.mlpMs + l.otherMs, 0);
          assert.ok(inLayers + s.outsideLayersMs <= s.totalMs * 1.05, 'kernel time fits in the step');
        }
        assert.equal(evs.at(-1)!.type, 'done');
      }
    } finally {
      await runner.dispose();
    }
  });
});
