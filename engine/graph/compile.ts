/**
 * Builds a checkpoint's ONNX graph once and caches it on disk, keyed by the checkpoint's content
 * hash, the builder version and the graph variant. A cache entry is a folder holding
 * `model.onnx` and `weights.bin` (external data), written to a temporary folder and renamed
 * into place, so a crash mid-build never leaves a half-written entry behind.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { checkpointHash, type Checkpoint } from '../checkpoint/checkpoint.ts';
import { GraphBuilder, WeightsWriter } from './builder.ts';
import { buildDecoderGraph, GRAPH_BUILDER_VERSION, type GraphOptions } from './model.ts';

export function defaultCacheDir(): string {
  return process.env['MOE_LAB_CACHE'] ?? join(homedir(), '.cache', 'moe-lab');
}

export interface CompiledGraph {
  readonly modelPath: string;
  readonly hash: string;
  /** True when this call built the graph (false: served from the cache). */
  readonly built: boolean;
}

export async function compileGraph(ckpt: Checkpoint, opts: GraphOptions, cacheDir = defaultCacheDir()): Promise<CompiledGraph> {
  const hash = await checkpointHash(ckpt, cacheDir);
  const variant = opts.routingOutputs ? 'routing' : 'plain';
  const entry = join(cacheDir, 'graphs', `${hash.slice(0, 24)}-g${GRAPH_BUILDER_VERSION}-${variant}`);
  const modelPath = join(entry, 'model.onnx');
  if (existsSync(modelPath)) return { modelPath, hash, built: false };

  const tmp = `${entry}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(tmp, { recursive: true });
  try {
    const weights = new WeightsWriter(join(tmp, 'weights.bin'), 'weights.bin');
    const b = new GraphBuilder(weights);
    buildDecoderGraph(b, ckpt.config, ckpt.tensors, opts);
    weights.close();
    writeFileSync(join(tmp, 'model.onnx'), b.toModelBytes());
    try {
      renameSync(tmp, entry);
    } catch (e) {
      // Another process finished the same entry first; theirs is as good as ours.
      if (!existsSync(modelPath)) throw e;
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { modelPath, hash, built: true };
}
