/** Messages between the main thread (engine.ts) and the inference worker (worker.ts). */
import type { GenerateRequest, GenerationEvent } from '../generate/types.ts';
import type { EngineErrorCode } from '../errors.ts';
import type { QuantMode } from '../graph/quant.ts';
import type { MemoryBudget } from './memory.ts';
import type { RunnerOptions } from './runner.ts';

export interface ModelInfo {
  readonly id: string;
  readonly dir: string;
  /** SHA-256 of the checkpoint, with `:int8` / `:int4` appended when the weights are quantized. */
  readonly hash: string;
  readonly modelType: string;
  readonly numLayers: number;
  readonly moeLayers: readonly number[];
  readonly numExperts: number;
  readonly topK: number;
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly hasTokenizer: boolean;
  /** How the weights are stored (float32 or block-quantized). */
  readonly quant: QuantMode;
  /** What the model needs in memory, worked out before its session was created. */
  readonly memory: MemoryBudget;
  /** Things a person loading the model should know (ModelRunner.warnings). */
  readonly warnings: readonly string[];
}

export interface SerializedError {
  readonly code: EngineErrorCode;
  readonly message: string;
  readonly details?: Record<string, unknown>;
}

export type ToWorker =
  | { readonly type: 'load'; readonly dir: string; readonly options: RunnerOptions }
  | { readonly type: 'generate'; readonly id: number; readonly request: GenerateRequest; readonly cancel: SharedArrayBuffer }
  | { readonly type: 'encode'; readonly id: number; readonly text: string }
  | { readonly type: 'dispose' };

export type FromWorker =
  | { readonly type: 'loaded'; readonly info: ModelInfo }
  | { readonly type: 'load-failed'; readonly error: SerializedError }
  | { readonly type: 'event'; readonly id: number; readonly event: GenerationEvent }
  | { readonly type: 'encoded'; readonly id: number; readonly ids: number[] }
  | { readonly type: 'end'; readonly id: number }
  | { readonly type: 'failed'; readonly id: number; readonly error: SerializedError }
  | { readonly type: 'disposed' };
