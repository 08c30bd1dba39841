/**
 * config.json's `rope_scaling`: how a checkpoint stretches RoPE beyond its pretraining context.
 * DeepSeek-V3 ships YaRN (factor 40 over 4,096 positions), long-context Qwen3 and Mixtral
 * variants ship YaRN or linear scaling. Parsed here into the few numbers the RoPE angles and the
 * attention scale need (graph/layers.ts `ropeCosSin`, config.ts for DeepSeek's softmax scale).
 *
 * `dynamic` NTK scaling changes the frequencies only once a sequence outgrows
 * max_position_embeddings, which the engine never lets happen, so it runs as plain RoPE.
 * Other kinds (llama3, longrope) are refused rather than silently run wrong.
 */
import { z } from 'zod';
import { assertNever } from '../assert-never.ts';
import { EngineError, EngineErrorCode } from '../errors.ts';

export type RopeScaling =
  | { readonly kind: 'none' }
  /** Positions divided by `factor` (inverse frequencies ÷ factor). */
  | { readonly kind: 'linear'; readonly factor: number }
  | {
      readonly kind: 'yarn';
      readonly factor: number;
      /** Context the model was pretrained on; sets which frequencies are interpolated. */
      readonly originalMaxPositions: number;
      readonly betaFast: number;
      readonly betaSlow: number;
      /** Multiplies cos and sin (so q·k by its square). */
      readonly attentionFactor: number;
      /** Round the ramp's ends to whole dimensions (HF's default). */
      readonly truncate: boolean;
      /** DeepSeek's `mscale_all_dim`: its attention also scales the softmax by mscale(factor, this)². */
      readonly mscaleAllDim: number;
    };

const schema = z
  .object({
    type: z.string().optional(),
    rope_type: z.string().optional(),
    factor: z.number().optional(),
    original_max_position_embeddings: z.number().int().positive().optional(),
    beta_fast: z.number().positive().nullish(),
    beta_slow: z.number().positive().nullish(),
    attention_factor: z.number().positive().nullish(),
    mscale: z.number().nullish(),
    mscale_all_dim: z.number().nullish(),
    truncate: z.boolean().optional(),
  })
  .passthrough();

/** YaRN's magnitude correction: 0.1·m·ln(s) + 1 for a stretch s > 1. */
export function yarnMscale(scale: number, m = 1): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

/** `maxPositions` (max_position_embeddings) stands in for a missing original_max_position_embeddings, as in HF. */
export function parseRopeScaling(raw: unknown, modelType: string, maxPositions: number): RopeScaling {
  if (raw === null || raw === undefined) return { kind: 'none' };
  const bad = (why: string) => new EngineError(EngineErrorCode.BAD_CONFIG, `${modelType}: rope_scaling ${why}`);
  const r = schema.safeParse(raw);
  if (!r.success) throw bad(`is not valid: ${r.error.issues[0]?.path.join('.') || 'value'}: ${r.error.issues[0]?.message}`);
  const c = r.data;
  const kind = c.rope_type ?? c.type ?? 'default';
  if (kind === 'default' || kind === 'dynamic') return { kind: 'none' };
  if (kind !== 'linear' && kind !== 'yarn') throw bad(`type '${kind}' is not supported (linear, yarn, dynamic and default are)`);
  if (c.factor === undefined || !(c.factor >= 1)) throw bad(`${kind} needs a factor ≥ 1, got ${c.factor}`);
  if (kind === 'linear') return { kind, factor: c.factor };
  // HF's rule: an explicit attention_factor wins; DeepSeek's mscale pair gives a ratio (1 when equal,
  // its attention then carries the correction in the softmax scale); otherwise the paper's 0.1·ln(s)+1.
  const attentionFactor =
    c.attention_factor ?? (c.mscale && c.mscale_all_dim ? yarnMscale(c.factor, c.mscale) / yarnMscale(c.factor, c.mscale_all_dim) : yarnMscale(c.factor));
  return {
    kind,
    factor: c.factor,
    originalMaxPositions: c.original_max_position_embeddings ?? maxPositions,
    betaFast: c.beta_fast ?? 32,
    betaSlow: c.beta_slow ?? 1,
    attentionFactor,
    truncate: c.truncate ?? true,
    mscaleAllDim: c.mscale_all_dim ?? 0,
  };
}

/**
 * RoPE's inverse frequencies for `dim` rotated dimensions, in float32 as HF computes them, and the
 * factor cos and sin are multiplied by.
 */
export function ropeFrequencies(dim: number, theta: number, scaling: RopeScaling): { inv: Float32Array; attentionFactor: number } {
  const half = dim / 2;
  const f = Math.fround;
  // θ^(2i/dim), as torch's float32 pow.
  const posFreq = Float32Array.from({ length: half }, (_, i) => f(theta ** f((2 * i) / dim)));
  switch (scaling.kind) {
    case 'none':
      return { inv: posFreq.map((p) => f(1 / p)), attentionFactor: 1 };
    case 'linear':
      return { inv: posFreq.map((p) => f(f(1 / p) / scaling.factor)), attentionFactor: 1 };
    case 'yarn': {
      // Dimensions that turn fewer than beta_slow times over the original context are interpolated
      // (÷ factor), those that turn more than beta_fast times are kept, with a linear ramp between.
      const correctionDim = (rotations: number) => (dim * Math.log(scaling.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
      let low = correctionDim(scaling.betaFast);
      let high = correctionDim(scaling.betaSlow);
      if (scaling.truncate) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001;
      const inv = new Float32Array(half);
      for (let i = 0; i < half; i++) {
        const ramp = f(Math.min(1, Math.max(0, f(f(i - low) / f(high - low)))));
        const keep = f(1 - ramp); // share of the original (extrapolated) frequency
        const extrapolated = f(1 / posFreq[i]!);
        const interpolated = f(1 / f(scaling.factor * posFreq[i]!));
        inv[i] = f(f(interpolated * f(1 - keep)) + f(extrapolated * keep));
      }
      return { inv, attentionFactor: scaling.attentionFactor };
    }
    default:
      return assertNever(scaling);
  }
}
