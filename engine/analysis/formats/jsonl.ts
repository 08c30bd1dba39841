/**
 * JSON Lines: a header line `{"moe_lab_trace": <metadata document>}`, then one object per row
 * with every column, nulls written out. Chunks are produced lazily so a server can stream a large
 * export without holding it as one string.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { AnalysisError, AnalysisErrorCode } from '../errors.ts';
import { parseJsonText, parseTraceDocument, runDoc, traceDocument, type RunDoc, type TraceDocument } from '../meta.ts';
import { BASE_COLUMNS, columnList, fieldNames, RowReader, traceRows, type ColumnSpec } from '../rows.ts';
import type { RunTrace } from '../trace.ts';
import { atomicWriteChunks } from './atomic.ts';
import type { TraceFile } from './parquet.ts';

export const JSONL_HEADER_KEY = 'moe_lab_trace';

/** The header line: the metadata document of every run in the file. */
export function jsonlHeader(runs: readonly RunDoc[], fields: readonly string[]): string {
  const names = [...BASE_COLUMNS.map((c) => c.name), ...fields];
  return JSON.stringify({ [JSONL_HEADER_KEY]: traceDocument(runs, names) }) + '\n';
}

/** One run's rows as text chunks (a few thousand lines each). */
export function* jsonlRunChunks(t: RunTrace, fields: readonly string[]): Generator<string> {
  const cols = columnList(traceRows([t], fields));
  const lines: string[] = [];
  for (let i = 0; i < (cols[0]?.values.length ?? 0); i++) {
    const row: Record<string, string | number | null> = {};
    for (const { spec, values } of cols) row[spec.name] = values[i] ?? null;
    lines.push(JSON.stringify(row));
    if (lines.length === 4096) yield lines.splice(0).join('\n') + '\n';
  }
  if (lines.length > 0) yield lines.join('\n') + '\n';
}

/** The file as text chunks: the header line, then rows, a run at a time. */
export function* jsonlChunks(traces: readonly RunTrace[]): Generator<string> {
  const fields = fieldNames(traces.map((t) => t.meta.fields));
  yield jsonlHeader(traces.map(runDoc), fields);
  for (const t of traces) yield* jsonlRunChunks(t, fields);
}

export function writeJsonl(path: string, traces: readonly RunTrace[]): void {
  atomicWriteChunks(path, jsonlChunks(traces));
}

async function* linesOf(source: string | { text: string }): AsyncGenerator<string> {
  if (typeof source !== 'string') {
    yield* source.text.split('\n');
    return;
  }
  const stream = createReadStream(source, { encoding: 'utf8' });
  try {
    yield* createInterface({ input: stream, crlfDelay: Infinity });
  } finally {
    stream.destroy();
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads a JSONL trace from a path, or from text already in memory. */
export async function readJsonl(source: string | { text: string }): Promise<TraceFile> {
  const where = typeof source === 'string' ? source : 'jsonl text';
  let document: TraceDocument | null = null;
  let reader: RowReader | null = null;
  let lineNo = 0;
  try {
    for await (const line of linesOf(source)) {
      lineNo++;
      if (line.trim() === '') continue;
      const obj = parseJsonText(line, `${where}:${lineNo}`);
      if (!isRecord(obj)) throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${where}:${lineNo}: not a JSON object`);
      if (!document) {
        // Without the header (rows exported by another tool) the first row's keys are the columns
        // and runs are inferred from the rows, as for a CSV without its sidecar.
        const headed = JSONL_HEADER_KEY in obj;
        document = headed ? parseTraceDocument(obj[JSONL_HEADER_KEY], `${where}:${lineNo}`) : { format: 'moe-lab-trace', version: 1, columns: Object.keys(obj), runs: [] };
        const specs: ColumnSpec[] = document.columns.map((name) => BASE_COLUMNS.find((b) => b.name === name) ?? { name, type: 'string', nullable: true });
        reader = new RowReader(specs, where);
        if (headed) continue;
      }
      const keys = Object.keys(obj);
      const specs = reader!.specs;
      if (keys.length !== specs.length || keys.some((k) => !specs.some((s) => s.name === k))) {
        throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${where}:${lineNo}: the row's keys are not the file's columns`);
      }
      reader!.push(specs.map((s) => obj[s.name]), lineNo);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${where}: no such file`);
    throw e;
  }
  if (!document || !reader) throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${where}: empty file`);
  return { document, columns: reader.finish() };
}
