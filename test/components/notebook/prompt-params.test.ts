/** A prompt cell's fields become generate parameters, and a field the server would refuse is named in a readable error. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newCell, promptParams, settingsFromParams, type Cell, type PromptSettings } from '../../../components/notebook/model.ts';
import type { GenerateParams } from '../../../server/protocol.ts';

const cell = (settings: Partial<PromptSettings>): Cell => {
  const c = newCell('prompt', 'tiny');
  return { ...c, source: 'Hello', prompt: { ...c.prompt!, ...settings } };
};

describe('prompt cell parameters', () => {
  it('sends sampling, seed and interventions only when set', () => {
    assert.deepEqual(promptParams(cell({})), { model: 'tiny', prompt: 'Hello', maxNewTokens: cell({}).prompt!.maxNewTokens });
    const p = promptParams(cell({ maxNewTokens: 8, temperature: 0.7, topP: 0.9, seed: 3, ban: '*:3, 1:2', force: '0:1', expertsPerToken: 3 }));
    assert.deepEqual(p, {
      model: 'tiny',
      prompt: 'Hello',
      maxNewTokens: 8,
      seed: 3,
      sampling: { temperature: 0.7, topP: 0.9 },
      interventions: { ban: [{ layer: 'all', expert: 3 }, { layer: 1, expert: 2 }], force: [{ layer: 0, expert: 1 }], topK: 3 },
    });
  });

  it('sends a prompt written as "ids: 5, 17, 3" as token ids, for checkpoints without a tokenizer', () => {
    const withSource = (source: string): Cell => ({ ...cell({}), source });
    assert.deepEqual(promptParams(withSource('ids: 5, 17, 3'))['promptIds'], [5, 17, 3]);
    assert.deepEqual(promptParams(withSource('  ids:1 2,3\n'))['promptIds'], [1, 2, 3]);
    assert.equal(promptParams(withSource('ids: 5'))['prompt'], undefined);
    assert.equal(promptParams(withSource('Kids: 5'))['prompt'], 'Kids: 5', 'only a prompt that starts with ids:');
    for (const bad of ['ids:', 'ids: 5, x', 'ids: -1', 'ids: 1.5']) assert.throws(() => promptParams(withSource(bad)), /a prompt of token ids is "ids:" and whole numbers/, bad);
  });

  it("reads a run's parameters back into the cell they came from", () => {
    const settings = { maxNewTokens: 8, temperature: 0.7, topP: 0.9, topKSampling: 5, seed: 3, ban: '*:3, 1:2', force: '0:1', expertsPerToken: 3 };
    for (const source of ['Hello', 'ids: 4, 5, 6']) {
      const params = promptParams({ ...cell(settings), source });
      const back = settingsFromParams(params as GenerateParams);
      assert.equal(back.source, source);
      assert.deepEqual(promptParams({ ...cell({}), source: back.source, prompt: back.prompt }), params);
    }
  });

  it('names the field and its range when a number is out of range', () => {
    const cases: [Partial<PromptSettings>, RegExp][] = [
      [{ expertsPerToken: 0 }, /^experts\/token must be a whole number of at least 1, got 0$/],
      [{ temperature: -1 }, /^temperature must be a number from 0 to 100, got -1$/],
      [{ topP: 2 }, /^top-p must be a number above 0 and at most 1, got 2$/],
      [{ topP: 0 }, /^top-p must be/],
      [{ seed: 1.5 }, /^seed must be a whole number from 0 to 4294967295, got 1\.5$/],
      [{ seed: -1 }, /^seed must be/],
      [{ maxNewTokens: 2.5 }, /^max tokens must be a whole number of at least 0, got 2\.5$/],
    ];
    for (const [settings, message] of cases) assert.throws(() => promptParams(cell(settings)), { message }, JSON.stringify(settings));
  });

  it("runs a cell without a model of its own on the notebook's model", () => {
    assert.equal(promptParams(cell({ model: null }), 'notebook-model').model, 'notebook-model');
    assert.equal(promptParams(cell({ model: 'own' }), 'notebook-model').model, 'own');
  });

  it('says to choose a model when neither the cell nor the notebook has one', () => {
    assert.throws(() => promptParams(cell({ model: null })), { message: "choose a model: this cell uses the notebook's model, and the notebook has none" });
  });

  it('leaves max tokens to the server when the cell sets none, and sends 0 when it is 0', () => {
    assert.equal('maxNewTokens' in promptParams(cell({ maxNewTokens: undefined })), false);
    assert.equal(promptParams(cell({ maxNewTokens: 0 })).maxNewTokens, 0);
  });

  it('accepts the ends of each range', () => {
    assert.doesNotThrow(() => promptParams(cell({ temperature: 0, topP: 1, seed: 2 ** 32 - 1, expertsPerToken: 1, maxNewTokens: 0 })));
  });
});
