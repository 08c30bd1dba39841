/**
 * The context a model gets: its whole max_position_embeddings when that KV cache fits in memory,
 * else as much as fits (never under MIN_CONTEXT), and sequences are held to it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { openCheckpoint } from '../../engine/checkpoint/checkpoint.ts';
import { EngineError, EngineErrorCode } from '../../engine/errors.ts';
import { generate } from '../../engine/generate/generate.ts';
import type { GenerationEvent } from '../../engine/generate/types.ts';
import { checkBudget, describeBudget, fitContext, kvBytesPerPosition, MIN_CONTEXT, parseMaxContext } from '../../engine/runtime/memory.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { fixtureDir } from '../helpers/fixtures.ts';

const GiB = 1024 ** 3;

describe('the context a model gets', () => {
  // DeepSeek-V3's architecture with its real context, 163,840 positions.
  const cfg = { ...openCheckpoint(fixtureDir('deepseek_v3')).config, maxPositions: 163840 };
  const weights = 3 * GiB;

  it('is the whole context when its KV cache fits beside the weights', () => {
    const b = fitContext(cfg, weights, null, 1024 * GiB);
    assert.equal(b.positions, 163840);
    assert.equal(b.kvCache, kvBytesPerPosition(cfg) * 163840);
    assert.match(describeBudget(b), /KV cache at full context \(163840 positions\)/);
    checkBudget(b, 'int4');
  });

  it('is the most positions that fit, in whole cache blocks, when the whole context does not', () => {
    const full = fitContext(cfg, weights, null, 1024 * GiB);
    const machine = weights + full.runtime + kvBytesPerPosition(cfg) * 5000;
    const b = fitContext(cfg, weights, null, machine);
    assert.equal(b.positions, 4992);
    assert.ok(b.total <= machine);
    assert.match(describeBudget(b), /KV cache at 4992 of the model's 163840 positions/);
    checkBudget(b, 'int4');
  });

  it(`is refused with ENGINE_MEMORY_BUDGET when not even ${MIN_CONTEXT} positions fit`, () => {
    const full = fitContext(cfg, weights, null, 1024 * GiB);
    const b = fitContext(cfg, weights, null, weights + full.runtime + kvBytesPerPosition(cfg) * 1000);
    assert.equal(b.positions, MIN_CONTEXT);
    assert.throws(() => checkBudget(b, 'none'), (e: unknown) => e instanceof EngineError && e.code === EngineErrorCode.MEMORY_BUDGET);
  });

  it("is what was asked for, at most the checkpoint's, and no more than fits", () => {
    const asked = fitContext(cfg, weights, 100, 1024 * GiB);
    assert.deepEqual([asked.positions, asked.limitedBy], [100, 'request']);
    const all = fitContext(cfg, weights, 10 ** 9, 1024 * GiB);
    assert.deepEqual([all.positions, all.limitedBy], [163840, null]);
    // A cap above what memory holds is fitted like no cap at all, not refused.
    const full = fitContext(cfg, weights, null, 1024 * GiB);
    const machine = weights + full.runtime + kvBytesPerPosition(cfg) * 5000;
    const fitted = fitContext(cfg, weights, 8192, machine);
    assert.deepEqual([fitted.positions, fitted.limitedBy], [4992, 'memory']);
    checkBudget(fitted, 'int4');
  });
});

describe('a runner loaded with a smaller context', () => {
  const runners: ModelRunner[] = [];
  after(async () => {
    for (const r of runners) await r.dispose();
  });

  it('reports it and holds every sequence to it', async () => {
    const full = openCheckpoint(fixtureDir('mixtral')).config.maxPositions;
    assert.ok(full > 64);
    const r = await ModelRunner.load(fixtureDir('mixtral'), { cacheDir: testCacheDir(), maxContext: 64 });
    runners.push(r);
    assert.equal(r.context, 64);
    const tooLong = (e: unknown) => e instanceof EngineError && e.code === EngineErrorCode.PROMPT_TOO_LONG && /64 positions this model was loaded with \(of its \d+; the context was capped when the model was loaded\)/.test(e.message);
    assert.deepEqual(r.warnings, [], 'a cap that was asked for is no warning');
    await assert.rejects(r.step({ ids: Array(65).fill(1), logitIndex: [64], routeBias: null, topK: r.config.moe.topK }), tooLong);
    r.reset();
    await assert.rejects(async () => {
      for await (const _ of generate(r, { promptIds: Array(64).fill(1) })) void _;
    }, tooLong);
    // A prompt of 60 leaves room for 4 new tokens, however many were asked for.
    const events: GenerationEvent[] = [];
    for await (const ev of generate(r, { promptIds: Array(60).fill(1), maxNewTokens: 20, ignoreEos: true })) events.push(ev);
    const decoded = events.filter((e) => e.type === 'token' && e.phase === 'decode').length;
    assert.equal(decoded, 4);
  });

  it('refuses a context that is not a whole number of positions', async () => {
    for (const maxContext of [0, -5, 2.5]) {
      await assert.rejects(ModelRunner.load(fixtureDir('mixtral'), { cacheDir: testCacheDir(), maxContext }), (e: unknown) => e instanceof EngineError && e.code === EngineErrorCode.BAD_CONFIG);
    }
  });
});

describe('--max-context', () => {
  it('takes a whole number of positions of at least 1, and refuses anything else with ENGINE_BAD_CONFIG', () => {
    assert.equal(parseMaxContext('1024'), 1024);
    assert.equal(parseMaxContext(undefined), undefined);
    for (const bad of ['0', '-4', '1.5', 'abc', '', ' ']) assert.throws(() => parseMaxContext(bad), { code: EngineErrorCode.BAD_CONFIG }, bad);
  });
});
