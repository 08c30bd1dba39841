/**
 * Durable run store: every run's request, status, summary and full event log in SQLite, under the
 * data directory. Events are appended in transactions as they stream; a run that was queued or
 * running when the process stopped is marked `interrupted` at the next start, never lost.
 *
 * What is read back is parsed against the protocol's schemas, as anything from disk is: a row that
 * does not parse (a damaged or hand-edited file) fails that run's read with STORE_BAD_ROW, and is
 * left out of listings, rather than reaching a client as something it is not.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { describeIssue, generateParamsSchema, runEventSchema, runStatusSchema, type GenerateParams, type RunEvent, type RunStatus } from '../protocol.ts';
import { lockDataDir, type DataDirLock } from './data-lock.ts';

export interface RunRecord {
  readonly id: string;
  readonly clientRunId: string | null;
  readonly modelId: string;
  readonly modelHash: string | null;
  readonly params: GenerateParams;
  readonly status: RunStatus;
  readonly createdAt: string;
  readonly finishedAt: string | null;
  /** The `done` event, once there is one. */
  readonly summary: Extract<RunEvent, { t: 'done' }> | null;
  readonly error: { code: string; message: string } | null;
  readonly eventCount: number;
}

/** A stored row that does not parse. */
export class RunStoreError extends Error {
  readonly code = 'STORE_BAD_ROW';
}

const runRowSchema = z.object({
  id: z.string(),
  client_run_id: z.string().nullable(),
  model_id: z.string(),
  model_hash: z.string().nullable(),
  params: z.string(),
  status: runStatusSchema,
  created_at: z.string(),
  finished_at: z.string().nullable(),
  summary: z.string().nullable(),
  error: z.string().nullable(),
  event_count: z.number().int().nonnegative(),
});
const storedErrorSchema = z.object({ code: z.string(), message: z.string() });
const eventRowSchema = z.object({ seq: z.number(), event: z.string() });

/** `text` as JSON checked against `schema`, or RunStoreError naming `what`. */
function parseStored<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new RunStoreError(`${what} is not JSON`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new RunStoreError(`${what} does not parse: ${describeIssue(r.error)}`);
  return r.data;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY,
  client_run_id TEXT,
  model_id TEXT NOT NULL,
  model_hash TEXT,
  params TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  finished_at TEXT,
  summary TEXT,
  error TEXT,
  event_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS run_events (
  run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  event TEXT NOT NULL,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
`;

export class RunStore {
  private db: Database.Database;

  private readonly lock: DataDirLock;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.lock = lockDataDir(dataDir);
    // Wait at most 50 ms for a lock another process holds on the database (a reader's script, say)
    // rather than the default 5 s, which would stall every stream; the run manager retries.
    try {
      this.db = new Database(join(dataDir, 'runs.sqlite'), { timeout: 50 });
    } catch (e) {
      this.lock.release();
      throw e;
    }
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA);
  }

  /** Marks runs left queued or running by a previous process as interrupted; returns how many. */
  markInterrupted(): number {
    return this.db
      .prepare(`UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status IN ('queued', 'running')`)
      .run(new Date().toISOString()).changes;
  }

  create(r: { id: string; clientRunId: string | null; modelId: string; params: GenerateParams }): void {
    this.db
      .prepare(`INSERT INTO runs (id, client_run_id, model_id, params, status, created_at) VALUES (?, ?, ?, ?, 'queued', ?)`)
      .run(r.id, r.clientRunId, r.modelId, JSON.stringify(r.params), new Date().toISOString());
  }

  setStatus(id: string, status: RunStatus, extra: { modelHash?: string; summary?: RunEvent; error?: { code: string; message: string } } = {}): void {
    const finished = status === 'queued' || status === 'running' ? null : new Date().toISOString();
    this.db
      .prepare(
        `UPDATE runs SET status = ?, finished_at = COALESCE(?, finished_at), model_hash = COALESCE(?, model_hash),
         summary = COALESCE(?, summary), error = COALESCE(?, error) WHERE id = ?`,
      )
      .run(status, finished, extra.modelHash ?? null, extra.summary ? JSON.stringify(extra.summary) : null, extra.error ? JSON.stringify(extra.error) : null, id);
  }

  /** Appends events seq = from, from+1, … in one transaction. */
  appendEvents(id: string, from: number, events: readonly RunEvent[]): void {
    if (events.length === 0) return;
    const insert = this.db.prepare(`INSERT INTO run_events (run_id, seq, event) VALUES (?, ?, ?)`);
    const count = this.db.prepare(`UPDATE runs SET event_count = ? WHERE id = ?`);
    this.db.transaction(() => {
      events.forEach((e, i) => insert.run(id, from + i, JSON.stringify(e)));
      count.run(from + events.length, id);
    })();
  }

  get(id: string): RunRecord | null {
    const row: unknown = this.db.prepare(`SELECT * FROM runs WHERE id = ?`).get(id);
    return row === undefined ? null : toRecord(row);
  }

  list(opts: { limit?: number; before?: string } = {}): RunRecord[] {
    const limit = Math.min(Math.max(opts.limit ?? 100, 1), 1000);
    const rows: unknown[] = opts.before
      ? this.db.prepare(`SELECT * FROM runs WHERE created_at < ? ORDER BY created_at DESC LIMIT ?`).all(opts.before, limit)
      : this.db.prepare(`SELECT * FROM runs ORDER BY created_at DESC LIMIT ?`).all(limit);
    // One damaged row must not hide every other run; reading it alone reports it.
    return rows.flatMap((row) => {
      try {
        return [toRecord(row)];
      } catch (e) {
        if (e instanceof RunStoreError) return [];
        throw e;
      }
    });
  }

  events(id: string, from = 0, limit = 1_000_000): RunEvent[] {
    const rows = this.db.prepare(`SELECT seq, event FROM run_events WHERE run_id = ? AND seq >= ? ORDER BY seq LIMIT ?`).all(id, from, limit);
    return rows.map((row) => {
      const r = eventRowSchema.safeParse(row);
      if (!r.success) throw new RunStoreError(`run ${id}: an event row does not parse`);
      return parseStored(runEventSchema, r.data.event, `run ${id} event ${r.data.seq}`);
    });
  }

  delete(id: string): boolean {
    return this.db.prepare(`DELETE FROM runs WHERE id = ?`).run(id).changes > 0;
  }

  close(): void {
    this.db.close();
    this.lock.release();
  }
}

function toRecord(row: unknown): RunRecord {
  const parsed = runRowSchema.safeParse(row);
  if (!parsed.success) throw new RunStoreError(`a run row does not parse: ${describeIssue(parsed.error)}`);
  const r = parsed.data;
  const summary = r.summary === null ? null : parseStored(runEventSchema, r.summary, `run ${r.id} summary`);
  if (summary !== null && summary.t !== 'done') throw new RunStoreError(`run ${r.id} summary is a '${summary.t}' event, not 'done'`);
  return {
    id: r.id,
    clientRunId: r.client_run_id,
    modelId: r.model_id,
    modelHash: r.model_hash,
    params: parseStored(generateParamsSchema, r.params, `run ${r.id} parameters`),
    status: r.status,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    summary,
    error: r.error === null ? null : parseStored(storedErrorSchema, r.error, `run ${r.id} error`),
    eventCount: r.event_count,
  };
}
