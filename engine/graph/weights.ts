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

/** A WeightSource that remembers which tensors the graph build asked for. */
export interface TrackedSource extends WeightSource {
  readonly readNames: ReadonlySet<string>;
}

/**
 * Wraps `src` so every tensor the builder reads is recorded: every weight reaches the graph through
 * `read`, so what was never read is exactly what the model does not use.
 */
export function trackReads(src: WeightSource): TrackedSource {
  const readNames = new Set<string>();
  return {
    readNames,
    has: (n) => src.has(n),
    read: (n, shape) => {
      const v = src.read(n, shape);
      readNames.add(n);
      return v;
    },
  };
}

/**
 * Tensors present in the checkpoint that the model does not need and that transformers, too, drops
 * without a word: rotary `inv_freq` buffers older checkpoints saved (recomputed from the config), the
 * output head of a model with tied embeddings (the embedding table serves), and DeepSeek's
 * multi-token-prediction layers (transformers lists `model.layers.61.*`, V3's one MTP layer, as keys
 * to ignore on load; here the layers come from the config's num_nextn_predict_layers).
 */
export function isIgnorableUnused(cfg: ModelConfig, name: string): boolean {
  if (/(^|\.)rotary_emb\.inv_freq$/.test(name)) return true;
  if (cfg.tieWordEmbeddings && name === GLOBAL_NAMES.lmHead) return true;
  const layer = /^model\.layers\.(\d+)\./.exec(name);
  if (layer && cfg.mtpLayers > 0) {
    const l = Number(layer[1]);
    if (l >= cfg.numLayers && l < cfg.numLayers + cfg.mtpLayers) return true;
  }
  return false;
}

/** The tensors a build never read, less the ignorable ones, in natural order (layer 2 before 10). */
export function unusedTensors(cfg: ModelConfig, unread: Iterable<string>): string[] {
  return [...unread].filter((n) => !isIgnorableUnused(cfg, n)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

/**
 * One line for people: how many tensors went unused, the first few, and (the usual cause) the
 * layers beyond config.json's num_hidden_layers when there are any.
 */
export function describeUnusedTensors(cfg: ModelConfig, unused: readonly string[], shown = 5): string {
  const extraLayers = [...new Set(unused.map((n) => /^model\.layers\.(\d+)\./.exec(n)?.[1]).filter((l) => l !== undefined).map(Number))]
    .filter((l) => l >= cfg.numLayers)
    .sort((a, b) => a - b);
  const head = unused.slice(0, shown).join(', ');
  const more = unused.length > shown ? `, … (${unused.length - shown} more)` : '';
  const layers =
    extraLayers.length > 0
      ? `; the weights hold layer${extraLayers.length > 1 ? 's' : ''} ${rangeList(extraLayers)} but config.json's num_hidden_layers is ${cfg.numLayers}`
      : '';
  return `${unused.length} tensor${unused.length === 1 ? '' : 's'} in the checkpoint ${unused.length === 1 ? 'is' : 'are'} not used by the model: ${head}${more}${layers}`;
}

/** [2, 3, 4, 7] → "2–4, 7". */
function rangeList(xs: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < xs.length; ) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j]! + 1) j++;
    parts.push(i === j ? `${xs[i]}` : `${xs[i]}–${xs[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}
