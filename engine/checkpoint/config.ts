/**
 * Reads a Hugging Face `config.json` into one read-only `ModelConfig` that the graph builder
 * understands. Each architecture's quirks are spelled out here, once, as data.
 */
import { z } from 'zod';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { parseRopeScaling, yarnMscale, type RopeScaling } from './rope-scaling.ts';
import type { RoutingSpec } from '../routing.ts';

export const SUPPORTED_MODEL_TYPES = ['mixtral', 'qwen2_moe', 'olmoe', 'qwen3_moe', 'granitemoe', 'deepseek_v3'] as const;
export type ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

export type QkNorm = 'none' | 'full' | 'per_head';

/** How a layer turns hidden states into per-head queries, keys and values. */
export type AttentionSpec =
  /** Grouped-query attention with rotate-half RoPE over the whole head. */
  | {
      readonly kind: 'gqa';
      readonly qkvBias: boolean;
      readonly oBias: boolean;
      readonly qkNorm: QkNorm;
      /** Multiplies q·k: 1/√headDim, or Granite's attention_multiplier. */
      readonly scale: number;
    }
  /**
   * DeepSeek's multi-head latent attention: q (optionally through a low-rank bottleneck) and a
   * compressed KV latent expanded per head; only `qkRopeDim` dims of q and k are rotated, and the
   * rotated part of k is one vector shared by all heads.
   */
  | {
      readonly kind: 'mla';
      /** Rank of the q bottleneck (q_a → RMSNorm → q_b), or null for a plain q_proj. */
      readonly qLoraRank: number | null;
      readonly kvLoraRank: number;
      readonly qkNopeDim: number;
      readonly qkRopeDim: number;
      readonly vDim: number;
      /** RoPE weights stored for the interleaved (complex-pair) convention. */
      readonly ropeInterleave: boolean;
      /** Biases on q_a (or q), kv_a and o projections. */
      readonly bias: boolean;
      readonly scale: number;
    };

export interface ModelConfig {
  readonly modelType: ModelType;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** KV heads as the cache holds them (MLA: every query head, after decompression). */
  readonly numKvHeads: number;
  /** Width of q and k per head (MLA: qk_nope + qk_rope, not config.json's `head_dim`). */
  readonly headDim: number;
  /** Width of v per head; equals headDim except for MLA. */
  readonly vHeadDim: number;
  /** Dimensions RoPE rotates (the RoPE tables' width); equals headDim except for MLA. */
  readonly ropeDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  /** config.json's rope_scaling (checkpoint/rope-scaling.ts). */
  readonly ropeScaling: RopeScaling;
  readonly maxPositions: number;
  readonly tieWordEmbeddings: boolean;
  /**
   * DeepSeek's multi-token-prediction modules (`num_nextn_predict_layers`), stored as layers
   * numLayers … numLayers + mtpLayers − 1; used only for speculative decoding, never run here.
   */
  readonly mtpLayers: number;
  readonly attention: AttentionSpec;
  /** Granite's scalars (embeddings ×, each residual branch ×, logits ÷); 1 elsewhere. */
  readonly scaling: { readonly embedding: number; readonly residual: number; readonly logitDivisor: number };
  readonly moe: {
    readonly numExperts: number;
    readonly topK: number;
    readonly expertIntermediate: number;
    readonly routing: RoutingSpec;
    /** A dense expert every token goes through; `gated` = scaled by sigmoid(x·w_gate) (Qwen2-MoE). */
    readonly shared: { readonly intermediate: number; readonly gated: boolean } | null;
  };
  /** Model layer indices whose MLP is a routed MoE block (the rest are dense MLPs). */
  readonly moeLayers: readonly number[];
  /** Intermediate size of dense (non-MoE) MLP layers, when there are any. */
  readonly denseIntermediate: number;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
}

const intPos = z.number().int().positive();
const eosSchema = z.union([z.number().int(), z.array(z.number().int())]).nullish();

const baseSchema = z.object({
  model_type: z.string(),
  vocab_size: intPos,
  hidden_size: intPos,
  num_hidden_layers: intPos,
  num_attention_heads: intPos,
  num_key_value_heads: intPos.nullish(),
  head_dim: intPos.nullish(),
  rms_norm_eps: z.number().positive(),
  rope_theta: z.number().positive().default(10000),
  max_position_embeddings: intPos,
  tie_word_embeddings: z.boolean().default(false),
  hidden_act: z.string().default('silu'),
  rope_scaling: z.unknown().nullish(),
  bos_token_id: z.number().int().nullish(),
  eos_token_id: eosSchema,
});

const mixtralSchema = baseSchema.extend({
  num_local_experts: intPos,
  num_experts_per_tok: intPos,
  intermediate_size: intPos,
});

const qwenMoeSchema = baseSchema.extend({
  num_experts: intPos,
  num_experts_per_tok: intPos,
  moe_intermediate_size: intPos,
  intermediate_size: intPos,
  norm_topk_prob: z.boolean().default(false),
  decoder_sparse_step: intPos.default(1),
  mlp_only_layers: z.array(z.number().int().nonnegative()).default([]),
  // Absent: transformers' Qwen2MoeConfig default, 5632 (Qwen3 has no shared expert).
  shared_expert_intermediate_size: z.number().int().nonnegative().optional(),
  attention_bias: z.boolean().nullish(),
});

const olmoeSchema = baseSchema.extend({
  num_experts: intPos,
  num_experts_per_tok: intPos,
  intermediate_size: intPos,
  norm_topk_prob: z.boolean().default(false),
  clip_qkv: z.number().nullish(),
  attention_bias: z.boolean().default(false),
});

const graniteSchema = baseSchema.extend({
  num_local_experts: intPos,
  num_experts_per_tok: intPos,
  intermediate_size: intPos,
  attention_bias: z.boolean().default(false),
  // Defaults are transformers' GraniteMoeConfig defaults.
  embedding_multiplier: z.number().default(1),
  attention_multiplier: z.number().default(1),
  residual_multiplier: z.number().default(1),
  logits_scaling: z.number().default(1),
});

// Defaults are transformers' DeepseekV3Config defaults, so a config that omits a key means what it
// means there. `head_dim` (in the base schema) is the RoPE width there and is not used as such.
const deepseekV3Schema = baseSchema.extend({
  n_routed_experts: intPos,
  num_experts_per_tok: intPos,
  moe_intermediate_size: intPos,
  intermediate_size: intPos,
  n_shared_experts: z.number().int().nonnegative().nullish(),
  first_k_dense_replace: z.number().int().nonnegative().default(3),
  moe_layer_freq: intPos.default(1),
  n_group: intPos.default(8),
  topk_group: intPos.default(4),
  norm_topk_prob: z.boolean().default(true),
  routed_scaling_factor: z.number().positive().default(2.5),
  scoring_func: z.string().default('sigmoid'),
  topk_method: z.string().default('noaux_tc'),
  q_lora_rank: intPos.nullish(),
  kv_lora_rank: intPos,
  qk_nope_head_dim: intPos,
  qk_rope_head_dim: intPos,
  v_head_dim: intPos,
  rope_interleave: z.boolean().default(true),
  attention_bias: z.boolean().default(false),
  // Not in transformers' DeepseekV3Config; DeepSeek's own config.json has it (1 for V3 and R1).
  num_nextn_predict_layers: z.number().int().nonnegative().default(0),
});

function parseWith<T>(schema: z.ZodType<T>, raw: unknown, modelType: string): T {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new EngineError(
      EngineErrorCode.BAD_CONFIG,
      `config.json is not a valid ${modelType} config: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`,
    );
  }
  return r.data;
}

function eosList(v: number | number[] | null | undefined): number[] {
  if (v === null || v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/**
 * Largest max_position_embeddings accepted: RoPE angles are position × frequency in float32 (as in
 * HF), and past 2^24 consecutive positions round to the same float, so no context can be longer.
 * Real checkpoints stay far below it (DeepSeek-V3 163,840; the longest published about 10M).
 */
export const MAX_POSITIONS_LIMIT = 2 ** 24;

function checkCommon(c: z.infer<typeof baseSchema>, modelType: string): void {
  if (c.max_position_embeddings > MAX_POSITIONS_LIMIT) {
    throw badConfig(
      modelType,
      `max_position_embeddings ${c.max_position_embeddings} exceeds ${MAX_POSITIONS_LIMIT} (2^24), beyond which float32 RoPE cannot tell positions apart`,
    );
  }
  if (c.hidden_act !== 'silu') {
    throw badConfig(modelType, `hidden_act '${c.hidden_act}' is not supported (only silu)`);
  }
  const kv = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % kv !== 0) {
    throw new EngineError(EngineErrorCode.BAD_CONFIG, `num_attention_heads must be a multiple of num_key_value_heads`);
  }
  if ((c.head_dim === null || c.head_dim === undefined) && c.hidden_size % c.num_attention_heads !== 0) {
    throw badConfig(modelType, `hidden_size (${c.hidden_size}) is not a multiple of num_attention_heads (${c.num_attention_heads}) and there is no head_dim`);
  }
}

function common(c: z.infer<typeof baseSchema>) {
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  return {
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads: c.num_key_value_heads ?? c.num_attention_heads,
    headDim,
    vHeadDim: headDim,
    ropeDim: headDim,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    ropeScaling: parseRopeScaling(c.rope_scaling, c.model_type, c.max_position_embeddings),
    maxPositions: c.max_position_embeddings,
    tieWordEmbeddings: c.tie_word_embeddings,
    mtpLayers: 0,
    bosTokenId: c.bos_token_id ?? null,
    eosTokenIds: eosList(c.eos_token_id),
    scaling: { embedding: 1, residual: 1, logitDivisor: 1 },
  };
}

/** Standard multi-head / grouped-query attention scaled by 1/√headDim. */
function gqa(headDim: number, qkvBias: boolean, qkNorm: QkNorm) {
  return { kind: 'gqa', qkvBias, oBias: false, qkNorm, scale: 1 / Math.sqrt(headDim) } as const;
}

function badConfig(modelType: string, why: string): EngineError {
  return new EngineError(EngineErrorCode.BAD_CONFIG, `${modelType}: ${why}`);
}

const allLayers = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Parses config.json contents (already JSON-decoded) into a ModelConfig. */
export function parseModelConfig(raw: unknown): ModelConfig {
  const cfg = parseByModelType(raw);
  if (cfg.moe.topK > cfg.moe.numExperts) {
    throw badConfig(cfg.modelType, `num_experts_per_tok (${cfg.moe.topK}) exceeds the number of experts (${cfg.moe.numExperts})`);
  }
  return cfg;
}

function parseByModelType(raw: unknown): ModelConfig {
  const head = z.object({ model_type: z.string() }).safeParse(raw);
  if (!head.success) throw new EngineError(EngineErrorCode.BAD_CONFIG, 'config.json has no model_type');
  const modelType = head.data.model_type;

  switch (modelType) {
    case 'mixtral': {
      const c = parseWith(mixtralSchema, raw, modelType);
      checkCommon(c, modelType);
      const base = common(c);
      return {
        modelType,
        ...base,
        attention: gqa(base.headDim, false, 'none'),
        moe: {
          numExperts: c.num_local_experts,
          topK: c.num_experts_per_tok,
          expertIntermediate: c.intermediate_size,
          routing: { kind: 'softmax_topk', renormalize: true },
          shared: null,
        },
        moeLayers: allLayers(c.num_hidden_layers),
        denseIntermediate: 0,
      };
    }
    case 'qwen2_moe':
    case 'qwen3_moe': {
      const c = parseWith(qwenMoeSchema, raw, modelType);
      checkCommon(c, modelType);
      const moeLayers = allLayers(c.num_hidden_layers).filter(
        (i) => !c.mlp_only_layers.includes(i) && (i + 1) % c.decoder_sparse_step === 0,
      );
      const isQwen2 = modelType === 'qwen2_moe';
      const base = common(c);
      return {
        modelType,
        ...base,
        // Qwen2 always has q/k/v biases; Qwen3 has per-head q/k RMSNorm and biases only if asked.
        attention: isQwen2 ? gqa(base.headDim, true, 'none') : gqa(base.headDim, c.attention_bias ?? false, 'per_head'),
        moe: {
          numExperts: c.num_experts,
          topK: c.num_experts_per_tok,
          expertIntermediate: c.moe_intermediate_size,
          routing: { kind: 'softmax_topk', renormalize: c.norm_topk_prob },
          shared:
            isQwen2 && (c.shared_expert_intermediate_size ?? 5632) > 0
              ? { intermediate: c.shared_expert_intermediate_size ?? 5632, gated: true }
              : null,
        },
        moeLayers,
        denseIntermediate: c.intermediate_size,
      };
    }
    case 'olmoe': {
      const c = parseWith(olmoeSchema, raw, modelType);
      checkCommon(c, modelType);
      if (c.clip_qkv !== null && c.clip_qkv !== undefined) {
        throw badConfig(modelType, 'clip_qkv is not supported yet');
      }
      const base = common(c);
      return {
        modelType,
        ...base,
        attention: gqa(base.headDim, c.attention_bias, 'full'),
        moe: {
          numExperts: c.num_experts,
          topK: c.num_experts_per_tok,
          expertIntermediate: c.intermediate_size,
          routing: { kind: 'softmax_topk', renormalize: c.norm_topk_prob },
          shared: null,
        },
        moeLayers: allLayers(c.num_hidden_layers),
        denseIntermediate: 0,
      };
    }
    case 'granitemoe': {
      const c = parseWith(graniteSchema, raw, modelType);
      checkCommon(c, modelType);
      if (c.logits_scaling === 0) throw badConfig(modelType, 'logits_scaling must not be 0');
      const base = common(c);
      return {
        modelType,
        ...base,
        // attention_multiplier replaces 1/√d; attention_bias covers o_proj as well as q/k/v.
        attention: { ...gqa(base.headDim, c.attention_bias, 'none'), oBias: c.attention_bias, scale: c.attention_multiplier },
        scaling: { embedding: c.embedding_multiplier, residual: c.residual_multiplier, logitDivisor: c.logits_scaling },
        moe: {
          numExperts: c.num_local_experts,
          topK: c.num_experts_per_tok,
          expertIntermediate: c.intermediate_size,
          routing: { kind: 'topk_softmax' },
          shared: null,
        },
        moeLayers: allLayers(c.num_hidden_layers),
        denseIntermediate: 0,
      };
    }
    case 'deepseek_v3': {
      const c = parseWith(deepseekV3Schema, raw, modelType);
      checkCommon(c, modelType);
      // transformers hard-codes sigmoid scores with the correction bias and ignores moe_layer_freq;
      // other values would mean a different model, so they are refused rather than ignored.
      if (c.scoring_func !== 'sigmoid') throw badConfig(modelType, `scoring_func '${c.scoring_func}' is not supported (only sigmoid)`);
      if (c.topk_method !== 'noaux_tc') throw badConfig(modelType, `topk_method '${c.topk_method}' is not supported (only noaux_tc)`);
      if (c.moe_layer_freq !== 1) throw badConfig(modelType, 'moe_layer_freq other than 1 is not supported');
      const E = c.n_routed_experts;
      if (E % c.n_group !== 0) throw badConfig(modelType, `n_routed_experts (${E}) must be a multiple of n_group (${c.n_group})`);
      // A group's score is the sum of its two best experts.
      if (E / c.n_group < 2) throw badConfig(modelType, 'each expert group needs at least 2 experts');
      if (c.topk_group > c.n_group) throw badConfig(modelType, `topk_group (${c.topk_group}) exceeds n_group (${c.n_group})`);
      if (c.num_experts_per_tok > (E / c.n_group) * c.topk_group) {
        throw badConfig(modelType, 'num_experts_per_tok exceeds the experts in topk_group groups');
      }
      if (c.qk_rope_head_dim % 2 !== 0) throw badConfig(modelType, 'qk_rope_head_dim must be even');
      const qkHeadDim = c.qk_nope_head_dim + c.qk_rope_head_dim;
      // Absent: transformers' DeepseekV3Config default, 1; null: none.
      const shared = c.n_shared_experts === undefined ? 1 : (c.n_shared_experts ?? 0);
      // DeepSeek's attention carries YaRN's correction in the softmax scale, squared, when
      // mscale_all_dim is set (its RoPE tables then get the mscale ratio, usually 1).
      const base = common(c);
      const rope = base.ropeScaling;
      const mscale = rope.kind === 'yarn' && rope.mscaleAllDim ? yarnMscale(rope.factor, rope.mscaleAllDim) : 1;
      return {
        modelType,
        ...base,
        // After decompression every query head has its own K and V, and that is what is cached.
        numKvHeads: c.num_attention_heads,
        headDim: qkHeadDim,
        vHeadDim: c.v_head_dim,
        ropeDim: c.qk_rope_head_dim,
        attention: {
          kind: 'mla',
          qLoraRank: c.q_lora_rank ?? null,
          kvLoraRank: c.kv_lora_rank,
          qkNopeDim: c.qk_nope_head_dim,
          qkRopeDim: c.qk_rope_head_dim,
          vDim: c.v_head_dim,
          ropeInterleave: c.rope_interleave,
          bias: c.attention_bias,
          scale: (mscale * mscale) / Math.sqrt(qkHeadDim),
        },
        moe: {
          numExperts: E,
          topK: c.num_experts_per_tok,
          expertIntermediate: c.moe_intermediate_size,
          routing: {
            kind: 'sigmoid_group_topk',
            nGroup: c.n_group,
            topkGroup: c.topk_group,
            renormalize: c.norm_topk_prob,
            scale: c.routed_scaling_factor,
            correctionBias: true,
          },
          // The shared experts are one ungated MLP of n_shared_experts × the expert width.
          shared: shared > 0 ? { intermediate: c.moe_intermediate_size * shared, gated: false } : null,
        },
        moeLayers: allLayers(c.num_hidden_layers).filter((i) => i >= c.first_k_dense_replace),
        denseIntermediate: c.intermediate_size,
        mtpLayers: c.num_nextn_predict_layers,
      };
    }
    default:
      throw new EngineError(
        EngineErrorCode.UNSUPPORTED_MODEL_TYPE,
        `model_type '${modelType}' is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`,
        { modelType },
      );
  }
}
