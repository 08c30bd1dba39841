/**
 * The router as ONNX ops (engine/graph/routing.ts) against the pure router (engine/routing.ts):
 * for every routing function, with bans, forced experts and the edge cases between them, the
 * graph picks the same experts with the same weights.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ElemType, GraphBuilder } from '../../engine/graph/builder.ts';
import { buildRouting } from '../../engine/graph/routing.ts';
import { seededRandom } from '../../engine/generate/sampling.ts';
import { FORCE_BIAS, routeToken, type RoutingSpec } from '../../engine/routing.ts';
import { OrtModel } from '../../engine/runtime/ort.ts';

const E = 8;
const dir = mkdtempSync(join(tmpdir(), 'moe-lab-graph-routing-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function graphRoute(spec: RoutingSpec, z: Float32Array, T: number, bias: Float32Array, k: number, correction?: Float32Array) {
  const b = new GraphBuilder(null);
  b.input('z', ElemType.float, [T, E]);
  b.input('bias', ElemType.float, [E]);
  b.input('top_k', ElemType.int64, [1]);
  if (correction) b.input('correction', ElemType.float, [E]);
  const r = buildRouting(b, spec, 'z', 'bias', 'top_k', correction ? 'correction' : undefined);
  b.node('Identity', [r.ids], {}, { names: ['ids'] });
  b.node('Identity', [r.weights], {}, { names: ['weights'] });
  b.output('ids', ElemType.int64, [T, k]);
  b.output('weights', ElemType.float, [T, k]);
  const file = join(dir, `routing-${spec.kind}.onnx`);
  writeFileSync(file, b.toModelBytes());
  const model = await OrtModel.create(file, { threads: 1 });
  try {
    const out = await model.run({
      z: { type: 'float32', data: z, dims: [T, E] },
      bias: { type: 'float32', data: bias, dims: [E] },
      top_k: { type: 'int64', data: BigInt64Array.from([BigInt(k)]), dims: [1] },
      ...(correction ? { correction: { type: 'float32' as const, data: correction, dims: [E] } } : {}),
    });
    return { ids: Array.from(out['ids']!.data as BigInt64Array, Number), weights: out['weights']!.data as Float32Array };
  } finally {
    await model.dispose();
  }
}

const biasOf = (ban: number[], force: number[]) => Float32Array.from({ length: E }, (_, e) => (ban.includes(e) ? -Infinity : force.includes(e) ? FORCE_BIAS : 0));

/** Per token, expert → weight, the same for graph and reference (order aside). */
async function assertSame(spec: RoutingSpec, z: Float32Array, bias: Float32Array, k: number, correction?: Float32Array) {
  const T = z.length / E;
  const g = await graphRoute(spec, z, T, bias, k, correction);
  for (let t = 0; t < T; t++) {
    const ref = routeToken(spec, z.subarray(t * E, (t + 1) * E), k, bias, correction);
    const want = new Map([...ref.ids].map((id, i) => [id, ref.weights[i]!]));
    const got = new Map(g.ids.slice(t * k, (t + 1) * k).map((id, i) => [id, g.weights[t * k + i]!]));
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${spec.kind} token ${t}: experts`);
    for (const [id, w] of want) {
      const gw = got.get(id)!;
      assert.ok(!Number.isNaN(gw) && Math.abs(gw - w) <= 1e-6, `${spec.kind} token ${t} expert ${id}: graph ${gw}, reference ${w}`);
    }
  }
}

const SPECS: RoutingSpec[] = [
  { kind: 'softmax_topk', renormalize: true },
  { kind: 'softmax_topk', renormalize: false },
  { kind: 'topk_softmax' },
  { kind: 'sigmoid_group_topk', nGroup: 4, topkGroup: 2, renormalize: true, scale: 2.5 },
];

describe('the router graph matches the pure router', () => {
  const random = seededRandom(11);
  const T = 24;
  const z = Float32Array.from({ length: T * E }, () => (random() - 0.5) * 6);
  const correction = Float32Array.from({ length: E }, () => (random() - 0.5) * 0.4);
  for (const spec of SPECS) {
    const corr = spec.kind === 'sigmoid_group_topk' ? correction : undefined;
    it(`${spec.kind}${'renormalize' in spec ? ` (renormalize ${spec.renormalize})` : ''}: plain, banned, forced`, async () => {
      for (const [ban, force] of [[[], []], [[1, 4], []], [[], [6]], [[0, 3], [7]]] as const) {
        await assertSame(spec, z, biasOf([...ban], [...force]), 2, corr);
      }
    });
  }

  it('a banned expert leaves its group-mate eligible under group-limited routing', async () => {
    // Groups of two; expert 0 banned: group {0, 1} must still compete on expert 1's score.
    const spec: RoutingSpec = { kind: 'sigmoid_group_topk', nGroup: 4, topkGroup: 1, renormalize: true, scale: 1 };
    const logits = Float32Array.from([5, 5, -5, -5, -5, -5, -5, -5]);
    const r = routeToken(spec, logits, 1, biasOf([0], []));
    assert.deepEqual([...r.ids], [1]);
    await assertSame(spec, logits, biasOf([0], []), 1);
  });

  it('a forced expert whose probability underflows gets weight 0, not NaN', async () => {
    const spec: RoutingSpec = { kind: 'softmax_topk', renormalize: true };
    const logits = Float32Array.from([0, -120, -1, -1, -1, -1, -1, -1]);
    const r = routeToken(spec, logits, 1, biasOf([], [1]));
    assert.deepEqual([[...r.ids], [...r.weights]], [[1], [0]]);
    await assertSame(spec, logits, biasOf([], [1]), 1);
  });
});
