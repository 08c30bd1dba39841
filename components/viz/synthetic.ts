/**
 * A seeded synthetic run, shaped like the engine's event stream, for benchmarks and tests. Routing
 * has the structure real MoE routing shows, so every view has something to draw: per-layer expert
 * popularity (skewed load), groups of experts that tend to fire together (co-activation blocks), and
 * a "topic" that persists over neighbouring tokens (runs of colour in the grid).
 */
import type { RunEvent } from '../../server/protocol';

export interface SyntheticOptions {
  /** Total positions, prompt included. */
  readonly tokens: number;
  readonly layers: number;
  readonly experts: number;
  readonly topK: number;
  readonly seed?: number;
  /** Prompt positions (prefill); defaults to an eighth of the tokens, at least 1. */
  readonly promptTokens?: number;
  /** Include each layer's full router distribution `p`, as detail 'full' streams it. */
  readonly full?: boolean;
}

/** mulberry32: small, fast and good enough for test data. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled(n: number, rand: () => number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

const WORDS = [' the', ' of', ' and', ' to', ' in', ' a', ' is', ' that', ' for', ' it', ' expert', ' router', ' token', ' layer', ' model', ' weight', '.', ',', '\n', ' gate', ' mixture', ' load', ' balance', ' sparse'];

export function syntheticTrace(o: SyntheticOptions): RunEvent[] {
  const { tokens: T, layers: L, experts: E, topK: k } = o;
  if (k > E) throw new RangeError('topK cannot exceed experts');
  const rand = seededRandom(o.seed ?? 1);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const prompt = Math.max(1, Math.min(T, o.promptTokens ?? Math.floor(T / 8)));
  const groups = Math.max(1, Math.floor(E / k));

  // Per layer: a Zipf-like popularity over a shuffled expert order, and a shuffled expert→group map.
  const bias = new Float64Array(L * E);
  const group = new Int32Array(L * E);
  for (let l = 0; l < L; l++) {
    const popularity = shuffled(E, rand);
    const membership = shuffled(E, rand);
    for (let r = 0; r < E; r++) {
      bias[l * E + popularity[r]!] = -0.6 * Math.log(r + 1);
      group[l * E + membership[r]!] = r % groups;
    }
  }

  const events: RunEvent[] = [];
  events.push({ t: 'started', model: 'synthetic', modelHash: 'synthetic', promptTokens: prompt, maxNewTokens: T - prompt, moeLayers: Array.from({ length: L }, (_, l) => l), numExperts: E, topK: k, seed: o.seed ?? 1 });

  const logits = new Float64Array(E);
  const probs = new Float64Array(E);
  const chosen = new Int32Array(k);
  let topic = 0;
  const routing = (index: number, phase: 'prefill' | 'decode'): RunEvent => {
    if (rand() < 0.2) topic = Math.floor(rand() * groups);
    const ids: number[] = [];
    const w: number[] = [];
    const h: number[] = [];
    const p: number[] = [];
    for (let l = 0; l < L; l++) {
      const layerTopic = (topic + l) % groups;
      let max = -Infinity;
      for (let e = 0; e < E; e++) {
        logits[e] = bias[l * E + e]! + (group[l * E + e] === layerTopic ? 1.5 : 0) + 0.8 * gauss();
        if (logits[e]! > max) max = logits[e]!;
      }
      let sum = 0;
      for (let e = 0; e < E; e++) sum += probs[e] = Math.exp(logits[e]! - max);
      let ent = 0;
      for (let e = 0; e < E; e++) {
        probs[e] = probs[e]! / sum;
        if (probs[e]! > 0) ent -= probs[e]! * Math.log(probs[e]!);
      }
      // Top-k by insertion into a sorted list: k is small, E a few hundred at most.
      let n = 0;
      for (let e = 0; e < E; e++) {
        if (n === k && probs[e]! <= probs[chosen[k - 1]!]!) continue;
        let at = n < k ? n++ : k - 1;
        while (at > 0 && probs[chosen[at - 1]!]! < probs[e]!) {
          chosen[at] = chosen[at - 1]!;
          at--;
        }
        chosen[at] = e;
      }
      let top = 0;
      for (let j = 0; j < k; j++) top += probs[chosen[j]!]!;
      for (let j = 0; j < k; j++) {
        ids.push(chosen[j]!);
        w.push(Number((probs[chosen[j]!]! / top).toPrecision(6)));
      }
      h.push(Math.round(ent * 1e4) / 1e4);
      if (o.full) for (let e = 0; e < E; e++) p.push(Math.round(probs[e]! * 1e5) / 1e5);
    }
    return o.full ? { t: 'routing', index, phase, ids, w, h, p } : { t: 'routing', index, phase, ids, w, h };
  };
  const token = (index: number, phase: 'prefill' | 'decode'): RunEvent => {
    const id = Math.floor(rand() * 4096);
    const text = WORDS[id % WORDS.length]!;
    return { t: 'token', index, id, text, delta: phase === 'decode' ? text : null, phase, logprob: phase === 'decode' ? -3 * rand() : null, top: [] };
  };

  // Same order as the engine: prompt tokens, the prefill step, its routing; then per decode step
  // the sampled token, the step's timing, and the routing of that token.
  for (let i = 0; i < prompt; i++) events.push(token(i, 'prefill'));
  const prefillMs = 4 + 0.4 * prompt;
  events.push({ t: 'timing', phase: 'prefill', tokens: prompt, ms: prefillMs });
  for (let i = 0; i < prompt; i++) events.push(routing(i, 'prefill'));
  let decodeMs = 0;
  for (let i = prompt; i < T; i++) {
    events.push(token(i, 'decode'));
    const ms = 8 + 2 * rand() + (rand() < 0.02 ? 10 : 0);
    decodeMs += ms;
    events.push(i === prompt ? { t: 'timing', phase: 'decode', tokens: 1, ms, ttftMs: prefillMs + 1 } : { t: 'timing', phase: 'decode', tokens: 1, ms });
    events.push(routing(i, 'decode'));
  }
  const generated = T - prompt;
  events.push({
    t: 'done',
    reason: 'length',
    promptTokens: prompt,
    generatedTokens: generated,
    text: null,
    ttftMs: generated > 0 ? prefillMs + 1 : null,
    totalMs: prefillMs + decodeMs,
    prefillTokensPerSecond: (prompt / prefillMs) * 1000,
    decodeTokensPerSecond: generated > 0 ? (generated / decodeMs) * 1000 : null,
  });
  return events;
}
