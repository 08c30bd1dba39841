/**
 * Golden tests: the engine against outputs of the Hugging Face transformers code
 * (../shared/fixtures/hf-reference). Prefill logits and router logits within 1e-4; top-k ids equal
 * as sets and weights within 1e-5 at every layer and token; 16 greedy tokens identical through the
 * KV-cache path, with identical decode-step routing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generate } from '../../engine/generate/generate.ts';
import type { GenerationEvent } from '../../engine/generate/types.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { fixtureDir, loadExpected, readArray } from '../helpers/fixtures.ts';
import { testCacheDir } from '../helpers/cache.ts';

const LOGIT_ATOL = 1e-4;
const WEIGHT_ATOL = 1e-5;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Compares one token's (ids, weights) with the reference as sets: same ids, each weight within tol. */
function assertSameRouting(ids: ArrayLike<number>, weights: ArrayLike<number>, refIds: ArrayLike<number>, refW: ArrayLike<number>, where: string) {
  const got = new Map<number, number>();
  for (let i = 0; i < ids.length; i++) got.set(ids[i]!, weights[i]!);
  const want = new Map<number, number>();
  for (let i = 0; i < refIds.length; i++) want.set(refIds[i]!, refW[i]!);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${where}: expert ids`);
  for (const [e, w] of want) assert.ok(Math.abs(got.get(e)! - w) <= WEIGHT_ATOL, `${where}: weight of expert ${e}: ${got.get(e)} vs ${w}`);
}

for (const arch of ['mixtral', 'qwen2_moe', 'olmoe', 'qwen3_moe', 'granitemoe', 'deepseek_v3']) {
  describe(`golden ${arch}`, () => {
    const expected = loadExpected(arch);
    const k = expected.top_k;
    const Lm = expected.moe_layers.length;
    let runner: ModelRunner;
    before(async () => {
      runner = await ModelRunner.load(fixtureDir(arch), { cacheDir: testCacheDir() });
    });
    after(async () => runner.dispose());

    for (const p of expected.prompts) {
      it(`${p.name}: prefill logits, router logits and top-k match the reference`, async () => {
        runner.reset();
        const T = p.input_ids.length;
        const out = await runner.step({ ids: p.input_ids, logitIndex: [...Array(T).keys()], routeBias: null, topK: k });
        const logitErr = maxAbsDiff(out.logits, readArray(arch, p, 'logits'));
        assert.ok(logitErr <= LOGIT_ATOL, `logits max error ${logitErr}`);
        const r = out.routing!;
        assert.equal(r.k, k);
        const routerErr = maxAbsDiff(r.routerLogits, readArray(arch, p, 'router_logits'));
        assert.ok(routerErr <= LOGIT_ATOL, `router logits max error ${routerErr}`);
        const refIds = readArray(arch, p, 'topk_ids');
        const refW = readArray(arch, p, 'topk_weights');
        for (let m = 0; m < Lm; m++) {
          for (let t = 0; t < T; t++) {
            const at = (m * T + t) * k;
            assertSameRouting(r.ids.subarray(at, at + k), r.weights.subarray(at, at + k), refIds.subarray(at, at + k), refW.subarray(at, at + k), `layer ${expected.moe_layers[m]} token ${t}`);
          }
        }
      });

      it(`${p.name}: 16 greedy tokens and every decode step's routing match through the KV cache`, async () => {
        const events: GenerationEvent[] = [];
        for await (const ev of generate(runner, { promptIds: p.input_ids, maxNewTokens: 16, ignoreEos: true })) events.push(ev);
        const tokens = events.flatMap((e) => (e.type === 'token' && e.phase === 'decode' ? [e.id] : []));
        assert.deepEqual(tokens, p.generated_ids);

        const T = p.input_ids.length;
        const refIds = readArray(arch, p, 'gen_topk_ids'); // [S, L, k]: step s feeds generated_ids[s] at position T+s
        const refW = readArray(arch, p, 'gen_topk_weights');
        const S = refIds.length / (Lm * k);
        for (let s = 0; s < S; s++) {
          const ev = events.find((e) => e.type === 'routing' && e.index === T + s);
          assert.ok(ev && ev.type === 'routing' && ev.phase === 'decode', `routing event for position ${T + s}`);
          assert.deepEqual(ev.layers.map((l) => l.layer), expected.moe_layers);
          for (let m = 0; m < Lm; m++) {
            const at = (s * Lm + m) * k;
            assertSameRouting(ev.layers[m]!.ids, ev.layers[m]!.weights, refIds.subarray(at, at + k), refW.subarray(at, at + k), `decode step ${s} layer ${expected.moe_layers[m]}`);
          }
        }
        // Every position of the finished run has routing, including the last generated token.
        const routed = new Set(events.flatMap((e) => (e.type === 'routing' ? [e.index] : [])));
        assert.equal(routed.size, T + 16);
      });
    }
  });
}
