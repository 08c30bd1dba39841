/**
 * What quantized weights cost on one checkpoint, measured against float32 on identical inputs.
 * Float32 decodes greedily after each prompt and the quantized model is fed the same tokens
 * (teacher forcing), so a routing difference early on does not make every later comparison moot.
 *
 * Agreement counts expert ids equal as sets per (MoE layer, position), prompt positions included.
 * A greedy token "is kept" when the quantized argmax equals float32's; where float32's own top two
 * logits are nearly tied no lossy format can promise that, so the largest float32 margin among the
 * tokens that changed is reported with the count.
 */
import { EngineError, EngineErrorCode } from '../errors.ts';
import { argmax } from '../generate/sampling.ts';
import type { ModelRunner } from './runner.ts';

export interface QuantCost {
  /** Fraction of top-k expert choices equal to float32's, over every MoE layer and position. */
  readonly agreement: number;
  readonly choices: number;
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
 * Runs every prompt through both runners (prefill, then `decode` greedy steps of float32's
 * choosing). Both must be loaded with routing outputs; their KV caches are reset per prompt.
 */
export async function measureQuantCost(ref: ModelRunner, quant: ModelRunner, prompts: readonly (readonly number[])[], decode: number): Promise<QuantCost> {
  const moeLayers = ref.config.moeLayers.length;
  const agree = new Float64Array(moeLayers);
  const total = new Float64Array(moeLayers);
  let tokensKept = 0;
  let tokens = 0;
  let worstLostMargin = 0;
  let maxLogitError = 0;
  let sq = 0;
  let logitCount = 0;
  for (const ids of prompts) {
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
        for (const e of b.routing.ids.subarray(row * k, (row + 1) * k)) if (want.has(e)) agree[layer]!++;
        total[layer]! += k;
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
    choices: sum(total),
    layerAgreement: Array.from(agree, (v, l) => v / total[l]!),
    tokensKept,
    tokens,
    worstLostMargin,
    maxLogitError,
    rmsLogitError: Math.sqrt(sq / logitCount),
  };
}
