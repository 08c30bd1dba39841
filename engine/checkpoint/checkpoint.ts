/**
 * A Hugging Face model folder, opened: parsed config, tensor index, tokenizer (optional),
 * generation defaults, and a content hash that identifies the checkpoint everywhere
 * (graph cache, run store, exported traces).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { parseModelConfig, type ModelConfig } from './config.ts';
import { TensorStore } from './safetensors.ts';
import { TextTokenizer } from './tokenizer.ts';

export interface Checkpoint {
  readonly dir: string;
  /** Folder name, used as the model id. */
  readonly id: string;
  readonly config: ModelConfig;
  readonly tensors: TensorStore;
  readonly tokenizer: TextTokenizer | null;
  /** Token ids that end generation (generation_config.json, else config.json). */
  readonly eosTokenIds: readonly number[];
}

const genConfigSchema = z.object({
  eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullish(),
  bos_token_id: z.number().int().nullish(),
});

export function openCheckpoint(dirIn: string): Checkpoint {
  const dir = resolve(dirIn);
  const configFile = join(dir, 'config.json');
  if (!existsSync(configFile)) {
    throw new EngineError(EngineErrorCode.MISSING_FILE, `no config.json in ${dir}`, { file: configFile });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(configFile, 'utf8'));
  } catch {
    throw new EngineError(EngineErrorCode.BAD_CONFIG, `${configFile} is not valid JSON`);
  }
  const config = parseModelConfig(raw);
  const tensors = new TensorStore(dir);

  let eos = [...config.eosTokenIds];
  const genFile = join(dir, 'generation_config.json');
  if (existsSync(genFile)) {
    let genRaw: unknown;
    try {
      genRaw = JSON.parse(readFileSync(genFile, 'utf8'));
    } catch {
      throw new EngineError(EngineErrorCode.BAD_CONFIG, `${genFile} is not valid JSON`);
    }
    const g = genConfigSchema.safeParse(genRaw);
    if (g.success && g.data.eos_token_id !== null && g.data.eos_token_id !== undefined) {
      eos = Array.isArray(g.data.eos_token_id) ? g.data.eos_token_id : [g.data.eos_token_id];
    }
  }
  // Ids outside the vocabulary (OLMoE's default config keeps 50279 with a tiny vocab) can never be sampled.
  eos = eos.filter((id) => id >= 0 && id < config.vocabSize);
  return { dir, id: basename(dir), config, tensors, tokenizer: TextTokenizer.load(dir, config.bosTokenId), eosTokenIds: eos };
}

/** Files whose bytes define the checkpoint's behaviour. */
function hashedFiles(ckpt: Checkpoint): string[] {
  const files = [join(ckpt.dir, 'config.json')];
  const weightFiles = new Set(ckpt.tensors.names.map((n) => ckpt.tensors.info(n).file));
  files.push(...[...weightFiles].sort());
  // The index decides which shard each tensor comes from; tokenizer_config.json whether a BOS is added.
  for (const f of ['model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) if (existsSync(join(ckpt.dir, f))) files.push(join(ckpt.dir, f));
  return files;
}

/**
 * SHA-256 over the checkpoint's files (name, size, bytes). Hashing gigabytes takes seconds, so the
 * result is remembered in `cacheDir` keyed by each file's path, size and mtime.
 */
export async function checkpointHash(ckpt: Checkpoint, cacheDir: string, onProgress?: (done: number, total: number) => void): Promise<string> {
  const files = hashedFiles(ckpt);
  const stats = files.map((f) => statSync(f));
  const stamp = files.map((f, i) => `${f}:${stats[i]!.size}:${stats[i]!.mtimeMs}`);
  const memoKey = createHash('sha256').update(stamp.join('\n')).digest('hex').slice(0, 32);
  const memoDir = join(cacheDir, 'hashes');
  const memoFile = join(memoDir, memoKey);
  if (existsSync(memoFile)) {
    const v = readFileSync(memoFile, 'utf8').trim();
    if (/^[0-9a-f]{64}$/.test(v)) return v;
  }
  const h = createHash('sha256');
  const total = stats.reduce((a, s) => a + s.size, 0);
  let done = 0;
  for (const [i, f] of files.entries()) {
    h.update(`${basename(f)}\0${stats[i]!.size}\0`);
    for await (const chunk of createReadStream(f, { highWaterMark: 4 << 20 })) {
      h.update(chunk as Buffer);
      done += (chunk as Buffer).length;
      onProgress?.(done, total);
    }
  }
  const digest = h.digest('hex');
  mkdirSync(memoDir, { recursive: true });
  const tmp = `${memoFile}.${process.pid}.tmp`;
  writeFileSync(tmp, digest);
  renameSync(tmp, memoFile);
  return digest;
}
