/**
 * Reads a Hugging Face `config.json` into one read-only `ModelConfig` that the graph builder
 * understands. Each architecture's quirks are spelled out here, once, as data.
 */
import { z } from 'zod';
import { EngineError, EngineErrorCode } from '../errors.ts';
import type { RoutingSpec } from '../routing.ts';

export const SUPPORTED_MODEL_TYPES = ['mixtral', 'qwen2_moe', 'olmoe', 'qwen3_moe'] as const;
export type ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

export type QkNorm = 'none' | 'full' | 'per_head';

export interface ModelConfig {
  readonly modelType: ModelType;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly maxPositions: number;
  readonly tieWordEmbeddings: boolean;
  readonly attention: { readonly qkvBias: boolean; readonly qkNorm: QkNorm };
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
  shared_expert_intermediate_size: z.number().int().nonnegative().default(0),
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

function checkCommon(c: z.infer<typeof baseSchema>, modelType: string): void {
  if (c.hidden_act !== 'silu') {
    throw new EngineError(EngineErrorCode.BAD_CONFIG, `${modelType}: hidden_act '${c.hidden_act}' is not supported (only silu)`);
  }
  if (c.rope_scaling !== null && c.rope_scaling !== undefined) {
    throw new EngineError(EngineErrorCode.BAD_CONFIG, `${modelType}: rope_scaling is not supported yet`);
  }
  const kv = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % kv !== 0) {
    throw new EngineError(EngineErrorCode.BAD_CONFIG, `num_attention_heads must be a multiple of num_key_value_heads`);
  }
}

function common(c: z.infer<typeof baseSchema>) {
  return {
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads: c.num_key_value_heads ?? c.num_attention_heads,
    headDim: c.head_dim ?? c.hidden_size / c.num_attention_heads,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    maxPositions: c.max_position_embeddings,
    tieWordEmbeddings: c.tie_word_embeddings,
    bosTokenId: c.bos_token_id ?? null,
    eosTokenIds: eosList(c.eos_token_id),
  };
}

const allLayers = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Parses config.json contents (already JSON-decoded) into a ModelConfig. */
export function parseModelConfig(raw: unknown): ModelConfig {
  const head = z.object({ model_type: z.string() }).safeParse(raw);
  if (!head.success) throw new EngineError(EngineErrorCode.BAD_CONFIG, 'config.json has no model_type');
  const modelType = head.data.model_type;

  switch (modelType) {
    case 'mixtral': {
      const c = parseWith(mixtralSchema, raw, modelType);
      checkCommon(c, modelType);
      return {
        modelType,
        ...common(c),
        attention: { qkvBias: false, qkNorm: 'none' },
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
      return {
        modelType,
        ...common(c),
        // Qwen2 always has q/k/v biases; Qwen3 has per-head q/k RMSNorm and biases only if asked.
        attention: isQwen2
          ? { qkvBias: true, qkNorm: 'none' }
          : { qkvBias: c.attention_bias ?? false, qkNorm: 'per_head' },
        moe: {
          numExperts: c.num_experts,
          topK: c.num_experts_per_tok,
          expertIntermediate: c.moe_intermediate_size,
          routing: { kind: 'softmax_topk', renormalize: c.norm_topk_prob },
          shared:
            isQwen2 && c.shared_expert_intermediate_size > 0
              ? { intermediate: c.shared_expert_intermediate_size, gated: true }
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
        throw new EngineError(EngineErrorCode.BAD_CONFIG, 'olmoe: clip_qkv is not supported yet');
      }
      return {
        modelType,
        ...common(c),
        attention: { qkvBias: c.attention_bias, qkNorm: 'full' },
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
    default:
      throw new EngineError(
        EngineErrorCode.UNSUPPORTED_MODEL_TYPE,
        `model_type '${modelType}' is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`,
        { modelType },
      );
  }
}
