/**
 * Run-level metadata of a trace file: one document per file (Parquet key-value metadata, the
 * JSONL header line, the CSV sidecar) listing every run in it. Keys are snake_case, like the
 * columns, because the readers are mostly Python and SQL.
 */
import { z } from 'zod';
import { AnalysisError, AnalysisErrorCode } from './errors.ts';
import type { Json, JsonObject, RunMeta, RunTrace, TraceSource } from './trace.ts';

export const TRACE_FORMAT = 'moe-lab-trace';
export const TRACE_FORMAT_VERSION = 1;
/** Parquet key-value metadata key holding the document. */
export const PARQUET_META_KEY = 'moe_lab.trace';

const json = z.json();
const jsonObject = z.record(z.string(), json);

const runDocSchema = z.object({
  run_id: z.string().min(1),
  model_id: z.string(),
  model_hash: z.string().nullable(),
  source: z.enum(['moe-lab', 'sglang', 'vllm']),
  moe_layers: z.array(z.number().int().nonnegative()).min(1),
  num_experts: z.number().int().positive(),
  top_k: z.number().int().positive(),
  num_tokens: z.number().int().nonnegative(),
  prompt: z.string().nullable(),
  params: jsonObject,
  interventions: json.nullable(),
  fields: z.record(z.string(), z.string()),
  extra: jsonObject,
});

export type RunDoc = z.infer<typeof runDocSchema>;

const documentSchema = z.object({
  format: z.literal(TRACE_FORMAT),
  version: z.number().int().positive(),
  columns: z.array(z.string()),
  runs: z.array(runDocSchema),
});

export type TraceDocument = z.infer<typeof documentSchema>;

/** What a run was generated with, as the engine ran it. */
export interface GenerationSettings {
  readonly maxNewTokens: number;
  readonly temperature?: number | undefined;
  readonly topP?: number | undefined;
  readonly topKSampling?: number | undefined;
  readonly seed: number;
  readonly ignoreEos?: boolean | undefined;
  readonly stop?: readonly string[] | undefined;
  readonly interventions?: object | undefined;
}

/**
 * A run's `params` as every trace records them (`moe-lab trace`, server exports): snake_case, greedy
 * as temperature 0, unset top-p as null; sampling top-k and stop strings only when given (so
 * traces made before they were recorded still resume).
 */
export function paramsDoc(g: GenerationSettings): JsonObject {
  return {
    max_new_tokens: g.maxNewTokens,
    temperature: g.temperature ?? 0,
    top_p: g.topP ?? null,
    ...(g.topKSampling !== undefined ? { top_k_sampling: g.topKSampling } : {}),
    seed: g.seed,
    ignore_eos: g.ignoreEos ?? false,
    ...(g.stop && g.stop.length > 0 ? { stop: [...g.stop] } : {}),
    interventions: JSON.parse(JSON.stringify(g.interventions ?? {})) as Json,
  };
}

export function runDoc(t: RunTrace): RunDoc {
  return {
    run_id: t.runId,
    model_id: t.modelId,
    model_hash: t.modelHash,
    source: t.meta.source,
    moe_layers: [...t.moeLayers],
    num_experts: t.numExperts,
    top_k: t.k,
    num_tokens: t.tokens.length,
    prompt: t.meta.prompt,
    params: t.meta.params,
    interventions: t.meta.interventions,
    fields: { ...t.meta.fields },
    extra: t.meta.extra,
  };
}

export function runMetaFromDoc(d: RunDoc): RunMeta {
  return {
    source: d.source as TraceSource,
    prompt: d.prompt,
    params: d.params as JsonObject,
    interventions: d.interventions as Json,
    fields: d.fields,
    extra: d.extra as JsonObject,
  };
}

export function traceDocument(runs: readonly RunDoc[], columns: readonly string[]): TraceDocument {
  return { format: TRACE_FORMAT, version: TRACE_FORMAT_VERSION, columns: [...columns], runs: [...runs] };
}

/** Parses a metadata document read from a file; `where` names the file in the error. */
export function parseTraceDocument(raw: unknown, where: string): TraceDocument {
  const r = documentSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${where}: trace metadata is not valid (${issue?.path.join('.') || 'document'}: ${issue?.message ?? '?'})`);
  }
  if (r.data.version > TRACE_FORMAT_VERSION) {
    throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${where}: trace format version ${r.data.version} is newer than this reader (${TRACE_FORMAT_VERSION})`);
  }
  return r.data;
}

export function parseJsonText(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${where}: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}
