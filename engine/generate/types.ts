/** Requests and events of a generation: plain data, so they cross worker and socket boundaries. */
import type { StepProfile } from '../runtime/profile.ts';
import type { SamplingParams } from './sampling.ts';

/** An expert at one model layer, or at every MoE layer. */
export interface ExpertRef {
  readonly layer: number | 'all';
  readonly expert: number;
}

export interface Interventions {
  /** Experts that may never be selected. */
  readonly ban?: readonly ExpertRef[];
  /** Experts that are always selected (they take slots of the top-k). */
  readonly force?: readonly ExpertRef[];
  /** Experts per token, instead of the model's own top-k. */
  readonly topK?: number;
}

export interface GenerateRequest {
  readonly prompt?: string;
  readonly promptIds?: readonly number[];
  readonly maxNewTokens?: number;
  readonly sampling?: SamplingParams;
  /** Seed for sampling; the same seed, prompt and parameters give the same tokens. */
  readonly seed?: number;
  /** Generation ends when the generated text contains one of these. */
  readonly stop?: readonly string[];
  /** Extra token ids that end generation, besides the model's EOS ids. */
  readonly stopTokenIds?: readonly number[];
  /** Ignore EOS ids (generate exactly maxNewTokens unless stopped otherwise). */
  readonly ignoreEos?: boolean;
  readonly interventions?: Interventions;
}

export type Phase = 'prefill' | 'decode';

export interface LayerRouting {
  /** Model layer index. */
  readonly layer: number;
  /** Experts that processed the token, by combine weight, largest first. */
  readonly ids: number[];
  readonly weights: number[];
  /** Entropy (nats) of the router's distribution over all experts. */
  readonly entropy: number;
  /** The router's distribution over all experts (softmax, or normalised sigmoid scores). */
  readonly probs: number[];
  /**
   * Routers with a selection-only correction bias (DeepSeek-V3): the experts that would have been
   * selected without it, under the same interventions, in ranked order. Where they differ from
   * `ids` as a set, the bias changed the choice. Absent for other routers.
   */
  readonly unbiasedIds?: number[];
}

export interface TokenAlternative {
  readonly id: number;
  readonly text: string | null;
  readonly logprob: number;
}

export type GenerationEvent =
  | {
      readonly type: 'start';
      readonly promptTokens: number;
      readonly maxNewTokens: number;
      readonly topK: number;
      readonly seed: number;
    }
  | {
      readonly type: 'token';
      /** Position in the sequence (prompt positions first). */
      readonly index: number;
      readonly id: number;
      /** The token's own text; null without a tokenizer. */
      readonly text: string | null;
      /**
       * What this token adds to the text: the prompt's for prompt tokens, the generated text's after.
       * Empty while a character split over tokens is held back; null without a tokenizer.
       */
      readonly delta: string | null;
      readonly phase: Phase;
      /** log P(token) under the model's unmodified distribution; null for prompt tokens. */
      readonly logprob: number | null;
      readonly top: TokenAlternative[];
    }
  | { readonly type: 'routing'; readonly index: number; readonly phase: Phase; readonly layers: LayerRouting[] }
  | {
      readonly type: 'timing';
      readonly phase: Phase;
      /** Tokens fed in this step. */
      readonly tokens: number;
      readonly ms: number;
      /** Time to first token, on the step that produced it. */
      readonly ttftMs?: number;
    }
  | {
      /** Diagnostic mode only, just before `done`: where each step's time went, per layer. */
      readonly type: 'profile';
      readonly steps: (StepProfile & { readonly phase: Phase; readonly tokens: number })[];
    }
  | {
      readonly type: 'done';
      readonly reason: 'eos' | 'stop' | 'length' | 'cancelled';
      readonly promptTokens: number;
      readonly generatedTokens: number;
      readonly text: string | null;
      readonly ttftMs: number | null;
      readonly totalMs: number;
      readonly prefillTokensPerSecond: number | null;
      readonly decodeTokensPerSecond: number | null;
    };
