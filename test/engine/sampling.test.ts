/** Sampling maths with pinned randomness. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { argmax, logSoftmax, sampleToken, seededRandom, topAlternatives } from '../../engine/generate/sampling.ts';

describe('sampling', () => {
  const logits = Float32Array.from([1, 3, 2, 0]);

  it('greedy picks the argmax whatever the random draw', () => {
    assert.equal(sampleToken(logits, {}, () => 0.99), 1);
    assert.equal(sampleToken(logits, { temperature: 0 }, () => 0), 1);
    assert.equal(argmax([0, 5, 5]), 1);
  });

  it('the draw walks the sorted distribution: u=0 takes the most likely token, u→1 the least', () => {
    assert.equal(sampleToken(logits, { temperature: 1 }, () => 0), 1);
    assert.equal(sampleToken(logits, { temperature: 1 }, () => 0.999999), 3);
  });

  it('top-k keeps only the k most likely tokens', () => {
    for (const u of [0, 0.5, 0.9999]) assert.ok([1, 2].includes(sampleToken(logits, { temperature: 1, topK: 2 }, () => u)));
  });

  it('top-p keeps the smallest set whose mass reaches p', () => {
    // p(1) = e^3 / (e^0+e^1+e^2+e^3) ≈ 0.644 < 0.7, p(1)+p(2) ≈ 0.881 ≥ 0.7: tokens 1 and 2 remain.
    for (const u of [0, 0.7, 0.9999]) assert.ok([1, 2].includes(sampleToken(logits, { temperature: 1, topP: 0.7 }, () => u)));
    assert.equal(sampleToken(logits, { temperature: 1, topP: 0.5 }, () => 0.9999), 1);
  });

  it('a seeded generator repeats its stream and differs across seeds', () => {
    const a = seededRandom(42), b = seededRandom(42), c = seededRandom(43);
    const xs = [a(), a(), a()];
    assert.deepEqual(xs, [b(), b(), b()]);
    assert.notDeepEqual(xs, [c(), c(), c()]);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
  });

  it('log-probabilities sum to one and alternatives come most likely first', () => {
    const lp = logSoftmax(logits);
    let s = 0;
    for (const v of lp) s += Math.exp(v);
    assert.ok(Math.abs(s - 1) < 1e-12);
    assert.deepEqual(topAlternatives(lp, 3).map((a) => a.id), [1, 2, 0]);
  });
});
