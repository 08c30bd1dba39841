/**
 * CSV (RFC 4180): a header row, then one row per trace row. Every non-null string is quoted
 * (inner quotes doubled), so commas, quotes and line breaks in token texts survive and an empty
 * string ("") stays distinct from null (an empty, unquoted field). Numbers are written with
 * JavaScript's shortest round-trip form. Run metadata goes to a sidecar, `FILE.meta.json`.
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { AnalysisError, AnalysisErrorCode } from '../errors.ts';
import { parseJsonText, parseTraceDocument, runDoc, traceDocument, type RunDoc, type TraceDocument } from '../meta.ts';
import { BASE_COLUMNS, columnList, fieldNames, RowReader, traceRows, type ColumnSpec } from '../rows.ts';
import type { RunTrace } from '../trace.ts';
import { atomicWriteChunks, atomicWriteFile } from './atomic.ts';
import type { TraceFile } from './parquet.ts';

export function csvSidecarPath(path: string): string {
  return `${path}.meta.json`;
}

function cell(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return String(v);
  return `"${v.replaceAll('"', '""')}"`;
}

/** The header row: the column names. */
export function csvHeader(fields: readonly string[]): string {
  return [...BASE_COLUMNS.map((c) => c.name), ...fields].join(',') + '\n';
}

/** One run's rows as text chunks (a few thousand lines each). */
export function* csvRunChunks(t: RunTrace, fields: readonly string[]): Generator<string> {
  const cols = columnList(traceRows([t], fields));
  const lines: string[] = [];
  const n = cols[0]?.values.length ?? 0;
  for (let i = 0; i < n; i++) {
    lines.push(cols.map((c) => cell(c.values[i])).join(','));
    if (lines.length === 4096) yield lines.splice(0).join('\n') + '\n';
  }
  if (lines.length > 0) yield lines.join('\n') + '\n';
}

/** The CSV as text chunks: the header row, then rows a run at a time. */
export function* csvChunks(traces: readonly RunTrace[]): Generator<string> {
  const fields = fieldNames(traces.map((t) => t.meta.fields));
  yield csvHeader(fields);
  for (const t of traces) yield* csvRunChunks(t, fields);
}

/** The sidecar document (run metadata) for runs with these field columns. */
export function csvSidecarText(runs: readonly RunDoc[], fields: readonly string[]): string {
  return JSON.stringify(traceDocument(runs, [...BASE_COLUMNS.map((c) => c.name), ...fields]), null, 2) + '\n';
}

/** The sidecar document (run metadata) for these runs. */
export function csvSidecar(traces: readonly RunTrace[]): string {
  return csvSidecarText(traces.map(runDoc), fieldNames(traces.map((t) => t.meta.fields)));
}

/** Writes FILE and FILE.meta.json (the sidecar first, so a CSV never lacks its metadata). */
export function writeCsv(path: string, traces: readonly RunTrace[]): void {
  atomicWriteFile(csvSidecarPath(path), csvSidecar(traces));
  atomicWriteChunks(path, csvChunks(traces));
}

/** A field as parsed: its text, and whether it was quoted (an unquoted empty field is null). */
interface Field {
  text: string;
  quoted: boolean;
}

/**
 * RFC 4180 record splitter over text chunks. Quoted fields may span chunks and lines; CRLF and
 * LF both end a record outside quotes.
 */
export class CsvParser {
  private field = '';
  private quoted = false;
  private inQuotes = false;
  /** A quote seen inside quotes: either the end of the field or the first of a doubled pair. */
  private quotePending = false;
  private record: Field[] = [];
  private atFieldStart = true;
  line = 1;
  private recordLine = 1;

  constructor(private readonly onRecord: (fields: Field[], line: number) => void) {}

  push(chunk: string): void {
    for (let i = 0; i < chunk.length; i++) {
      const ch = chunk[i]!;
      if (this.inQuotes) {
        if (this.quotePending) {
          this.quotePending = false;
          if (ch === '"') {
            this.field += '"';
            continue;
          }
          this.inQuotes = false;
          // fall through: the character after the closing quote
        } else if (ch === '"') {
          this.quotePending = true;
          continue;
        } else {
          if (ch === '\n') this.line++;
          this.field += ch;
          continue;
        }
      }
      if (ch === '"' && this.atFieldStart) {
        this.inQuotes = true;
        this.quoted = true;
        this.atFieldStart = false;
      } else if (ch === ',') {
        this.endField();
      } else if (ch === '\n') {
        this.endRecord();
        this.line++;
        this.recordLine = this.line;
      } else if (ch === '\r') {
        // Part of a CRLF ending; a lone CR outside quotes is dropped too.
      } else {
        if (this.quoted) throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `line ${this.line}: text after a closing quote`);
        this.field += ch;
        this.atFieldStart = false;
      }
    }
  }

  private endField(): void {
    this.record.push({ text: this.field, quoted: this.quoted });
    this.field = '';
    this.quoted = false;
    this.atFieldStart = true;
  }

  private endRecord(): void {
    this.endField();
    const r = this.record;
    this.record = [];
    if (!(r.length === 1 && !r[0]!.quoted && r[0]!.text === '')) this.onRecord(r, this.recordLine);
  }

  end(): void {
    if (this.inQuotes && !this.quotePending) throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `line ${this.line}: a quoted field is not closed`);
    this.inQuotes = false;
    this.quotePending = false;
    if (this.record.length > 0 || this.field !== '' || this.quoted) this.endRecord();
  }
}

const INT = /^-?\d+$/;

function valueOf(spec: ColumnSpec, f: Field): unknown {
  if (!f.quoted && f.text === '') return null;
  // Other writers quote less than this one does; unquoted text is still text.
  if (spec.type === 'string') return f.text;
  if (spec.type === 'int32') return INT.test(f.text) ? Number(f.text) : undefined;
  const x = Number(f.text);
  return Number.isNaN(x) && f.text !== 'NaN' ? undefined : x;
}

/** Reads FILE (and FILE.meta.json when present; without it runs are inferred from the rows). */
export async function readCsv(path: string): Promise<TraceFile> {
  if (!existsSync(path)) throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${path}: no such file`);
  const sidecar = csvSidecarPath(path);
  let document: TraceDocument | null = null;
  if (existsSync(sidecar)) document = parseTraceDocument(parseJsonText(readFileSync(sidecar, 'utf8'), sidecar), sidecar);
  const state: { reader: RowReader | null } = { reader: null };
  const parser = new CsvParser((fields, line) => {
    if (!state.reader) {
      const specs: ColumnSpec[] = fields.map((f) => BASE_COLUMNS.find((b) => b.name === f.text) ?? { name: f.text, type: 'string', nullable: true });
      state.reader = new RowReader(specs, path);
      return;
    }
    const specs = state.reader.specs;
    state.reader.push(fields.map((f, j) => (specs[j] ? valueOf(specs[j], f) : undefined)), line);
  });
  try {
    for await (const chunk of createReadStream(path, { encoding: 'utf8' })) parser.push(chunk as string);
    parser.end();
  } catch (e) {
    if (e instanceof AnalysisError && !e.message.startsWith(path)) throw new AnalysisError(e.code, `${path}: ${e.message}`);
    throw e;
  }
  const reader = state.reader;
  if (!reader) throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${path}: empty file (no header row)`);
  const columns = reader.finish();
  return { document: document ?? { format: 'moe-lab-trace', version: 1, columns: reader.specs.map((s) => s.name), runs: [] }, columns };
}
