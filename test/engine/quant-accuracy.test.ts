/**
 * What int8 and int4 weights cost, measured against float32 on the same checkpoint: top-k expert
 * agreement at every MoE layer and position, and greedy tokens. Two mixtral checkpoints: the
 * reference fixture scaled up to quantization-sized widths (random weights, test/helpers/
 * scaled-mixtral.ts) and the built-in model (trained weights, the case users meet).
 *
 * Protocol (runtime/quant-cost.ts, also `moe-lab quant-cost`): float32 decodes 16 greedy tokens
 * after each prompt; the quantized model is fed the same tokens (teacher forcing). Prompts: the
 * checkpoint's reference prompts plus `moe-lab quant-cost`'s defaults (seeded random tokens for the
 * tokenizer-less fixture, sample texts for the built-in model), so each figure rests on 2,400+
 * expert choices; two prompts alone (408 choices) moved int4's figure by ±3 points between prompt
 * sets. A greedy token "is kept" when the quantized argmax equals float32's; where float32's top-2
 * logits are nearly tied no lossy format can promise that (on the random-weight checkpoint int8
 * changes 8 of 170, all with float32 margins under 0.12), so tokens are required equal wherever
 * float32's margin is at least TOKEN_MARGIN logits, and the number kept and the largest margin lost
 * are printed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Checkpoint } from '../../engine/checkpoint/checkpoint.ts';
import { defaultPrompts, formatQuantCost } from '../../engine/cli/quant-cost.ts';
import type { QuantMode } from '../../engine/graph/quant.ts';
import { measureQuantCost } from '../../engine/runtime/quant-cost.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { loadExpected, REPO_ROOT } from '../helpers/fixtures.ts';
import { scaledMixtral } from '../helpers/scaled-mixtral.ts';

const DECODE = 16;

/** Required top-k agreement with float32, per mode and checkpoint (measured values in the report). */
const MIN_AGREEMENT: Record<'scaled' | 'builtin', Record<'int8' | 'int4', number>> = {
  scaled: { int8: 0.95, int4: 0.95 },
  builtin: { int8: 0.95, int4: 0.95 },
};
/** Float32 top-1 margin (logits) above which a greedy token must be kept. */
const TOKEN_MARGIN: Record<'int8' | 'int4', number> = { int8: 0.25, int4: 0.75 };

function describeCheckpoint(name: 'scaled' | 'builtin', dir: () => Promise<string>, prompts: (ckpt: Checkpoint) => number[][]): void {
  describe(`quantized weights on ${name === 'scaled' ? 'the mixtral fixture scaled up' : 'the built-in model'}`, () => {
    const runners = new Map<QuantMode, ModelRunner>();
    before(async () => {
      const d = await dir();
      for (const quant of ['none', 'int8', 'int4'] as const) runners.set(quant, await ModelRunner.load(d, { cacheDir: testCacheDir(), quant }));
    });
    after(async () => {
      for (const r of runners.values()) await r.dispose();
    });

    for (const mode of ['int8', 'int4'] as const) {
      it(`${mode} keeps top-k expert choices and confident greedy tokens`, async () => {
        const r = await measureQuantCost(runners.get('none')!, runners.get(mode)!, prompts(runners.get('none')!.ckpt), DECODE);
        console.log(formatQuantCost(mode, r).trimEnd().replace(/^/gm, `${name} `));
        assert.ok(r.agreement >= MIN_AGREEMENT[name][mode], `agreement ${r.agreement} below ${MIN_AGREEMENT[name][mode]}`);
        assert.ok(r.worstLostMargin < TOKEN_MARGIN[mode], `a greedy token with float32 margin ${r.worstLostMargin} changed`);
      });
    }

    it('holds int8 and int4 weights in well under half the memory of float32', () => {
      const fp = runners.get('none')!.memory.weights;
      const i8 = runners.get('int8')!.memory.weights / fp;
      const i4 = runners.get('int4')!.memory.weights / fp;
      console.log(`${name}: weights in memory int8 ${(100 * i8).toFixed(1)} %, int4 ${(100 * i4).toFixed(1)} % of float32 (${fp} bytes)`);
      // Experts are ~90 % of these models: int8 ≈ 0.9 × 28 % + 10 % float32, int4 ≈ 0.9 × 16 % + 10 %
      // plus the first MoE layer at int8 (a quarter of these 4-layer models' experts: ≈ +3 %).
      assert.ok(i8 > 0.3 && i8 < 0.42, `int8 ${i8}`);
      assert.ok(i4 > 0.2 && i4 < 0.32, `int4 ${i4}`);
    });
  });
}

describeCheckpoint(
  'scaled',
  () => scaledMixtral(testCacheDir()),
  (ckpt) => [...loadExpected('mixtral').prompts.map((p) => p.input_ids), ...defaultPrompts(ckpt)],
);

const BUILTIN = join(REPO_ROOT, 'models', 'moe-lab-tiny');
describeCheckpoint(
  'builtin',
  async () => BUILTIN,
  (ckpt) => [
    ...(JSON.parse(readFileSync(join(BUILTIN, 'reference', 'reference.json'), 'utf8')) as { prompts: { input_ids: number[] }[] }).prompts.map(
      (p) => p.input_ids,
    ),
    ...defaultPrompts(ckpt),
  ],
);
