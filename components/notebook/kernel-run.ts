/** Runs as notebook code sees them (`lab.generate`, `lab.runs`): plain objects built from a run's events. */
import type { RunEvent } from '../../server/protocol';

/** A finished run as `lab.generate` returns it to notebook code. */
export function runForKernel(runId: string, model: string, events: RunEvent[]) {
  const tokens = events.flatMap((e) => (e.t === 'token' ? [{ index: e.index, id: e.id, text: e.text, phase: e.phase }] : []));
  const started = events.find((e) => e.t === 'started');
  const layers = started && started.t === 'started' ? started.moeLayers : [];
  const routing = events.flatMap((e) => {
    if (e.t !== 'routing') return [];
    const k = e.ids.length / Math.max(1, e.h.length);
    // unbiasedIds: what a router with a load-balancing bias (DeepSeek-V3) would have chosen without it.
    return [{ index: e.index, phase: e.phase, layers: e.h.map((h, m) => ({ layer: layers[m] ?? m, ids: e.ids.slice(m * k, (m + 1) * k), weights: e.w.slice(m * k, (m + 1) * k), entropy: h, ...(e.ub ? { unbiasedIds: e.ub.slice(m * k, (m + 1) * k) } : {}) })) }];
  });
  const done = events.find((e) => e.t === 'done');
  const error = events.find((e) => e.t === 'error');
  if (error && error.t === 'error') throw new Error(`${error.code}: ${error.message}`);
  return {
    runId,
    model,
    text: done && done.t === 'done' ? done.text : null,
    tokens,
    routing,
    summary: done && done.t === 'done' ? { reason: done.reason, generatedTokens: done.generatedTokens, decodeTokensPerSecond: done.decodeTokensPerSecond } : null,
  };
}
