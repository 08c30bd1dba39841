/**
 * `moe-lab quant-cost [DIR]`: what int8 and int4 weights cost on this checkpoint, against float32
 * on the same inputs (runtime/quant-cost.ts): top-k expert agreement overall and per MoE layer,
 * greedy tokens kept, and logit error. Both models are loaded at once, so float32 must fit in
 * memory (the budget check says so before anything runs).
 */
import { parseArgs } from 'node:util';
import { badInput } from '../analysis/errors.ts';
import { readPromptsFile } from '../analysis/prompts.ts';
import { openCheckpoint, type Checkpoint } from '../checkpoint/checkpoint.ts';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { seededRandom } from '../generate/sampling.ts';
import { defaultCacheDir } from '../graph/compile.ts';
import { describeExpertStorage, expertBitsPerLayer, parseQuant, type QuantMode } from '../graph/quant.ts';
import { measureQuantCost, type QuantCost } from '../runtime/quant-cost.ts';
import { ModelRunner } from '../runtime/runner.ts';

export const QUANT_COST_USAGE = `moe-lab quant-cost [DIR] [--quant int8|int4]... [--prompts FILE.jsonl]
  [--max-new-tokens N] [--cache DIR] [--json]

  Measures what quantized weights cost on DIR (default: the built-in model): float32 decodes
  N greedy tokens (default 16) after each prompt, the quantized model is fed the same tokens, and
  the report gives top-k expert agreement (overall with a 95 % interval over prompts, and per MoE
  layer), the share of whole top-k sets equal, greedy tokens kept, and max and RMS logit error.
  Prompts: FILE.jsonl as for moe-lab trace ({"prompt": …} or {"prompt_ids": […]}); by default a few
  sample texts, or seeded random tokens when DIR has no tokenizer. Without --quant both int8 and
  int4 are measured. --json prints one object per mode.`;

/** Short texts of different kinds, so routing sees prose, code, numbers and lists. */
const SAMPLE_TEXTS = [
  'The old lighthouse keeper climbed the stairs every evening to light the lamp.',
  'def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a',
  'In 1969, 3 astronauts flew 384,400 km to the Moon and back in 8 days.',
  'Ingredients: 2 eggs, 1 cup of flour, a pinch of salt, 200 ml of milk.',
  'Mixture-of-experts layers send each token to a few experts chosen by a router.',
  'SELECT name, COUNT(*) FROM orders GROUP BY name ORDER BY 2 DESC LIMIT 10;',
];

const RANDOM_PROMPTS = 8;
const RANDOM_PROMPT_LENGTH = 16;

/** The sample texts through the checkpoint's tokenizer, or seeded random ids without one. */
export function defaultPrompts(ckpt: Checkpoint): number[][] {
  if (ckpt.tokenizer) return SAMPLE_TEXTS.map((t) => ckpt.tokenizer!.encode(t));
  const random = seededRandom(1);
  const V = ckpt.config.vocabSize;
  return Array.from({ length: RANDOM_PROMPTS }, () => Array.from({ length: RANDOM_PROMPT_LENGTH }, () => Math.floor(random() * V)));
}

function promptsFromFile(path: string, ckpt: Checkpoint): number[][] {
  return readPromptsFile(path).map((p) => {
    if (p.promptIds) return [...p.promptIds];
    if (!ckpt.tokenizer) throw new EngineError(EngineErrorCode.NO_TOKENIZER, `${path}:${p.line}: text prompts need tokenizer.json in ${ckpt.dir}`);
    return ckpt.tokenizer.encode(p.prompt!);
  });
}

export function formatQuantCost(mode: QuantMode, r: QuantCost): string {
  const pct = (v: number) => `${(100 * v).toFixed(2)} %`;
  return (
    `${mode}: top-k agreement ${pct(r.agreement)} of ${r.choices} choices` +
    ` (95 % interval over prompts ${pct(r.agreementInterval[0])} – ${pct(r.agreementInterval[1])};` +
    ` per MoE layer: ${r.layerAgreement.map(pct).join(', ')}); whole top-k sets equal ${pct(r.setAgreement)}\n` +
    `${mode}: greedy tokens kept ${r.tokensKept}/${r.tokens}` +
    (r.tokensKept < r.tokens ? ` (largest float32 top-1 margin among those changed: ${r.worstLostMargin.toFixed(3)})` : '') +
    `; logit error max ${r.maxLogitError.toFixed(3)}, RMS ${r.rmsLogitError.toFixed(4)}\n`
  );
}

export async function runQuantCost(argv: string[], defaultModel: string, out: NodeJS.WritableStream = process.stdout): Promise<Map<QuantMode, QuantCost>> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      quant: { type: 'string', multiple: true },
      prompts: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      cache: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 1) throw new EngineError(EngineErrorCode.BAD_CONFIG, 'give at most one checkpoint folder');
  const modes = (values.quant ?? ['int8', 'int4']).map(parseQuant);
  if (modes.includes('none')) throw new EngineError(EngineErrorCode.BAD_CONFIG, '--quant must be int8 or int4 here (float32 is the reference)');
  const decodeArg = values['max-new-tokens'] ?? '16';
  const decode = Number(decodeArg);
  if (!Number.isInteger(decode) || decode < 0 || decode > 1024) throw new EngineError(EngineErrorCode.BAD_SAMPLING, `--max-new-tokens must be an integer in 0…1024, got '${decodeArg}'`);
  const ckpt = openCheckpoint(positionals[0] ?? defaultModel);
  const prompts = values.prompts ? promptsFromFile(values.prompts, ckpt) : defaultPrompts(ckpt);
  if (prompts.length === 0) throw badInput(`${values.prompts}: no prompts`);
  for (const p of prompts) {
    const bad = p.find((id) => id >= ckpt.config.vocabSize);
    if (bad !== undefined) throw new EngineError(EngineErrorCode.BAD_PROMPT, `token id ${bad} is outside the vocabulary (${ckpt.config.vocabSize})`);
    if (p.length + decode > ckpt.config.maxPositions) throw new EngineError(EngineErrorCode.PROMPT_TOO_LONG, `a prompt of ${p.length} tokens plus ${decode} new ones exceeds the context (${ckpt.config.maxPositions})`);
  }
  const cacheDir = values.cache ?? defaultCacheDir();
  const results = new Map<QuantMode, QuantCost>();
  const ref = await ModelRunner.load(ckpt, { cacheDir });
  try {
    if (!values.json) out.write(`${ckpt.id}: ${prompts.length} prompts, ${decode} greedy tokens each, against float32\n`);
    for (const mode of modes) {
      const q = await ModelRunner.load(ckpt, { cacheDir, quant: mode });
      try {
        const r = await measureQuantCost(ref, q, prompts, decode);
        results.set(mode, r);
        if (values.json) out.write(JSON.stringify({ model: ckpt.id, quant: mode, prompts: prompts.length, maxNewTokens: decode, weightsInMemory: q.memory.weights / ref.memory.weights, expertBits: expertBitsPerLayer(mode, ckpt.config.moeLayers.length), ...r }) + '\n');
        else out.write(`${mode}: ${describeExpertStorage(mode, ckpt.config.moeLayers.length)}; weights in memory ${((100 * q.memory.weights) / ref.memory.weights).toFixed(1)} % of float32\n` + formatQuantCost(mode, r));
      } finally {
        await q.dispose();
      }
    }
  } finally {
    await ref.dispose();
  }
  return results;
}
