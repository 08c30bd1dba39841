/**
 * Random-weight Mixtral-format checkpoints for benchmarks, generated once and cached.
 * Weights are N(0, 0.02)-ish uniform noise, norms are ones: numbers, not language.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type TensorDecl } from '../../engine/checkpoint/safetensors-writer.ts';
import { seededRandom } from '../../engine/generate/sampling.ts';

export interface MixtralShape {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  experts: number;
  topK: number;
  ffn: number;
  vocab: number;
  context: number;
}

/** Every tensor of a Mixtral checkpoint of this shape, in HF's names. */
export function mixtralTensorDecls(s: Omit<MixtralShape, 'context'>, dtype: TensorDecl['dtype']): TensorDecl[] {
  const dh = s.hidden / s.heads;
  const decls: TensorDecl[] = [
    { name: 'model.embed_tokens.weight', dtype, shape: [s.vocab, s.hidden] },
    { name: 'model.norm.weight', dtype, shape: [s.hidden] },
    { name: 'lm_head.weight', dtype, shape: [s.vocab, s.hidden] },
  ];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    decls.push(
      { name: `${p}.input_layernorm.weight`, dtype, shape: [s.hidden] },
      { name: `${p}.post_attention_layernorm.weight`, dtype, shape: [s.hidden] },
      { name: `${p}.self_attn.q_proj.weight`, dtype, shape: [s.heads * dh, s.hidden] },
      { name: `${p}.self_attn.k_proj.weight`, dtype, shape: [s.kvHeads * dh, s.hidden] },
      { name: `${p}.self_attn.v_proj.weight`, dtype, shape: [s.kvHeads * dh, s.hidden] },
      { name: `${p}.self_attn.o_proj.weight`, dtype, shape: [s.hidden, s.heads * dh] },
      { name: `${p}.block_sparse_moe.gate.weight`, dtype, shape: [s.experts, s.hidden] },
    );
    for (let e = 0; e < s.experts; e++) {
      const q = `${p}.block_sparse_moe.experts.${e}`;
      decls.push(
        { name: `${q}.w1.weight`, dtype, shape: [s.ffn, s.hidden] },
        { name: `${q}.w3.weight`, dtype, shape: [s.ffn, s.hidden] },
        { name: `${q}.w2.weight`, dtype, shape: [s.hidden, s.ffn] },
      );
    }
  }
  return decls;
}

/** config.json's size fields for a Mixtral of this shape. */
export function mixtralConfigDims(s: Omit<MixtralShape, 'context'>): Record<string, number> {
  return {
    vocab_size: s.vocab,
    hidden_size: s.hidden,
    intermediate_size: s.ffn,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    num_local_experts: s.experts,
    num_experts_per_tok: s.topK,
  };
}

export async function randomMixtral(dir: string, s: MixtralShape): Promise<string> {
  if (existsSync(join(dir, 'model.safetensors'))) return dir;
  mkdirSync(dir, { recursive: true });
  const decls = mixtralTensorDecls(s, 'BF16');
  const random = seededRandom(1234);
  await writeSafetensors(join(dir, 'model.safetensors'), decls, (d) => {
    const n = d.shape.reduce((a, b) => a * b, 1);
    if (d.name.endsWith('norm.weight')) return new Float32Array(n).fill(1);
    const scale = d.name.includes('embed') ? 1 : 0.6 / Math.sqrt(d.shape[1]!);
    return Float32Array.from({ length: n }, () => (random() * 2 - 1) * scale);
  });
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['MixtralForCausalLM'],
      model_type: 'mixtral',
      ...mixtralConfigDims(s),
      max_position_embeddings: s.context,
      rms_norm_eps: 1e-5,
      rope_theta: 1e6,
      hidden_act: 'silu',
      tie_word_embeddings: false,
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: 'bfloat16',
    }),
  );
  return dir;
}
