/**
 * One loaded model and one sequence: runs forward steps over the compiled graph, keeps the KV
 * cache, and returns logits plus the routing every MoE layer used for the step's tokens.
 * Config (read-only) → `ckpt.config`; weights/session → `model`; run state → `cache`.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Checkpoint } from '../checkpoint/checkpoint.ts';
import { openCheckpoint } from '../checkpoint/checkpoint.ts';
import { EngineError, EngineErrorCode } from '../errors.ts';
import { compileGraph, defaultCacheDir } from '../graph/compile.ts';
import { hasUnbiasedIds, IO } from '../graph/model.ts';
import { expertBits, quantBits, type QuantMode } from '../graph/quant.ts';
import { describeUnusedTensors } from '../graph/weights.ts';
import { verifyMoeKernel, verifyQuantKernels } from './kernel-check.ts';
import { checkBudget, estimateWeightBytes, fitContext, residentWeightBytes, type MemoryBudget } from './memory.ts';
import { KvCache } from './kv-cache.ts';
import { stepProfiles, type StepProfile } from './profile.ts';
import { OrtModel, type ExecutionProvider, type FeedTensor } from './ort.ts';

export interface RunnerOptions {
  readonly provider?: ExecutionProvider;
  readonly threads?: number;
  readonly cacheDir?: string;
  /** Compile the graph without routing outputs (only to measure the cost of capturing them). */
  readonly withoutRoutingOutputs?: boolean;
  /** Profile every step so `takeProfile()` can break its time down per layer (slower; see docs). */
  readonly diagnostics?: boolean;
  /** How weight matrices are stored: float32 (default) or block-quantized int8 / int4. */
  readonly quant?: QuantMode;
  /**
   * Positions one sequence may fill, at most the checkpoint's max_position_embeddings. Default: the
   * whole context when its KV cache fits in this machine's memory beside the weights, else as much
   * of it as fits (memory.ts `fitContext`).
   */
  readonly maxContext?: number;
}

export interface StepRequest {
  /** Token ids to feed at the next positions. */
  readonly ids: readonly number[];
  /** Which of those positions to return logits for (indices into `ids`). */
  readonly logitIndex: readonly number[];
  /** [Lm · E] intervention bias (see routing.ts), or null for none. */
  readonly routeBias: Float32Array | null;
  readonly topK: number;
}

export interface StepRouting {
  /** k used for this step. */
  readonly k: number;
  /** [Lm, T, k], in the order the router ranked them. */
  readonly ids: Int32Array;
  readonly weights: Float32Array;
  /** [Lm, T, E], before softmax/sigmoid and before interventions. */
  readonly routerLogits: Float32Array;
  /**
   * [Lm, T, k]: the experts selection would have picked without the router's correction bias
   * (same interventions), in ranked order; only for routers with one (DeepSeek-V3).
   */
  readonly unbiasedIds?: Int32Array;
}

export interface StepResult {
  /** [N, V] for the requested positions. */
  readonly logits: Float32Array;
  readonly routing: StepRouting | null;
  /** Wall time of the step (graph run plus cache write). */
  readonly ms: number;
}

export class ModelRunner {
  readonly cache: KvCache;
  private readonly zeroBias: Float32Array;

  private constructor(
    readonly ckpt: Checkpoint,
    readonly hash: string,
    private model: OrtModel,
    readonly routingOutputs: boolean,
    readonly quant: QuantMode,
    readonly memory: MemoryBudget,
    private readonly reopen: () => Promise<OrtModel>,
    private readonly profileDir: string | null,
    /** What a person loading this model should know: tensors it does not use, a context cut short. */
    readonly warnings: readonly string[],
  ) {
    const c = ckpt.config;
    this.cache = this.newCache();
    this.zeroBias = new Float32Array(c.moeLayers.length * c.moe.numExperts);
  }

  static async load(dir: string | Checkpoint, opts: RunnerOptions = {}): Promise<ModelRunner> {
    if (opts.maxContext !== undefined && !(Number.isInteger(opts.maxContext) && opts.maxContext >= 1)) {
      throw new EngineError(EngineErrorCode.BAD_CONFIG, `maxContext must be a whole number of positions of at least 1, got ${opts.maxContext}`);
    }
    const ckpt = typeof dir === 'string' ? openCheckpoint(dir) : dir;
    const cacheDir = opts.cacheDir ?? defaultCacheDir();
    const quant = opts.quant ?? 'none';
    await verifyMoeKernel(cacheDir);
    const bits = quantBits(quant);
    // Int4 models keep their first MoE layers at int8 (quant.ts expertBits): both kernels are used.
    if (bits) for (const b of new Set([bits, expertBits(bits, 0, ckpt.config.moeLayers.length)])) await verifyQuantKernels(cacheDir, b);
    const routingOutputs = !opts.withoutRoutingOutputs;
    const graph = await compileGraph(ckpt, { routingOutputs, quant }, cacheDir);
    const est = estimateWeightBytes(ckpt.config, ckpt.tensors, quant);
    const budget = fitContext(ckpt.config, residentWeightBytes(graph.weightBytes, est), opts.maxContext ?? null);
    checkBudget(budget, quant);
    const profileDir = opts.diagnostics ? mkdtempSync(join(tmpdir(), 'moe-lab-profile-')) : null;
    const open = () =>
      OrtModel.create(graph.modelPath, {
        ...(opts.provider ? { provider: opts.provider } : {}),
        ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
        // QMoE reads its int4/int8 experts directly and touches only the experts tokens use;
        // prepacking would re-lay every expert out at load (about 3× the int4 bytes) and runs slower.
        ...(bits ? { prepack: false } : {}),
        ...(profileDir ? { profilePrefix: join(profileDir, 'steps') } : {}),
      });
    const warnings = [
      ...(graph.unusedTensors.length > 0 ? [describeUnusedTensors(ckpt.config, graph.unusedTensors)] : []),
      ...(budget.limitedBy === 'memory'
        ? [`context cut to ${budget.positions} of the model's ${budget.maxPositions} positions: a longer KV cache would not fit in this machine's memory`]
        : []),
    ];
    return new ModelRunner(ckpt, graph.hash, await open(), routingOutputs, quant, budget, open, profileDir, warnings);
  }

  get diagnostics(): boolean {
    return this.profileDir !== null;
  }

  /**
   * Diagnostic mode only: ends the current profile, returns one breakdown per step run since the
   * last call, and starts a fresh profiling session (the KV cache, held here, is unaffected).
   */
  async takeProfile(): Promise<StepProfile[]> {
    if (!this.profileDir) throw new EngineError(EngineErrorCode.BAD_CONFIG, 'the runner was not loaded with diagnostics');
    this.model.endProfiling();
    const files = readdirSync(this.profileDir).filter((f) => f.endsWith('.json'));
    const steps = files.flatMap((f) => {
      const file = join(this.profileDir!, f);
      const trace: unknown = JSON.parse(readFileSync(file, 'utf8'));
      rmSync(file, { force: true });
      return stepProfiles(trace, this.config.numLayers);
    });
    await this.model.dispose();
    this.model = await this.reopen();
    return steps;
  }

  get config() {
    return this.ckpt.config;
  }

  /** Positions one sequence may fill: max_position_embeddings, or less where memory is short. */
  get context(): number {
    return this.memory.positions;
  }

  /** "the model's context of N", saying why when it is less than the checkpoint's. */
  describeContext(): string {
    const m = this.memory;
    const why = m.limitedBy === 'memory' ? 'the KV cache of more would not fit in memory' : 'the context was capped when the model was loaded';
    return m.limitedBy === null
      ? `the model's context of ${m.positions}`
      : `the context of ${m.positions} positions this model was loaded with (of its ${m.maxPositions}; ${why})`;
  }

  /**
   * A KV cache for another sequence on the same weights and session: several generations can
   * take turns step by step, each with its own cache.
   */
  newCache(): KvCache {
    const c = this.ckpt.config;
    return new KvCache(c.numLayers, c.numKvHeads, c.headDim, this.context, c.vHeadDim);
  }

  /** Number of positions already in the default cache. */
  get position(): number {
    return this.cache.length;
  }

  reset(): void {
    this.cache.reset();
  }

  async step(req: StepRequest, cache: KvCache = this.cache): Promise<StepResult> {
    const c = this.ckpt.config;
    const T = req.ids.length;
    const P = cache.length;
    if (T === 0) throw new EngineError(EngineErrorCode.BAD_PROMPT, 'a step needs at least one token');
    if (P + T > this.context) {
      throw new EngineError(EngineErrorCode.PROMPT_TOO_LONG, `${P + T} positions exceed ${this.describeContext()}`, {
        positions: P + T,
        context: this.context,
      });
    }
    for (const id of req.ids) {
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
        throw new EngineError(EngineErrorCode.BAD_PROMPT, `token id ${id} is outside the vocabulary (0..${c.vocabSize - 1})`);
      }
    }
    const t0 = performance.now();
    cache.reserve(T);
    const C = cache.capacity;
    const { numKvHeads: Hkv, headDim: Dk, vHeadDim: Dv } = c;
    const Lm = c.moeLayers.length;
    const E = c.moe.numExperts;

    const feeds: Record<string, FeedTensor> = {
      [IO.inputIds]: { type: 'int64', data: BigInt64Array.from(req.ids, BigInt), dims: [T] },
      [IO.positionIds]: { type: 'int64', data: BigInt64Array.from({ length: T }, (_, i) => BigInt(P + i)), dims: [T] },
      [IO.pastMask]: { type: 'float32', data: cache.mask, dims: [C] },
      [IO.logitIndex]: { type: 'int64', data: BigInt64Array.from(req.logitIndex, BigInt), dims: [req.logitIndex.length] },
      [IO.routeBias]: { type: 'float32', data: req.routeBias ?? this.zeroBias, dims: [Lm, E] },
      [IO.topK]: { type: 'int64', data: BigInt64Array.of(BigInt(req.topK)), dims: [1] },
    };
    for (let l = 0; l < c.numLayers; l++) {
      const { kt, v } = cache.layer(l);
      feeds[IO.pastKt(l)] = { type: 'float32', data: kt, dims: [Hkv, Dk, C] };
      feeds[IO.pastV(l)] = { type: 'float32', data: v, dims: [Hkv, C, Dv] };
    }
    const out = await this.model.run(feeds);
    for (let l = 0; l < c.numLayers; l++) {
      cache.write(l, out[IO.presentKt(l)]!.data as Float32Array, out[IO.presentV(l)]!.data as Float32Array, T);
    }
    cache.advance(T);

    let routing: StepRouting | null = null;
    if (this.routingOutputs && Lm > 0) {
      // [Lm·T, k] is already layer-major [Lm, T, k]; ids come as int64.
      const idsOut = out[IO.topkIds]!;
      const k = idsOut.dims[1]!;
      const toInt32 = (x: BigInt64Array) => Int32Array.from(x, Number);
      routing = {
        k,
        ids: toInt32(idsOut.data as BigInt64Array),
        weights: out[IO.topkWeights]!.data as Float32Array,
        routerLogits: out[IO.routerLogits]!.data as Float32Array,
        ...(hasUnbiasedIds(c) ? { unbiasedIds: toInt32(out[IO.topkIdsUnbiased]!.data as BigInt64Array) } : {}),
      };
    }
    const logits = out[IO.logits]!.data as Float32Array;
    checkFinite(logits, routing, { positions: req.logitIndex.map((i) => P + i), tokens: T, firstPosition: P, moeLayers: c.moeLayers, experts: E });
    return { logits, routing, ms: performance.now() - t0 };
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
    if (this.profileDir) rmSync(this.profileDir, { recursive: true, force: true });
  }
}

interface StepShape {
  /** Position of each logits row. */
  readonly positions: readonly number[];
  readonly tokens: number;
  readonly firstPosition: number;
  readonly moeLayers: readonly number[];
  readonly experts: number;
}

/**
 * A NaN (or +infinite) value would otherwise surface far from its cause: as a token sampled from
 * nonsense, a log-probability of null, an entropy the page cannot read. The step fails instead,
 * naming where it first appears: router logits layer by layer (earliest first), then the output.
 * -infinity is left alone: it is how a banned expert or an impossible token is written.
 */
export function checkFinite(logits: Float32Array, routing: StepRouting | null, at: StepShape): void {
  const bad = (v: number) => Number.isNaN(v) || v === Infinity;
  if (routing) {
    const { tokens: T, experts: E } = at;
    for (let m = 0; m < at.moeLayers.length; m++) {
      for (let t = 0; t < T; t++) {
        for (let e = 0; e < E; e++) {
          const v = routing.routerLogits[(m * T + t) * E + e]!;
          if (bad(v)) {
            throw new EngineError(
              EngineErrorCode.NON_FINITE,
              `router logits are ${v} at layer ${at.moeLayers[m]}, position ${at.firstPosition + t}: the weights hold NaN or infinite values, or activations overflowed`,
              { layer: at.moeLayers[m]!, position: at.firstPosition + t },
            );
          }
        }
      }
    }
  }
  const V = logits.length / at.positions.length;
  for (let i = 0; i < logits.length; i++) {
    if (bad(logits[i]!)) {
      const position = at.positions[Math.floor(i / V)]!;
      throw new EngineError(
        EngineErrorCode.NON_FINITE,
        `the output logits are ${logits[i]} at position ${position}: the weights hold NaN or infinite values, or activations overflowed`,
        { position },
      );
    }
  }
}
