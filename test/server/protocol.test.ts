/** What clients accept from the server: every run event and message kind, parsed rather than cast. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseServerMessage, runEventSchema, type RunEvent } from '../../server/protocol.ts';

const EVERY_KIND: RunEvent[] = [
  { t: 'started', model: 'm', modelHash: 'h', promptTokens: 3, maxNewTokens: 4, moeLayers: [1, 3], numExperts: 8, topK: 2, seed: 0 },
  { t: 'token', index: 3, id: 17, text: 'a', delta: null, phase: 'decode', logprob: -0.5, top: [[17, -0.5], [2, -1.25]] },
  { t: 'routing', index: 3, phase: 'decode', ids: [1, 2, 3, 4], w: [0.6, 0.4, 0.7, 0.3], h: [1.2, 0.9], p: Array(16).fill(0.0625), ub: [1, 5, 3, 4] },
  { t: 'timing', phase: 'prefill', tokens: 3, ms: 1.5, ttftMs: 2 },
  { t: 'done', reason: 'length', promptTokens: 3, generatedTokens: 4, text: 'abcd', ttftMs: 2, totalMs: 9, prefillTokensPerSecond: 100, decodeTokensPerSecond: null },
  { t: 'error', code: 'ENGINE_X', message: 'm' },
];

describe('the messages a client accepts', () => {
  it('keeps every field of every run event kind, optional ones included', () => {
    for (const e of EVERY_KIND) assert.deepEqual(runEventSchema.parse(e), e);
    const frame = JSON.stringify({ type: 'run_events', runId: 'r', from: 0, events: EVERY_KIND });
    const parsed = parseServerMessage(frame);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.msg, JSON.parse(frame));
  });

  it('refuses a malformed event and names the request and run it belonged to', () => {
    const bad = [
      { t: 'routing', index: 0, phase: 'prefill', ids: ['1'], w: [1], h: [0] },
      { t: 'token', index: 0, id: 1, text: 'a', delta: null, phase: 'sideways', logprob: null, top: [] },
      { t: 'done', reason: 'length' },
      { t: 'guess' },
    ];
    for (const e of bad) assert.equal(runEventSchema.safeParse(e).success, false, JSON.stringify(e));
    const r = parseServerMessage(JSON.stringify({ type: 'run_events', runId: 'r9', from: 0, events: [bad[0]] }));
    assert.deepEqual(r.ok ? null : [r.id, r.runId], [null, 'r9']);
    const reply = parseServerMessage(JSON.stringify({ type: 'accepted', id: '4', runId: 5, clientRunId: null, queuePosition: 0 }));
    assert.equal(reply.ok ? null : reply.id, '4');
    assert.equal(parseServerMessage('{').ok, false);
  });

  it('lets a newer server add fields without breaking an older client', () => {
    const r = parseServerMessage(JSON.stringify({ type: 'subscribed', id: null, runId: 'r', status: 'running', nextSeq: 4, extra: { any: 1 } }));
    assert.ok(r.ok);
  });
});
