/**
 * `moe-lab quant-cost` and the measurement under it: quantized weights compared with float32 on
 * identical inputs, reported overall and per MoE layer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openCheckpoint } from '../../engine/checkpoint/checkpoint.ts';
import { defaultPrompts, runQuantCost } from '../../engine/cli/quant-cost.ts';
import { EngineError, EngineErrorCode } from '../../engine/errors.ts';
import { groupRatioInterval, measureQuantCost, topMargin } from '../../engine/runtime/quant-cost.ts';
import { seededRandom } from '../../engine/generate/sampling.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { capture } from '../helpers/capture.ts';
import { fixtureDir, loadExpected, REPO_ROOT } from '../helpers/fixtures.ts';

describe('quantization cost against float32', () => {
  const runners: ModelRunner[] = [];
  const load = async (quant: 'none' | 'int8') => {
    const r = await ModelRunner.load(fixtureDir('mixtral'), { cacheDir: testCacheDir(), quant });
    runners.push(r);
    return r;
  };
  after(async () => {
    for (const r of runners) await r.dispose();
  });
  const prompts = () => loadExpected('mixtral').prompts.map((p) => p.input_ids);

  it('finds no difference between two float32 sessions of the same checkpoint', async () => {
    const r = await measureQuantCost(await load('none'), await load('none'), prompts(), 4);
    assert.equal(r.agreement, 1);
    assert.equal(r.setAgreement, 1);
    assert.deepEqual(r.agreementInterval, [1, 1]);
    assert.deepEqual(r.layerAgreement, [1, 1, 1]);
    assert.equal(r.tokensKept, r.tokens);
    assert.equal(r.tokens, 2 * 5, 'one greedy token per prefill and per decode step, per prompt');
    assert.equal(r.maxLogitError, 0);
    assert.equal(r.rmsLogitError, 0);
    // Every prompt position and every decoded token is compared at every MoE layer.
    const positions = prompts().reduce((s, p) => s + p.length + 4, 0);
    assert.equal(r.choices, positions * 3 * 2);
  });

  it('reports int8 per MoE layer, consistent with the overall figure', async () => {
    const r = await measureQuantCost(await load('none'), await load('int8'), prompts(), 4);
    assert.equal(r.layerAgreement.length, 3);
    const mean = r.layerAgreement.reduce((s, v) => s + v, 0) / 3; // equal choices per layer
    assert.ok(Math.abs(mean - r.agreement) < 1e-12);
    assert.ok(r.maxLogitError > 0, 'int8 weights change the logits');
    assert.ok(r.rmsLogitError > 0 && r.rmsLogitError <= r.maxLogitError);
    assert.ok(r.agreement > 0.8 && r.agreement <= 1, `agreement ${r.agreement}`);
    // A set that differs loses at least one of its k = 2 choices and at most both.
    assert.ok(r.setAgreement <= r.agreement && r.setAgreement >= 1 - 2 * (1 - r.agreement), `sets ${r.setAgreement} against choices ${r.agreement}`);
    const [lo, hi] = r.agreementInterval;
    assert.ok(lo <= r.agreement && r.agreement <= hi && hi <= 1, `interval ${lo}–${hi} around ${r.agreement}`);
  });

  it('refuses up front a prompt that would outgrow either runner\'s context', async () => {
    const ref = await load('none');
    const capped = await ModelRunner.load(fixtureDir('mixtral'), { cacheDir: testCacheDir(), quant: 'int8', maxContext: 20 });
    runners.push(capped);
    await assert.rejects(
      measureQuantCost(ref, capped, [[1, 2, 3], Array.from({ length: 15 }, (_, i) => i + 1)], 8),
      (e: unknown) => e instanceof EngineError && e.code === EngineErrorCode.PROMPT_TOO_LONG && /15 tokens plus 8 new ones exceeds the context of 20 positions/.test(e.message),
    );
    assert.equal(ref.position, 0, 'nothing ran');
  });

  it('bounds a grouped ratio by resampling whole groups, narrower with more groups', () => {
    // Every group at 0.9: any resample is 0.9.
    assert.deepEqual(groupRatioInterval([9, 18, 45], [10, 20, 50], seededRandom(1)), [0.9, 0.9]);
    // Groups that disagree: 8 groups, then the same mix repeated to 128.
    const num = [90, 95, 80, 99, 85, 92, 97, 88];
    const den = num.map(() => 100);
    const few = groupRatioInterval(num, den, seededRandom(2));
    const many = groupRatioInterval(Array.from({ length: 128 }, (_, i) => num[i % 8]!), Array(128).fill(100), seededRandom(2));
    const mean = num.reduce((a, b) => a + b, 0) / 800;
    for (const [lo, hi] of [few, many]) assert.ok(lo < mean && mean < hi, `${lo}–${hi} around ${mean}`);
    assert.ok(many[1] - many[0] < (few[1] - few[0]) / 2, `128 groups ${many} should be much narrower than 8 groups ${few}`);
    // Choices weigh, not groups: small groups at 10 % and large ones at 99 % pool to 90.9 %, far from
    // the mean of the group ratios (54.5 %).
    const [lo, hi] = groupRatioInterval(Array.from({ length: 64 }, (_, i) => (i % 2 ? 99 : 1)), Array.from({ length: 64 }, (_, i) => (i % 2 ? 100 : 10)), seededRandom(3));
    assert.ok(lo < 3200 / 3520 && 3200 / 3520 < hi && lo > 0.8, `${lo}–${hi}`);
    assert.deepEqual(groupRatioInterval(num, den, seededRandom(2)), few, 'a seeded generator gives the same interval');
    assert.throws(() => groupRatioInterval([], [], seededRandom(1)), RangeError);
    assert.deepEqual(groupRatioInterval([0, 0], [0, 0], seededRandom(1)), [NaN, NaN], 'groups with no choices have no ratio');
  });

  it('measures the top-1 margin as the gap between the two largest logits', () => {
    assert.equal(topMargin(new Float32Array([0.5, 3, -1, 2.25])), 0.75);
    assert.equal(topMargin(new Float32Array([2, 2, 1])), 0);
  });
});

describe('moe-lab quant-cost', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moe-lab-qcost-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let promptsFile = '';
  before(() => {
    promptsFile = join(dir, 'prompts.jsonl');
    writeFileSync(promptsFile, loadExpected('mixtral').prompts.map((p) => JSON.stringify({ prompt_ids: p.input_ids })).join('\n') + '\n');
  });

  it('prints agreement, kept tokens and logit error for each mode', async () => {
    const out = capture();
    const results = await runQuantCost([fixtureDir('mixtral'), '--prompts', promptsFile, '--max-new-tokens', '3', '--cache', testCacheDir()], '', out.stream);
    const text = out.text();
    assert.deepEqual([...results.keys()], ['int8', 'int4']);
    for (const [mode, r] of results) {
      assert.match(text, new RegExp(`^${mode}: top-k agreement ${(100 * r.agreement).toFixed(2)} % of ${r.choices} choices \\(95 % interval over prompts [\\d.]+ % – [\\d.]+ %; per MoE layer: [\\d., %]+\\); whole top-k sets equal ${(100 * r.setAgreement).toFixed(2)} %$`, 'm'));
      assert.match(text, new RegExp(`^${mode}: greedy tokens kept ${r.tokensKept}/8`, 'm'));
    }
    // The fixture has 3 MoE layers: int4 keeps the first at int8 (quant.ts expertBits).
    assert.match(text, /^int8: routed experts int8; weights in memory \d+\.\d % of float32$/m);
    assert.match(text, /^int4: routed experts int4, those of the first MoE layer int8; weights in memory \d+\.\d % of float32$/m);
    assert.match(text, /^mixtral: 2 prompts, 3 greedy tokens each, against float32$/m);
  });

  it('prints one JSON object per mode with --json', async () => {
    const out = capture();
    await runQuantCost([fixtureDir('mixtral'), '--quant', 'int4', '--prompts', promptsFile, '--max-new-tokens', '2', '--json', '--cache', testCacheDir()], '', out.stream);
    const lines = out.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!['quant'], 'int4');
    assert.equal(lines[0]!['tokens'], 6);
    assert.equal((lines[0]!['layerAgreement'] as number[]).length, 3);
    assert.deepEqual(lines[0]!['expertBits'], [8, 4, 4]);
    assert.equal((lines[0]!['agreementInterval'] as number[]).length, 2);
    assert.ok((lines[0]!['weightsInMemory'] as number) < 0.5);
  });

  it('uses sample texts through the tokenizer, or seeded random tokens without one', () => {
    const builtin = openCheckpoint(join(REPO_ROOT, 'models', 'moe-lab-tiny'));
    const texts = defaultPrompts(builtin);
    assert.ok(texts.length >= 4 && texts.every((p) => p.length > 5));
    const fixture = openCheckpoint(fixtureDir('mixtral'));
    const random = defaultPrompts(fixture);
    assert.deepEqual(random, defaultPrompts(fixture), 'the same prompts every time');
    assert.ok(random.flat().every((id) => id >= 0 && id < fixture.config.vocabSize));
  });

  it('refuses float32 as a mode, bad prompts and unreadable prompt files with stable codes', async () => {
    const run = (args: string[]) => runQuantCost([fixtureDir('mixtral'), '--cache', testCacheDir(), ...args], '', capture().stream);
    await assert.rejects(run(['--quant', 'none']), { code: EngineErrorCode.BAD_CONFIG });
    await assert.rejects(run(['--quant', 'int3']), { code: EngineErrorCode.BAD_CONFIG });
    await assert.rejects(run(['--max-new-tokens=-1']), { code: EngineErrorCode.BAD_SAMPLING });
    const outside = join(dir, 'outside.jsonl');
    writeFileSync(outside, '{"prompt_ids": [1, 2, 9999]}\n');
    await assert.rejects(run(['--prompts', outside]), { code: EngineErrorCode.BAD_PROMPT });
    const text = join(dir, 'text.jsonl');
    writeFileSync(text, '{"prompt": "no tokenizer here"}\n');
    await assert.rejects(run(['--prompts', text]), { code: EngineErrorCode.NO_TOKENIZER });
    await assert.rejects(run(['--prompts', join(dir, 'missing.jsonl')]), { code: 'TRACE_BAD_INPUT' });
  });
});
