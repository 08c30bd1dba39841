/** Engine events → run events (stored in full), and run events → their wire form for a subscriber. */
import { assertNever } from '../../engine/assert-never.ts';
import type { GenerationEvent } from '../../engine/generate/types.ts';
import type { Detail, RunEvent } from '../protocol.ts';

const sig6 = (x: number) => Number(x.toPrecision(6));
const dec = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

/** Converts one engine event; the model/hash come from the run. Returns null for events not streamed. */
export function fromEngineEvent(ev: GenerationEvent, model: { id: string; hash: string; moeLayers: readonly number[]; numExperts: number }): RunEvent | null {
  switch (ev.type) {
    case 'start':
      return {
        t: 'started',
        model: model.id,
        modelHash: model.hash,
        promptTokens: ev.promptTokens,
        maxNewTokens: ev.maxNewTokens,
        moeLayers: model.moeLayers,
        numExperts: model.numExperts,
        topK: ev.topK,
        seed: ev.seed,
      };
    case 'token':
      return {
        t: 'token',
        index: ev.index,
        id: ev.id,
        text: ev.text,
        delta: ev.delta,
        phase: ev.phase,
        logprob: ev.logprob,
        top: ev.top.map((a) => [a.id, a.logprob] as const),
      };
    case 'routing':
      return {
        t: 'routing',
        index: ev.index,
        phase: ev.phase,
        ids: ev.layers.flatMap((l) => l.ids),
        w: ev.layers.flatMap((l) => l.weights),
        h: ev.layers.map((l) => l.entropy),
        p: ev.layers.flatMap((l) => l.probs),
        ...(ev.layers.some((l) => l.unbiasedIds) ? { ub: ev.layers.flatMap((l) => l.unbiasedIds ?? []) } : {}),
      };
    case 'timing':
      return { t: 'timing', phase: ev.phase, tokens: ev.tokens, ms: ev.ms, ...(ev.ttftMs !== undefined ? { ttftMs: ev.ttftMs } : {}) };
    case 'profile':
      return null;
    case 'done':
      return {
        t: 'done',
        reason: ev.reason,
        promptTokens: ev.promptTokens,
        generatedTokens: ev.generatedTokens,
        text: ev.text,
        ttftMs: ev.ttftMs,
        totalMs: ev.totalMs,
        prefillTokensPerSecond: ev.prefillTokensPerSecond,
        decodeTokensPerSecond: ev.decodeTokensPerSecond,
      };
    default:
      return assertNever(ev, 'engine event');
  }
}

/** What goes on the wire: routing rounded, and the router distribution only for `full` detail. */
export function toWire(ev: RunEvent, detail: Detail): RunEvent {
  if (ev.t !== 'routing') return ev;
  const { p, ...rest } = ev;
  const compact = { ...rest, w: ev.w.map(sig6), h: ev.h.map((x) => dec(x, 4)) };
  return detail === 'full' && p ? { ...compact, p: p.map((x) => dec(x, 5)) } : compact;
}
