/**
 * The one module that imports onnxruntime-node. Everything else sees `OrtModel`: create from a
 * model file, run with plain typed arrays, dispose. `run` blocks the calling thread, which is
 * why generation happens in a worker (runtime/worker.ts).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';
import { EngineError, EngineErrorCode } from '../errors.ts';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';

export interface FeedTensor {
  readonly type: 'float32' | 'int64' | 'int32';
  readonly data: Float32Array | BigInt64Array | Int32Array;
  readonly dims: readonly number[];
}

export interface OutTensor {
  readonly data: Float32Array | Int32Array | BigInt64Array;
  readonly dims: readonly number[];
}

export interface SessionOptions {
  readonly provider?: ExecutionProvider;
  readonly threads?: number;
  /** Write an onnxruntime profile (per-node timings) with this file prefix. */
  readonly profilePrefix?: string;
  /** Let kernels re-lay constant weights out at load (default true). */
  readonly prepack?: boolean;
}

/** Checks that a provider can be used here; throws a clear error naming what is missing. */
export function checkProvider(provider: ExecutionProvider): void {
  if (provider === 'cpu') return;
  if (provider === 'webgpu') {
    // The binding has a WebGPU provider, but the fused MoE kernel the graph relies on is CPU/CUDA only.
    throw new EngineError(
      EngineErrorCode.PROVIDER_UNAVAILABLE,
      "execution provider 'webgpu' cannot run this engine's graphs: onnxruntime's com.microsoft.MoE kernel has no WebGPU implementation",
      { provider, missing: 'com.microsoft.MoE (WebGPU)' },
    );
  }
  const supported = ort.listSupportedBackends().find((b) => b.name === provider);
  if (!supported) {
    throw new EngineError(EngineErrorCode.PROVIDER_UNAVAILABLE, `execution provider '${provider}' is not built into this onnxruntime-node`, { provider });
  }
  if (provider === 'cuda') {
    // The CUDA provider ships as a separate shared library that the install step downloads; offline
    // installs skip it. Look for it next to the binding before asking the runtime to load it.
    const require = createRequire(import.meta.url);
    const binDir = join(dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
    const lib = join(binDir, 'libonnxruntime_providers_cuda.so');
    if (!existsSync(lib)) {
      throw new EngineError(
        EngineErrorCode.PROVIDER_UNAVAILABLE,
        `execution provider 'cuda' needs ${lib} (installed by onnxruntime-node's install step when ONNXRUNTIME_NODE_INSTALL is not 'skip') and the CUDA 12 / cuDNN 9 libraries`,
        { provider, missing: lib },
      );
    }
  }
}

export class OrtModel {
  private constructor(private session: ort.InferenceSession | null) {}

  static async create(modelPath: string, opts: SessionOptions = {}): Promise<OrtModel> {
    const provider = opts.provider ?? 'cpu';
    checkProvider(provider);
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [provider],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: opts.threads ?? 0,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        logSeverityLevel: 3,
        ...(opts.profilePrefix ? { enableProfiling: true, profileFilePrefix: opts.profilePrefix } : {}),
        ...(opts.prepack === false ? { extra: { session: { disable_prepacking: '1' } } } : {}),
      });
      return new OrtModel(session);
    } catch (e) {
      if (e instanceof EngineError) throw e;
      throw new EngineError(EngineErrorCode.RUNTIME, `could not create an onnxruntime session for ${modelPath}: ${String(e)}`, {
        provider,
      });
    }
  }

  get inputNames(): readonly string[] {
    return this.live().inputNames;
  }

  get outputNames(): readonly string[] {
    return this.live().outputNames;
  }

  async run(feeds: Record<string, FeedTensor>, outputs?: readonly string[]): Promise<Record<string, OutTensor>> {
    const session = this.live();
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    let result: ort.InferenceSession.ReturnType;
    try {
      result = outputs ? await session.run(ortFeeds, outputs as string[]) : await session.run(ortFeeds);
    } catch (e) {
      throw new EngineError(EngineErrorCode.RUNTIME, `onnxruntime step failed: ${String(e)}`);
    }
    const out: Record<string, OutTensor> = {};
    for (const [name, t] of Object.entries(result)) {
      out[name] = { data: t.data as OutTensor['data'], dims: t.dims };
    }
    return out;
  }

  /** Ends profiling (when enabled) and returns the profile file path. */
  endProfiling(): void {
    this.live().endProfiling();
  }

  async dispose(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s) await s.release();
  }

  private live(): ort.InferenceSession {
    if (!this.session) throw new EngineError(EngineErrorCode.DISPOSED, 'session used after dispose');
    return this.session;
  }
}
