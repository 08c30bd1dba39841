/**
 * The output of a resumable trace. Each finished run is committed as its own Parquet file in
 * `OUT.parts/` (written under a temporary name and renamed: a part is whole or absent), and the
 * parts are merged into OUT at the end (again renamed into place). Whenever the process dies:
 *   - a run in progress has no part, so it is run again from the start: no torn rows;
 *   - a run is done iff a part or OUT holds it; merging takes each run id once: no duplicates;
 *   - OUT is replaced only by a complete file; parts are removed only after that. A CSV's sidecar
 *     is a second file, renamed just before the CSV: a kill between the two leaves it naming runs
 *     whose rows never landed, so a run counts as held by OUT only where OUT has its rows.
 * An OUT without MoE Lab's metadata (a copy made by another tool) is refused: what model and
 * parameters its runs had is unknown, so nothing can be added to it.
 * A lock file keeps two traces from writing the same OUT at once.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AnalysisError, AnalysisErrorCode } from './errors.ts';
import { isTempName } from './formats/atomic.ts';
import { csvSidecarPath } from './formats/csv.ts';
import { formatOfPath, readTraceFile, writeTraceFile } from './formats/index.ts';
import { readParquetDocument, writeParquet } from './formats/parquet.ts';
import { runDoc, type RunDoc } from './meta.ts';
import { tracesFromRows } from './rows.ts';
import type { Json, JsonObject, RunTrace } from './trace.ts';
import { processAlive } from '../process-alive.ts';

/** What must match for a resumed trace to continue an earlier one. */
export interface RunConfig {
  readonly modelHash: string | null;
  readonly params: JsonObject;
}

function partName(runId: string): string {
  return `${createHash('sha256').update(runId).digest('hex').slice(0, 24)}.parquet`;
}


function canonical(v: Json | undefined): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  return JSON.stringify(v ?? null);
}

/** The runs an existing OUT holds whole: listed in its metadata, with rows. */
async function heldRuns(path: string): Promise<RunDoc[]> {
  const format = formatOfPath(path);
  if (format === 'parquet') {
    // Metadata and rows are one file, written at once.
    const { document } = await readParquetDocument(path);
    if (!document) throw noMetadata(path, 'has no moe_lab.trace metadata');
    return document.runs;
  }
  if (format === 'csv' && !existsSync(csvSidecarPath(path))) throw noMetadata(path, `has no ${basename(csvSidecarPath(path))} beside it`);
  const f = await readTraceFile(path);
  if (f.document.runs.length === 0 && f.columns.length > 0) throw noMetadata(path, 'has no moe_lab_trace header line');
  const present = new Set(f.columns.run_id);
  return f.document.runs.filter((d) => present.has(d.run_id));
}

function noMetadata(path: string, why: string): AnalysisError {
  return new AnalysisError(
    AnalysisErrorCode.RESUME_MISMATCH,
    `${path} ${why} (a copy made by another tool?): the model and parameters of its runs are unknown, so a trace cannot continue it; write to another file`,
  );
}

export class TraceOutput {
  /** Runs already complete, from OUT and the parts. */
  readonly done = new Map<string, RunDoc>();
  private released = false;

  private constructor(
    readonly path: string,
    readonly partsDir: string,
    private readonly lockPath: string,
  ) {}

  /** Opens OUT for writing: takes the lock, clears leftovers of a killed writer, lists finished runs. */
  static async open(path: string): Promise<TraceOutput> {
    formatOfPath(path);
    const out = new TraceOutput(path, `${path}.parts`, `${path}.lock`);
    out.lock();
    try {
      out.clearTemporaries();
      if (existsSync(path)) for (const d of await heldRuns(path)) out.done.set(d.run_id, d);
      if (existsSync(out.partsDir)) {
        for (const name of readdirSync(out.partsDir).sort()) {
          if (!name.endsWith('.parquet') || isTempName(name)) continue;
          const { document } = await readParquetDocument(join(out.partsDir, name));
          for (const d of document?.runs ?? []) if (!out.done.has(d.run_id)) out.done.set(d.run_id, d);
        }
      }
      return out;
    } catch (e) {
      out.release();
      throw e;
    }
  }

  private lock(): void {
    // An output folder that cannot be made or written is the output's fault: say which, with the system's code.
    const unwritable = (e: unknown) =>
      new AnalysisError(AnalysisErrorCode.BAD_INPUT, `cannot write ${this.path}: ${(e as NodeJS.ErrnoException).code ?? String(e)} (is ${dirname(this.path)} a writable folder?)`);
    try {
      mkdirSync(dirname(this.path), { recursive: true });
    } catch (e) {
      throw unwritable(e);
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.lockPath, 'wx');
        writeSync(fd, String(process.pid));
        closeSync(fd);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw unwritable(e);
        const pid = Number(readFileSync(this.lockPath, 'utf8').trim());
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
          throw new AnalysisError(AnalysisErrorCode.BAD_INPUT, `another trace (pid ${pid}) is writing ${this.path}`);
        }
        // Left by a writer that was killed: take it over.
        rmSync(this.lockPath, { force: true });
      }
    }
    throw new AnalysisError(AnalysisErrorCode.BAD_INPUT, `cannot lock ${this.path}`);
  }

  private clearTemporaries(): void {
    const dir = dirname(this.path);
    const mine = `.${basename(this.path)}`;
    for (const name of readdirSync(dir)) if (isTempName(name) && name.startsWith(mine)) rmSync(join(dir, name), { force: true });
    if (existsSync(this.partsDir)) for (const name of readdirSync(this.partsDir)) if (isTempName(name)) rmSync(join(this.partsDir, name), { force: true });
  }

  /** Refuses to continue a trace made with another model or other parameters. */
  checkCompatible(config: RunConfig): void {
    for (const d of this.done.values()) {
      if (d.model_hash !== config.modelHash) {
        throw new AnalysisError(AnalysisErrorCode.RESUME_MISMATCH, `${this.path} holds runs of model ${d.model_hash ?? '(unknown)'}, not ${config.modelHash ?? '(unknown)'}; write to another file`);
      }
      const keys = new Set([...Object.keys(d.params), ...Object.keys(config.params)]);
      const diff = [...keys].filter((k) => canonical(d.params[k] as Json | undefined) !== canonical(config.params[k]));
      if (diff.length > 0) {
        throw new AnalysisError(AnalysisErrorCode.RESUME_MISMATCH, `${this.path} was traced with other parameters (${diff.join(', ')}); write to another file or use the same options`, {
          previous: Object.fromEntries(diff.map((k) => [k, d.params[k] ?? null])),
          now: Object.fromEntries(diff.map((k) => [k, config.params[k] ?? null])),
        });
      }
    }
  }

  /** Records a finished run; once this returns, the run survives any kill. */
  commit(trace: RunTrace): void {
    mkdirSync(this.partsDir, { recursive: true });
    writeParquet(join(this.partsDir, partName(trace.runId)), [trace]);
    this.done.set(trace.runId, runDoc(trace));
  }

  /**
   * Merges OUT and the parts into OUT, each run once, in `order` (then any others as found).
   * Returns the runs and rows written.
   */
  async finalize(order: readonly string[]): Promise<{ runs: number; rows: number }> {
    if (existsSync(this.path) && !existsSync(this.partsDir)) {
      // Nothing new since OUT was last written.
      const runs = [...this.done.values()];
      const { rows } = formatOfPath(this.path) === 'parquet' ? await readParquetDocument(this.path) : { rows: (await readTraceFile(this.path)).columns.length };
      return { runs: runs.length, rows };
    }
    const sources: string[] = [];
    if (existsSync(this.path)) sources.push(this.path);
    if (existsSync(this.partsDir)) for (const name of readdirSync(this.partsDir).sort()) if (name.endsWith('.parquet') && !isTempName(name)) sources.push(join(this.partsDir, name));
    const byId = new Map<string, RunTrace>();
    for (const src of sources) {
      const f = await readTraceFile(src);
      const present = new Set(f.columns.run_id);
      for (const t of tracesFromRows(f.columns, f.document.runs)) if (present.has(t.runId) && !byId.has(t.runId)) byId.set(t.runId, t);
    }
    const listed = new Set(order);
    const ordered = [...order.filter((id) => byId.has(id)), ...[...byId.keys()].filter((id) => !listed.has(id))].map((id) => byId.get(id)!);
    writeTraceFile(this.path, ordered);
    rmSync(this.partsDir, { recursive: true, force: true });
    return { runs: ordered.length, rows: ordered.reduce((a, t) => a + t.routing.length * t.moeLayers.length * t.k, 0) };
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    rmSync(this.lockPath, { force: true });
  }
}
