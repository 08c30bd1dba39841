/**
 * One run's events as flat typed arrays, filled incrementally as `run_events` frames arrive.
 *
 * Views redraw on every animation frame while a run streams, so everything they read is O(1) to
 * reach: routing for (position, layer) is a subarray, and per-layer expert counts are maintained as
 * routing arrives, so the utilization heatmap never rescans the trace. Positions are addressed by
 * the event's `index`, not by arrival order, so routing may arrive before or after its token.
 */
import type { Phase, RunEvent } from '../../server/protocol';

export type DoneEvent = Extract<RunEvent, { t: 'done' }>;
export type StartedEvent = Extract<RunEvent, { t: 'started' }>;
type TokenEvent = Extract<RunEvent, { t: 'token' }>;
type RoutingEvent = Extract<RunEvent, { t: 'routing' }>;
type TimingEvent = Extract<RunEvent, { t: 'timing' }>;

/** Phase codes in `phases`: 0 = not known yet. */
export const PHASE_CODE = { none: 0, prefill: 1, decode: 2 } as const;

export interface StepTiming {
  readonly phase: Phase;
  /** Tokens fed in this step (the prompt for prefill, 1 per decode step). */
  readonly tokens: number;
  readonly ms: number;
}

export interface RoutingShape {
  /** Model layer index of each MoE layer, in routing order. */
  readonly moeLayers: readonly number[];
  readonly numExperts: number;
  readonly topK: number;
}

const MIN_CAPACITY = 64;

export class RunData {
  model: string | null = null;
  promptTokens = 0;
  maxNewTokens = 0;
  seed: number | null = null;

  moeLayers: readonly number[] = [];
  /** L: MoE layers. */
  numLayers = 0;
  /** E: experts per layer. */
  numExperts = 0;
  /** k: experts chosen per token and layer. */
  topK = 0;

  /** Positions 0 … length-1 have a token, routing, or both. */
  length = 0;
  tokenCount = 0;
  routedCount = 0;
  /** Bumped by every append that changed anything; compare it to skip redundant redraws. */
  version = 0;

  // Per position. Arrays are replaced when they grow: read them again after each append.
  tokenIds = new Int32Array(0);
  texts: (string | null)[] = [];
  /** Positions whose token only starts a character the next token completes (no text of its own). */
  private readonly partials = new Set<number>();
  phases = new Uint8Array(0);
  /** NaN where the engine gave none (prompt tokens). */
  logprobs = new Float32Array(0);
  routed = new Uint8Array(0);

  /** [position × L × k] expert ids, -1 where routing has not arrived. */
  routingIds: Int16Array | Int32Array = new Int16Array(0);
  /** [position × L × k] gate weights. */
  weights = new Float32Array(0);
  /** [position × L] router entropy, nats. */
  entropy = new Float32Array(0);
  /** [position × L × E] router distributions; null until a routing event carries `p`. */
  probs: Float32Array | null = null;
  /**
   * [position × L × k] the experts the router would have chosen without its load-balancing bias
   * (DeepSeek-V3), -1 where not known; null for runs whose router has no bias.
   */
  unbiasedIds: Int16Array | Int32Array | null = null;

  /** [L × E] how many routed positions chose each expert, over all of the run so far. */
  counts = new Uint32Array(0);

  steps: StepTiming[] = [];
  ttftMs: number | null = null;
  done: DoneEvent | null = null;
  error: { code: string; message: string } | null = null;

  private capacity = 0;
  private shapeSource: 'none' | 'started' | 'routing' = 'none';
  private listeners = new Set<(data: RunData) => void>();

  constructor(shape?: RoutingShape) {
    if (shape) this.setShape(shape, 'started');
  }

  static fromEvents(events: readonly RunEvent[]): RunData {
    const d = new RunData();
    d.append(events);
    return d;
  }

  /** Called after every append that changed the data, synchronously: schedule, don't draw, in here. */
  subscribe(listener: (data: RunData) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  append(events: readonly RunEvent[]): void {
    let changed = false;
    for (const e of events) {
      switch (e.t) {
        case 'started':
          this.onStarted(e);
          break;
        case 'token':
          this.onToken(e);
          break;
        case 'routing':
          this.onRouting(e);
          break;
        case 'timing':
          this.onTiming(e);
          break;
        case 'done':
          this.done = e;
          if (e.ttftMs !== null) this.ttftMs = e.ttftMs;
          break;
        case 'error':
          this.error = { code: e.code, message: e.message };
          break;
      }
      changed = true;
    }
    if (!changed) return;
    this.version++;
    for (const l of this.listeners) l(this);
  }

  // ---- reading --------------------------------------------------------------------------------

  hasToken(index: number): boolean {
    return index >= 0 && index < this.length && this.phases[index] !== PHASE_CODE.none;
  }

  hasRouting(index: number): boolean {
    return index >= 0 && index < this.length && this.routed[index] === 1;
  }

  phaseOf(index: number): Phase | null {
    const p = index >= 0 && index < this.length ? this.phases[index] : 0;
    return p === PHASE_CODE.prefill ? 'prefill' : p === PHASE_CODE.decode ? 'decode' : null;
  }

  /** Display text of a token: its text, else `[id]`, else empty while only routing is known. */
  tokenLabel(index: number): string {
    if (!this.hasToken(index)) return '';
    return this.texts[index] ?? `[${this.tokenIds[index]}]`;
  }

  /** Whether the token at `index` only starts a character that a later token completes. */
  isPartial(index: number): boolean {
    return this.partials.has(index);
  }

  /** Top-1 expert of position `index` at MoE layer `layer` (routing order), or -1. */
  topExpert(index: number, layer: number): number {
    if (!this.hasRouting(index) || layer < 0 || layer >= this.numLayers) return -1;
    return this.routingIds[(index * this.numLayers + layer) * this.topK]!;
  }

  /** Expert ids of one layer, largest weight first (a view, not a copy). */
  layerIds(index: number, layer: number): Int16Array | Int32Array {
    const o = (index * this.numLayers + layer) * this.topK;
    return this.routingIds.subarray(o, o + this.topK);
  }

  layerWeights(index: number, layer: number): Float32Array {
    const o = (index * this.numLayers + layer) * this.topK;
    return this.weights.subarray(o, o + this.topK);
  }

  /**
   * What the load-balancing bias changed at one layer: experts chosen only because of it (`added`)
   * and those it displaced (`dropped`); null when the run has no bias or this position's is unknown.
   */
  biasChange(index: number, layer: number): { readonly added: number[]; readonly dropped: number[] } | null {
    if (!this.unbiasedIds || !this.routed[index]) return null;
    const o = (index * this.numLayers + layer) * this.topK;
    const without = Array.from(this.unbiasedIds.subarray(o, o + this.topK));
    if (without.some((id) => id < 0)) return null;
    const chosen = Array.from(this.layerIds(index, layer));
    return { added: chosen.filter((id) => !without.includes(id)), dropped: without.filter((id) => !chosen.includes(id)) };
  }

  /** Router distribution of one layer, or null when the run streams compact routing. */
  layerProbs(index: number, layer: number): Float32Array | null {
    if (!this.probs || !this.hasRouting(index)) return null;
    const o = (index * this.numLayers + layer) * this.numExperts;
    const p = this.probs.subarray(o, o + this.numExperts);
    // Positions whose event lacked `p` were left NaN-filled.
    return Number.isNaN(p[0]) ? null : p;
  }

  /** Name of MoE layer `layer` by its model layer index, e.g. "L3". */
  layerLabel(layer: number): string {
    return `L${this.moeLayers[layer] ?? layer}`;
  }

  /** Expert counts of one layer (a view into `counts`). */
  layerCounts(layer: number): Uint32Array {
    return this.counts.subarray(layer * this.numExperts, (layer + 1) * this.numExperts);
  }

  // ---- writing --------------------------------------------------------------------------------

  private onStarted(e: StartedEvent): void {
    this.model = e.model;
    this.promptTokens = e.promptTokens;
    this.maxNewTokens = e.maxNewTokens;
    this.seed = e.seed;
    this.setShape({ moeLayers: e.moeLayers, numExperts: e.numExperts, topK: e.topK }, 'started');
    // Reserve the whole run up front (bounded, since maxNewTokens may be generous) to avoid regrowth.
    this.ensureCapacity(Math.min(e.promptTokens + e.maxNewTokens, 1 << 16));
  }

  private onToken(e: TokenEvent): void {
    this.ensurePosition(e.index);
    if (this.phases[e.index] === PHASE_CODE.none) this.tokenCount++;
    this.tokenIds[e.index] = e.id;
    // A token that completes a character split over tokens shows it whole (its delta); one that
    // only starts it has no text of its own, and shows the tokenizer's (a replacement mark).
    this.texts[e.index] = e.delta || e.text;
    if (e.delta === '' && e.text !== '') this.partials.add(e.index);
    else this.partials.delete(e.index);
    this.phases[e.index] = PHASE_CODE[e.phase];
    this.logprobs[e.index] = e.logprob ?? NaN;
  }

  private onRouting(e: RoutingEvent): void {
    const L = e.h.length;
    if (L === 0 || e.ids.length % L !== 0) return;
    const k = e.ids.length / L;
    if (this.shapeSource === 'started') {
      // The run declared its shape; routing that disagrees with it cannot be placed.
      if (L !== this.numLayers || k !== this.topK) return;
    } else {
      // A subscription that began mid-run has no `started`: take the shape from the routing itself.
      // E is exact when `p` is present, otherwise the largest id seen so far.
      let maxId = -1;
      for (const id of e.ids) if (id > maxId) maxId = id;
      const experts = Math.max(e.p ? e.p.length / L : 0, maxId + 1);
      const layers = this.shapeSource === 'routing' && L === this.numLayers ? this.moeLayers : Array.from({ length: L }, (_, i) => i);
      this.setShape({ moeLayers: layers, numExperts: experts, topK: k }, 'routing');
    }
    const { numLayers, numExperts, topK } = this;
    const i = e.index;
    this.ensurePosition(i);
    const base = i * numLayers * topK;
    if (this.routed[i]) this.countRouting(i, -1); // a repeated position replaces, never double counts
    else this.routedCount++;
    for (let j = 0; j < numLayers * topK; j++) {
      this.routingIds[base + j] = e.ids[j]!;
      this.weights[base + j] = e.w[j]!;
    }
    for (let l = 0; l < numLayers; l++) this.entropy[i * numLayers + l] = e.h[l]!;
    if (e.p && e.p.length === numLayers * numExperts) {
      if (!this.probs) {
        this.probs = new Float32Array(this.capacity * numLayers * numExperts).fill(NaN);
      }
      this.probs.set(e.p, i * numLayers * numExperts);
    } else if (this.probs) {
      this.probs.fill(NaN, i * numLayers * numExperts, (i + 1) * numLayers * numExperts);
    }
    if (e.ub && e.ub.length === numLayers * topK) {
      this.unbiasedIds ??= this.newIds(this.capacity * numLayers * topK, numExperts).fill(-1);
      this.unbiasedIds.set(e.ub, base);
    } else if (this.unbiasedIds) {
      this.unbiasedIds.fill(-1, base, base + numLayers * topK);
    }
    this.routed[i] = 1;
    this.countRouting(i, 1);
  }

  private onTiming(e: TimingEvent): void {
    this.steps.push({ phase: e.phase, tokens: e.tokens, ms: e.ms });
    if (e.ttftMs !== undefined) this.ttftMs = e.ttftMs;
  }

  private countRouting(index: number, delta: 1 | -1): void {
    const { numLayers: L, numExperts: E, topK: k } = this;
    const base = index * L * k;
    for (let l = 0; l < L; l++) {
      for (let j = 0; j < k; j++) {
        const id = this.routingIds[base + l * k + j]!;
        if (id >= 0 && id < E) this.counts[l * E + id] += delta;
      }
    }
  }

  /**
   * Adopts a routing shape. Same L and k keep everything already stored (a larger E re-lays out the
   * counts); any other change means stored routing cannot be read any more, so routing starts over.
   */
  private setShape(shape: RoutingShape, source: 'started' | 'routing'): void {
    const L = shape.moeLayers.length;
    const k = shape.topK;
    const keep = this.shapeSource !== 'none' && L === this.numLayers && k === this.topK;
    this.shapeSource = source;
    this.moeLayers = shape.moeLayers;
    if (keep) {
      if (shape.numExperts > this.numExperts) this.widenExperts(shape.numExperts);
      return;
    }
    this.numLayers = L;
    this.topK = k;
    this.numExperts = shape.numExperts;
    this.counts = new Uint32Array(L * shape.numExperts);
    this.routingIds = this.newIds(this.capacity * L * k, shape.numExperts).fill(-1);
    this.weights = new Float32Array(this.capacity * L * k);
    this.entropy = new Float32Array(this.capacity * L);
    this.probs = null;
    this.unbiasedIds = null;
    this.routed.fill(0);
    this.routedCount = 0;
  }

  private widenExperts(experts: number): void {
    const { numLayers: L, numExperts: oldE } = this;
    const counts = new Uint32Array(L * experts);
    for (let l = 0; l < L; l++) counts.set(this.counts.subarray(l * oldE, (l + 1) * oldE), l * experts);
    this.counts = counts;
    this.numExperts = experts;
    if (experts > 0x7fff && this.routingIds instanceof Int16Array) this.routingIds = Int32Array.from(this.routingIds);
    if (experts > 0x7fff && this.unbiasedIds instanceof Int16Array) this.unbiasedIds = Int32Array.from(this.unbiasedIds);
    // Stored distributions have the old width and would no longer line up by expert.
    this.probs = null;
  }

  private newIds(n: number, experts: number): Int16Array | Int32Array {
    return experts <= 0x7fff ? new Int16Array(n) : new Int32Array(n);
  }

  private ensurePosition(index: number): void {
    if (index >= this.capacity) this.ensureCapacity(index + 1);
    if (index >= this.length) {
      for (let i = this.length; i < index; i++) this.texts[i] = null;
      this.length = index + 1;
    }
  }

  private ensureCapacity(n: number): void {
    if (n <= this.capacity) return;
    const cap = Math.max(n, this.capacity * 2, MIN_CAPACITY);
    const { numLayers: L, numExperts: E, topK: k } = this;
    const grow = <A extends Int16Array | Int32Array | Uint8Array | Float32Array>(old: A, make: (n: number) => A, per: number, fill?: number): A => {
      const next = make(cap * per);
      if (fill !== undefined) next.fill(fill);
      next.set(old);
      return next;
    };
    this.tokenIds = grow(this.tokenIds, (m) => new Int32Array(m), 1, -1);
    this.phases = grow(this.phases, (m) => new Uint8Array(m), 1);
    this.logprobs = grow(this.logprobs, (m) => new Float32Array(m), 1, NaN);
    this.routed = grow(this.routed, (m) => new Uint8Array(m), 1);
    const ids = this.routingIds;
    this.routingIds = grow<Int16Array | Int32Array>(ids, (m) => this.newIds(m, E), L * k, -1);
    this.weights = grow(this.weights, (m) => new Float32Array(m), L * k);
    this.entropy = grow(this.entropy, (m) => new Float32Array(m), L);
    if (this.probs) this.probs = grow(this.probs, (m) => new Float32Array(m), L * E, NaN);
    if (this.unbiasedIds) this.unbiasedIds = grow<Int16Array | Int32Array>(this.unbiasedIds, (m) => this.newIds(m, E), L * k, -1);
    this.capacity = cap;
  }
}
