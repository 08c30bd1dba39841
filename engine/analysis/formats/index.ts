/**
 * One entry point over the three formats, chosen by file extension or by name: what the CLI,
 * the REST API and the notebook export call.
 */
import { extname } from 'node:path';
import { AnalysisError, AnalysisErrorCode } from '../errors.ts';
import { tracesFromRows } from '../rows.ts';
import type { RunTrace } from '../trace.ts';
import { assertNever } from '../../assert-never.ts';
import { runDoc, type RunDoc } from '../meta.ts';
import { fieldNames } from '../rows.ts';
import { csvHeader, csvRunChunks, csvSidecarText, readCsv, writeCsv } from './csv.ts';
import { jsonlHeader, jsonlRunChunks, readJsonl, writeJsonl } from './jsonl.ts';
import { ParquetTraceStream, readParquet, writeParquet, type TraceFile } from './parquet.ts';

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

/**
 * The runs of an export, read one at a time, so a large export holds one run (and, for Parquet, a
 * row group) rather than all of them.
 */
export interface TraceSource {
  readonly count: number;
  /** Run i, or null to leave it out (a run that never started). */
  load(i: number): RunTrace | null;
  /** The field columns every run's `meta.fields` keys fall within (server runs have none). */
  readonly fields: readonly string[];
}

/** Runs already in memory as a source. */
export function arraySource(traces: readonly RunTrace[]): TraceSource {
  return { count: traces.length, load: (i) => traces[i] ?? null, fields: fieldNames(traces.map((t) => t.meta.fields)) };
}

export interface ExportStream {
  readonly contentType: string;
  /** File extension, with the dot, for a Content-Disposition name. */
  readonly extension: string;
  readonly chunks: AsyncIterable<string | Uint8Array>;
}

/** Hands the event loop back between runs, so a server streaming a long export keeps serving. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The source's runs in order; stops early once `signal` aborts (the client went away). */
async function* runsOf(source: TraceSource, signal?: AbortSignal): AsyncGenerator<RunTrace> {
  for (let i = 0; i < source.count; i++) {
    await nextTurn();
    if (signal?.aborted) return;
    const t = source.load(i);
    if (!t) continue;
    const extra = Object.keys(t.meta.fields).filter((f) => !source.fields.includes(f));
    if (extra.length > 0) throw new AnalysisError(AnalysisErrorCode.BAD_INPUT, `run ${t.runId} has field column(s) ${extra.join(', ')} the export did not declare`);
    yield t;
  }
}

/** Every run of a source, read as an export reads them (one at a time, the event loop handed back between). */
export async function loadSource(source: TraceSource): Promise<RunTrace[]> {
  const traces: RunTrace[] = [];
  for await (const t of runsOf(source)) traces.push(t);
  return traces;
}

/** Every run's metadata document: a first pass, for formats that put it before the rows. */
async function runDocs(source: TraceSource, signal?: AbortSignal): Promise<RunDoc[]> {
  const docs: RunDoc[] = [];
  for await (const t of runsOf(source, signal)) docs.push(runDoc(t));
  return docs;
}

/**
 * Row groups of a streamed Parquet export: encoding one holds the event loop (about 0.5 s for the
 * file default of 256k rows, a quarter of that for these), and readers scan groups this size well.
 */
const STREAM_ROW_GROUP_ROWS = 64 * 1024;

async function* parquetStream(source: TraceSource, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const s = new ParquetTraceStream(source.fields, STREAM_ROW_GROUP_ROWS);
  for await (const t of runsOf(source, signal)) {
    s.add([t]);
    const bytes = s.take();
    if (bytes.length > 0) yield bytes;
  }
  yield s.finish();
}

async function* jsonlStream(source: TraceSource, signal?: AbortSignal): AsyncGenerator<string> {
  // The header line names every run, so the runs are read twice: once for it, once for the rows
  // (a source whose runs can change, such as a live run, must give the same run both times).
  yield jsonlHeader(await runDocs(source, signal), source.fields);
  for await (const t of runsOf(source, signal)) yield* jsonlRunChunks(t, source.fields);
}

async function* csvStream(source: TraceSource, signal?: AbortSignal): AsyncGenerator<string> {
  yield csvHeader(source.fields);
  for await (const t of runsOf(source, signal)) yield* csvRunChunks(t, source.fields);
}

/**
 * An export as an HTTP body: for `GET …/trace?format=…` of one run, a notebook, or all runs. Once
 * `signal` aborts, no further run is read and the chunks end.
 */
export function exportStream(source: TraceSource, format: TraceFormat, signal?: AbortSignal): ExportStream {
  switch (format) {
    case 'parquet':
      return { contentType: 'application/vnd.apache.parquet', extension: '.parquet', chunks: parquetStream(source, signal) };
    case 'jsonl':
      return { contentType: 'application/x-ndjson; charset=utf-8', extension: '.jsonl', chunks: jsonlStream(source, signal) };
    case 'csv':
      return { contentType: 'text/csv; charset=utf-8', extension: '.csv', chunks: csvStream(source, signal) };
    default:
      return assertNever(format);
  }
}

/** A CSV export's sidecar (its run metadata, FILE.meta.json). */
export async function exportSidecar(source: TraceSource, signal?: AbortSignal): Promise<string> {
  return csvSidecarText(await runDocs(source, signal), source.fields);
}
