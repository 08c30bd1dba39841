/**
 * Runs the page knows about, shared by every cell and view: their events as they stream, loaded
 * from the REST API when a saved notebook is opened, and resumed from the server when the run is
 * still going.
 */
import { useSyncExternalStore } from 'react';
import { runDetailSchema, type RunEvent } from '../server/protocol';
import type { z } from 'zod';
import { apiJson } from './api';
import type { LabClient } from './lab-client';

export interface RunState {
  readonly events: RunEvent[];
  readonly version: number;
  readonly status: 'loading' | 'streaming' | 'done' | 'failed' | 'missing';
}

const EMPTY: RunState = { events: [], version: 0, status: 'loading' };

export class RunCache {
  private states = new Map<string, RunState>();
  private listeners = new Map<string, Set<() => void>>();
  private loading = new Set<string>();

  get(runId: string): RunState {
    return this.states.get(runId) ?? EMPTY;
  }

  private set(runId: string, s: RunState): void {
    this.states.set(runId, s);
    this.listeners.get(runId)?.forEach((l) => l());
  }

  /**
   * Adds streamed events. The cache owns each run's event list and grows it in place (copying it
   * per append made a long run quadratic: 20k appends took 2.3 s); readers see the new `version`
   * and consume past what they had (useRunData), so they never need a new array.
   */
  append(runId: string, events: RunEvent[]): void {
    const prev = this.states.get(runId);
    const all = prev && prev !== EMPTY ? prev.events : [];
    for (const e of events) all.push(e);
    const last = events[events.length - 1];
    const status = last?.t === 'done' ? 'done' : last?.t === 'error' ? 'failed' : 'streaming';
    this.set(runId, { events: all, version: (prev?.version ?? 0) + 1, status });
  }

  start(runId: string): void {
    this.set(runId, { events: [], version: 0, status: 'streaming' });
  }

  subscribe(runId: string, fn: () => void): () => void {
    let set = this.listeners.get(runId);
    if (!set) this.listeners.set(runId, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Loads a run saved in a notebook; resumes its stream if it is still running. */
  async ensure(runId: string, client: LabClient | null): Promise<void> {
    if (this.states.has(runId) || this.loading.has(runId)) return;
    this.loading.add(runId);
    try {
      const res = await fetch(`/api/runs/${encodeURIComponent(runId)}`);
      if (!res.ok) return this.set(runId, { events: [], version: 1, status: 'missing' });
      let body: z.infer<typeof runDetailSchema>;
      try {
        body = await apiJson(res, runDetailSchema);
      } catch (e) {
        // An answer this page cannot read (CLIENT_BAD_MESSAGE): the run cannot be shown.
        console.error(e instanceof Error ? e.message : String(e));
        return this.set(runId, { events: [], version: 1, status: 'failed' });
      }
      const live = body.run.status === 'running' || body.run.status === 'queued';
      this.set(runId, { events: body.events, version: 1, status: live ? 'streaming' : body.run.status === 'failed' ? 'failed' : 'done' });
      if (live && client) client.attach(runId, body.events.length, { onEvents: (evs) => this.append(runId, evs) });
    } finally {
      this.loading.delete(runId);
    }
  }
}

export function useRun(cache: RunCache, runId: string | null): RunState {
  return useSyncExternalStore(
    (fn) => (runId ? cache.subscribe(runId, fn) : () => {}),
    () => (runId ? cache.get(runId) : EMPTY),
    () => EMPTY,
  );
}
