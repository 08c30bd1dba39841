/**
 * The REST API (all under /api, all authenticated by the caller):
 *
 *   GET    /api/models                      models and whether they are loaded
 *   GET    /api/runs?limit=&before=         run summaries, newest first
 *   GET    /api/runs/:id                    one run: request, status, summary and every event
 *   DELETE /api/runs/:id
 *   GET    /api/runs/:id/trace?format=      one run's routing trace (parquet | jsonl | csv)
 *   GET    /api/traces?format=&runs=a,b     several runs' traces (all finished runs without `runs`);
 *                                           `&part=sidecar` gives a CSV export's run metadata
 *   GET    /api/analysis?runs=a,b&by=FIELD  routing metrics over runs (load, entropy, co-activation, …)
 *   GET    /api/notebooks                   every notebook under the notebook root
 *   GET    /api/notebooks/<path>            { entry, content }
 *   POST   /api/notebooks/<path>            create (body: the notebook JSON)
 *   PUT    /api/notebooks/<path>            save atomically (header x-expected-modified: optional)
 *   PATCH  /api/notebooks/<path>            rename (body: {"to": "<new path>"})
 *   DELETE /api/notebooks/<path>
 *
 * Notebook paths are passed to the store exactly as they arrived (still percent-encoded); the
 * store decodes once and refuses anything that would leave the notebook root.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { traceFromRunEvents } from '../engine/analysis/events.ts';
import { exportSidecar, exportStream, loadSource, type TraceFormat, type TraceSource } from '../engine/analysis/formats/index.ts';
import { paramsDoc } from '../engine/analysis/meta.ts';
import { analyzeTraces } from '../engine/analysis/report.ts';
import type { Json, RunTrace } from '../engine/analysis/trace.ts';
import { AnalysisError } from '../engine/analysis/errors.ts';
import type { Logger } from './log.ts';
import type { ModelRegistry } from './models.ts';
import { MAX_NOTEBOOK_BYTES, NotebookError, type NotebookStore } from './notebooks/store.ts';
import type { RunManager } from './runs/manager.ts';
import type { RunEvent } from './protocol.ts';
import { RunStoreError, type RunStore } from './store/run-store.ts';

export interface ApiContext {
  readonly runs: RunManager;
  readonly store: RunStore;
  readonly models: ModelRegistry;
  readonly notebooks: NotebookStore;
  readonly log: Logger;
}

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, 'API_TOO_LARGE', `request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const formatSchema = z.enum(['parquet', 'jsonl', 'csv']);

/** What reading runs back needs: the store, and the live logs of runs still going. */
export interface RunReader {
  readonly store: Pick<RunStore, 'get' | 'events'>;
  readonly runs: Pick<RunManager, 'eventsFrom'>;
}

/** Every event of a run: the live log while it runs (the store may lag by a flush), else the store. */
function allEvents(ctx: RunReader, id: string): RunEvent[] {
  return ctx.runs.eventsFrom(id, 0, Number.MAX_SAFE_INTEGER)?.events ?? ctx.store.events(id);
}

/** A run as a routing trace from its events, or null for a run that never started. */
function traceOfEvents(ctx: RunReader, id: string, events: readonly RunEvent[]): RunTrace | null {
  const run = ctx.store.get(id);
  if (!run) throw new HttpError(404, 'API_NOT_FOUND', `no run ${id}`);
  const started = events.find((e) => e.t === 'started');
  if (!started) return null;
  const p = run.params;
  return traceFromRunEvents(id, events, {
    prompt: p.prompt ?? null,
    // What the engine ran: the capped token budget and the drawn seed come from the run's start.
    params: paramsDoc({
      maxNewTokens: started.maxNewTokens,
      temperature: p.sampling?.temperature,
      topP: p.sampling?.topP,
      topKSampling: p.sampling?.topK,
      seed: started.seed,
      ignoreEos: p.ignoreEos,
      stop: p.stop,
      interventions: p.interventions,
    }),
    interventions: (p.interventions ?? null) as Json | null,
  });
}

/**
 * Runs for an export, loaded one at a time as the body is written. Unknown ids are refused here,
 * before anything is sent; server runs carry no field columns. A run read again (JSONL reads each
 * twice: header, then rows) is cut to the events its first read saw, so a live run that grew in
 * between still gives a header and rows that agree.
 */
export function traceSource(ctx: RunReader, ids: readonly string[]): TraceSource {
  for (const id of ids) if (!ctx.store.get(id)) throw new HttpError(404, 'API_NOT_FOUND', `no run ${id}`);
  const seen = new Map<number, number>();
  const load = (i: number): RunTrace | null => {
    const id = ids[i]!;
    let events = allEvents(ctx, id);
    const first = seen.get(i);
    if (first === undefined) seen.set(i, events.length);
    else events = events.slice(0, first);
    return traceOfEvents(ctx, id, events);
  };
  return { count: ids.length, load, fields: [] };
}

function runIds(ctx: ApiContext, query: URLSearchParams): string[] {
  const list = query.get('runs');
  if (list) return list.split(',').filter((x) => /^[0-9a-f-]{36}$/.test(x));
  return ctx.store.list({ limit: 1000 }).filter((r) => r.status !== 'queued' && r.status !== 'running').map((r) => r.id);
}

/** Resolves when the response can take more, or has closed. */
function drained(res: ServerResponse): Promise<void> {
  if (res.destroyed || res.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.on('drain', done).on('close', done);
  });
}

/**
 * Streams an export a run at a time, waiting for the socket to drain, so exporting a thousand runs
 * holds one run in memory and other requests and live runs are served meanwhile. A client that
 * leaves stops it: no further run is read. The first chunk is made before the status line (for
 * JSONL and Parquet that reads the first run, for JSONL every run), so a failure there is still a
 * clean error; once the body has started a failure (a run found damaged) can only cut the response
 * short: the socket is destroyed, so the download fails instead of ending as a valid file with
 * runs missing.
 */
async function sendTrace(ctx: ApiContext, res: ServerResponse, source: TraceSource, format: TraceFormat, name: string, part: string | null): Promise<void> {
  const gone = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) gone.abort();
  };
  res.once('close', onClose);
  let started = false;
  try {
    if (part === 'sidecar') {
      if (format !== 'csv') return json(res, 200, null);
      const text = await exportSidecar(source, gone.signal);
      if (gone.signal.aborted) return;
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(text);
      return;
    }
    const body = exportStream(source, format, gone.signal);
    const chunks = body.chunks[Symbol.asyncIterator]();
    let next = await chunks.next();
    if (gone.signal.aborted) return;
    res.writeHead(200, { 'Content-Type': body.contentType, 'Content-Disposition': `attachment; filename="${name}${body.extension}"`, 'Cache-Control': 'no-store' });
    started = true;
    while (!next.done) {
      if (gone.signal.aborted) {
        await chunks.return?.(undefined);
        return;
      }
      if (!res.write(next.value)) await drained(res);
      next = await chunks.next();
    }
    res.end();
  } catch (e) {
    if (!started) throw e;
    ctx.log.error('trace export cut short', e);
    res.destroy();
  } finally {
    res.off('close', onClose);
  }
}

const renameSchema = z.object({ to: z.string().min(1).max(1024) }).strict();
const NOTEBOOKS = '/api/notebooks';

export async function handleApi(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  try {
    await route(ctx, req, res, path);
  } catch (e) {
    if (e instanceof HttpError) return json(res, e.status, { error: { code: e.code, message: e.message } });
    if (e instanceof NotebookError) return json(res, e.status, { error: { code: e.code, message: e.message } });
    if (e instanceof AnalysisError) return json(res, 400, { error: { code: e.code, message: e.message } });
    if (e instanceof RunStoreError) return json(res, 500, { error: { code: e.code, message: e.message } });
    throw e;
  }
}

async function route(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const method = req.method ?? 'GET';
  const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');

  if (path === '/api/models' && method === 'GET') return json(res, 200, { models: ctx.models.summaries() });

  if (path === '/api/runs' && method === 'GET') {
    const limit = Number(query.get('limit') ?? 100);
    if (!Number.isInteger(limit) || limit < 1) throw new HttpError(400, 'API_BAD_REQUEST', `limit must be a whole number of at least 1 (at most 1,000 are listed), got '${query.get('limit')}'`);
    const before = query.get('before') ?? undefined;
    return json(res, 200, { runs: ctx.store.list({ limit, ...(before ? { before } : {}) }) });
  }
  const traceMatch = /^\/api\/runs\/([0-9a-f-]{36})\/trace$/.exec(path);
  if (traceMatch && method === 'GET') {
    const format = formatSchema.safeParse(query.get('format') ?? 'parquet');
    if (!format.success) throw new HttpError(400, 'API_BAD_REQUEST', 'format must be parquet, jsonl or csv');
    return sendTrace(ctx, res, traceSource(ctx, [traceMatch[1]!]), format.data, `run-${traceMatch[1]!.slice(0, 8)}`, query.get('part'));
  }
  if (path === '/api/traces' && method === 'GET') {
    const format = formatSchema.safeParse(query.get('format') ?? 'parquet');
    if (!format.success) throw new HttpError(400, 'API_BAD_REQUEST', 'format must be parquet, jsonl or csv');
    return sendTrace(ctx, res, traceSource(ctx, runIds(ctx, query)), format.data, 'moe-lab-traces', query.get('part'));
  }
  if (path === '/api/analysis' && method === 'GET') {
    // Read as an export reads them, so analysing a thousand runs does not stall live streams.
    const traces = await loadSource(traceSource(ctx, runIds(ctx, query)));
    if (traces.length === 0) throw new HttpError(400, 'API_BAD_REQUEST', 'no runs with routing to analyse');
    const by = query.get('by');
    return json(res, 200, analyzeTraces(traces, by ? { by } : {}));
  }
  const runMatch = /^\/api\/runs\/([0-9a-f-]{36})$/.exec(path);
  if (runMatch) {
    const id = runMatch[1]!;
    if (method === 'GET') {
      const run = ctx.store.get(id);
      if (!run) throw new HttpError(404, 'API_NOT_FOUND', 'no such run');
      return json(res, 200, { run, events: allEvents(ctx, id) });
    }
    if (method === 'DELETE') {
      const live = ctx.runs.get(id);
      if (live && !live.finished) throw new HttpError(409, 'API_RUN_ACTIVE', 'cancel the run before deleting it');
      if (!ctx.store.delete(id)) throw new HttpError(404, 'API_NOT_FOUND', 'no such run');
      return json(res, 200, { deleted: id });
    }
  }

  if (path === NOTEBOOKS && method === 'GET') return json(res, 200, { notebooks: await ctx.notebooks.list() });
  if (path.startsWith(`${NOTEBOOKS}/`)) {
    // The raw, still-encoded remainder of the request path.
    const raw = (req.url ?? '').split('?')[0]!.slice(NOTEBOOKS.length + 1);
    switch (method) {
      case 'GET':
        return json(res, 200, await ctx.notebooks.read(raw));
      case 'POST':
        return json(res, 201, { entry: await ctx.notebooks.create(raw, await readBody(req, MAX_NOTEBOOK_BYTES)) });
      case 'PUT': {
        const expected = req.headers['x-expected-modified'];
        const content = await readBody(req, MAX_NOTEBOOK_BYTES);
        return json(res, 200, { entry: await ctx.notebooks.save(raw, content, typeof expected === 'string' ? { expectedModified: expected } : {}) });
      }
      case 'PATCH': {
        // Read outside the JSON try: an oversize body is 413, not bad JSON.
        const text = await readBody(req, 64 * 1024);
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          throw new HttpError(400, 'API_BAD_JSON', 'body is not valid JSON');
        }
        const r = renameSchema.safeParse(body);
        if (!r.success) throw new HttpError(400, 'API_BAD_REQUEST', 'body must be {"to": "<path>"}');
        return json(res, 200, { entry: await ctx.notebooks.rename(raw, r.data.to) });
      }
      case 'DELETE':
        await ctx.notebooks.delete(raw);
        return json(res, 200, { deleted: raw });
    }
  }
  throw new HttpError(404, 'API_NOT_FOUND', `no route for ${method} ${path}`);
}
