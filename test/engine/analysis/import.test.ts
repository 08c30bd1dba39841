/**
 * Importing routed experts from SGLang and vLLM. The payloads are written by hand from the
 * servers' documented formats: SGLang's `meta_info.routed_experts` is base64 of little-endian
 * int32 [tokens, num_hidden_layers, top_k] (−1 on dense layers, the last generated token
 * absent); vLLM's `prompt_routed_experts` / `routed_experts` are nested int arrays
 * [tokens, layers, k], −1 rows for prefix-cached prompt tokens.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AnalysisErrorCode } from '../../../engine/analysis/errors.ts';
import { decodeInt32Base64, importSglang, importVllm } from '../../../engine/analysis/import.ts';
import { traceRows } from '../../../engine/analysis/rows.ts';
import { expertIds } from '../../../engine/analysis/views.ts';

/** What SGLang does: numpy int32 (little-endian) bytes, base64. */
function sglangBase64(grid: number[][][]): string {
  const flat = grid.flat(2);
  const bytes = new Uint8Array(flat.length * 4);
  const view = new DataView(bytes.buffer);
  flat.forEach((v, i) => view.setInt32(i * 4, v, true));
  return Buffer.from(bytes).toString('base64');
}

describe('SGLang routed_experts', () => {
  // 3 prompt + 3 generated tokens → 5 routed positions; 4 layers, layer 0 dense; top-2 of 8.
  const grid = [
    [[-1, -1], [1, 2], [3, 4], [5, 6]],
    [[-1, -1], [2, 1], [4, 3], [6, 5]],
    [[-1, -1], [0, 7], [7, 0], [1, 0]],
    [[-1, -1], [1, 3], [2, 5], [6, 7]],
    [[-1, -1], [4, 0], [0, 4], [3, 2]],
  ];
  const response = {
    text: ' and so on',
    output_ids: [100, 101, 102],
    meta_info: { id: 'req-1', prompt_tokens: 3, completion_tokens: 3, routed_experts: sglangBase64(grid) },
  };

  it('decodes little-endian int32, including negatives', () => {
    assert.deepEqual([...decodeInt32Base64(sglangBase64([[[-1, 0x01020304, -2147483648]]]))], [-1, 0x01020304, -2147483648]);
  });

  it('becomes a trace of the MoE layers, ids only, with the unrouted last token kept', () => {
    const [t] = importSglang(response, { runId: 's1', modelId: 'qwen3-moe', numExperts: 8, numLayers: 4, k: 2, promptIds: [7, 8, 9] });
    assert.ok(t);
    assert.deepEqual(t.moeLayers, [1, 2, 3], 'dense layer 0 dropped');
    assert.equal(t.tokens.length, 6);
    assert.deepEqual(t.tokens.map((x) => x.id), [7, 8, 9, 100, 101, 102]);
    assert.deepEqual(t.tokens.map((x) => x.phase), ['prefill', 'prefill', 'prefill', 'decode', 'decode', 'decode']);
    assert.deepEqual(t.routing.map((r) => r.index), [0, 1, 2, 3, 4]);
    assert.ok(t.routing.every((r) => r.weights === null && r.entropy === null && r.selectedProbs === null));
    assert.equal(t.meta.source, 'sglang');
    assert.equal(t.meta.extra['request_id'], 'req-1');
    const view = expertIds(t);
    assert.deepEqual(view.shape, [6, 3, 2]);
    assert.deepEqual([...view.data], [...grid.flatMap((row) => row.slice(1)).flat(), -1, -1, -1, -1, -1, -1]);
    const rows = traceRows(t);
    assert.equal(rows.length, 5 * 3 * 2);
    assert.ok(rows.gate_weight.every((w) => w === null));
  });

  it('maps the layer axis to model layers when told, and batches become one run each', () => {
    const traces = importSglang([response, response], { runId: 'b', numExperts: 8, numLayers: 4, k: 2, layers: [0, 2, 4, 6] });
    assert.deepEqual(traces.map((t) => t.runId), ['b-0', 'b-1']);
    assert.deepEqual(traces[0]!.moeLayers, [2, 4, 6]);
  });

  it('refuses payloads that do not match the declared shape or experts', () => {
    const bad = (p: unknown, o: Partial<Parameters<typeof importSglang>[1]> = {}) =>
      assert.throws(() => importSglang(p, { runId: 'x', numExperts: 8, numLayers: 4, k: 2, ...o }), { code: AnalysisErrorCode.BAD_INPUT });
    bad({ ...response, meta_info: { ...response.meta_info, routed_experts: 'not base64!' } });
    bad(response, { numLayers: 3 });
    bad(response, { numExperts: 4 });
    bad({ text: 'no meta' });
    bad({ ...response, meta_info: { ...response.meta_info, routed_experts: sglangBase64([[[1, -1], [1, 2], [3, 4], [5, 6]]]) } });
  });
});

describe('vLLM routed_experts', () => {
  const row = (a: number, b: number, c: number, d: number) => [[a, b], [c, d]];
  const cached = row(-1, -1, -1, -1);
  const response = {
    id: 'cmpl-1',
    model: 'allenai/OLMoE-1B-7B',
    prompt_token_ids: [1, 2, 3, 4],
    prompt_routed_experts: [cached, cached, row(0, 1, 2, 3), row(4, 5, 6, 7)],
    choices: [
      { index: 0, text: 'ab', token_ids: [10, 11, 12], routed_experts: [row(1, 0, 3, 2), row(5, 4, 7, 6)] },
      { index: 1, text: 'cd', token_ids: [20, 21, 22], routed_experts: [row(2, 3, 0, 1), row(6, 7, 4, 5), row(0, 7, 1, 6)] },
    ],
    usage: { prompt_tokens: 4, completion_tokens: 6 },
  };

  it('prefix-cached prompt tokens have no routing; each choice is a run', () => {
    const traces = importVllm(response, { runId: 'v', numExperts: 8 });
    assert.deepEqual(traces.map((t) => t.runId), ['v-0', 'v-1']);
    const [a, b] = traces as [(typeof traces)[0], (typeof traces)[0]];
    assert.equal(a.modelId, 'allenai/OLMoE-1B-7B');
    assert.deepEqual(a.moeLayers, [0, 1]);
    assert.equal(a.k, 2);
    assert.deepEqual(a.tokens.map((t) => t.id), [1, 2, 3, 4, 10, 11, 12]);
    assert.deepEqual(a.routing.map((r) => r.index), [2, 3, 4, 5]);
    assert.deepEqual(b.routing.map((r) => r.index), [2, 3, 4, 5, 6]);
    assert.deepEqual([...expertIds(a).data], [...cached.flat(), ...cached.flat(), 0, 1, 2, 3, 4, 5, 6, 7, 1, 0, 3, 2, 5, 4, 7, 6, -1, -1, -1, -1]);
    assert.equal(traceRows(traces).length, (4 + 5) * 2 * 2);
    assert.equal(a.meta.extra['text'], 'ab');
  });

  it('reads the offline RequestOutput shape the same way', () => {
    const offline = { prompt: 'hi', prompt_token_ids: response.prompt_token_ids, prompt_routed_experts: response.prompt_routed_experts, outputs: [response.choices[0]] };
    const [t] = importVllm(offline, { runId: 'o', numExperts: 8, modelId: 'olmoe' });
    assert.equal(t!.runId, 'o');
    assert.equal(t!.meta.prompt, 'hi');
    assert.deepEqual([...expertIds(t!).data], [...expertIds(importVllm(response, { runId: 'v', numExperts: 8 })[0]!).data]);
  });

  it('a choice covering the whole sequence is accepted when prompt routing is not separate', () => {
    const whole = { prompt_token_ids: [1, 2], choices: [{ token_ids: [3, 4], routed_experts: [row(0, 1, 2, 3), row(1, 2, 3, 4), row(2, 3, 4, 5)] }] };
    const [t] = importVllm(whole, { runId: 'w', numExperts: 8 });
    assert.deepEqual(t!.routing.map((r) => [r.index, r.phase]), [[0, 'prefill'], [1, 'prefill'], [2, 'decode']]);
  });

  it('refuses ragged arrays, missing routing and out-of-range experts', () => {
    const bad = (p: unknown, E = 8) => assert.throws(() => importVllm(p, { runId: 'x', numExperts: E }), { code: AnalysisErrorCode.BAD_INPUT });
    bad({ ...response, prompt_routed_experts: [cached, [[1, 2]], row(0, 1, 2, 3), row(4, 5, 6, 7)] });
    bad({ ...response, prompt_routed_experts: null, choices: [{ token_ids: [1], routed_experts: null }] });
    bad(response, 4);
    bad({ choices: [] });
  });
});
