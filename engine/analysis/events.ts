/**
 * Traces from event streams: the engine's GenerationEvents, and the run events the server stores
 * (same content, flattened per position). The stored form is parsed, not trusted: it comes from
 * disk.
 */
import { z } from 'zod';
import type { GenerationEvent } from '../generate/types.ts';
import { badInput } from './errors.ts';
import { emptyMeta, selectedFromProbs, validateTrace, type JsonObject, type Phase, type PositionRouting, type RunMeta, type RunTrace, type TraceToken } from './trace.ts';

/** What a trace needs to know about the model; the engine's `ModelInfo` fits. */
export interface TraceModel {
  readonly id: string;
  readonly hash: string | null;
  readonly moeLayers: readonly number[];
  readonly numExperts: number;
  readonly topK: number;
}

export interface RunHeader {
  readonly runId: string;
  readonly model: TraceModel;
  readonly meta?: Partial<RunMeta>;
}

interface RoutingInput {
  readonly index: number;
  readonly phase: Phase;
  readonly ids: ArrayLike<number>;
  readonly weights: ArrayLike<number> | null;
  readonly entropy: ArrayLike<number> | null;
  readonly probs: ArrayLike<number> | null;
}

/**
 * Collects a run as it streams. Tokens and routing may arrive in any order (the engine emits a
 * token before the step that yields its routing); `finish` sorts and checks them.
 */
export class TraceBuilder {
  private readonly tokens = new Map<number, TraceToken>();
  private readonly routing = new Map<number, PositionRouting>();
  private k: number;
  private extra: JsonObject = {};

  constructor(private readonly header: RunHeader) {
    this.k = header.model.topK;
  }

  /** The run's experts per token, when an intervention overrides the model's own. */
  setK(k: number): void {
    this.k = k;
  }

  addExtra(extra: JsonObject): void {
    this.extra = { ...this.extra, ...extra };
  }

  addToken(t: TraceToken): void {
    this.tokens.set(t.index, t);
  }

  addRouting(r: RoutingInput): void {
    const ids = Int32Array.from(r.ids);
    const E = this.header.model.numExperts;
    const probs = r.probs && r.probs.length > 0 ? Float32Array.from(r.probs) : null;
    if (probs && probs.length !== this.header.model.moeLayers.length * E) {
      throw badInput(`position ${r.index}: ${probs.length} router probabilities, expected ${this.header.model.moeLayers.length}×${E}`);
    }
    this.routing.set(r.index, {
      index: r.index,
      phase: r.phase,
      ids,
      weights: r.weights ? Float32Array.from(r.weights) : null,
      entropy: r.entropy ? Float32Array.from(r.entropy) : null,
      selectedProbs: probs ? selectedFromProbs(ids, probs, ids.length / this.header.model.moeLayers.length, E) : null,
      probs,
    });
  }

  /** Routed positions so far (a progress measure). */
  get positions(): number {
    return this.routing.size;
  }

  finish(): RunTrace {
    const { model, runId } = this.header;
    const tokens = [...this.tokens.values()].sort((a, b) => a.index - b.index);
    const routing = [...this.routing.values()].sort((a, b) => a.index - b.index);
    const base = emptyMeta('moe-lab', this.header.meta);
    return validateTrace({
      runId,
      modelId: model.id,
      modelHash: model.hash,
      meta: { ...base, extra: { ...base.extra, ...this.extra } },
      moeLayers: [...model.moeLayers],
      numExperts: model.numExperts,
      k: this.k,
      tokens,
      routing,
    });
  }

  /** Feeds one engine event. */
  push(ev: GenerationEvent): void {
    switch (ev.type) {
      case 'start':
        this.setK(ev.topK);
        this.addExtra({ seed: ev.seed, prompt_tokens: ev.promptTokens, max_new_tokens: ev.maxNewTokens });
        break;
      case 'token':
        this.addToken({ index: ev.index, id: ev.id, text: ev.text, phase: ev.phase });
        break;
      case 'routing': {
        const layers = this.header.model.moeLayers;
        if (ev.layers.length !== layers.length || ev.layers.some((l, i) => l.layer !== layers[i])) {
          throw badInput(`routing at position ${ev.index} is for layers ${ev.layers.map((l) => l.layer).join(',')}, expected ${layers.join(',')}`);
        }
        this.addRouting({
          index: ev.index,
          phase: ev.phase,
          ids: ev.layers.flatMap((l) => l.ids),
          weights: ev.layers.flatMap((l) => l.weights),
          entropy: ev.layers.map((l) => l.entropy),
          probs: ev.layers.every((l) => l.probs.length > 0) ? ev.layers.flatMap((l) => l.probs) : null,
        });
        break;
      }
      case 'done':
        this.addExtra({ reason: ev.reason, generated_tokens: ev.generatedTokens, text: ev.text });
        break;
      case 'timing':
      case 'profile':
        break;
    }
  }
}

/** The trace of one engine generation, from its events. */
export function traceFromEvents(header: RunHeader, events: Iterable<GenerationEvent>): RunTrace {
  const b = new TraceBuilder(header);
  for (const ev of events) b.push(ev);
  return b.finish();
}

// ---- stored run events (the server's run log) -----------------------------------------------

const phase = z.enum(['prefill', 'decode']);
/** The stored events a trace uses; others (timing, error, …) are skipped. */
const storedEvents = {
  started: z.object({ model: z.string(), modelHash: z.string(), moeLayers: z.array(z.number().int()), numExperts: z.number().int(), topK: z.number().int(), seed: z.number() }),
  token: z.object({ index: z.number().int(), id: z.number().int(), text: z.string().nullable(), phase }),
  routing: z.object({ index: z.number().int(), phase, ids: z.array(z.number().int()), w: z.array(z.number()), h: z.array(z.number()), p: z.array(z.number()).optional() }),
  done: z.object({ reason: z.string(), generatedTokens: z.number().int(), text: z.string().nullable() }),
};
const tagged = z.object({ t: z.string() });

function parseStored<K extends keyof typeof storedEvents>(kind: K, raw: unknown, where: string): z.infer<(typeof storedEvents)[K]> {
  const r = storedEvents[kind].safeParse(raw);
  if (!r.success) throw badInput(`${where}: ${r.error.issues[0]?.path.join('.')} ${r.error.issues[0]?.message ?? 'bad event'}`);
  return r.data as z.infer<(typeof storedEvents)[K]>;
}

/**
 * The trace of a stored run from its run events (`{t: 'started' | 'token' | 'routing' | …}`).
 * The model comes from the run's `started` event; a run that never started has no trace.
 */
export function traceFromRunEvents(runId: string, events: readonly unknown[], meta: Partial<RunMeta> = {}): RunTrace {
  let b: TraceBuilder | null = null;
  for (let seq = 0; seq < events.length; seq++) {
    const where = `run '${runId}', event ${seq}`;
    const tag = tagged.safeParse(events[seq]);
    if (!tag.success) throw badInput(`${where}: not a run event`);
    const raw = events[seq];
    switch (tag.data.t) {
      case 'started': {
        const ev = parseStored('started', raw, where);
        b = new TraceBuilder({ runId, model: { id: ev.model, hash: ev.modelHash, moeLayers: ev.moeLayers, numExperts: ev.numExperts, topK: ev.topK }, meta });
        b.addExtra({ seed: ev.seed });
        break;
      }
      case 'token': {
        const ev = parseStored('token', raw, where);
        b?.addToken({ index: ev.index, id: ev.id, text: ev.text, phase: ev.phase });
        break;
      }
      case 'routing': {
        const ev = parseStored('routing', raw, where);
        b?.addRouting({ index: ev.index, phase: ev.phase, ids: ev.ids, weights: ev.w, entropy: ev.h, probs: ev.p ?? null });
        break;
      }
      case 'done': {
        const ev = parseStored('done', raw, where);
        b?.addExtra({ reason: ev.reason, generated_tokens: ev.generatedTokens, text: ev.text });
        break;
      }
    }
  }
  if (!b) throw badInput(`run '${runId}' has no 'started' event, so no model to trace against`);
  return b.finish();
}
