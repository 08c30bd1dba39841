/**
 * Where each architecture keeps its weights in a Hugging Face state dict. The graph builder asks
 * for tensors by these names; nothing else in the engine knows HF naming.
 */
import type { ModelConfig } from '../checkpoint/config.ts';

/** Reads one tensor as float32, checking its shape (a TensorStore, or anything shaped like it). */
export interface WeightSource {
  read(name: string, shape: readonly number[]): Float32Array;
  has(name: string): boolean;
}

export interface ExpertNames {
  gate: string;
  up: string;
  down: string;
}

/**
 * A layer's routed experts: one module per expert, or (Granite) all experts stacked in two
 * tensors, `input` [E, 2F, D] whose rows are [gate | up] and `output` [E, D, F].
 */
export type ExpertsNames =
  | { readonly layout: 'per_expert'; readonly expert: (j: number) => ExpertNames }
  | { readonly layout: 'stacked'; readonly input: string; readonly output: string };

export interface LayerNames {
  inputNorm: string;
  postAttnNorm: string;
  attn: {
    q: string;
    k: string;
    v: string;
    o: string;
    qNorm: string;
    kNorm: string;
    /** MLA: q bottleneck (q_a → RMSNorm → q_b), KV latent with the shared RoPE key, its expansion. */
    qA: string;
    qANorm: string;
    qB: string;
    kvA: string;
    kvANorm: string;
    kvB: string;
  };
  router: string;
  /** DeepSeek's selection-only bias [E]. */
  routerCorrection: string;
  experts: ExpertsNames;
  shared: ExpertNames;
  sharedGate: string;
  dense: ExpertNames;
}

export function layerNames(cfg: ModelConfig, i: number): LayerNames {
  const p = `model.layers.${i}`;
  const mixtral = cfg.modelType === 'mixtral';
  const granite = cfg.modelType === 'granitemoe';
  const mlp = mixtral || granite ? `${p}.block_sparse_moe` : `${p}.mlp`;
  const proj = (base: string): ExpertNames => ({ gate: `${base}.gate_proj`, up: `${base}.up_proj`, down: `${base}.down_proj` });
  const router = granite ? `${mlp}.router.layer` : `${mlp}.gate`;
  return {
    inputNorm: `${p}.input_layernorm.weight`,
    postAttnNorm: `${p}.post_attention_layernorm.weight`,
    attn: {
      q: `${p}.self_attn.q_proj`,
      k: `${p}.self_attn.k_proj`,
      v: `${p}.self_attn.v_proj`,
      o: `${p}.self_attn.o_proj`,
      qNorm: `${p}.self_attn.q_norm.weight`,
      kNorm: `${p}.self_attn.k_norm.weight`,
      qA: `${p}.self_attn.q_a_proj`,
      qANorm: `${p}.self_attn.q_a_layernorm.weight`,
      qB: `${p}.self_attn.q_b_proj`,
      kvA: `${p}.self_attn.kv_a_proj_with_mqa`,
      kvANorm: `${p}.self_attn.kv_a_layernorm.weight`,
      kvB: `${p}.self_attn.kv_b_proj`,
    },
    router,
    routerCorrection: `${router}.e_score_correction_bias`,
    experts: granite
      ? { layout: 'stacked', input: `${mlp}.input_linear.weight`, output: `${mlp}.output_linear.weight` }
      : {
          layout: 'per_expert',
          // Mixtral's experts are w1 (gate), w3 (up), w2 (down).
          expert: (j) =>
            mixtral
              ? { gate: `${mlp}.experts.${j}.w1`, up: `${mlp}.experts.${j}.w3`, down: `${mlp}.experts.${j}.w2` }
              : proj(`${mlp}.experts.${j}`),
        },
    // Qwen2-MoE has one `shared_expert`; DeepSeek's `shared_experts` are fused into one MLP.
    shared: proj(cfg.modelType === 'deepseek_v3' ? `${mlp}.shared_experts` : `${mlp}.shared_expert`),
    sharedGate: `${mlp}.shared_expert_gate`,
    dense: proj(mlp),
  };
}

export const GLOBAL_NAMES = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
} as const;
