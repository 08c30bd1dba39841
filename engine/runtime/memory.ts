/**
 * The memory a model will need, worked out before anything large is loaded: weights as the session
 * holds them (float32, or block-quantized experts), one KV cache at the context the model gets, and
 * the runtime's own working memory. Printed by `moe-lab import` and checked by the runner before a
 * session is made, so a model that cannot fit fails with a clear error instead of the machine
 * swapping or the process being killed.
 *
 * The context is the checkpoint's max_position_embeddings when its KV cache fits beside the weights.
 * When it does not (DeepSeek-V2-Lite-sized models declare 163,840 positions: about 80 GiB of float32
 * cache), the model gets the most positions that fit rather than being refused: a laptop that holds
 * the weights can still run prompts of thousands of tokens.
 */
import { totalmem } from 'node:os';
import type { ModelConfig } from '../checkpoint/config.ts';
import type { TensorStore } from '../checkpoint/safetensors.ts';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { expertBits, quantBits, quantLayout, type QuantBits, type QuantMode } from '../graph/quant.ts';
import { expertBlockSize } from '../graph/moe.ts';
import { GLOBAL_NAMES, layerNames } from '../graph/weights.ts';

export interface MemoryBudget {
  /** Bytes of weights the session holds. */
  readonly weights: number;
  /** Positions one sequence may fill: the model's context here. */
  readonly positions: number;
  /** The checkpoint's max_position_embeddings. */
  readonly maxPositions: number;
  /** Why `positions` is less than `maxPositions`: a cap that was asked for, or this machine's memory. */
  readonly limitedBy: 'request' | 'memory' | null;
  /** One sequence's KV cache grown to `positions` (float32). */
  readonly kvCache: number;
  /** The runtime's arenas and activations for a 512-token prefill (an estimate). */
  readonly runtime: number;
  readonly total: number;
  /** This machine's memory. */
  readonly machine: number;
}

const GiB = 1024 ** 3;

/** Peak resident memory of this process so far (bytes). */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export function formatBytes(n: number): string {
  return n >= GiB ? `${(n / GiB).toFixed(2)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

/** Bytes of a [rows, k] matrix stored block-quantized (packed values + one float32 scale per block). */
function quantizedBytes(rows: number, k: number, bits: QuantBits, blockSize: number): number {
  const lay = quantLayout(k, bits, blockSize);
  return rows * (lay.bytesPerRow + lay.blocksPerRow * 4);
}

export interface WeightEstimate {
  /** Bytes of the graph's weights file. */
  readonly file: number;
  /** Bytes the session holds once loaded (float16 matrices are widened to float32 at load). */
  readonly resident: number;
}

/**
 * Weight bytes for this checkpoint, from tensor shapes alone (nothing is read): float32 everything,
 * or — quantized — routed experts block-quantized at their layer's bits (quant.ts `expertBits`), the other matrices float16 on
 * disk and float32 in memory, the embedding table float16. Tied embeddings count twice (table and
 * output head).
 */
export function estimateWeightBytes(cfg: ModelConfig, tensors: TensorStore, quant: QuantMode): WeightEstimate {
  const bits = quantBits(quant);
  let file = 0;
  let widened = 0;
  const matrix = (n: number) => {
    file += bits ? n * 2 : n * 4;
    if (bits) widened += n * 2;
  };
  // The bits each routed expert tensor is stored with, and the block the graph builder will use
  // (one scale per row when the widths allow no block).
  const experts = bits ? routedExpertTensors(cfg, bits) : new Map<string, QuantBits>();
  const block = (b: QuantBits) => expertBlockSize(cfg.hiddenSize, cfg.moe.expertIntermediate, b);
  for (const name of tensors.names) {
    const shape = tensors.info(name).shape;
    const n = shape.reduce((a, b) => a * b, 1);
    const k = shape[shape.length - 1]!;
    const stored = experts.get(name);
    if (shape.length < 2) file += n * 4;
    else if (name === GLOBAL_NAMES.embed) file += bits ? n * 2 : n * 4;
    else if (stored) file += quantizedBytes(n / k, k, stored, block(stored) ?? k);
    else matrix(n);
  }
  if (cfg.tieWordEmbeddings) matrix(cfg.vocabSize * cfg.hiddenSize);
  return { file, resident: file + widened };
}

/** The routed experts' weight tensors, by the names the graph builder reads them under, with their bits. */
function routedExpertTensors(cfg: ModelConfig, bits: QuantBits): Map<string, QuantBits> {
  const tensors = new Map<string, QuantBits>();
  cfg.moeLayers.forEach((l, m) => {
    const b = expertBits(bits, m, cfg.moeLayers.length);
    const x = layerNames(cfg, l).experts;
    if (x.layout === 'stacked') tensors.set(x.input, b).set(x.output, b);
    else {
      for (let e = 0; e < cfg.moe.numExperts; e++) {
        const n = x.expert(e);
        for (const p of [n.gate, n.up, n.down]) tensors.set(`${p}.weight`, b);
      }
    }
  });
  return tensors;
}

/** What the session holds for a weights file of `fileBytes`: its float16 matrices are widened at load. */
export function residentWeightBytes(fileBytes: number, est: WeightEstimate): number {
  return fileBytes + est.resident - est.file;
}

/** Bytes one position takes in one sequence's KV cache: float32 keys and values of every layer. */
export function kvBytesPerPosition(cfg: ModelConfig): number {
  return cfg.numLayers * cfg.numKvHeads * (cfg.headDim + cfg.vHeadDim) * 4;
}

/**
 * The least context a model is loaded with when its full one does not fit: below it, prompts of
 * ordinary length would fail, so the model is refused instead (MEMORY_BUDGET).
 */
export const MIN_CONTEXT = 2048;
/** The KV cache grows in blocks of this many positions (kv-cache.ts); a reduced context is a whole number of them. */
const CONTEXT_STEP = 64;

/** What the model needs with a KV cache of `positions` (default: the checkpoint's whole context). */
export function memoryBudget(
  cfg: ModelConfig,
  weightBytes: number,
  positions = cfg.maxPositions,
  machine = totalmem(),
  limitedBy: MemoryBudget['limitedBy'] = null,
): MemoryBudget {
  const kvCache = kvBytesPerPosition(cfg) * positions;
  const runtime = runtimeBytes(cfg);
  return { weights: weightBytes, positions, maxPositions: cfg.maxPositions, limitedBy, kvCache, runtime, total: weightBytes + kvCache + runtime, machine };
}

/** Activations of the largest step (a 512-token prefill) and the runtime's own arenas. */
function runtimeBytes(cfg: ModelConfig): number {
  // A few [T, max(D, 2F·k, V)] float buffers, plus the arena and thread pools onnxruntime keeps;
  // 256 MiB covers the latter on every model measured.
  const T = Math.min(512, cfg.maxPositions);
  const widest = Math.max(cfg.hiddenSize, 2 * cfg.moe.expertIntermediate * cfg.moe.topK, cfg.vocabSize / 8);
  return 256 * 1024 ** 2 + 8 * T * widest * 4;
}

/** A `--max-context` value (absent: no cap); anything but a whole number ≥ 1 is ENGINE_BAD_CONFIG. */
export function parseMaxContext(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!(Number.isInteger(n) && n >= 1)) throw new EngineError(EngineErrorCode.BAD_CONFIG, `--max-context must be a whole number of positions of at least 1, got '${v}'`);
  return n;
}

/**
 * The budget at the context this machine can give the model: the checkpoint's whole context, or
 * `limit` positions when that is less, if its cache fits; else the most positions that fit (a whole
 * number of cache blocks). When not even MIN_CONTEXT (or `limit`, if smaller) fits, that budget is
 * returned: over the machine's memory, for checkBudget to refuse.
 */
export function fitContext(cfg: ModelConfig, weightBytes: number, limit: number | null = null, machine = totalmem()): MemoryBudget {
  const wanted = Math.min(cfg.maxPositions, limit ?? cfg.maxPositions);
  const full = memoryBudget(cfg, weightBytes, wanted, machine, wanted < cfg.maxPositions ? 'request' : null);
  if (full.total <= machine) return full;
  const room = machine - weightBytes - full.runtime;
  const fits = Math.floor(room / kvBytesPerPosition(cfg) / CONTEXT_STEP) * CONTEXT_STEP;
  return memoryBudget(cfg, weightBytes, Math.max(fits, Math.min(MIN_CONTEXT, wanted)), machine, 'memory');
}

export function describeBudget(b: MemoryBudget): string {
  const context =
    b.positions === b.maxPositions
      ? `KV cache at full context (${b.positions} positions)`
      : `KV cache at ${b.positions} of the model's ${b.maxPositions} positions`;
  return (
    `memory budget: weights ${formatBytes(b.weights)} + ${context} ${formatBytes(b.kvCache)}` +
    ` + runtime ~${formatBytes(b.runtime)} = ${formatBytes(b.total)} (this machine has ${formatBytes(b.machine)})`
  );
}

/** Refuses a model that cannot fit in this machine's memory, naming the way out. */
export function checkBudget(b: MemoryBudget, quant: QuantMode): void {
  if (b.total <= b.machine) return;
  const hint = quant === 'int4' ? '' : ` (try --quant ${quant === 'none' ? 'int8 or int4' : 'int4'})`;
  throw new EngineError(EngineErrorCode.MEMORY_BUDGET, `${describeBudget(b)}: the model does not fit${hint}`, {
    needed: b.total,
    machine: b.machine,
  });
}
