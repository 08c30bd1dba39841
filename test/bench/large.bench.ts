/**
 * `npm run bench:large`: an OLMoE-1B-7B-shaped checkpoint (16 layers, hidden 2048, 64 experts of
 * 1024, top-8, vocabulary 50304; 6.9 B parameters, 13.8 GB of bf16) with random weights, generated
 * here as sharded bf16 safetensors and cached between runs. Measures the int4 import (time, peak
 * memory — sampled from outside and reported by the importer itself) and int4 decoding (tok/s,
 * resident memory), each in its own process.
 *
 * Import memory bound: the import streams (one tensor, or one expert, at a time), so its peak is
 * bounded by a constant plus the largest tensors it holds at once, not by the model. Stated bound:
 * peak RSS ≤ int4 weights + 1 GiB (the form), and, tighter, ≤ 1 GiB + 3 × the largest tensor
 * in float32 (the tensor, its converted copy, and the runtime's baseline).
 *
 * Needs about 19 GB of free disk (checkpoint + int4 graph) and 8 GB of memory. Cache:
 * $MOE_LAB_CACHE/bench (default ~/.cache/moe-lab/bench).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type TensorDecl } from '../../engine/checkpoint/safetensors-writer.ts';
import { openCheckpoint } from '../../engine/checkpoint/checkpoint.ts';
import { defaultCacheDir, graphEntry } from '../../engine/graph/compile.ts';
import { formatBytes } from '../../engine/runtime/memory.ts';
import { checkpointHash } from '../../engine/checkpoint/checkpoint.ts';
import { REPO_ROOT } from '../helpers/fixtures.ts';

// MOE_LAB_BENCH_DRY_RUN=1 runs the same steps on a small shape, to check the benchmark itself.
const DRY = process.env['MOE_LAB_BENCH_DRY_RUN'] === '1';
const SHAPE = DRY
  ? { layers: 4, hidden: 256, heads: 4, experts: 8, ffn: 128, topK: 2, vocab: 1024, context: 512 }
  : { layers: 16, hidden: 2048, heads: 16, experts: 64, ffn: 1024, topK: 8, vocab: 50304, context: 4096 };
const LAYERS_PER_SHARD = 4;
const GiB = 1024 ** 3;

function layerDecls(l: number): TensorDecl[] {
  const s = SHAPE;
  const p = `model.layers.${l}`;
  const d: TensorDecl[] = [
    { name: `${p}.input_layernorm.weight`, dtype: 'BF16', shape: [s.hidden] },
    { name: `${p}.post_attention_layernorm.weight`, dtype: 'BF16', shape: [s.hidden] },
    { name: `${p}.self_attn.q_proj.weight`, dtype: 'BF16', shape: [s.hidden, s.hidden] },
    { name: `${p}.self_attn.k_proj.weight`, dtype: 'BF16', shape: [s.hidden, s.hidden] },
    { name: `${p}.self_attn.v_proj.weight`, dtype: 'BF16', shape: [s.hidden, s.hidden] },
    { name: `${p}.self_attn.o_proj.weight`, dtype: 'BF16', shape: [s.hidden, s.hidden] },
    { name: `${p}.self_attn.q_norm.weight`, dtype: 'BF16', shape: [s.hidden] },
    { name: `${p}.self_attn.k_norm.weight`, dtype: 'BF16', shape: [s.hidden] },
    { name: `${p}.mlp.gate.weight`, dtype: 'BF16', shape: [s.experts, s.hidden] },
  ];
  for (let e = 0; e < s.experts; e++) {
    const q = `${p}.mlp.experts.${e}`;
    d.push(
      { name: `${q}.gate_proj.weight`, dtype: 'BF16', shape: [s.ffn, s.hidden] },
      { name: `${q}.up_proj.weight`, dtype: 'BF16', shape: [s.ffn, s.hidden] },
      { name: `${q}.down_proj.weight`, dtype: 'BF16', shape: [s.hidden, s.ffn] },
    );
  }
  return d;
}

/** Writes the random checkpoint as sharded bf16 safetensors (one shard per 4 layers). */
async function randomOlmoe(dir: string): Promise<void> {
  if (existsSync(join(dir, 'model.safetensors.index.json'))) return;
  mkdirSync(dir, { recursive: true });
  const s = SHAPE;
  const shards: TensorDecl[][] = [];
  for (let first = 0; first < s.layers; first += LAYERS_PER_SHARD) {
    shards.push(Array.from({ length: LAYERS_PER_SHARD }, (_, i) => layerDecls(first + i)).flat());
  }
  shards[0]!.unshift({ name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [s.vocab, s.hidden] });
  shards.at(-1)!.push({ name: 'model.norm.weight', dtype: 'BF16', shape: [s.hidden] }, { name: 'lm_head.weight', dtype: 'BF16', shape: [s.vocab, s.hidden] });
  let state = 0x9e3779b9;
  const weightMap: Record<string, string> = {};
  const t0 = performance.now();
  for (const [i, decls] of shards.entries()) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    await writeSafetensors(join(dir, file), decls, (d) => {
      const n = d.shape.reduce((a, b) => a * b, 1);
      const out = new Float32Array(n);
      if (d.name.endsWith('norm.weight')) return out.fill(1);
      // Uniform with variance 0.12 / fan-in (xorshift32): activations stay O(1) through the layers.
      const scale = d.name.includes('embed') ? 1 : 0.6 / Math.sqrt(d.shape[1]!);
      for (let j = 0; j < n; j++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        out[j] = ((state >>> 0) / 2 ** 32 * 2 - 1) * scale;
      }
      return out;
    });
    for (const d of decls) weightMap[d.name] = file;
    console.log(`  wrote ${file} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['OlmoeForCausalLM'], model_type: 'olmoe', vocab_size: s.vocab, hidden_size: s.hidden,
    intermediate_size: s.ffn, num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.heads,
    num_experts: s.experts, num_experts_per_tok: s.topK, norm_topk_prob: false, max_position_embeddings: s.context,
    rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu', attention_bias: false, clip_qkv: null, rope_scaling: null,
    tie_word_embeddings: false, pad_token_id: 1, eos_token_id: 50279, torch_dtype: 'bfloat16',
  }, null, 2));
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2));
}

interface Child {
  stdout: string;
  code: number | null;
  /** Largest VmRSS seen while sampling every 100 ms. */
  sampledPeak: number;
}

function runChild(args: string[]): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    let sampledPeak = 0;
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      process.stdout.write(c);
    });
    const timer = setInterval(() => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) sampledPeak = Math.max(sampledPeak, Number(m[1]) * 1024);
      } catch {
        // The process has exited.
      }
    }, 100);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(timer);
      resolve({ stdout, code, sampledPeak });
    });
  });
}

async function main(): Promise<void> {
  const cache = join(defaultCacheDir(), 'bench');
  const dir = join(cache, DRY ? 'olmoe-dry-run-random-bf16' : 'olmoe-1b-7b-shaped-random-bf16');
  mkdirSync(cache, { recursive: true });
  const fs = statfsSync(cache);
  const free = fs.bavail * fs.bsize;
  console.log(`cache ${cache}: ${formatBytes(free)} free`);
  const t0 = performance.now();
  if (!existsSync(join(dir, 'model.safetensors.index.json'))) {
    console.log('generating the checkpoint (first run only)…');
    await randomOlmoe(dir);
    console.log(`checkpoint generated in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const ckpt = openCheckpoint(dir);
  const shards = new Set(ckpt.tensors.names.map((n) => ckpt.tensors.info(n).file)).size;
  const sizes = ckpt.tensors.names.map((n) => ckpt.tensors.info(n).shape.reduce((a, b) => a * b, 1));
  const largestF32 = Math.max(...sizes) * 4;
  const params = sizes.reduce((a, b) => a + b, 0);

  // A fresh import every run: remove this checkpoint's cached int4 graph (the content hash is
  // remembered, so only the first run hashes the 13.8 GB).
  const entry = graphEntry(await checkpointHash(ckpt, cache), { routingOutputs: true, quant: 'int4' }, cache);
  rmSync(entry, { recursive: true, force: true });
  console.log('\nimporting at int4…');
  const imp = await runChild([join(REPO_ROOT, 'server', 'bin.mjs'), 'import', dir, '--quant', 'int4', '--cache', cache]);
  if (imp.code !== 0) throw new Error(`import failed (${imp.code})`);
  const seconds = Number(/import took ([\d.]+) s/.exec(imp.stdout)![1]);
  const reportedPeak = Number(/\((\d+) bytes\)/.exec(imp.stdout)![1]);
  const weights = statSync(join(entry, 'weights.bin')).size;

  console.log('\ndecoding at int4…');
  const dec = await runChild(['--import', 'tsx', join(REPO_ROOT, 'test', 'bench', 'large-decode.ts'), dir, cache, '8']);
  if (dec.code !== 0) throw new Error(`decode failed (${dec.code})`);
  const d = JSON.parse(dec.stdout.trim().split('\n').at(-1)!) as Record<string, number>;

  const importPeak = Math.max(reportedPeak, imp.sampledPeak);
  const boundA = weights + GiB;
  const boundB = GiB + 3 * largestF32;
  const rows: [string, string][] = [
    ['checkpoint', `${(params / 1e9).toFixed(2)} B parameters, bf16, ${ckpt.tensors.names.length} tensors in ${shards} shard(s)`],
    ['import time (int4)', `${seconds.toFixed(1)} s (${((params * 2) / seconds / 1e6).toFixed(0)} MB/s of bf16)`],
    ['import peak RSS', `${formatBytes(importPeak)} (importer ${formatBytes(reportedPeak)}, sampled ${formatBytes(imp.sampledPeak)})`],
    ['int4 weights', `${formatBytes(weights)} (${((weights / (params * 4)) * 100).toFixed(1)} % of float32)`],
    ['bound: peak ≤ int4 weights + 1 GiB', `${formatBytes(boundA)} → ${importPeak <= boundA ? 'holds' : 'EXCEEDED'} (${(importPeak / weights).toFixed(2)}× the int4 weights)`],
    ['bound: peak ≤ 1 GiB + 3 × largest tensor (f32)', `${formatBytes(boundB)} → ${importPeak <= boundB ? 'holds' : 'EXCEEDED'}`],
    ['int4 session load', `${d['loadSeconds']!.toFixed(1)} s`],
    ['int4 prefill, 16 tokens', `${d['prefillMs']!.toFixed(0)} ms`],
    ['int4 decode', `${d['decodeTokPerSec']!.toFixed(2)} tok/s (median ${d['decodeMedianMs']!.toFixed(0)} ms/token)`],
    ['int4 RSS after load / after decode / peak', `${formatBytes(d['rssAfterLoad']!)} / ${formatBytes(d['rssAfterDecode']!)} / ${formatBytes(Math.max(d['peakRss']!, dec.sampledPeak))}`],
  ];
  console.log('\n' + rows.map(([k, v]) => `${k.padEnd(48)} ${v}`).join('\n'));
  if (importPeak > boundA || importPeak > boundB) process.exitCode = 1;
}

await main();
