/**
 * Every failure the engine reports carries a stable code. Callers (the CLI, the server, tests)
 * branch on `code`, never on message text, which is free to improve.
 */
export const EngineErrorCode = {
  /** A file the checkpoint needs is absent (config.json, weights, an index shard). */
  MISSING_FILE: 'ENGINE_MISSING_FILE',
  /** config.json names a `model_type` this engine cannot build. */
  UNSUPPORTED_MODEL_TYPE: 'ENGINE_UNSUPPORTED_MODEL_TYPE',
  /** config.json is present but not valid for its declared architecture. */
  BAD_CONFIG: 'ENGINE_BAD_CONFIG',
  /** A safetensors header or shard index cannot be parsed or points outside the file. */
  CORRUPT_SAFETENSORS: 'ENGINE_CORRUPT_SAFETENSORS',
  /** A tensor the architecture needs is missing or has the wrong shape/dtype. */
  BAD_WEIGHTS: 'ENGINE_BAD_WEIGHTS',
  /** The prompt (plus requested new tokens) does not fit in the model's context. */
  PROMPT_TOO_LONG: 'ENGINE_PROMPT_TOO_LONG',
  /** The prompt is empty or has token ids outside the vocabulary. */
  BAD_PROMPT: 'ENGINE_BAD_PROMPT',
  /** A sampling parameter is out of range. */
  BAD_SAMPLING: 'ENGINE_BAD_SAMPLING',
  /** An intervention names a layer/expert that does not exist, or conflicts with another. */
  BAD_INTERVENTION: 'ENGINE_BAD_INTERVENTION',
  /** A top-k override is larger than the number of experts (or < 1). */
  BAD_TOP_K: 'ENGINE_BAD_TOP_K',
  /** Text was given but the checkpoint has no tokenizer.json. */
  NO_TOKENIZER: 'ENGINE_NO_TOKENIZER',
  /** The requested execution provider is not available in this installation. */
  PROVIDER_UNAVAILABLE: 'ENGINE_PROVIDER_UNAVAILABLE',
  /** The runtime's MoE kernel does not compute what the graph contract assumes. */
  KERNEL_MISMATCH: 'ENGINE_KERNEL_MISMATCH',
  /** The model (weights + KV cache + runtime) needs more memory than this machine has. */
  MEMORY_BUDGET: 'ENGINE_MEMORY_BUDGET',
  /** The engine (or its worker) was used after dispose, or the worker died. */
  DISPOSED: 'ENGINE_DISPOSED',
  /** onnxruntime raised while creating a session or running a step. */
  RUNTIME: 'ENGINE_RUNTIME',
  /** A step produced NaN (or +infinite) logits or router logits: the weights hold NaN/inf, or activations overflowed. */
  NON_FINITE: 'ENGINE_NON_FINITE',
} as const;

export type EngineErrorCode = (typeof EngineErrorCode)[keyof typeof EngineErrorCode];

/** An error with a stable code and optional details; the engine's and the analysis layer's errors are these. */
export class CodedError<C extends string> extends Error {
  constructor(
    readonly code: C,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }

  /** Plain-object form that survives `postMessage` and JSON. */
  toJSON(): { code: C; message: string; details?: Record<string, unknown> } {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export class EngineError extends CodedError<EngineErrorCode> {
  override readonly name = 'EngineError';
}
