/** What notebook code gets from `lab.generate`: every layer's routing, and for a biased router what it would have chosen without the bias. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runForKernel } from '../../../components/notebook/kernel-run.ts';
import type { RunEvent } from '../../../server/protocol.ts';

const started = { t: 'started', seq: 0, model: 'ds', modelHash: 'h', promptTokens: 1, maxNewTokens: 0, moeLayers: [1, 2], numExperts: 8, topK: 2, seed: 0 } as unknown as RunEvent;
const routing = (ub?: number[]) =>
  ({ t: 'routing', seq: 1, index: 0, phase: 'prefill', ids: [3, 5, 1, 2], w: [0.6, 0.4, 0.7, 0.3], h: [1.1, 0.9], ...(ub ? { ub } : {}) }) as unknown as RunEvent;

describe('runs for notebook code', () => {
  it('splits each position into its MoE layers, named by their decoder layer', () => {
    const run = runForKernel('r', 'ds', [started, routing()]);
    assert.deepEqual(run.routing[0]!.layers, [
      { layer: 1, ids: [3, 5], weights: [0.6, 0.4], entropy: 1.1 },
      { layer: 2, ids: [1, 2], weights: [0.7, 0.3], entropy: 0.9 },
    ]);
  });

  it("gives a biased router's choice without the bias, per layer (DeepSeek-V3)", () => {
    const run = runForKernel('r', 'ds', [started, routing([3, 6, 1, 2])]);
    assert.deepEqual(run.routing[0]!.layers.map((l) => l.unbiasedIds), [[3, 6], [1, 2]]);
  });
});
