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

export interface LayerNames {
  inputNorm: string;
  postAttnNorm: string;
  attn: { q: string; k: string; v: string; o: string; qNorm: string; kNorm: string };
  router: string;
  expert(j: number): ExpertNames;
  shared: ExpertNames;
  sharedGate: string;
  dense: ExpertNames;
}

export function layerNames(cfg: ModelConfig, i: number): LayerNames {
  const p = `model.layers.${i}`;
  const mixtral = cfg.modelType === 'mixtral';
  const mlp = mixtral ? `${p}.block_sparse_moe` : `${p}.mlp`;
  const proj = (base: string): ExpertNames => ({ gate: `${base}.gate_proj`, up: `${base}.up_proj`, down: `${base}.down_proj` });
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
    },
    router: `${mlp}.gate`,
    // Mixtral's experts are w1 (gate), w3 (up), w2 (down).
    expert: (j) =>
      mixtral
        ? { gate: `${mlp}.experts.${j}.w1`, up: `${mlp}.experts.${j}.w3`, down: `${mlp}.experts.${j}.w2` }
        : proj(`${mlp}.experts.${j}`),
    shared: proj(`${mlp}.shared_expert`),
    sharedGate: `${mlp}.shared_expert_gate`,
    dense: proj(mlp),
  };
}

export const GLOBAL_NAMES = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
} as const;
