/**
 * The MoE Lab wire protocol: every WebSocket message, in one file, as zod-validated tagged unions.
 * Documented in docs/protocol.md. Bump PROTOCOL_VERSION on any incompatible change.
 *
 * Runs stream as `run_events` frames: consecutive events of one run, numbered by `seq` (the first
 * event of a run is seq 0). A client that has every event below N resumes with
 * `subscribe { runId, from: N }` and receives exactly the events from N on: no gap, no duplicate.
 */
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

// ---- shared pieces -------------------------------------------------------------------------

const expertRef = z.object({
  layer: z.union([z.number().int().nonnegative(), z.literal('all')]),
  expert: z.number().int().nonnegative(),
});

/**
 * The numeric generate parameters' ranges, in one place: the schemas below are built from them, and
 * the notebook checks a prompt cell's fields against them to name the field that is out of range.
 */
export interface NumberRange {
  readonly int?: boolean;
  readonly min: number;
  readonly max?: number;
  /** `min` itself is outside the range. */
  readonly minExclusive?: boolean;
}
export const PARAM_RANGES = {
  maxNewTokens: { int: true, min: 0 },
  temperature: { min: 0, max: 100 },
  topP: { min: 0, max: 1, minExclusive: true },
  topKSampling: { int: true, min: 0 },
  seed: { int: true, min: 0, max: 2 ** 32 - 1 },
  expertsPerToken: { int: true, min: 1 },
} as const satisfies Record<string, NumberRange>;

function numberIn(range: NumberRange): z.ZodNumber {
  let n = range.int ? z.number().int() : z.number();
  n = range.minExclusive ? n.gt(range.min) : n.min(range.min);
  return range.max === undefined ? n : n.max(range.max);
}

export function inRange(v: number, range: NumberRange): boolean {
  const { int = false, min, max, minExclusive = false } = range;
  return Number.isFinite(v) && (!int || Number.isInteger(v)) && (minExclusive ? v > min : v >= min) && (max === undefined || v <= max);
}

export const interventionsSchema = z
  .object({
    ban: z.array(expertRef).max(4096).optional(),
    force: z.array(expertRef).max(4096).optional(),
    topK: numberIn(PARAM_RANGES.expertsPerToken).optional(),
  })
  .strict();

export const samplingSchema = z
  .object({
    temperature: numberIn(PARAM_RANGES.temperature).optional(),
    topK: numberIn(PARAM_RANGES.topKSampling).optional(),
    topP: numberIn(PARAM_RANGES.topP).optional(),
  })
  .strict();

/** `compact`: ids, weights and entropy per layer. `full` adds each layer's router distribution. */
export const detailSchema = z.enum(['compact', 'full']);
export type Detail = z.infer<typeof detailSchema>;

export const modelSummarySchema = z.object({
  id: z.string(),
  loaded: z.boolean(),
  hash: z.string().nullable(),
  modelType: z.string().nullable(),
  numLayers: z.number().nullable(),
  moeLayers: z.array(z.number()).nullable(),
  numExperts: z.number().nullable(),
  topK: z.number().nullable(),
  contextLength: z.number().nullable(),
  hasTokenizer: z.boolean().nullable(),
  /** How the routed experts are stored (the server's --quant); known before the model loads. */
  quant: z.enum(['none', 'int8', 'int4']),
  /** Bytes of weights the loaded session holds; null until loaded. */
  weightBytes: z.number().nullable(),
  /** What loading the model found worth knowing (unused tensors, a context cut short); null until loaded. */
  warnings: z.array(z.string()).nullable().default(null),
});
export type ModelSummary = z.infer<typeof modelSummarySchema>;

// ---- client → server -----------------------------------------------------------------------

const requestId = z.string().max(64);

export const generateParamsSchema = z
  .object({
    model: z.string().max(256),
    prompt: z.string().max(1_000_000).optional(),
    promptIds: z.array(z.number().int().nonnegative()).max(1_000_000).optional(),
    maxNewTokens: numberIn(PARAM_RANGES.maxNewTokens).optional(),
    sampling: samplingSchema.optional(),
    seed: numberIn(PARAM_RANGES.seed).optional(),
    stop: z.array(z.string().min(1).max(256)).max(16).optional(),
    /** Keep generating through end-of-sequence tokens (fixed-length runs for traces and benchmarks). */
    ignoreEos: z.boolean().optional(),
    interventions: interventionsSchema.optional(),
  })
  .strict();
export type GenerateParams = z.infer<typeof generateParamsSchema>;

export const clientMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('hello'), protocol: z.number().int(), client: z.string().max(128).optional() }).strict(),
  z.object({ type: z.literal('list_models'), id: requestId }).strict(),
  z.object({ type: z.literal('load_model'), id: requestId, model: z.string().max(256) }).strict(),
  z
    .object({
      type: z.literal('generate'),
      id: requestId,
      /** The client's own name for the run, echoed back and stored. */
      clientRunId: z.string().max(128).optional(),
      params: generateParamsSchema,
      detail: detailSchema.optional(),
    })
    .strict(),
  z.object({ type: z.literal('cancel'), id: requestId.optional(), runId: z.string().max(64) }).strict(),
  z
    .object({
      type: z.literal('subscribe'),
      id: requestId.optional(),
      runId: z.string().max(64),
      from: z.number().int().nonnegative(),
      detail: detailSchema.optional(),
    })
    .strict(),
  z.object({ type: z.literal('unsubscribe'), runId: z.string().max(64) }).strict(),
]);
export type ClientMessage = z.infer<typeof clientMessageSchema>;

// ---- run events (server → client, inside run_events) ---------------------------------------

export type Phase = 'prefill' | 'decode';

export type RunEvent =
  | {
      readonly t: 'started';
      readonly model: string;
      readonly modelHash: string;
      readonly promptTokens: number;
      readonly maxNewTokens: number;
      /** Model layer index of each MoE layer; routing arrays are in this order. */
      readonly moeLayers: readonly number[];
      readonly numExperts: number;
      readonly topK: number;
      readonly seed: number;
    }
  | {
      readonly t: 'token';
      readonly index: number;
      readonly id: number;
      readonly text: string | null;
      readonly delta: string | null;
      readonly phase: Phase;
      readonly logprob: number | null;
      /** Top alternatives as [id, logprob] pairs, most likely first (decode only). */
      readonly top: readonly (readonly [number, number])[];
    }
  | {
      readonly t: 'routing';
      readonly index: number;
      readonly phase: Phase;
      /** [moeLayers × k] expert ids, layer-major, each layer's experts by weight, largest first. */
      readonly ids: readonly number[];
      /** [moeLayers × k] gate weights, same order, rounded to 6 significant digits. */
      readonly w: readonly number[];
      /** [moeLayers] router entropy in nats, 4 decimals. */
      readonly h: readonly number[];
      /** [moeLayers × experts] router distribution, 5 decimals (detail 'full' only). */
      readonly p?: readonly number[];
      /**
       * [moeLayers × k] the experts the router would have chosen without its load-balancing bias
       * (DeepSeek-V3's e_score_correction_bias); only for routers that have one.
       */
      readonly ub?: readonly number[];
    }
  | { readonly t: 'timing'; readonly phase: Phase; readonly tokens: number; readonly ms: number; readonly ttftMs?: number }
  | {
      readonly t: 'done';
      readonly reason: 'eos' | 'stop' | 'length' | 'cancelled';
      readonly promptTokens: number;
      readonly generatedTokens: number;
      readonly text: string | null;
      readonly ttftMs: number | null;
      readonly totalMs: number;
      readonly prefillTokensPerSecond: number | null;
      readonly decodeTokensPerSecond: number | null;
    }
  | { readonly t: 'error'; readonly code: string; readonly message: string };

/**
 * What a client (or a reader of stored events) accepts as a run event. Typed against RunEvent, so the
 * two cannot drift apart; objects are loose (a newer server's extra fields pass through) and every
 * field the type names is checked.
 */
const phaseSchema = z.enum(['prefill', 'decode']);
/**
 * A plain array of numbers, checked in one loop: a full-detail routing event of a DeepSeek-V3-sized
 * model carries about 15,000 of them, and validating each through z.number() cost more than parsing
 * the JSON.
 */
const numbers = z.custom<number[]>((v) => Array.isArray(v) && v.every((x) => typeof x === 'number'), { message: 'expected an array of numbers' });
export const runEventSchema: z.ZodType<RunEvent> = z.discriminatedUnion('t', [
  z.looseObject({
    t: z.literal('started'),
    model: z.string(),
    modelHash: z.string(),
    promptTokens: z.number(),
    maxNewTokens: z.number(),
    moeLayers: numbers,
    numExperts: z.number(),
    topK: z.number(),
    seed: z.number(),
  }),
  z.looseObject({
    t: z.literal('token'),
    index: z.number(),
    id: z.number(),
    text: z.string().nullable(),
    delta: z.string().nullable(),
    phase: phaseSchema,
    logprob: z.number().nullable(),
    top: z.array(z.tuple([z.number(), z.number()])),
  }),
  z.looseObject({
    t: z.literal('routing'),
    index: z.number(),
    phase: phaseSchema,
    ids: numbers,
    w: numbers,
    h: numbers,
    p: numbers.optional(),
    ub: numbers.optional(),
  }),
  z.looseObject({ t: z.literal('timing'), phase: phaseSchema, tokens: z.number(), ms: z.number(), ttftMs: z.number().optional() }),
  z.looseObject({
    t: z.literal('done'),
    reason: z.enum(['eos', 'stop', 'length', 'cancelled']),
    promptTokens: z.number(),
    generatedTokens: z.number(),
    text: z.string().nullable(),
    ttftMs: z.number().nullable(),
    totalMs: z.number(),
    prefillTokensPerSecond: z.number().nullable(),
    decodeTokensPerSecond: z.number().nullable(),
  }),
  z.looseObject({ t: z.literal('error'), code: z.string(), message: z.string() }),
]);

// ---- server → client -----------------------------------------------------------------------

export interface Limits {
  readonly maxQueue: number;
  readonly maxActiveRunsPerConnection: number;
  /** Runs generating at the same time (they take turns, one step each). */
  readonly maxConcurrentRuns: number;
  readonly maxNewTokens: number;
  readonly maxPromptTokens: number;
  readonly maxPayloadBytes: number;
  readonly messagesPerSecond: number;
}

export const runStatusSchema = z.enum(['queued', 'running', 'done', 'cancelled', 'failed', 'interrupted']);
export type RunStatus = z.infer<typeof runStatusSchema>;

const limitsSchema: z.ZodType<Limits> = z.looseObject({
  maxQueue: z.number(),
  maxActiveRunsPerConnection: z.number(),
  maxConcurrentRuns: z.number(),
  maxNewTokens: z.number(),
  maxPromptTokens: z.number(),
  maxPayloadBytes: z.number(),
  messagesPerSecond: z.number(),
});

export type ServerMessage =
  | { readonly type: 'hello'; readonly protocol: number; readonly app: string; readonly models: ModelSummary[]; readonly limits: Limits }
  | { readonly type: 'models'; readonly id: string; readonly models: ModelSummary[] }
  | { readonly type: 'model_loaded'; readonly id: string; readonly model: ModelSummary }
  | { readonly type: 'accepted'; readonly id: string; readonly runId: string; readonly clientRunId: string | null; readonly queuePosition: number }
  | { readonly type: 'run_events'; readonly runId: string; readonly from: number; readonly events: RunEvent[] }
  | { readonly type: 'subscribed'; readonly id: string | null; readonly runId: string; readonly status: RunStatus; readonly nextSeq: number }
  | { readonly type: 'error'; readonly id: string | null; readonly runId: string | null; readonly code: string; readonly message: string };

export const serverMessageSchema: z.ZodType<ServerMessage> = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('hello'), protocol: z.number(), app: z.string(), models: z.array(modelSummarySchema), limits: limitsSchema }),
  z.looseObject({ type: z.literal('models'), id: z.string(), models: z.array(modelSummarySchema) }),
  z.looseObject({ type: z.literal('model_loaded'), id: z.string(), model: modelSummarySchema }),
  z.looseObject({ type: z.literal('accepted'), id: z.string(), runId: z.string(), clientRunId: z.string().nullable(), queuePosition: z.number() }),
  z.looseObject({ type: z.literal('run_events'), runId: z.string(), from: z.number(), events: z.array(runEventSchema) }),
  z.looseObject({ type: z.literal('subscribed'), id: z.string().nullable(), runId: z.string(), status: runStatusSchema, nextSeq: z.number() }),
  z.looseObject({ type: z.literal('error'), id: z.string().nullable(), runId: z.string().nullable(), code: z.string(), message: z.string() }),
]);

/** The first problem a schema found, as `path: message` (`(root)` for the value itself). */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return `${issue?.path.join('.') || '(root)'}: ${issue?.message}`;
}

/**
 * `raw[key]` when `raw` is an object whose `key` passes `schema`, else null: the request or run a
 * message that failed validation still names, so its error can answer them.
 */
function fieldOf<T>(raw: unknown, key: string, schema: z.ZodType<T>): T | null {
  const v = schema.safeParse(typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)[key] : undefined);
  return v.success ? v.data : null;
}

/**
 * Parses one frame from the server; never throws. What does not parse (a server of another version,
 * say) comes back with the request and run it names, when it names them, so the client can fail
 * exactly those instead of waiting on them.
 */
export function parseServerMessage(text: string): { ok: true; msg: ServerMessage } | { ok: false; id: string | null; runId: string | null; message: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, id: null, runId: null, message: 'the server sent a frame that is not JSON' };
  }
  const r = serverMessageSchema.safeParse(raw);
  if (r.success) return { ok: true, msg: r.data };
  return {
    ok: false,
    id: fieldOf(raw, 'id', z.string()),
    runId: fieldOf(raw, 'runId', z.string()),
    message: `the server sent an invalid message: ${describeIssue(r.error)}`,
  };
}

// ---- REST responses (/api/…) ----------------------------------------------------------------

/** Every /api error body. */
export const apiErrorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/** GET /api/runs/:id: the run's record (the fields a client reads) and all its events. */
export const runDetailSchema = z.object({
  run: z.looseObject({ id: z.string(), modelId: z.string(), status: runStatusSchema }),
  events: z.array(runEventSchema),
});

/** A notebook file as the notebooks API lists it. */
export const notebookEntrySchema = z.object({ path: z.string(), name: z.string(), size: z.number(), modified: z.string() });
export type NotebookEntry = z.infer<typeof notebookEntrySchema>;

/** Stable error codes sent to clients. Details stay in the server log. */
export const ProtocolErrorCode = {
  BAD_MESSAGE: 'PROTO_BAD_MESSAGE',
  BAD_JSON: 'PROTO_BAD_JSON',
  UNSUPPORTED_VERSION: 'PROTO_UNSUPPORTED_VERSION',
  HELLO_REQUIRED: 'PROTO_HELLO_REQUIRED',
  RATE_LIMITED: 'PROTO_RATE_LIMITED',
  UNKNOWN_MODEL: 'PROTO_UNKNOWN_MODEL',
  UNKNOWN_RUN: 'PROTO_UNKNOWN_RUN',
  QUEUE_FULL: 'PROTO_QUEUE_FULL',
  TOO_MANY_RUNS: 'PROTO_TOO_MANY_RUNS',
  LIMIT_EXCEEDED: 'PROTO_LIMIT_EXCEEDED',
  INTERNAL: 'PROTO_INTERNAL',
} as const;

/**
 * Parses one text frame; never throws. A message that fails validation still gives back its request
 * id when it has a well-formed one, so the error answers that request (a client waiting on a
 * `generate` with an out-of-range field hears why, instead of waiting for an `accepted` that never comes).
 */
export function parseClientMessage(
  text: string,
): { ok: true; msg: ClientMessage } | { ok: false; id: string | null; code: string; message: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, id: null, code: ProtocolErrorCode.BAD_JSON, message: 'the message is not valid JSON' };
  }
  const r = clientMessageSchema.safeParse(raw);
  if (!r.success) {
    return {
      ok: false,
      id: fieldOf(raw, 'id', requestId),
      code: ProtocolErrorCode.BAD_MESSAGE,
      message: `invalid message: ${describeIssue(r.error)}`,
    };
  }
  return { ok: true, msg: r.data };
}
