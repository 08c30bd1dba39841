/**
 * Building traces (from engine events, stored run events, rows), their array views, prompt
 * files, the progress line, and the resumable output's recovery from a killed writer.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AnalysisErrorCode } from '../../../engine/analysis/errors.ts';
import { traceFromEvents, traceFromRunEvents } from '../../../engine/analysis/events.ts';
import { readParquet, writeParquet } from '../../../engine/analysis/formats/parquet.ts';
import { formatDuration, formatProgress } from '../../../engine/analysis/progress.ts';
import { parsePrompts } from '../../../engine/analysis/prompts.ts';
import { traceRows, tracesFromRows } from '../../../engine/analysis/rows.ts';
import { TraceOutput } from '../../../engine/analysis/trace-output.ts';
import { validateTrace, type RunTrace } from '../../../engine/analysis/trace.ts';
import { expertIds, loadMatrix } from '../../../engine/analysis/views.ts';
import { seededRandom } from '../../../engine/generate/sampling.ts';
import type { GenerationEvent } from '../../../engine/generate/types.ts';
import { handTrace, randomTrace } from './synthetic.ts';

const model = { id: 'toy', hash: 'abc', moeLayers: [1, 3], numExperts: 4, topK: 2 };
const layer = (l: number, ids: number[], probs: number[]) => ({ layer: l, ids, weights: ids.map((_, i) => 0.75 - i * 0.5), entropy: 1.25, probs });

function toyEvents(): GenerationEvent[] {
  const p = [0.5, 0.25, 0.125, 0.125];
  return [
    { type: 'start', promptTokens: 2, maxNewTokens: 1, topK: 2, seed: 9 },
    { type: 'token', index: 0, id: 65, text: 'A', delta: null, phase: 'prefill', logprob: null, top: [] },
    { type: 'token', index: 1, id: 66, text: 'B', delta: null, phase: 'prefill', logprob: null, top: [] },
    { type: 'timing', phase: 'prefill', tokens: 2, ms: 1 },
    { type: 'routing', index: 0, phase: 'prefill', layers: [layer(1, [0, 1], p), layer(3, [2, 3], p)] },
    { type: 'routing', index: 1, phase: 'prefill', layers: [layer(1, [1, 0], p), layer(3, [0, 2], p)] },
    { type: 'token', index: 2, id: 67, text: 'C', delta: 'C', phase: 'decode', logprob: -1, top: [] },
    { type: 'routing', index: 2, phase: 'decode', layers: [layer(1, [3, 2], p), layer(3, [1, 0], p)] },
    { type: 'done', reason: 'length', promptTokens: 2, generatedTokens: 1, text: 'C', ttftMs: 1, totalMs: 2, prefillTokensPerSecond: 1, decodeTokensPerSecond: 1 },
  ];
}

describe('traces from events', () => {
  it('engine events give tokens, routing, selected probabilities and run metadata', () => {
    const t = traceFromEvents({ runId: 'r', model, meta: { prompt: 'AB', fields: { domain: 'toy' } } }, toyEvents());
    assert.equal(t.k, 2);
    assert.deepEqual(t.tokens.map((x) => [x.id, x.phase]), [[65, 'prefill'], [66, 'prefill'], [67, 'decode']]);
    assert.deepEqual([...t.routing[1]!.ids], [1, 0, 0, 2]);
    assert.deepEqual([...t.routing[1]!.selectedProbs!], [0.25, 0.5, 0.5, 0.125], 'each selected expert\'s probability at its layer');
    assert.deepEqual([...t.routing[0]!.entropy!], [1.25, 1.25]);
    assert.equal(t.meta.extra['seed'], 9);
    assert.equal(t.meta.extra['reason'], 'length');
    const rows = traceRows(t);
    assert.equal(rows.length, 3 * 2 * 2);
    assert.deepEqual([...rows.layer.slice(0, 4)], [1, 1, 3, 3], 'the model layer index, not the MoE ordinal');
    assert.deepEqual(rows.fields.get('domain')!.slice(0, 1), ['toy']);
  });

  it('routing for other layers than the model\'s is refused', () => {
    const evs = toyEvents();
    evs[4] = { type: 'routing', index: 0, phase: 'prefill', layers: [layer(0, [0, 1], [0.25, 0.25, 0.25, 0.25]), layer(3, [2, 3], [0.25, 0.25, 0.25, 0.25])] };
    assert.throws(() => traceFromEvents({ runId: 'r', model }, evs), { code: AnalysisErrorCode.BAD_INPUT });
  });

  it('stored run events give the same trace; other events are skipped', () => {
    const p = [0.5, 0.25, 0.125, 0.125];
    const stored: unknown[] = [
      { t: 'started', model: 'toy', modelHash: 'abc', promptTokens: 2, maxNewTokens: 1, moeLayers: [1, 3], numExperts: 4, topK: 2, seed: 9 },
      { t: 'token', index: 0, id: 65, text: 'A', delta: null, phase: 'prefill', logprob: null, top: [] },
      { t: 'token', index: 1, id: 66, text: 'B', delta: null, phase: 'prefill', logprob: null, top: [] },
      { t: 'timing', phase: 'prefill', tokens: 2, ms: 1 },
      { t: 'routing', index: 0, phase: 'prefill', ids: [0, 1, 2, 3], w: [0.75, 0.25, 0.75, 0.25], h: [1.25, 1.25], p: [...p, ...p] },
      { t: 'routing', index: 1, phase: 'prefill', ids: [1, 0, 0, 2], w: [0.75, 0.25, 0.75, 0.25], h: [1.25, 1.25], p: [...p, ...p] },
      { t: 'token', index: 2, id: 67, text: 'C', delta: 'C', phase: 'decode', logprob: -1, top: [] },
      { t: 'routing', index: 2, phase: 'decode', ids: [3, 2, 1, 0], w: [0.75, 0.25, 0.75, 0.25], h: [1.25, 1.25], p: [...p, ...p] },
      { t: 'done', reason: 'length', promptTokens: 2, generatedTokens: 1, text: 'C', ttftMs: 1, totalMs: 2, prefillTokensPerSecond: 1, decodeTokensPerSecond: 1 },
    ];
    const fromStore = traceFromRunEvents('r', stored, { prompt: 'AB', fields: { domain: 'toy' } });
    const fromEngine = traceFromEvents({ runId: 'r', model, meta: { prompt: 'AB', fields: { domain: 'toy' } } }, toyEvents());
    assert.deepEqual(traceRows(fromStore), traceRows(fromEngine));
    assert.throws(() => traceFromRunEvents('r', stored.slice(1)), { code: AnalysisErrorCode.BAD_INPUT });
    assert.throws(() => traceFromRunEvents('r', [stored[0], { t: 'routing', index: 0, phase: 'prefill', ids: [0] }]), { code: AnalysisErrorCode.BAD_INPUT });
  });

  it('invalid traces are refused with TRACE_BAD_INPUT', () => {
    const t = handTrace([[0, 1], [2, 3]], 4);
    const bad = (over: Partial<RunTrace>) => assert.throws(() => validateTrace({ ...t, ...over }), { code: AnalysisErrorCode.BAD_INPUT });
    bad({ numExperts: 3 });
    bad({ k: 5 });
    bad({ moeLayers: [2, 1] });
    bad({ routing: [...t.routing].reverse() });
    bad({ meta: { ...t.meta, fields: { 'not a name': 'x' } } });
    assert.doesNotThrow(() => validateTrace(t));
  });
});

describe('array views', () => {
  it('expert ids are [T, L, k] with −1 where a position has no routing', () => {
    const t = { ...handTrace([[0, 1], [2, 3], [1, 2]], 4), routing: handTrace([[0, 1], [2, 3], [1, 2]], 4).routing.filter((r) => r.index !== 1) };
    const v = expertIds(t);
    assert.deepEqual(v.shape, [3, 1, 2]);
    assert.deepEqual([...v.data], [0, 1, -1, -1, 1, 2]);
  });

  it('the load matrix [L, E] adds up the runs', () => {
    const m = loadMatrix([handTrace([[0, 1], [0, 2]], 4), handTrace([[3, 0]], 4)]);
    assert.deepEqual(m.shape, [1, 4]);
    assert.deepEqual([...m.data], [3, 1, 1, 1]);
    assert.throws(() => loadMatrix([handTrace([[0, 1]], 4), handTrace([[0, 1]], 5)]), { code: AnalysisErrorCode.BAD_INPUT });
  });

  it('rows without run metadata still become runs, layout inferred from the rows', () => {
    const t = randomTrace(seededRandom(1), { tokens: 6, layers: [2, 5], E: 8, k: 2, full: true });
    const [back] = tracesFromRows(traceRows(t), []);
    assert.deepEqual(back!.moeLayers, [2, 5]);
    assert.equal(back!.k, 2);
    assert.deepEqual(traceRows(back!), traceRows(t));
  });
});

describe('prompt files', () => {
  it('extra scalar fields become string columns, nested values stay metadata', () => {
    const [a, b] = parsePrompts(['{"prompt": "x", "domain": "code", "level": 3, "ok": true, "tags": ["a"], "note": null}', '', '{"prompt_ids": [1, 2], "id": 7}'].join('\n'));
    assert.deepEqual(a!.fields, { domain: 'code', level: '3', ok: 'true' });
    assert.deepEqual(a!.extra, { tags: ['a'] });
    assert.equal(a!.line, 1);
    assert.equal(b!.runId, '7');
    assert.deepEqual(b!.promptIds, [1, 2]);
  });

  it('run ids without an id are stable, and differ between lines', () => {
    const one = parsePrompts('{"prompt": "x"}\n{"prompt": "y"}');
    const again = parsePrompts('{"prompt":"x"}\n{ "prompt": "y" }');
    assert.deepEqual(one.map((p) => p.runId), again.map((p) => p.runId));
    assert.notEqual(one[0]!.runId, one[1]!.runId);
  });

  it("a line inserted or removed elsewhere leaves the other lines' run ids as they were; a repeated line gets its own", () => {
    const before = parsePrompts('{"prompt": "x"}\n{"prompt": "y"}\n{"prompt": "x"}');
    const edited = parsePrompts('{"prompt": "new"}\n\n{"prompt": "x"}\n{"prompt": "y"}\n{"prompt": "x"}');
    assert.deepEqual(edited.slice(1).map((p) => p.runId), before.map((p) => p.runId));
    assert.match(before[0]!.runId, /^prompt-[0-9a-f]{10}$/);
    assert.equal(before[2]!.runId, `${before[0]!.runId}.2`);
  });

  it('reads a file that starts with a byte-order mark, and refuses field names that differ only in case', () => {
    assert.equal(parsePrompts('\uFEFF{"prompt": "x"}')[0]!.prompt, 'x');
    for (const text of ['{"prompt": "x", "Domain": "a", "domain": "b"}', '{"prompt": "x", "Domain": "a"}\n{"prompt": "y", "domain": "b"}', '{"prompt": "x", "Layer": "2"}']) {
      assert.throws(() => parsePrompts(text, 'p.jsonl'), { code: AnalysisErrorCode.BAD_INPUT }, text);
    }
    assert.throws(() => parsePrompts('{"prompt": "x", "Domain": "a"}\n{"prompt": "y", "domain": "b"}', 'p.jsonl'), /p\.jsonl:2: field 'domain' differs from 'Domain' \(line 1\) only in case/);
  });

  it('refuses ambiguous or clashing lines', () => {
    for (const text of ['{"prompt": "x", "prompt_ids": [1]}', '{"domain": "x"}', '{"prompt": "x", "layer": "2"}', '{"prompt": "x", "bad name": 1}', '{"prompt": "x", "id": "a"}\n{"prompt": "y", "id": "a"}', 'not json', '']) {
      assert.throws(() => parsePrompts(text), { code: AnalysisErrorCode.BAD_INPUT }, text);
    }
    // A data set's "text" key gets a hint instead of only "missing prompt".
    assert.throws(() => parsePrompts('{"text": "hello", "domain": "x"}', 'p.jsonl'), { code: AnalysisErrorCode.BAD_INPUT, message: /^p\.jsonl:1: give exactly one of "prompt" and "prompt_ids" \(this line has "text": rename it "prompt"\)$/ });
  });
});

describe('progress line', () => {
  it('shows the bar, throughput and the time left at the rate so far', () => {
    const line = formatProgress({ donePrompts: 1, totalPrompts: 4, doneTokens: 250, totalTokens: 1000, elapsedMs: 2000 }, 8);
    assert.equal(line, '[##......] 1/4 prompts  250 tok  125.0 tok/s  ETA 0:06');
    assert.equal(formatDuration(3725), '1:02:05');
    assert.match(formatProgress({ donePrompts: 0, totalPrompts: 2, doneTokens: 0, totalTokens: 10, elapsedMs: 0 }), /ETA --:--$/);
  });
});

describe('resumable output after a killed writer', () => {
  const run = (id: string) => randomTrace(seededRandom(id.length), { runId: id, tokens: 4, layers: [0], E: 4, k: 2, meta: { params: { max_new_tokens: 2 } } });
  const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid;

  it('a stale lock and half-written files are cleared; finished parts count as done', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-lab-out-'));
    const out = join(dir, 'o.parquet');
    const first = await TraceOutput.open(out);
    first.commit(run('a'));
    // Simulate a kill: the lock stays (with a dead pid), a part and OUT were mid-write.
    writeFileSync(`${out}.lock`, String(deadPid()));
    writeFileSync(join(`${out}.parts`, '.x.parquet.partial-1-abc'), 'torn');
    writeFileSync(join(dir, '.o.parquet.partial-1-def'), 'torn');
    const second = await TraceOutput.open(out);
    assert.deepEqual([...second.done.keys()], ['a']);
    assert.deepEqual(readdirSync(`${out}.parts`).filter((n) => n.includes('partial')), []);
    assert.ok(!readdirSync(dir).some((n) => n.includes('partial')));
    second.commit(run('b'));
    assert.deepEqual(await second.finalize(['b', 'a']), { runs: 2, rows: 2 * 4 * 2 });
    second.release();
    assert.ok(!existsSync(`${out}.parts`) && !existsSync(`${out}.lock`));
    const f = await readParquet(out);
    assert.deepEqual(f.document.runs.map((r) => r.run_id), ['b', 'a']);
  });

  it('a kill between writing OUT and removing the parts leaves no duplicate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-lab-out-'));
    const out = join(dir, 'o.parquet');
    writeParquet(out, [run('a'), run('b')]);
    mkdirSync(`${out}.parts`);
    writeParquet(join(`${out}.parts`, 'leftover.parquet'), [run('b')]);
    const o = await TraceOutput.open(out);
    assert.deepEqual([...o.done.keys()].sort(), ['a', 'b']);
    o.commit(run('c'));
    await o.finalize(['a', 'b', 'c']);
    o.release();
    const rows = (await readParquet(out)).columns;
    assert.equal(rows.length, 3 * 4 * 2);
    const keys = new Set(rows.run_id.map((r, i) => `${r}/${rows.token_index[i]}/${rows.layer[i]}/${rows.rank[i]}`));
    assert.equal(keys.size, rows.length);
  });

  it('a live writer\'s lock is respected, and other parameters are refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-lab-out-'));
    const out = join(dir, 'o.parquet');
    writeFileSync(`${out}.lock`, String(process.ppid));
    await assert.rejects(TraceOutput.open(out), { code: AnalysisErrorCode.BAD_INPUT });
    writeFileSync(`${out}.lock`, String(deadPid()));
    const o = await TraceOutput.open(out);
    o.commit(run('a'));
    assert.doesNotThrow(() => o.checkCompatible({ modelHash: 'f00d', params: { max_new_tokens: 2 } }));
    assert.throws(() => o.checkCompatible({ modelHash: 'f00d', params: { max_new_tokens: 3 } }), { code: AnalysisErrorCode.RESUME_MISMATCH });
    assert.throws(() => o.checkCompatible({ modelHash: 'other', params: { max_new_tokens: 2 } }), { code: AnalysisErrorCode.RESUME_MISMATCH });
    o.release();
  });
});
