/**
 * Builds a checkpoint's ONNX graph once and caches it on disk, keyed by the checkpoint's content
 * hash, the builder version and the graph variant (routing outputs, weight quantization). The
 * import streams: tensors are read one at a time (experts one expert at a time) and appended to
 * the external weights file, so it never holds the model in memory. A cache entry is a folder holding
 * `model.onnx`, `weights.bin` (external data) and the list of tensors the build did not read,
 * written to a temporary folder and renamed into place, so a crash mid-build never leaves a
 * half-written entry behind.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { checkpointHash, type Checkpoint } from '../checkpoint/checkpoint.ts';
import { GraphBuilder, WeightsWriter } from './builder.ts';
import type { TensorStore } from '../checkpoint/safetensors.ts';
import { buildDecoderGraph, GRAPH_BUILDER_VERSION, type GraphOptions } from './model.ts';
import { quantBits, type QuantMode } from './quant.ts';
import { trackReads, unusedTensors, type WeightSource } from './weights.ts';
import { processAlive } from '../process-alive.ts';

export function defaultCacheDir(): string {
  return process.env['MOE_LAB_CACHE'] ?? join(homedir(), '.cache', 'moe-lab');
}

export interface CompiledGraph {
  readonly modelPath: string;
  readonly hash: string;
  readonly quant: QuantMode;
  /** Size of the external weights file: what the session will hold for weights. */
  readonly weightBytes: number;
  /** True when this call built the graph (false: served from the cache). */
  readonly built: boolean;
  /**
   * Checkpoint tensors the model never read (layers beyond num_hidden_layers, modules the config
   * does not have), less those transformers also drops silently (weights.ts `isIgnorableUnused`).
   * Recorded with the cache entry: a graph served from the cache reports them as its build did.
   */
  readonly unusedTensors: readonly string[];
}

/**
 * Next to model.onnx: every checkpoint tensor the build did not read, as a JSON array (the ignorable
 * ones are filtered when it is read, so that rule can change without invalidating the cache).
 */
const UNREAD_FILE = 'unread-tensors.json';

/** Where an import is: hashing the checkpoint's files, then converting its tensors. */
export interface ImportProgress {
  readonly phase: 'hash' | 'convert';
  /** Checkpoint bytes hashed or converted so far, of `total`. */
  readonly done: number;
  readonly total: number;
  /** The tensor just converted (convert phase). */
  readonly tensor?: string;
}

export interface CompileOptions extends GraphOptions {
  /** How weight matrices are stored (graph/quant.ts); default float32. */
  readonly quant?: QuantMode;
  readonly onProgress?: (p: ImportProgress) => void;
}

/** The cache folder a checkpoint's graph lives in for these options (it may not exist yet). */
export function graphEntry(hash: string, opts: CompileOptions, cacheDir = defaultCacheDir()): string {
  const quant = opts.quant ?? 'none';
  const variant = `${opts.routingOutputs ? 'routing' : 'plain'}${quant === 'none' ? '' : `-${quant}`}`;
  return join(cacheDir, 'graphs', `${hash.slice(0, 24)}-g${GRAPH_BUILDER_VERSION}-${variant}`);
}

export async function compileGraph(ckpt: Checkpoint, opts: CompileOptions, cacheDir = defaultCacheDir()): Promise<CompiledGraph> {
  const quant = opts.quant ?? 'none';
  const hash = await checkpointHash(ckpt, cacheDir, opts.onProgress ? (done, total) => opts.onProgress!({ phase: 'hash', done, total }) : undefined);
  const entry = graphEntry(hash, opts, cacheDir);
  const modelPath = join(entry, 'model.onnx');
  const weightsPath = join(entry, 'weights.bin');
  const unreadPath = join(entry, UNREAD_FILE);
  if (existsSync(modelPath)) {
    return { modelPath, hash, quant, weightBytes: fileSize(weightsPath), built: false, unusedTensors: unusedTensors(ckpt.config, readUnread(unreadPath)) };
  }

  removeAbandonedBuilds(entry);
  const tmp = `${entry}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(tmp, { recursive: true });
  let weights: WeightsWriter | null = null;
  let unread: string[];
  try {
    weights = new WeightsWriter(join(tmp, 'weights.bin'), 'weights.bin');
    const b = new GraphBuilder(weights, quantBits(quant));
    const source = trackReads(countingSource(ckpt.tensors, opts.onProgress));
    buildDecoderGraph(b, ckpt.config, source, opts);
    weights.close();
    unread = ckpt.tensors.names.filter((n) => !source.readNames.has(n));
    writeFileSync(join(tmp, UNREAD_FILE), JSON.stringify(unread));
    writeFileSync(join(tmp, 'model.onnx'), b.toModelBytes());
    try {
      renameSync(tmp, entry);
    } catch (e) {
      // Another process finished the same entry first; theirs is as good as ours.
      if (!existsSync(modelPath)) throw e;
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    weights?.dispose();
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { modelPath, hash, quant, weightBytes: fileSize(weightsPath), built: true, unusedTensors: unusedTensors(ckpt.config, unread) };
}

/**
 * The tensors a cache entry's build did not read. Every entry this builder version writes has the
 * record; one that lacks it or cannot be read reports none rather than failing the load it informs.
 */
function readUnread(path: string): string[] {
  try {
    const v: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return Array.isArray(v) ? v.filter((n): n is string => typeof n === 'string') : [];
  } catch {
    return [];
  }
}

/**
 * Removes the half-written folders of builds of this entry whose process is gone (killed mid-import:
 * they can hold gigabytes). A live process's folder is left alone: it may still finish.
 */
function removeAbandonedBuilds(entry: string): void {
  const dir = dirname(entry);
  const prefix = `${basename(entry)}.tmp-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // no cache folder yet
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number.parseInt(name.slice(prefix.length), 10);
    if (Number.isInteger(pid) && pid > 0 && (pid === process.pid || processAlive(pid))) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
  }
}

function fileSize(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

/** The checkpoint as the builder reads it, reporting each tensor's bytes as it is converted. */
function countingSource(t: TensorStore, onProgress: CompileOptions['onProgress']): WeightSource {
  if (!onProgress) return t;
  const bytes = (n: string) => t.info(n).end - t.info(n).begin;
  const total = t.names.reduce((a, n) => a + bytes(n), 0);
  const seen = new Set<string>();
  let done = 0;
  return {
    has: (n) => t.has(n),
    read: (n, shape) => {
      const v = t.read(n, shape);
      // Tied embeddings are read twice; count each tensor once.
      if (!seen.has(n)) {
        seen.add(n);
        done += bytes(n);
      }
      onProgress({ phase: 'convert', done, total, tensor: n });
      return v;
    },
  };
}
