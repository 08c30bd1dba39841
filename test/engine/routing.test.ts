/** The pure routing functions: hand-computed cases, and every fixture's top-k rebuilt from its router logits. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TensorStore } from '../../engine/checkpoint/safetensors.ts';
import { entropy, routeToken, softmax, type RoutingSpec } from '../../engine/routing.ts';
import { fixtureDir, loadExpected, readArray } from '../helpers/fixtures.ts';

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe('routing functions', () => {
  const z = [2, 1, 0, -1];
  const p = [Math.exp(2), Math.exp(1), 1, Math.exp(-1)];
  const sum = p.reduce((a, b) => a + b);

  it('softmax → top-k → renormalise keeps the ratio of the chosen probabilities', () => {
    const r = routeToken({ kind: 'softmax_topk', renormalize: true }, z, 2);
    assert.deepEqual([...r.ids], [0, 1]);
    close(r.weights[0]!, Math.exp(2) / (Math.exp(2) + Math.exp(1)));
    close(r.weights[1]!, Math.exp(1) / (Math.exp(2) + Math.exp(1)));
  });

  it('softmax → top-k without renormalisation keeps the full-softmax probabilities', () => {
    const r = routeToken({ kind: 'softmax_topk', renormalize: false }, z, 2);
    close(r.weights[0]!, Math.exp(2) / sum);
    close(r.weights[1]!, Math.exp(1) / sum);
  });

  it('top-k → softmax equals renormalised softmax', () => {
    const a = routeToken({ kind: 'topk_softmax' }, z, 3);
    const b = routeToken({ kind: 'softmax_topk', renormalize: true }, z, 3);
    assert.deepEqual([...a.ids], [...b.ids]);
    a.weights.forEach((w, i) => close(w, b.weights[i]!));
  });

  it('a ban removes the expert before the softmax; a force takes a slot', () => {
    const banned = routeToken({ kind: 'softmax_topk', renormalize: false }, z, 2, [-Infinity, 0, 0, 0]);
    assert.deepEqual([...banned.ids], [1, 2]);
    const s = Math.exp(1) + 1 + Math.exp(-1);
    close(banned.weights[0]!, Math.exp(1) / s);
    const forced = routeToken({ kind: 'softmax_topk', renormalize: true }, z, 2, [0, 0, 0, 1e4]);
    assert.deepEqual(new Set(forced.ids), new Set([0, 3]));
    close(forced.weights.reduce((a, b) => a + b, 0), 1);
  });

  it('sigmoid routing selects with the bias, weighs without it, within the best groups', () => {
    // 4 experts in 2 groups of 2; the bias lifts expert 3 so group 1 wins and 3 is chosen.
    const spec: RoutingSpec = { kind: 'sigmoid_group_topk', nGroup: 2, topkGroup: 1, renormalize: true, scale: 2 };
    const logits = [1, 0.5, 0, 0.2];
    const r = routeToken(spec, logits, 2, undefined, [0, 0, 0, 0.9]);
    assert.deepEqual(new Set(r.ids), new Set([2, 3]));
    const s2 = 1 / (1 + Math.exp(-0)), s3 = 1 / (1 + Math.exp(-0.2));
    close(r.weights.reduce((a, b) => a + b, 0), 2);
    close(r.weights[0]!, (2 * s3) / (s2 + s3));
    const unbiased = routeToken(spec, logits, 2);
    assert.deepEqual(new Set(unbiased.ids), new Set([0, 1]));
  });

  it('entropy of a uniform distribution over E experts is ln E', () => {
    close(entropy(softmax([0, 0, 0, 0, 0, 0, 0, 0])), Math.log(8));
    close(entropy([1, 0, 0]), 0);
  });
});

/** Per-architecture routing spec as the fixtures' README describes it. */
const SPECS: Record<string, RoutingSpec> = {
  mixtral: { kind: 'softmax_topk', renormalize: true },
  qwen2_moe: { kind: 'softmax_topk', renormalize: false },
  olmoe: { kind: 'softmax_topk', renormalize: false },
  qwen3_moe: { kind: 'softmax_topk', renormalize: true },
  granitemoe: { kind: 'topk_softmax' },
  deepseek_v3: { kind: 'sigmoid_group_topk', nGroup: 4, topkGroup: 2, renormalize: true, scale: 2.5 },
};

describe('the pure router reproduces every reference fixture from its router logits', () => {
  for (const [arch, spec] of Object.entries(SPECS)) {
    it(arch, () => {
      const exp = loadExpected(arch);
      const E = exp.num_experts;
      const k = exp.top_k;
      const store = new TensorStore(fixtureDir(arch));
      for (const p of exp.prompts) {
        const T = p.input_ids.length;
        const z = readArray(arch, p, 'router_logits');
        const ids = readArray(arch, p, 'topk_ids');
        const w = readArray(arch, p, 'topk_weights');
        exp.moe_layers.forEach((layer, m) => {
          const corr = spec.kind === 'sigmoid_group_topk' ? store.read(`model.layers.${layer}.mlp.gate.e_score_correction_bias`, [E]) : undefined;
          for (let t = 0; t < T; t++) {
            const r = routeToken(spec, z.subarray((m * T + t) * E, (m * T + t + 1) * E), k, undefined, corr);
            const at = (m * T + t) * k;
            const want = new Map([...ids.subarray(at, at + k)].map((id, i) => [id, w[at + i]!]));
            assert.deepEqual([...r.ids].sort(), [...want.keys()].sort(), `${p.name} layer ${layer} token ${t}`);
            r.ids.forEach((id, i) => close(r.weights[i]!, want.get(id)!, 1e-5));
          }
        });
      }
    });
  }
});
