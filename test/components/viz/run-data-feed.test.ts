/** One RunData per run's event list, shared by all the views that show the run. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runDataFor } from '../../../components/viz/use-renderer.ts';
import { syntheticTrace } from '../../../components/viz/synthetic.ts';

describe('runDataFor', () => {
  it('gives every view of one event list the same RunData, fed once as the list grows in place', () => {
    const all = syntheticTrace({ tokens: 40, layers: 2, experts: 8, topK: 2, seed: 1 });
    const events = all.slice(0, 20);
    const first = runDataFor(events);
    const second = runDataFor(events);
    assert.equal(second, first);
    const before = first.length;
    for (const e of all.slice(20)) events.push(e);
    assert.equal(runDataFor(events), first);
    assert.equal(runDataFor(events), first, 'a second view does not append the new events again');
    assert.ok(first.length > before);
    assert.equal(first.routedCount, 40);
  });

  it('keeps different runs apart and starts over when a list is restarted', () => {
    const a = syntheticTrace({ tokens: 10, layers: 2, experts: 8, topK: 2, seed: 1 });
    const b = syntheticTrace({ tokens: 12, layers: 2, experts: 8, topK: 2, seed: 2 });
    const da = runDataFor(a);
    assert.notEqual(runDataFor(b), da);
    a.length = 3;
    const restarted = runDataFor(a);
    assert.notEqual(restarted, da);
    assert.ok(restarted.routedCount <= 3);
  });
});
