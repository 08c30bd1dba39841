/**
 * The generation loop over a ModelRunner, as an async iterator of events:
 *
 *   prefill(prompt) → routing of every prompt position
 *   repeat: sample → emit token → step(token) → emit that token's routing
 *
 * A token is emitted as soon as it is sampled; the step that consumes it yields its routing, so
 * the final token gets one extra step and every token of a run has routing.
 */
import { EngineError, EngineErrorCode } from '../errors.ts';
import { entropy, routerProbs } from '../routing.ts';
import type { KvCache } from '../runtime/kv-cache.ts';
import type { ModelRunner, StepRouting } from '../runtime/runner.ts';
import { StreamingDetokenizer } from '../checkpoint/tokenizer.ts';
import { resolveInterventions } from './interventions.ts';
import { logSoftmax, sampleToken, seededRandom, topAlternatives } from './sampling.ts';
import type { GenerateRequest, GenerationEvent, LayerRouting, Phase } from './types.ts';

export const DEFAULT_MAX_NEW_TOKENS = 64;
const TOP_ALTERNATIVES = 5;

export interface GenerateOptions {
  readonly signal?: AbortSignal;
  /** Polled between steps; lets a worker see a cancel without yielding to its event loop. */
  readonly cancelled?: () => boolean;
  /** This sequence's KV cache, when several generations share one runner (default: the runner's own). */
  readonly cache?: KvCache;
}

/** Token ids for a request: explicit ids, or the prompt text through the checkpoint's tokenizer. */
export function promptIds(runner: ModelRunner, req: GenerateRequest): number[] {
  if (req.promptIds && req.prompt !== undefined) {
    throw new EngineError(EngineErrorCode.BAD_PROMPT, 'give either a prompt or prompt ids, not both');
  }
  if (req.promptIds) return [...req.promptIds];
  if (req.prompt === undefined) throw new EngineError(EngineErrorCode.BAD_PROMPT, 'a prompt or prompt ids are required');
  const tok = runner.ckpt.tokenizer;
  if (!tok) throw new EngineError(EngineErrorCode.NO_TOKENIZER, `${runner.ckpt.dir} has no tokenizer.json; pass prompt ids instead`);
  return tok.encode(req.prompt);
}

function validateSampling(req: GenerateRequest): void {
  const s = req.sampling ?? {};
  const bad = (m: string) => new EngineError(EngineErrorCode.BAD_SAMPLING, m);
  if (s.temperature !== undefined && !(s.temperature >= 0 && Number.isFinite(s.temperature))) throw bad('temperature must be ≥ 0');
  if (s.topP !== undefined && !(s.topP > 0 && s.topP <= 1)) throw bad('top-p must be in (0, 1]');
  if (s.topK !== undefined && !(Number.isInteger(s.topK) && s.topK >= 0)) throw bad('top-k sampling must be an integer ≥ 0');
  if (req.maxNewTokens !== undefined && !(Number.isInteger(req.maxNewTokens) && req.maxNewTokens >= 0)) {
    throw bad('max new tokens must be an integer ≥ 0');
  }
  // The generator keeps 32 bits: 1.5 or 2^40 would silently give another seed's samples.
  if (req.seed !== undefined && !(Number.isInteger(req.seed) && req.seed >= 0 && req.seed <= 0xffffffff)) {
    throw bad(`seed must be an integer in 0…${0xffffffff}, got ${req.seed}`);
  }
}

/** Per-position routing events from one step's routing outputs. */
function routingEvents(runner: ModelRunner, r: StepRouting, firstIndex: number, T: number, phase: Phase): GenerationEvent[] {
  const cfg = runner.config;
  const E = cfg.moe.numExperts;
  const Lm = cfg.moeLayers.length;
  const events: GenerationEvent[] = [];
  for (let t = 0; t < T; t++) {
    const layers: LayerRouting[] = [];
    for (let m = 0; m < Lm; m++) {
      const at = (m * T + t) * r.k;
      const logits = r.routerLogits.subarray((m * T + t) * E, (m * T + t + 1) * E);
      const probs = routerProbs(cfg.moe.routing, logits);
      const ids = Array.from(r.ids.subarray(at, at + r.k));
      const weights = Array.from(r.weights.subarray(at, at + r.k));
      // Report by combine weight, largest first (the order the router ranked is by biased score).
      const order = ids.map((_, i) => i).sort((a, b) => weights[b]! - weights[a]! || ids[a]! - ids[b]!);
      layers.push({
        layer: cfg.moeLayers[m]!,
        ids: order.map((i) => ids[i]!),
        weights: order.map((i) => weights[i]!),
        entropy: entropy(probs),
        probs: Array.from(probs),
        ...(r.unbiasedIds ? { unbiasedIds: Array.from(r.unbiasedIds.subarray(at, at + r.k)) } : {}),
      });
    }
    events.push({ type: 'routing', index: firstIndex + t, phase, layers });
  }
  return events;
}

export async function* generate(runner: ModelRunner, req: GenerateRequest, opts: GenerateOptions = {}): AsyncGenerator<GenerationEvent> {
  const cfg = runner.config;
  const ids = promptIds(runner, req);
  validateSampling(req);
  if (ids.length === 0) throw new EngineError(EngineErrorCode.BAD_PROMPT, 'the prompt is empty');
  if (ids.length >= runner.context) {
    throw new EngineError(EngineErrorCode.PROMPT_TOO_LONG, `the prompt has ${ids.length} tokens; it must be shorter than ${runner.describeContext()}`, {
      promptTokens: ids.length,
      context: runner.context,
    });
  }
  const { routeBias, topK } = resolveInterventions(cfg, req.interventions);
  // The last token needs a position of its own for its routing step.
  const maxNew = Math.min(req.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS, runner.context - ids.length);
  const seed = req.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const eos = new Set(req.ignoreEos ? [] : runner.ckpt.eosTokenIds);
  for (const id of req.stopTokenIds ?? []) eos.add(id);
  const tok = runner.ckpt.tokenizer;
  const detok = tok ? new StreamingDetokenizer(tok) : null;
  const text = (id: number) => (tok ? tok.tokenText(id) : null);
  const isCancelled = () => opts.signal?.aborted === true || opts.cancelled?.() === true;

  const cache = opts.cache ?? runner.cache;
  cache.reset();
  const t0 = performance.now();
  yield { type: 'start', promptTokens: ids.length, maxNewTokens: maxNew, topK, seed };
  // Prompt tokens get the text they add to the prompt too (its own detokenizer: the generated text
  // starts after the prompt), so a character split over two tokens reads whole on the second.
  const promptDetok = tok ? new StreamingDetokenizer(tok) : null;
  for (let i = 0; i < ids.length; i++) {
    yield { type: 'token', index: i, id: ids[i]!, text: text(ids[i]!), delta: promptDetok ? promptDetok.push(ids[i]!) : null, phase: 'prefill', logprob: null, top: [] };
  }

  const prefill = await runner.step({ ids, logitIndex: [ids.length - 1], routeBias, topK }, cache);
  yield { type: 'timing', phase: 'prefill', tokens: ids.length, ms: prefill.ms };
  if (prefill.routing) yield* routingEvents(runner, prefill.routing, 0, ids.length, 'prefill');

  let logits = prefill.logits;
  let generated = 0;
  let decodeMs = 0;
  let ttftMs: number | null = null;
  let reason: 'eos' | 'stop' | 'length' | 'cancelled' = 'length';
  const stops = (req.stop ?? []).filter((s) => s.length > 0);

  while (generated < maxNew) {
    if (isCancelled()) {
      reason = 'cancelled';
      break;
    }
    const next = sampleToken(logits, req.sampling ?? {}, random);
    const lp = logSoftmax(logits);
    const index = ids.length + generated;
    generated++;
    const delta = detok ? detok.push(next) : null;
    if (ttftMs === null) ttftMs = performance.now() - t0;
    yield {
      type: 'token',
      index,
      id: next,
      text: text(next),
      delta,
      phase: 'decode',
      logprob: lp[next]!,
      top: topAlternatives(lp, TOP_ALTERNATIVES).map((a) => ({ id: a.id, text: text(a.id), logprob: a.logprob })),
    };
    let finished = false;
    if (eos.has(next)) {
      reason = 'eos';
      finished = true;
    } else if (detok && stops.some((s) => detok.text.includes(s))) {
      reason = 'stop';
      finished = true;
    } else if (generated >= maxNew) {
      reason = 'length';
      finished = true;
    }
    // This step yields the routing of the token just sampled (and the next logits).
    const step = await runner.step({ ids: [next], logitIndex: [0], routeBias, topK }, cache);
    decodeMs += step.ms;
    yield { type: 'timing', phase: 'decode', tokens: 1, ms: step.ms, ...(generated === 1 ? { ttftMs } : {}) };
    if (step.routing) yield* routingEvents(runner, step.routing, index, 1, 'decode');
    logits = step.logits;
    if (finished) break;
  }

  if (runner.diagnostics) {
    // Steps ran in order: the prefill, then one per decode token.
    const steps = await runner.takeProfile();
    yield {
      type: 'profile',
      steps: steps.map((s, i) => ({ ...s, phase: i === 0 ? 'prefill' : 'decode', tokens: i === 0 ? ids.length : 1 })),
    };
  }

  let finalText: string | null = null;
  if (detok) {
    detok.flush();
    finalText = detok.text;
    if (reason === 'stop') {
      const cut = Math.min(...stops.map((s) => finalText!.indexOf(s)).filter((i) => i >= 0));
      finalText = finalText.slice(0, cut);
    }
  }
  yield {
    type: 'done',
    reason,
    promptTokens: ids.length,
    generatedTokens: generated,
    text: finalText,
    ttftMs,
    totalMs: performance.now() - t0,
    prefillTokensPerSecond: prefill.ms > 0 ? (ids.length / prefill.ms) * 1000 : null,
    decodeTokensPerSecond: generated > 0 && decodeMs > 0 ? (generated / decodeMs) * 1000 : null,
  };
}
