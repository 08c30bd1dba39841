/**
 * Routed-expert data from other inference servers, into the trace schema (ids only: gate
 * weights, router probabilities and entropies are null).
 *
 * SGLang (`--enable-return-routed-experts`, request `return_routed_experts: true`): the
 * response's `meta_info.routed_experts` is base64 of little-endian int32, shape
 * `[tokens, num_hidden_layers, top_k]`; dense layers are −1. Tokens are the sequence's positions
 * from the first prompt token; the last generated token was never fed back, so it has none.
 *
 * vLLM (`--enable-return-routed-experts`): `prompt_routed_experts` on the response and
 * `routed_experts` on each choice/output, nested int arrays `[tokens, layers, k]`; a prompt
 * token served from the prefix cache has a row of −1. Without `prompt_routed_experts`, a choice
 * whose `routed_experts` is longer than its completion is taken to cover the whole sequence.
 */
import { z } from 'zod';
import { badInput } from './errors.ts';
import { emptyMeta, traceFromArrays, type RunMeta, type RunTrace } from './trace.ts';

export interface ImportOptions {
  /** Run id of the trace; with several choices, `-<n>` is appended. */
  readonly runId: string;
  /** Defaults to the payload's `model` field where it has one. */
  readonly modelId?: string;
  readonly modelHash?: string | null;
  readonly numExperts: number;
  /** Model layer index of each entry on the payload's layer axis (default 0 … L−1). */
  readonly layers?: readonly number[];
  /** Prompt token ids, where the payload does not carry them. */
  readonly promptIds?: readonly number[];
  readonly meta?: Partial<RunMeta>;
}

const int = z.number().int();

/** Expert ids [T, L, k] in one array, with the layer axis and k. */
interface Grid {
  readonly ids: Int32Array;
  readonly L: number;
  readonly k: number;
}

/** Drops layers that are −1 at every position (dense layers), keeping the model layer index of the rest. */
function dropDenseLayers(g: Grid, layerIndex: readonly number[]): { ids: Int32Array; moeLayers: number[] } {
  const T = g.ids.length / (g.L * g.k);
  const keep: number[] = [];
  for (let l = 0; l < g.L; l++) {
    let any = false;
    for (let t = 0; t < T && !any; t++) for (let j = 0; j < g.k; j++) if (g.ids[(t * g.L + l) * g.k + j] !== -1) any = true;
    if (any) keep.push(l);
  }
  if (keep.length === 0) throw badInput('the payload routes no token at any layer');
  const ids = new Int32Array(T * keep.length * g.k);
  for (let t = 0; t < T; t++) {
    keep.forEach((l, m) => ids.set(g.ids.subarray((t * g.L + l) * g.k, (t * g.L + l + 1) * g.k), (t * keep.length + m) * g.k));
  }
  return { ids, moeLayers: keep.map((l) => layerIndex[l]!) };
}

function layerIndex(opts: ImportOptions, L: number): readonly number[] {
  if (!opts.layers) return Array.from({ length: L }, (_, i) => i);
  if (opts.layers.length !== L) throw badInput(`the payload has ${L} layers, but ${opts.layers.length} layer indices were given`);
  return opts.layers;
}

function checkExperts(ids: Int32Array, E: number): void {
  for (const e of ids) if (e !== -1 && !(e >= 0 && e < E)) throw badInput(`expert id ${e} is outside 0 … ${E - 1}`);
}

// ---- SGLang ----------------------------------------------------------------------------------

const sglangResponse = z.object({
  text: z.string().optional(),
  output_ids: z.array(int).optional(),
  meta_info: z.looseObject({
    id: z.string().optional(),
    prompt_tokens: int.nonnegative(),
    completion_tokens: int.nonnegative().optional(),
    routed_experts: z.string(),
  }),
});

/** Little-endian int32 from base64, whatever this machine's byte order. */
export function decodeInt32Base64(b64: string): Int32Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw badInput('routed_experts is not base64');
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length % 4 !== 0) throw badInput(`routed_experts holds ${bytes.length} bytes, not a whole number of int32`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Int32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt32(i * 4, true);
  return out;
}

export interface SglangOptions extends ImportOptions {
  /** Length of the payload's layer axis: the model's num_hidden_layers. */
  readonly numLayers: number;
  /** Experts per token (num_experts_per_tok). */
  readonly k: number;
}

/** One SGLang `/generate` response (or a batch: an array of them) → one trace per response. */
export function importSglang(payload: unknown, opts: SglangOptions): RunTrace[] {
  const list = Array.isArray(payload) ? payload : [payload];
  return list.map((item, n) => {
    const r = sglangResponse.safeParse(item);
    if (!r.success) throw badInput(`SGLang response${list.length > 1 ? ` ${n}` : ''}: ${r.error.issues[0]?.path.join('.')} ${r.error.issues[0]?.message}`);
    const { meta_info: info, output_ids: outputIds, text } = r.data;
    const raw = decodeInt32Base64(info.routed_experts);
    const per = opts.numLayers * opts.k;
    if (per <= 0 || raw.length % per !== 0) throw badInput(`routed_experts holds ${raw.length} ids, not a multiple of ${opts.numLayers} layers × ${opts.k}`);
    checkExperts(raw, opts.numExperts);
    const { ids, moeLayers } = dropDenseLayers({ ids: raw, L: opts.numLayers, k: opts.k }, layerIndex(opts, opts.numLayers));
    const completion = info.completion_tokens ?? outputIds?.length ?? 0;
    const tokenIds = opts.promptIds || outputIds ? [...(opts.promptIds ?? new Array<null>(info.prompt_tokens).fill(null)), ...(outputIds ?? [])] : null;
    const base = emptyMeta('sglang', opts.meta);
    return traceFromArrays({
      runId: list.length > 1 ? `${opts.runId}-${n}` : opts.runId,
      modelId: opts.modelId ?? 'unknown',
      modelHash: opts.modelHash ?? null,
      meta: { ...base, extra: { ...base.extra, ...(info.id ? { request_id: info.id } : {}), ...(text !== undefined ? { text } : {}) } },
      moeLayers,
      numExperts: opts.numExperts,
      k: opts.k,
      ids,
      tokenIds,
      promptTokens: info.prompt_tokens,
      numTokens: info.prompt_tokens + completion,
    });
  });
}

// ---- vLLM ------------------------------------------------------------------------------------

const routedGrid = z.array(z.array(z.array(int)));

const vllmChoice = z.looseObject({
  index: int.optional(),
  text: z.string().optional(),
  token_ids: z.array(int).nullish(),
  routed_experts: routedGrid.nullish(),
});

const vllmResponse = z.looseObject({
  model: z.string().optional(),
  prompt: z.string().nullish(),
  prompt_token_ids: z.array(int).nullish(),
  prompt_routed_experts: routedGrid.nullish(),
  choices: z.array(vllmChoice).optional(),
  outputs: z.array(vllmChoice).optional(),
});

/** A nested [T][L][k] array as one Int32Array, checking it is rectangular. */
function gridOf(rows: readonly (readonly (readonly number[])[])[], what: string, shape?: { L: number; k: number }): Grid {
  const L = shape?.L ?? rows[0]?.length ?? 0;
  const k = shape?.k ?? rows[0]?.[0]?.length ?? 0;
  const ids = new Int32Array(rows.length * L * k);
  rows.forEach((layers, t) => {
    if (layers.length !== L) throw badInput(`${what}[${t}] has ${layers.length} layers, expected ${L}`);
    layers.forEach((slots, l) => {
      if (slots.length !== k) throw badInput(`${what}[${t}][${l}] has ${slots.length} experts, expected ${k}`);
      ids.set(slots, (t * L + l) * k);
    });
  });
  return { ids, L, k };
}

/**
 * A vLLM response (OpenAI-compatible `choices`, or the offline `RequestOutput` shape with
 * `outputs`) → one trace per choice.
 */
export function importVllm(payload: unknown, opts: ImportOptions): RunTrace[] {
  const r = vllmResponse.safeParse(payload);
  if (!r.success) throw badInput(`vLLM response: ${r.error.issues[0]?.path.join('.')} ${r.error.issues[0]?.message}`);
  const res = r.data;
  const choices = res.choices ?? res.outputs ?? [];
  if (choices.length === 0) throw badInput('vLLM response: no choices or outputs');
  const promptIds = res.prompt_token_ids ?? opts.promptIds ?? null;
  const first = res.prompt_routed_experts?.[0] ?? choices.find((c) => c.routed_experts?.length)?.routed_experts?.[0];
  if (!first) throw badInput('vLLM response: no routed experts (start the server with --enable-return-routed-experts)');
  const shape = { L: first.length, k: first[0]?.length ?? 0 };
  if (shape.k === 0) throw badInput('vLLM response: routed experts have no expert slots');
  const prompt = res.prompt_routed_experts ? gridOf(res.prompt_routed_experts, 'prompt_routed_experts', shape) : null;
  const per = shape.L * shape.k;
  const P = promptIds?.length ?? (prompt ? prompt.ids.length / per : 0);

  return choices.map((c, n) => {
    const completion = c.routed_experts ? gridOf(c.routed_experts, `choices[${n}].routed_experts`, shape) : { ids: new Int32Array(0), ...shape };
    const C = c.token_ids?.length ?? null;
    let all: Int32Array;
    if (prompt) {
      if (prompt.ids.length / per !== P) throw badInput(`prompt_routed_experts has ${prompt.ids.length / per} tokens, the prompt ${P}`);
      all = new Int32Array(prompt.ids.length + completion.ids.length);
      all.set(prompt.ids);
      all.set(completion.ids, prompt.ids.length);
    } else if (C !== null && completion.ids.length / per > C) {
      all = completion.ids;
    } else {
      // Prompt routing not returned: its positions have none.
      all = new Int32Array(P * per + completion.ids.length).fill(-1);
      all.set(completion.ids, P * per);
    }
    checkExperts(all, opts.numExperts);
    const { ids, moeLayers } = dropDenseLayers({ ids: all, L: shape.L, k: shape.k }, layerIndex(opts, shape.L));
    const tokenIds = promptIds || c.token_ids ? [...(promptIds ?? new Array<null>(P).fill(null)), ...(c.token_ids ?? [])] : null;
    const base = emptyMeta('vllm', { prompt: res.prompt ?? null, ...opts.meta });
    return traceFromArrays({
      runId: choices.length > 1 ? `${opts.runId}-${n}` : opts.runId,
      modelId: opts.modelId ?? res.model ?? 'unknown',
      modelHash: opts.modelHash ?? null,
      meta: { ...base, extra: { ...base.extra, ...(c.text !== undefined ? { text: c.text } : {}), choice: c.index ?? n } },
      moeLayers,
      numExperts: opts.numExperts,
      k: shape.k,
      ids,
      tokenIds,
      promptTokens: P,
      numTokens: P + (C ?? Math.max(0, completion.ids.length / per)),
    });
  });
}
