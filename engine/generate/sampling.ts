/**
 * Sampling as pure functions over a logits row. Randomness comes in as a function, so a seeded
 * generator makes a run reproducible and tests can pin the draw.
 */

export interface SamplingParams {
  /** 0 or undefined: greedy (argmax). */
  readonly temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined: all). */
  readonly topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 or undefined: all). */
  readonly topP?: number;
}

/** Uniform [0, 1). */
export type Random = () => number;

/** mulberry32: small, fast, good enough for sampling; the same seed gives the same stream. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** log-softmax of a row, in float64 for stable log-probabilities. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const lse = max + Math.log(sum);
  return Float64Array.from({ length: logits.length }, (_, i) => logits[i]! - lse);
}

/** The n most likely tokens with their log-probabilities, most likely first (one pass, no full sort). */
export function topAlternatives(logprobs: Float64Array, n: number): { id: number; logprob: number }[] {
  const best: number[] = [];
  for (let id = 0; id < logprobs.length; id++) {
    const v = logprobs[id]!;
    if (best.length === n && v <= logprobs[best[n - 1]!]!) continue;
    let at = best.length;
    while (at > 0 && logprobs[best[at - 1]!]! < v) at--;
    best.splice(at, 0, id);
    if (best.length > n) best.pop();
  }
  return best.map((id) => ({ id, logprob: logprobs[id]! }));
}

/** Picks the next token id from one logits row. */
export function sampleToken(logits: ArrayLike<number>, params: SamplingParams, random: Random): number {
  const temperature = params.temperature ?? 0;
  if (temperature <= 0) return argmax(logits);
  // Candidates sorted by logit, then truncated by top-k and top-p over the tempered distribution.
  let ids = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (params.topK && params.topK > 0) ids = ids.slice(0, params.topK);
  const max = logits[ids[0]!]!;
  let probs = ids.map((id) => Math.exp((logits[id]! - max) / temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  const topP = params.topP ?? 1;
  if (topP < 1) {
    let acc = 0;
    let keep = ids.length;
    for (let i = 0; i < ids.length; i++) {
      acc += probs[i]! / total;
      if (acc >= topP) {
        keep = i + 1;
        break;
      }
    }
    ids = ids.slice(0, keep);
    probs = probs.slice(0, keep);
    total = probs.reduce((a, b) => a + b, 0);
  }
  let u = random() * total;
  for (let i = 0; i < ids.length; i++) {
    u -= probs[i]!;
    if (u < 0) return ids[i]!;
  }
  return ids[ids.length - 1]!;
}
