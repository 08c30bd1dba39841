import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { modelLabel, modelTitle } from '../../../components/notebook/model-label.ts';
import type { ModelSummary } from '../../../server/protocol.ts';

const base: ModelSummary = {
  id: 'olmoe',
  loaded: false,
  hash: null,
  modelType: null,
  numLayers: null,
  moeLayers: null,
  numExperts: null,
  topK: null,
  contextLength: null,
  hasTokenizer: null,
  quant: 'none',
  weightBytes: null,
  warnings: null,
};

describe('model names in pickers', () => {
  it('name quantized models with their weight format and float32 ones plainly', () => {
    assert.equal(modelLabel(base), 'olmoe');
    assert.equal(modelLabel({ ...base, quant: 'int4' }), 'olmoe · int4');
    assert.equal(modelLabel({ ...base, quant: 'int8' }), 'olmoe · int8');
  });

  it('give the weights size in the hover text once loaded', () => {
    assert.equal(modelTitle(base), 'olmoe: float32 weights, not loaded yet');
    assert.equal(modelTitle({ ...base, quant: 'int4', loaded: true, weightBytes: 3 * 2 ** 20 }), "olmoe: int4 routed experts (the first MoE layers' int8; other weights float), 3.0 MiB of weights in memory");
  });

  it('say the context once loaded, and what loading the model warned about', () => {
    const loaded = { ...base, loaded: true, weightBytes: 2 ** 20, contextLength: 4992, warnings: ["context cut to 4992 of the model's 163840 positions"] };
    assert.equal(modelTitle(loaded), "olmoe: float32 weights, 1.0 MiB of weights in memory, context 4992 positions\nwarning: context cut to 4992 of the model's 163840 positions");
  });
});
