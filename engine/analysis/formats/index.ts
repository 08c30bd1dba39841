/**
 * One entry point over the three formats, chosen by file extension or by name: what the CLI,
 * the REST API and the notebook export call.
 */
import { extname } from 'node:path';
import { AnalysisError, AnalysisErrorCode } from '../errors.ts';
import { tracesFromRows } from '../rows.ts';
import type { RunTrace } from '../trace.ts';
import { csvChunks, csvSidecar, readCsv, writeCsv } from './csv.ts';
import { jsonlChunks, readJsonl, writeJsonl } from './jsonl.ts';
import { parquetBytes, readParquet, writeParquet, type TraceFile } from './parquet.ts';

export type TraceFormat = 'parquet' | 'jsonl' | 'csv';
export const TRACE_FORMATS: readonly TraceFormat[] = ['parquet', 'jsonl', 'csv'];

export function formatOfPath(path: string): TraceFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.parquet' || ext === '.pq') return 'parquet';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${path}: unknown trace format '${ext}' (use .parquet, .jsonl or .csv)`);
}

export function writeTraceFile(path: string, traces: readonly RunTrace[], format: TraceFormat = formatOfPath(path)): void {
  if (format === 'parquet') writeParquet(path, traces);
  else if (format === 'jsonl') writeJsonl(path, traces);
  else writeCsv(path, traces);
}

export function readTraceFile(path: string, format: TraceFormat = formatOfPath(path)): Promise<TraceFile> {
  if (format === 'parquet') return readParquet(path);
  if (format === 'jsonl') return readJsonl(path);
  return readCsv(path);
}

/** A trace file read back as runs. */
export async function loadTraces(path: string): Promise<RunTrace[]> {
  const f = await readTraceFile(path);
  return tracesFromRows(f.columns, f.document.runs);
}

export interface ExportBody {
  readonly contentType: string;
  /** File extension, with the dot, for a Content-Disposition name. */
  readonly extension: string;
  /** The body, in chunks (Parquet comes whole: its footer needs every row group first). */
  readonly chunks: Iterable<string | Uint8Array>;
  /** CSV only: the run metadata that would be its sidecar file. */
  readonly sidecar?: string;
}

/** An export as an HTTP body: for `GET …/trace?format=…` of one run, a notebook, or all runs. */
export function exportBody(traces: readonly RunTrace[], format: TraceFormat): ExportBody {
  if (format === 'parquet') return { contentType: 'application/vnd.apache.parquet', extension: '.parquet', chunks: [parquetBytes(traces)] };
  if (format === 'jsonl') return { contentType: 'application/x-ndjson; charset=utf-8', extension: '.jsonl', chunks: jsonlChunks(traces) };
  return { contentType: 'text/csv; charset=utf-8', extension: '.csv', chunks: csvChunks(traces), sidecar: csvSidecar(traces) };
}

export type { TraceFile } from './parquet.ts';
