/** The page's run cache: streamed events accumulate in order, in one list per run. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RunCache } from '../../components/runs.ts';
import type { RunEvent } from '../../server/protocol.ts';

const timing = (i: number): RunEvent => ({ t: 'timing', phase: 'decode', tokens: 1, ms: i }) as RunEvent;

describe('run cache', () => {
  it('keeps every streamed event in order, growing one list (no copy per append), and reports the end', () => {
    const cache = new RunCache();
    let notified = 0;
    cache.subscribe('r', () => notified++);
    cache.start('r');
    const list = cache.get('r').events;
    for (let i = 0; i < 20_000; i++) cache.append('r', [timing(i)]);
    const s = cache.get('r');
    assert.equal(s.events, list, 'the same list, grown in place');
    assert.equal(s.events.length, 20_000);
    assert.ok(s.events.every((e, i) => e.t === 'timing' && e.ms === i));
    assert.equal(s.version, 20_000);
    assert.equal(s.status, 'streaming');
    cache.append('r', [{ t: 'error', code: 'X', message: 'y' } as RunEvent]);
    assert.equal(cache.get('r').status, 'failed');
    assert.equal(notified, 20_002);
  });

  it('a run appended to without start gets its own list', () => {
    const cache = new RunCache();
    cache.append('a', [timing(1)]);
    cache.append('b', [timing(2)]);
    assert.notEqual(cache.get('a').events, cache.get('b').events);
    assert.deepEqual(cache.get('a').events.map((e) => (e.t === 'timing' ? e.ms : -1)), [1]);
  });
});
