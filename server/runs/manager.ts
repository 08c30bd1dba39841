/**
 * Runs: admission (limits), a queue shared fairly across connections (round-robin over the
 * connections that have work waiting), execution on the model's engine worker (up to
 * maxConcurrentRuns at once, which the worker interleaves step by step), the in-memory event log
 * live subscribers read from, and persistence of every event to the run store.
 *
 * The engine never waits for a client: events go into the run's log, and each connection sends
 * from the log at its own pace (see ws/connection.ts for the backpressure policy).
 */
import { randomUUID } from 'node:crypto';
import { EngineError } from '../../engine/errors.ts';
import type { GenerateRequest } from '../../engine/generate/types.ts';
import type { ModelRegistry } from '../models.ts';
import { ProtocolErrorCode, type GenerateParams, type Limits, type RunEvent, type RunStatus } from '../protocol.ts';
import type { RunStore } from '../store/run-store.ts';
import { fromEngineEvent } from './events.ts';
import type { Logger } from '../log.ts';

export class ProtocolError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export class LiveRun {
  readonly events: RunEvent[] = [];
  /** When each event was appended (ms since the epoch, sub-millisecond): event latency is measured from here. */
  readonly appendedAt: number[] = [];
  status: RunStatus = 'queued';
  persisted = 0;
  /** A status update the store has not taken yet (it was busy); written with the next events. */
  pendingStatus: { status: RunStatus; extra: StatusExtra } | null = null;
  /** The store refused the last write; logged once until it takes one again. */
  storeFailing = false;
  finishedAt = 0;
  readonly controller = new AbortController();
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly id: string,
    readonly owner: string,
    readonly clientRunId: string | null,
    readonly params: GenerateParams,
  ) {}

  append(ev: RunEvent): void {
    this.events.push(ev);
    this.appendedAt.push(performance.timeOrigin + performance.now());
    for (const l of this.listeners) l();
  }

  /** Called whenever events are appended or the status changes. */
  listen(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  notify(): void {
    for (const l of this.listeners) l();
  }

  get finished(): boolean {
    return this.status !== 'queued' && this.status !== 'running';
  }
}

type StatusExtra = Parameters<RunStore['setStatus']>[2];

/** How long a finished run stays in memory before subscribers read it from the store. */
const KEEP_FINISHED_MS = 60_000;
const PERSIST_EVERY_MS = 100;

export class RunManager {
  private readonly live = new Map<string, LiveRun>();
  private readonly queues = new Map<string, LiveRun[]>();
  private rotation: string[] = [];
  private readonly running = new Set<LiveRun>();
  private readonly executions = new Set<Promise<void>>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly store: RunStore,
    private readonly models: ModelRegistry,
    readonly limits: Limits,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => this.housekeeping(), PERSIST_EVERY_MS);
    this.timer.unref();
  }

  get queued(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** Admits a run or throws a ProtocolError with the limit it would break. */
  submit(owner: string, params: GenerateParams, clientRunId: string | null): { run: LiveRun; queuePosition: number } {
    if (this.closed) throw new ProtocolError(ProtocolErrorCode.INTERNAL, 'the server is shutting down');
    if (!this.models.has(params.model)) throw new ProtocolError(ProtocolErrorCode.UNKNOWN_MODEL, `unknown model '${params.model}'`);
    const L = this.limits;
    if ((params.maxNewTokens ?? 0) > L.maxNewTokens) {
      throw new ProtocolError(ProtocolErrorCode.LIMIT_EXCEEDED, `maxNewTokens is limited to ${L.maxNewTokens}`);
    }
    if ((params.promptIds?.length ?? 0) > L.maxPromptTokens || (params.prompt?.length ?? 0) > L.maxPromptTokens * 64) {
      throw new ProtocolError(ProtocolErrorCode.LIMIT_EXCEEDED, `prompts are limited to ${L.maxPromptTokens} tokens`);
    }
    if (this.queued >= L.maxQueue) throw new ProtocolError(ProtocolErrorCode.QUEUE_FULL, `the queue is full (${L.maxQueue} runs)`);
    const active = (this.queues.get(owner)?.length ?? 0) + [...this.running].filter((r) => r.owner === owner).length;
    if (active >= L.maxActiveRunsPerConnection) {
      throw new ProtocolError(ProtocolErrorCode.TOO_MANY_RUNS, `at most ${L.maxActiveRunsPerConnection} active runs per connection`);
    }
    const run = new LiveRun(randomUUID(), owner, clientRunId, params);
    try {
      this.store.create({ id: run.id, clientRunId, modelId: params.model, params });
    } catch (e) {
      // Nothing has started, so nothing is lost: the client hears why and can send it again.
      this.log.warn(`the run store refused a new run (${e instanceof Error ? e.message : String(e)})`);
      throw new ProtocolError(ProtocolErrorCode.INTERNAL, 'the run store is busy; send the run again');
    }
    this.live.set(run.id, run);
    let q = this.queues.get(owner);
    if (!q) {
      q = [];
      this.queues.set(owner, q);
      this.rotation.push(owner);
    }
    q.push(run);
    const position = this.queued;
    queueMicrotask(() => this.pump());
    return { run, queuePosition: position };
  }

  get(runId: string): LiveRun | undefined {
    return this.live.get(runId);
  }

  /** Events from `from` on, from memory when the run is live, else from the store. */
  eventsFrom(runId: string, from: number, max: number): { events: RunEvent[]; status: RunStatus; total: number } | null {
    const run = this.live.get(runId);
    if (run) return { events: run.events.slice(from, from + max), status: run.status, total: run.events.length };
    const rec = this.store.get(runId);
    if (!rec) return null;
    return { events: this.store.events(runId, from, max), status: rec.status, total: rec.eventCount };
  }

  cancel(runId: string): boolean {
    const run = this.live.get(runId);
    if (!run || run.finished) return false;
    if (run.status === 'queued') {
      const q = this.queues.get(run.owner);
      if (q) q.splice(q.indexOf(run), 1);
      this.finish(run, 'cancelled', {
        t: 'done', reason: 'cancelled', promptTokens: 0, generatedTokens: 0, text: null, ttftMs: null, totalMs: 0,
        prefillTokensPerSecond: null, decodeTokensPerSecond: null,
      });
      return true;
    }
    run.controller.abort();
    return true;
  }

  /** Next run to execute: round-robin over connections with queued runs. */
  private next(): LiveRun | null {
    // Each owner is looked at once; owners with nothing queued leave the rotation as they are passed
    // (counting against the shrinking length would skip the owners behind them).
    for (let left = this.rotation.length; left > 0; left--) {
      const owner = this.rotation.shift()!;
      const q = this.queues.get(owner);
      if (q && q.length > 0) {
        this.rotation.push(owner);
        return q.shift()!;
      }
      this.queues.delete(owner);
    }
    return null;
  }

  /** Starts queued runs while fewer than maxConcurrentRuns are running; the engines interleave them. */
  private pump(): void {
    while (!this.closed && this.running.size < this.limits.maxConcurrentRuns) {
      const run = this.next();
      if (!run) return;
      this.running.add(run);
      const execution = this.execute(run).finally(() => {
        this.running.delete(run);
        this.executions.delete(execution);
        this.pump();
      });
      this.executions.add(execution);
    }
  }

  private async execute(run: LiveRun): Promise<void> {
    run.status = 'running';
    this.setStatus(run, 'running');
    try {
      const { engine, info } = await this.models.engine(run.params.model);
      const p = run.params;
      let promptIds = p.promptIds;
      if (!promptIds) {
        promptIds = await engine.encode(p.prompt ?? '');
        if (promptIds.length > this.limits.maxPromptTokens) {
          throw new ProtocolError(ProtocolErrorCode.LIMIT_EXCEEDED, `the prompt has ${promptIds.length} tokens; the limit is ${this.limits.maxPromptTokens}`);
        }
      }
      const request: GenerateRequest = {
        promptIds,
        maxNewTokens: Math.min(p.maxNewTokens ?? 64, this.limits.maxNewTokens),
        ...(p.sampling ? { sampling: p.sampling } : {}),
        ...(p.seed !== undefined ? { seed: p.seed } : {}),
        ...(p.stop ? { stop: p.stop } : {}),
        ...(p.ignoreEos ? { ignoreEos: true } : {}),
        ...(p.interventions ? { interventions: p.interventions } : {}),
      };
      const model = { id: info.id, hash: info.hash, moeLayers: info.moeLayers, numExperts: info.numExperts };
      let done: RunEvent | null = null;
      for await (const ev of engine.generate(request, { signal: run.controller.signal })) {
        const re = fromEngineEvent(ev, model);
        if (!re) continue;
        if (re.t === 'done') done = re;
        else run.append(re);
      }
      this.setStatus(run, 'running', { modelHash: info.hash });
      if (!done || done.t !== 'done') throw new Error('generation ended without a summary');
      this.finish(run, done.reason === 'cancelled' ? 'cancelled' : 'done', done);
    } catch (e) {
      const code = e instanceof EngineError || e instanceof ProtocolError ? e.code : ProtocolErrorCode.INTERNAL;
      const message = e instanceof EngineError || e instanceof ProtocolError ? e.message : 'internal error';
      if (!(e instanceof EngineError || e instanceof ProtocolError)) this.log.error(`run ${run.id} failed`, e);
      this.finish(run, 'failed', { t: 'error', code, message });
    }
  }

  private finish(run: LiveRun, statusIn: RunStatus, last: RunEvent): void {
    // A run stopped by a server shutdown did not fail and was not cancelled by anyone: it was interrupted.
    const status = this.closed && statusIn !== 'done' ? 'interrupted' : statusIn;
    run.append(last);
    run.status = status;
    run.finishedAt = Date.now();
    this.setStatus(run, status, {
      ...(last.t === 'done' ? { summary: last } : {}),
      ...(last.t === 'error' ? { error: { code: last.code, message: last.message } } : {}),
    });
    run.notify();
  }

  /** Records a status with the run's events; the fields of an update the store has not taken yet carry over. */
  private setStatus(run: LiveRun, status: RunStatus, extra: StatusExtra = {}): void {
    run.pendingStatus = { status, extra: { ...run.pendingStatus?.extra, ...extra } };
    this.persist(run);
  }

  /**
   * Writes the run's new events, then its pending status. The database can be busy (another process
   * holding a write lock): then nothing is lost, the run keeps them in memory and the next
   * housekeeping tick tries again. Returns whether the store is up to date.
   */
  private persist(run: LiveRun): boolean {
    try {
      if (run.events.length > run.persisted) {
        this.store.appendEvents(run.id, run.persisted, run.events.slice(run.persisted));
        run.persisted = run.events.length;
      }
      const pending = run.pendingStatus;
      if (pending) {
        this.store.setStatus(run.id, pending.status, pending.extra);
        if (run.pendingStatus === pending) run.pendingStatus = null;
      }
      if (run.storeFailing) this.log.info(`run ${run.id}: stored again`);
      run.storeFailing = false;
      return true;
    } catch (e) {
      if (!run.storeFailing) this.log.warn(`run ${run.id}: the run store refused a write (${e instanceof Error ? e.message : String(e)}); keeping its events in memory and retrying`);
      run.storeFailing = true;
      return false;
    }
  }

  private housekeeping(): void {
    const now = Date.now();
    for (const run of this.live.values()) {
      const stored = this.persist(run);
      if (stored && run.finished && now - run.finishedAt > KEEP_FINISHED_MS) this.live.delete(run.id);
    }
  }

  /** Stops every run, persists what streamed, and marks them interrupted. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    for (const run of this.live.values()) {
      if (run.finished) continue;
      run.controller.abort();
      if (run.status === 'queued') this.finish(run, 'interrupted', { t: 'error', code: 'RUN_INTERRUPTED', message: 'the server stopped' });
    }
    await Promise.allSettled([...this.executions]);
    for (const run of this.live.values()) {
      if (!this.persist(run)) this.log.error(`run ${run.id}: ${run.events.length - run.persisted} event(s) could not be stored before the server stopped`);
    }
  }
}
