/**
 * Parquet: the trace columns with their declared types (nullable columns OPTIONAL, the rest
 * REQUIRED), and the run metadata document as JSON under the key-value metadata key
 * `moe_lab.trace`. Written with hyparquet-writer, read back with hyparquet.
 */
import { rmSync } from 'node:fs';
import { asyncBufferFromFile, parquetMetadata, parquetMetadataAsync, parquetRead, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { ByteWriter, fileWriter, ParquetWriter, type ColumnSource, type SchemaElement, type Writer } from 'hyparquet-writer';
import { AnalysisError, AnalysisErrorCode } from '../errors.ts';
import { parseJsonText, parseTraceDocument, PARQUET_META_KEY, runDoc, traceDocument, type RunDoc, type TraceDocument } from '../meta.ts';
import { BASE_COLUMNS, columnList, emptyColumns, fieldNames, isPhase, rowCount, traceRows, valueFits, type BaseColumnName, type ColumnSpec, type TraceColumns } from '../rows.ts';
import type { RunTrace } from '../trace.ts';
import { commitTemp, tempPath } from './atomic.ts';

const CREATED_BY = 'moe-lab trace writer';
/** Rows per row group: big enough for fast scans, small enough to build in memory. */
export const DEFAULT_ROW_GROUP_ROWS = 256 * 1024;

const PARQUET_TYPES = { string: 'STRING', int32: 'INT32', float32: 'FLOAT' } as const;

function schemaFor(specs: readonly ColumnSpec[]): SchemaElement[] {
  return [
    { name: 'root', num_children: specs.length },
    ...specs.map((s): SchemaElement => ({
      name: s.name,
      repetition_type: s.nullable ? 'OPTIONAL' : 'REQUIRED',
      ...(s.type === 'string' ? { type: 'BYTE_ARRAY', converted_type: 'UTF8' } : { type: PARQUET_TYPES[s.type] }),
    })),
  ];
}

function columnSources(c: TraceColumns): ColumnSource[] {
  // The writer takes plain arrays for OPTIONAL columns (nulls) and typed arrays for the rest.
  // Float columns are near-random bits: byte-stream-split compresses them, a dictionary does
  // not. Min/max statistics of free text and of weights cost more to write than they save a
  // reader; those of ids and indices (layer, expert, …) stay, for predicate pushdown.
  return columnList(c).map(({ spec, values }) => ({
    name: spec.name,
    data: values as ColumnSource['data'],
    ...(spec.type === 'float32' ? { encoding: 'BYTE_STREAM_SPLIT' as const, statistics: false } : {}),
    ...(spec.name === 'token_text' ? { statistics: false } : {}),
  }));
}

function specsFor(fields: readonly string[]): ColumnSpec[] {
  return [...BASE_COLUMNS, ...fields.map((name) => ({ name, type: 'string' as const, nullable: true }))];
}

/**
 * Encodes runs as Parquet into `writer`: runs are batched into row groups of about
 * `rowGroupRows` rows, and the metadata document goes in the footer, so rows can be written
 * before every run is known.
 */
class ParquetTraceEncoder {
  private readonly pq: ParquetWriter;
  private readonly runs: RunDoc[] = [];
  private pending: RunTrace[] = [];
  private pendingRows = 0;
  rows = 0;

  constructor(
    writer: Writer,
    private readonly fields: readonly string[],
    private readonly rowGroupRows = DEFAULT_ROW_GROUP_ROWS,
  ) {
    this.pq = new ParquetWriter({ writer, schema: schemaFor(specsFor(fields)), createdBy: CREATED_BY });
  }

  add(traces: readonly RunTrace[]): void {
    for (const t of traces) {
      const extra = Object.keys(t.meta.fields).filter((f) => !this.fields.includes(f));
      if (extra.length > 0) throw new AnalysisError(AnalysisErrorCode.BAD_INPUT, `field column(s) ${extra.join(', ')} were not declared when the file was opened`);
      this.runs.push(runDoc(t));
      this.pending.push(t);
      this.pendingRows += rowCount(t);
      if (this.pendingRows >= this.rowGroupRows) this.flush();
    }
  }

  private flush(): void {
    if (this.pendingRows > 0) {
      const c = traceRows(this.pending, this.fields);
      this.pq.write({ columnData: columnSources(c), rowGroupSize: this.rowGroupRows });
      this.rows += c.length;
    }
    this.pending = [];
    this.pendingRows = 0;
  }

  finish(): void {
    this.flush();
    this.pq.kvMetadata = [{ key: PARQUET_META_KEY, value: JSON.stringify(traceDocument(this.runs, specsFor(this.fields).map((s) => s.name))) }];
    this.pq.finish();
  }
}

/** Writes a Parquet trace file incrementally; the file appears under its name only on `finish`. */
export class ParquetTraceWriter {
  private readonly tmp: string;
  private readonly encoder: ParquetTraceEncoder;

  constructor(
    private readonly path: string,
    fields: readonly string[],
    rowGroupRows = DEFAULT_ROW_GROUP_ROWS,
  ) {
    this.tmp = tempPath(path);
    this.encoder = new ParquetTraceEncoder(fileWriter(this.tmp), fields, rowGroupRows);
  }

  get rows(): number {
    return this.encoder.rows;
  }

  add(traces: readonly RunTrace[]): void {
    this.encoder.add(traces);
  }

  finish(): void {
    this.encoder.finish();
    commitTemp(this.tmp, this.path);
  }

  abort(): void {
    rmSync(this.tmp, { force: true });
  }
}

/**
 * A Parquet trace produced in pieces, for a download: `take` hands over the bytes encoded so far,
 * so an export holds a row group at a time, never the file. (The writer keeps counting offsets
 * across takes, as it does when it flushes to a file.)
 */
export class ParquetTraceStream {
  private readonly out = new ByteWriter();
  private readonly encoder: ParquetTraceEncoder;

  constructor(fields: readonly string[], rowGroupRows = DEFAULT_ROW_GROUP_ROWS) {
    this.encoder = new ParquetTraceEncoder(this.out, fields, rowGroupRows);
  }

  add(traces: readonly RunTrace[]): void {
    this.encoder.add(traces);
  }

  /** The bytes encoded since the last take (often none: rows wait for a whole row group). */
  take(): Uint8Array {
    const bytes = this.out.getBytes().slice();
    this.out.index = 0;
    return bytes;
  }

  /** Ends the file: the last row group and the footer. */
  finish(): Uint8Array {
    this.encoder.finish();
    return this.take();
  }
}

/** Writes runs to a Parquet file (atomically). */
export function writeParquet(path: string, traces: readonly RunTrace[], opts: { rowGroupRows?: number } = {}): void {
  const w = new ParquetTraceWriter(path, fieldNames(traces.map((t) => t.meta.fields)), opts.rowGroupRows);
  try {
    w.add(traces);
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
}

/** Runs as a Parquet file in memory. */
export function parquetBytes(traces: readonly RunTrace[], opts: { rowGroupRows?: number } = {}): Uint8Array {
  const s = new ParquetTraceStream(fieldNames(traces.map((t) => t.meta.fields)), opts.rowGroupRows);
  s.add(traces);
  const head = s.take();
  const tail = s.finish();
  const out = new Uint8Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}

// ---- reading ---------------------------------------------------------------------------------

export interface TraceFile {
  readonly document: TraceDocument;
  readonly columns: TraceColumns;
}

function badFile(where: string, message: string): AnalysisError {
  return new AnalysisError(AnalysisErrorCode.BAD_FILE, `${where}: ${message}`);
}

function documentOf(meta: FileMetaData, where: string): TraceDocument | null {
  const kv = meta.key_value_metadata?.find((m) => m.key === PARQUET_META_KEY);
  if (!kv?.value) return null;
  return parseTraceDocument(parseJsonText(kv.value, where), where);
}

async function openFile(source: string | Uint8Array): Promise<{ file: AsyncBuffer; meta: FileMetaData; where: string }> {
  const where = typeof source === 'string' ? source : 'parquet bytes';
  try {
    if (typeof source === 'string') {
      const file = await asyncBufferFromFile(source);
      return { file, meta: await parquetMetadataAsync(file), where };
    }
    const ab = source.buffer.slice(source.byteOffset, source.byteOffset + source.byteLength) as ArrayBuffer;
    return { file: ab, meta: parquetMetadata(ab), where };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw badFile(where, 'no such file');
    throw badFile(where, `not a readable Parquet file (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** Only the metadata document (and row count): cheap, for resuming and listing. */
export async function readParquetDocument(source: string | Uint8Array): Promise<{ document: TraceDocument | null; rows: number }> {
  const { meta, where } = await openFile(source);
  return { document: documentOf(meta, where), rows: Number(meta.num_rows) };
}

/**
 * Reads a trace file written by MoE Lab (or any Parquet file with the documented columns; its
 * metadata document is then absent and runs are inferred from the rows).
 */
export async function readParquet(source: string | Uint8Array): Promise<TraceFile> {
  const { file, meta, where } = await openFile(source);
  const document = documentOf(meta, where);
  const n = Number(meta.num_rows);
  const present = new Set(meta.schema.slice(1).map((s) => s.name));
  for (const spec of BASE_COLUMNS) if (!present.has(spec.name)) throw badFile(where, `column '${spec.name}' is missing`);
  const fields = meta.schema.slice(1).map((s) => s.name).filter((name) => !BASE_COLUMNS.some((b) => b.name === name));
  const fieldTypes = meta.schema.slice(1).filter((s) => fields.includes(s.name));
  for (const f of fieldTypes) if (f.type !== 'BYTE_ARRAY') throw badFile(where, `extra column '${f.name}' is not a string column`);

  const raw = new Map<string, unknown[]>();
  for (const name of present) raw.set(name, new Array<unknown>(n));
  try {
    await parquetRead({
      file,
      metadata: meta,
      onChunk: (chunk) => {
        const dst = raw.get(chunk.columnName);
        if (!dst) return;
        const data = chunk.columnData as ArrayLike<unknown>;
        for (let i = 0; i < data.length; i++) dst[chunk.rowStart + i] = data[i];
      },
    });
  } catch (e) {
    throw badFile(where, `cannot decode (${e instanceof Error ? e.message : String(e)})`);
  }

  const c = emptyColumns(n, fields);
  for (const spec of BASE_COLUMNS) {
    const src = raw.get(spec.name)!;
    const dst = c[spec.name as BaseColumnName] as unknown as { [i: number]: unknown };
    for (let i = 0; i < n; i++) {
      const v = src[i] ?? null;
      if (!valueFits(spec, v)) throw badFile(where, `row ${i}: column '${spec.name}' holds ${JSON.stringify(v)}, expected ${spec.nullable ? 'null or ' : ''}${spec.type}`);
      dst[i] = v;
    }
  }
  for (let i = 0; i < n; i++) {
    if (!isPhase(c.phase[i])) throw badFile(where, `row ${i}: phase '${String(c.phase[i])}' is neither prefill nor decode`);
  }
  for (const f of fields) {
    const src = raw.get(f)!;
    const dst = c.fields.get(f)!;
    for (let i = 0; i < n; i++) {
      const v = src[i] ?? null;
      if (v !== null && typeof v !== 'string') throw badFile(where, `row ${i}: column '${f}' is not a string`);
      dst[i] = v;
    }
  }
  return { document: document ?? { format: 'moe-lab-trace', version: 1, columns: [...present], runs: [] }, columns: c };
}
