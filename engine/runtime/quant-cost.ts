/**
 * What quantized weights cost on one checkpoint, measured against float32 on identical inputs.
 * Float32 decodes greedily after each prompt and the quantized model is fed the same tokens
 * (teacher forcing), so a routing difference early on does not make every later comparison moot.
 *
 * Agreement is the share of the quantized model's k expert choices per (MoE layer, position) that
 * float32 also made there, in any order; prompt positions are included.
 * A greedy token "is kept" when the quantized argmax equals float32's; where float32's own top two
 * logits are nearly tied no lossy format can promise that, so the largest float32 margin among the
 * tokens that changed is reported with the count.
 *
 * Expert choices within a prompt are far from independent (one perturbed hidden state moves every
 * later layer's choice), so agreement's uncertainty is estimated over prompts: a percentile
 * bootstrap that resamples whole prompts. On a random-weight checkpoint ten prompts leave an interval
 * about two points wide.
 */
import { EngineError, EngineErrorCode } from '../errors.ts';
import { argmax, seededRandom, type Random } from '../generate/sampling.ts';
import type { ModelRunner } from './runner.ts';

export interface QuantCost {
  /** Fraction of top-k expert choices equal to float32's, over every MoE layer and position. */
  readonly agreement: number;
  /** 95 % interval for `agreement`, resampling prompts (see `groupRatioInterval`). */
  readonly agreementInterval: readonly [number, number];
  readonly choices: number;
  /** Stricter: the share of (MoE layer, position) pairs whose whole top-k set equals float32's. */
  readonly setAgreement: number;
  /** The same per MoE layer, in the order of `config.moeLayers`. */
  readonly layerAgreement: readonly number[];
  readonly tokensKept: number;
  readonly tokens: number;
  /** Largest float32 top-1 margin (logits) among the greedy tokens that changed; 0 if none did. */
  readonly worstLostMargin: number;
  /** Largest |logit difference| at any compared position. */
  readonly maxLogitError: number;
  /** Root mean square logit difference over every compared position and vocabulary entry. */
  readonly rmsLogitError: number;
}

/** Distance between the largest and second-largest logit. */
export function topMargin(logits: Float32Array): number {
  let a = -Infinity;
  let b = -Infinity;
  for (const v of logits) {
    if (v > a) [a, b] = [v, a];
    else if (v > b) b = v;
  }
  return a - b;
}

/**
 * Percentile bootstrap interval for Σ num / Σ den when the data come in groups (num[g] of den[g]
 * per group): each of `reps` resamples draws as many groups as there are, with replacement
 * (resamples of empty groups only are skipped).
 * Randomness is passed in, so a seeded generator gives the same interval every time.
 */
export function groupRatioInterval(num: ArrayLike<number>, den: ArrayLike<number>, random: Random, reps = 2000, level = 0.95): [number, number] {
  const G = num.length;
  if (G === 0 || G !== den.length) throw new RangeError(`groupRatioInterval needs matching non-empty groups, got ${G} and ${den.length}`);
  const ratios = new Float64Array(reps);
  for (let r = 0; r < reps; r++) {
    let n = 0;
    let d = 0;
    for (let i = 0; i < G; i++) {
      const g = Math.floor(random() * G);
      n += num[g]!;
      d += den[g]!;
    }
    ratios[r] = d > 0 ? n / d : NaN;
  }
  const sorted = ratios.filter((v) => !Number.isNaN(v)).sort();
  if (sorted.length === 0) return [NaN, NaN]; // every group empty: no ratio to bound
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))]!;
  return [at((1 - level) / 2), at(1 - (1 - level) / 2)];
}

/**
 * Runs every prompt through both runners (prefill, then `decode` greedy steps of float32's
 * choosing). Both must be loaded with routing outputs; their KV caches are reset per prompt.
 */
export async function measureQuantCost(ref: ModelRunner, quant: ModelRunner, prompts: readonly (readonly number[])[], decode: number): Promise<QuantCost> {
  // Checked up front, against the smaller of the two runners' contexts (memory can cut either one),
  // so a long prompt does not fail half way through the measurement.
  const context = Math.min(ref.context, quant.context);
  const longest = Math.max(...prompts.map((p) => p.length));
  if (longest + decode > context) {
    throw new EngineError(EngineErrorCode.PROMPT_TOO_LONG, `a prompt of ${longest} tokens plus ${decode} new ones exceeds the context of ${context} positions`, { positions: longest + decode, context });
  }
  const moeLayers = ref.config.moeLayers.length;
  const agree = new Float64Array(moeLayers);
  const total = new Float64Array(moeLayers);
  const promptAgree = new Float64Array(prompts.length);
  const promptTotal = new Float64Array(prompts.length);
  let setsEqual = 0;
  let sets = 0;
  let tokensKept = 0;
  let tokens = 0;
  let worstLostMargin = 0;
  let maxLogitError = 0;
  let sq = 0;
  let logitCount = 0;
  for (const [p, ids] of prompts.entries()) {
    ref.reset();
    quant.reset();
    let feed: readonly number[] = ids;
    for (let step = 0; step <= decode; step++) {
      const req = { ids: feed, logitIndex: [feed.length - 1], routeBias: null, topK: ref.config.moe.topK };
      const a = await ref.step(req);
      const b = await quant.step(req);
      if (!a.routing || !b.routing) throw new EngineError(EngineErrorCode.BAD_CONFIG, 'comparing routing needs runners loaded with routing outputs');
      const k = a.routing.k;
      const T = feed.length;
      // ids: [L·T, k], layer-major.
      for (let row = 0; row < moeLayers * T; row++) {
        const layer = Math.floor(row / T);
        const want = new Set(a.routing.ids.subarray(row * k, (row + 1) * k));
        let same = 0;
        for (const e of b.routing.ids.subarray(row * k, (row + 1) * k)) if (want.has(e)) same++;
        agree[layer]! += same;
        promptAgree[p]! += same;
        if (same === k) setsEqual++;
        sets++;
        total[layer]! += k;
        promptTotal[p]! += k;
      }
      for (let i = 0; i < a.logits.length; i++) {
        const d = a.logits[i]! - b.logits[i]!;
        maxLogitError = Math.max(maxLogitError, Math.abs(d));
        sq += d * d;
      }
      logitCount += a.logits.length;
      const token = argmax(a.logits);
      tokens++;
      if (argmax(b.logits) === token) tokensKept++;
      else worstLostMargin = Math.max(worstLostMargin, topMargin(a.logits));
      feed = [token];
    }
  }
  const sum = (x: Float64Array) => x.reduce((s, v) => s + v, 0);
  return {
    agreement: sum(agree) / sum(total),
    agreementInterval: groupRatioInterval(promptAgree, promptTotal, seededRandom(1)),
    choices: sum(total),
    setAgreement: setsEqual / sets,
    layerAgreement: Array.from(agree, (v, l) => v / total[l]!),
    tokensKept,
    tokens,
    worstLostMargin,
    maxLogitError,
    rmsLogitError: Math.sqrt(sq / logitCount),
  };
}
