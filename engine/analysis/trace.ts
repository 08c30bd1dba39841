/**
 * The neutral in-memory trace of one run: which experts every position was routed to at every
 * MoE layer, with whatever the source captured besides (gate weights, router distribution,
 * entropy). Every export format, importer and metric works from this one shape.
 *
 * Positions are 0 … T−1 (prompt first). A position may lack routing (a vLLM prefix-cache hit,
 * or the last generated token of an imported run, which was never fed back): it has a token but
 * no `routing` entry.
 */
import { badInput } from './errors.ts';

export type Phase = 'prefill' | 'decode';

/** Where a trace came from. */
export type TraceSource = 'moe-lab' | 'sglang' | 'vllm';

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface TraceToken {
  /** Position in the sequence; equal to the token's place in `tokens`. */
  readonly index: number;
  /** Token id; null when the source did not say. */
  readonly id: number | null;
  readonly text: string | null;
  readonly phase: Phase;
}

export interface PositionRouting {
  readonly index: number;
  readonly phase: Phase;
  /** [L·k] expert ids, layer-major in `moeLayers` order; each layer's by gate weight, largest first. */
  readonly ids: Int32Array;
  /** [L·k] gate (combine) weights, same order; null when the source only gave ids. */
  readonly weights: Float32Array | null;
  /** [L] router entropy in nats. */
  readonly entropy: Float32Array | null;
  /** [L·k] the router's probability of each selected expert, same order as `ids`. */
  readonly selectedProbs: Float32Array | null;
  /** [L·E] the router's whole distribution (in memory only: rows keep `selectedProbs`). */
  readonly probs: Float32Array | null;
}

/** Each selected expert's probability, from the whole distribution. */
export function selectedFromProbs(ids: Int32Array, probs: Float32Array, k: number, E: number): Float32Array {
  const out = new Float32Array(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = probs[Math.floor(i / k) * E + ids[i]!]!;
  return out;
}

export interface RunMeta {
  readonly source: TraceSource;
  readonly prompt: string | null;
  /** Generation parameters as given (max new tokens, sampling, seed, …). */
  readonly params: JsonObject;
  readonly interventions: Json | null;
  /** Extra per-run labels (a prompt file's extra fields); each becomes a string column. */
  readonly fields: Readonly<Record<string, string>>;
  /** Anything else worth keeping with the run (stop reason, generated text, …). */
  readonly extra: JsonObject;
}

export interface RunTrace {
  readonly runId: string;
  readonly modelId: string;
  readonly modelHash: string | null;
  readonly meta: RunMeta;
  /** Model layer index of each MoE layer, in the order routing arrays use. */
  readonly moeLayers: readonly number[];
  readonly numExperts: number;
  /** Experts per token in this run (the model's own, or an intervention's override). */
  readonly k: number;
  readonly tokens: readonly TraceToken[];
  /** Routing by position, ascending; positions without routing are absent. */
  readonly routing: readonly PositionRouting[];
}

export function emptyMeta(source: TraceSource, over: Partial<RunMeta> = {}): RunMeta {
  return { source, prompt: null, params: {}, interventions: null, fields: {}, extra: {}, ...over };
}

/** Field names become column names, so they are restricted to identifiers. */
export const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * Checks the invariants every consumer relies on, so that a bad importer or a hand-built trace
 * fails here with a clear message instead of producing a subtly wrong file.
 */
export function validateTrace(t: RunTrace): RunTrace {
  const where = `run '${t.runId}'`;
  if (t.runId === '') throw badInput('a run id must not be empty');
  const L = t.moeLayers.length;
  const E = t.numExperts;
  const k = t.k;
  if (!(Number.isInteger(E) && E >= 1)) throw badInput(`${where}: number of experts must be a positive integer`);
  if (!(Number.isInteger(k) && k >= 1 && k <= E)) throw badInput(`${where}: k must be an integer in 1 … ${E}`);
  if (L === 0) throw badInput(`${where}: a trace needs at least one MoE layer`);
  for (let i = 0; i < L; i++) {
    const l = t.moeLayers[i]!;
    if (!Number.isInteger(l) || l < 0 || (i > 0 && l <= t.moeLayers[i - 1]!)) throw badInput(`${where}: MoE layers must be ascending non-negative integers`);
  }
  t.tokens.forEach((tok, i) => {
    if (tok.index !== i) throw badInput(`${where}: token ${i} has index ${tok.index}; tokens must be positions 0 … T−1`);
  });
  for (const name of Object.keys(t.meta.fields)) {
    if (!FIELD_NAME.test(name)) throw badInput(`${where}: field name '${name}' is not an identifier`);
  }
  let prev = -1;
  for (const r of t.routing) {
    const at = `${where}, position ${r.index}`;
    if (!(Number.isInteger(r.index) && r.index > prev && r.index < t.tokens.length)) {
      throw badInput(`${at}: routing positions must be ascending, unique and within the ${t.tokens.length} tokens`);
    }
    prev = r.index;
    if (r.ids.length !== L * k) throw badInput(`${at}: ${r.ids.length} expert ids, expected ${L}×${k}`);
    for (const e of r.ids) if (!(e >= 0 && e < E)) throw badInput(`${at}: expert ${e} outside 0 … ${E - 1}`);
    if (r.weights && r.weights.length !== L * k) throw badInput(`${at}: ${r.weights.length} gate weights, expected ${L * k}`);
    if (r.entropy && r.entropy.length !== L) throw badInput(`${at}: ${r.entropy.length} entropies, expected ${L}`);
    if (r.selectedProbs && r.selectedProbs.length !== L * k) throw badInput(`${at}: ${r.selectedProbs.length} selected probabilities, expected ${L * k}`);
    if (r.probs && r.probs.length !== L * E) throw badInput(`${at}: ${r.probs.length} router probabilities, expected ${L * E}`);
  }
  return t;
}

export interface TraceArrays {
  readonly runId: string;
  readonly modelId: string;
  readonly modelHash?: string | null;
  readonly meta: RunMeta;
  readonly moeLayers: readonly number[];
  readonly numExperts: number;
  readonly k: number;
  /** [T·L·k] expert ids; a position whose ids are all −1 has no routing. */
  readonly ids: Int32Array;
  readonly weights?: Float32Array | null;
  /** Token ids by position (null or shorter: unknown). */
  readonly tokenIds?: readonly (number | null)[] | null;
  readonly tokenTexts?: readonly (string | null)[] | null;
  /** Positions below this are prefill, the rest decode. */
  readonly promptTokens: number;
  /** Number of positions; at least ids.length / (L·k). */
  readonly numTokens?: number;
}

/**
 * A trace from `[tokens, layers, k]` arrays, the shape vLLM and SGLang return. Rows of −1 mark
 * positions without routing; a row with some −1 slots is ambiguous and refused.
 */
export function traceFromArrays(a: TraceArrays): RunTrace {
  const L = a.moeLayers.length;
  const lk = L * a.k;
  if (lk === 0 || a.ids.length % lk !== 0) throw badInput(`expert ids: ${a.ids.length} values do not make [tokens, ${L}, ${a.k}]`);
  const routed = a.ids.length / lk;
  const T = Math.max(a.numTokens ?? 0, routed, a.tokenIds?.length ?? 0);
  const phase = (i: number): Phase => (i < a.promptTokens ? 'prefill' : 'decode');
  const tokens: TraceToken[] = Array.from({ length: T }, (_, i) => ({
    index: i,
    id: a.tokenIds?.[i] ?? null,
    text: a.tokenTexts?.[i] ?? null,
    phase: phase(i),
  }));
  const routing: PositionRouting[] = [];
  for (let t = 0; t < routed; t++) {
    const ids = a.ids.subarray(t * lk, (t + 1) * lk);
    let missing = 0;
    for (const e of ids) if (e === -1) missing++;
    if (missing === lk) continue;
    if (missing > 0) throw badInput(`position ${t}: some expert slots are −1 and others are not`);
    routing.push({
      index: t,
      phase: phase(t),
      ids: Int32Array.from(ids),
      weights: a.weights ? Float32Array.from(a.weights.subarray(t * lk, (t + 1) * lk)) : null,
      entropy: null,
      selectedProbs: null,
      probs: null,
    });
  }
  return validateTrace({
    runId: a.runId,
    modelId: a.modelId,
    modelHash: a.modelHash ?? null,
    meta: a.meta,
    moeLayers: [...a.moeLayers],
    numExperts: a.numExperts,
    k: a.k,
    tokens,
    routing,
  });
}
