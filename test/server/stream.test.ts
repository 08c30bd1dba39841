/**
 * Streaming over real sockets: a run matches the engine's own output, resumes after a reconnect
 * with no gap or duplicate, runs side by side with other clients, cancels, and a client that stops
 * reading does not hold up anyone else.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generate } from '../../engine/generate/generate.ts';
import type { GenerationEvent } from '../../engine/generate/types.ts';
import { ModelRunner } from '../../engine/runtime/runner.ts';
import type { RunEvent } from '../../server/protocol.ts';
import { labServer, smallModel, TestClient } from '../helpers/lab-server.ts';
import { testCacheDir } from '../helpers/cache.ts';
import { startServer } from '../../server/app.ts';
import { NotebookStore } from '../../server/notebooks/store.ts';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { WebSocket } from 'ws';
import { HIGH_WATER } from '../../server/ws/connection.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryLogger } from '../../server/log.ts';

const MODEL = 'tiny-random';
const PROMPT = [10, 20, 30, 40, 50, 60];

describe('streaming runs', () => {
  let modelDir: string;
  let server: Awaited<ReturnType<typeof labServer>>;
  before(async () => {
    modelDir = await smallModel();
    server = await labServer({ modelDirs: [modelDir], dataDir: mkdtempSync(join(tmpdir(), 'moe-lab-data-')) });
  });
  after(async () => server.close());

  it('a streamed run matches the engine token for token and routing for routing', async () => {
    const c = await TestClient.connect(server.url, { token: server.token });
    const hello = await c.hello();
    assert.equal(hello.protocol, 1);
    assert.deepEqual(hello.models.map((m) => m.id), [MODEL]);
    const runId = await c.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 24, seed: 5, sampling: { temperature: 0.9 } });
    const events = await c.untilDone(runId);
    await c.close();

    const runner = await ModelRunner.load(modelDir, { cacheDir: testCacheDir() });
    const local: GenerationEvent[] = [];
    for await (const ev of generate(runner, { promptIds: PROMPT, maxNewTokens: 24, seed: 5, sampling: { temperature: 0.9 } })) local.push(ev);
    await runner.dispose();

    const tokens = (evs: RunEvent[]) => evs.flatMap((e) => (e.t === 'token' ? [[e.index, e.id, e.phase]] : []));
    assert.deepEqual(tokens(events), local.flatMap((e) => (e.type === 'token' ? [[e.index, e.id, e.phase]] : [])));
    const routing = events.filter((e): e is Extract<RunEvent, { t: 'routing' }> => e.t === 'routing');
    const localRouting = local.filter((e): e is Extract<GenerationEvent, { type: 'routing' }> => e.type === 'routing');
    assert.equal(routing.length, PROMPT.length + 24);
    assert.equal(routing.length, localRouting.length);
    routing.forEach((r, i) => {
      const l = localRouting[i]!;
      assert.equal(r.index, l.index);
      assert.deepEqual(r.ids, l.layers.flatMap((x) => x.ids));
      r.w.forEach((w, j) => assert.ok(Math.abs(w - l.layers.flatMap((x) => x.weights)[j]!) <= 1e-6 * Math.max(1, Math.abs(w))));
      assert.equal(r.p, undefined, 'compact detail carries no distribution');
    });
    assert.equal(events[0]!.t, 'started');
    assert.equal(events.at(-1)!.t, 'done');
  });

  it('the model list says how the weights are stored, and their size once loaded', async () => {
    const c = await TestClient.connect(server.url, { token: server.token });
    const hello = await c.hello();
    assert.equal(hello.models[0]!.quant, 'none');
    c.send({ type: 'list_models', id: 'm1' });
    const listed = await c.waitFor((m) => m.type === 'models' && m.id === 'm1');
    assert.ok(listed.type === 'models');
    const m = listed.models[0]!;
    assert.equal(m.loaded, true, 'the first test loaded it');
    const runner = await ModelRunner.load(modelDir, { cacheDir: testCacheDir() });
    assert.equal(m.weightBytes, runner.memory.weights);
    assert.equal(m.hash, runner.hash);
    await runner.dispose();
    await c.close();
  });

  it('a client that reconnects mid-run resumes with no gap and no duplicate', async () => {
    const a = await TestClient.connect(server.url, { token: server.token });
    await a.hello();
    const runId = await a.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 900, sampling: { temperature: 1 }, ignoreEos: true, seed: 1 });
    await a.waitFor((m) => m.type === 'run_events' && m.runId === runId && m.from + m.events.length > 60);
    a.ws.terminate();
    const before = a.events(runId);
    assert.ok(!before.some((e) => e.t === 'done'), 'the run is still going when the client drops');

    const b = await TestClient.connect(server.url, { token: server.token });
    await b.hello();
    b.send({ type: 'subscribe', id: 's1', runId, from: before.length });
    const sub = await b.waitFor((m) => m.type === 'subscribed');
    assert.ok(sub.type === 'subscribed' && sub.status === 'running');
    await b.waitFor((m) => m.type === 'run_events' && m.runId === runId && m.events.some((e) => e.t === 'done'), 60_000);
    const frames = b.received.filter((m) => m.type === 'run_events' && m.runId === runId);
    assert.equal(frames[0]!.type === 'run_events' && frames[0]!.from, before.length, 'the first frame starts exactly where the client left off');
    const rest = frames.flatMap((m) => (m.type === 'run_events' ? m.events : []));
    const all = [...before, ...rest];
    // Contiguous: every frame starts where the previous ended.
    let next = before.length;
    for (const m of frames) if (m.type === 'run_events') (assert.equal(m.from, next), (next += m.events.length));
    // Identical to the stored run, event for event.
    const res = await fetch(`${server.url}/api/runs/${runId}`, { headers: { Authorization: `Bearer ${server.token}` } });
    const stored = (await res.json()) as { events: RunEvent[]; run: { status: string } };
    assert.equal(stored.run.status, 'done');
    assert.equal(all.length, stored.events.length);
    const positions = all.filter((e) => e.t === 'token').map((e) => (e.t === 'token' ? e.index : -1));
    assert.deepEqual(positions, [...Array(PROMPT.length + 900).keys()]);
    assert.deepEqual(all.map((e) => e.t), stored.events.map((e) => e.t));
    await b.close();
  });

  it('two clients stream at the same time, and cancel stops a run', async () => {
    const a = await TestClient.connect(server.url, { token: server.token });
    const b = await TestClient.connect(server.url, { token: server.token });
    await a.hello();
    await b.hello();
    const ra = await a.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 400, seed: 2, sampling: { temperature: 1 }, ignoreEos: true });
    const rb = await b.generate({ model: MODEL, promptIds: [7, 8, 9], maxNewTokens: 400, seed: 3, sampling: { temperature: 1 }, ignoreEos: true });
    // Both runs are streaming before either finishes.
    await a.waitFor((m) => m.type === 'run_events' && m.runId === ra && m.events.some((e) => e.t === 'token' && e.phase === 'decode'));
    await b.waitFor((m) => m.type === 'run_events' && m.runId === rb && m.events.some((e) => e.t === 'token' && e.phase === 'decode'));
    assert.ok(!a.events(ra).some((e) => e.t === 'done') || !b.events(rb).some((e) => e.t === 'done'));
    a.send({ type: 'cancel', runId: ra });
    const evA = await a.untilDone(ra);
    const doneA = evA.at(-1)!;
    assert.ok(doneA.t === 'done' && doneA.reason === 'cancelled');
    assert.ok(doneA.t === 'done' && doneA.generatedTokens < 400);
    const evB = await b.untilDone(rb);
    const doneB = evB.at(-1)!;
    assert.ok(doneB.t === 'done' && doneB.reason === 'length' && doneB.generatedTokens === 400);
    const status = (await (await fetch(`${server.url}/api/runs/${ra}`, { headers: { Authorization: `Bearer ${server.token}` } })).json()) as { run: { status: string } };
    assert.equal(status.run.status, 'cancelled');
    await a.close();
    await b.close();
  });

  it('a freed run slot goes to the next connection waiting, past a connection with nothing queued', async () => {
    // Two slots, both taken by A (a short run and a long one), so A stays in the rotation with an
    // empty queue; B's run waits. When A's short run ends, B's must start in the freed slot, not wait
    // for A's long run.
    const fair = await labServer({ modelDirs: [modelDir], limits: { maxConcurrentRuns: 2 } });
    const [a, b] = await Promise.all([0, 1].map(() => TestClient.connect(fair.url, { token: fair.token })));
    try {
      for (const x of [a!, b!]) await x.hello();
      const short = await a!.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 4, ignoreEos: true });
      const long = await a!.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 1000, ignoreEos: true });
      const rb = await b!.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 4, ignoreEos: true });
      await a!.untilDone(short);
      await b!.untilDone(rb);
      assert.ok(!a!.events(long).some((e) => e.t === 'done'), "B's run waited for A's long run to finish");
    } finally {
      for (const x of [a!, b!]) await x.close();
      await fair.close();
    }
  });

  it('a client that stops reading gets at most about 1 MiB buffered, however many runs it subscribes to', async () => {
    const maker = await TestClient.connect(server.url, { token: server.token });
    await maker.hello();
    const runIds: string[] = [];
    for (let i = 0; i < 8; i++) {
      const id = await maker.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 1000, seed: i, sampling: { temperature: 1 }, ignoreEos: true });
      await maker.untilDone(id);
      runIds.push(id);
    }
    await maker.close();
    // Watch how much the server's sockets hold after each frame they send.
    let peak = 0;
    const proto = WebSocket.prototype as unknown as { send: (this: WebSocket, ...args: unknown[]) => void };
    const send = proto.send;
    proto.send = function (this: WebSocket, ...args: unknown[]) {
      send.apply(this, args);
      peak = Math.max(peak, this.bufferedAmount);
    };
    const reader = await TestClient.connect(server.url, { token: server.token });
    try {
      await reader.hello();
      reader.ws.pause();
      for (const runId of runIds) reader.send({ type: 'subscribe', runId, from: 0, detail: 'full' });
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      proto.send = send;
      reader.ws.terminate();
    }
    // The cap, plus at most one frame that was being assembled when the cap was reached.
    assert.ok(peak > HIGH_WATER / 2, `the stalled socket filled (${peak} bytes)`);
    assert.ok(peak < HIGH_WATER + 300 * 1024, `peak ${(peak / 2 ** 20).toFixed(2)} MiB buffered`);
  });

  it('a client that never reads does not hold up another client beyond 250 ms between frames', async () => {
    const slow = await TestClient.connect(server.url, { token: server.token });
    await slow.hello();
    // Full detail: large frames, so the stalled socket's buffers fill quickly.
    const slowRun = await slow.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 1000, seed: 4, sampling: { temperature: 1 }, ignoreEos: true }, 'full');
    slow.ws.pause();

    const fast = await TestClient.connect(server.url, { token: server.token });
    await fast.hello();
    const arrivals: number[] = [];
    fast.ws.on('message', () => arrivals.push(performance.now()));
    const t0 = performance.now();
    const runId = await fast.generate({ model: MODEL, promptIds: [1, 2, 3], maxNewTokens: 300, seed: 9, sampling: { temperature: 1 }, ignoreEos: true });
    const events = await fast.untilDone(runId);
    const gaps = arrivals.slice(1).map((t, i) => t - arrivals[i]!);
    const worst = Math.max(...gaps);
    assert.equal(events.filter((e) => e.t === 'token' && e.phase === 'decode').length, 300);
    assert.ok(worst < 250, `largest gap between frames ${worst.toFixed(0)} ms`);
    // The slow client's run kept generating meanwhile (the engine never waits for a reader).
    const res = await fetch(`${server.url}/api/runs/${slowRun}`, { headers: { Authorization: `Bearer ${server.token}` } });
    const body = (await res.json()) as { events: RunEvent[] };
    assert.ok(body.events.length > 50, `slow run has ${body.events.length} events after ${(performance.now() - t0).toFixed(0)} ms`);
    slow.send({ type: 'cancel', runId: slowRun });
    slow.ws.terminate();
    await fast.close();
  });
});

describe('the run store', () => {
  it('a client connected when the server stops gets its run\'s last event and a going-away close', async () => {
    const server = await labServer({ modelDirs: [await smallModel()] });
    const c = await TestClient.connect(server.url, { token: server.token });
    await c.hello();
    const run = await c.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 1000, ignoreEos: true });
    await c.waitFor((m) => m.type === 'run_events' && m.runId === run && m.from + m.events.length > 30);
    const closed = new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code)));
    await server.close();
    assert.equal(await closed, 1001);
    const last = c.events(run).at(-1);
    assert.equal(last?.t, 'done');
    assert.equal(last?.t === 'done' ? last.reason : null, 'cancelled');
  });

  it('runs survive a restart; a run cut off by a stop is marked interrupted, with its events', async () => {
    const modelDir = await smallModel();
    const dataDir = mkdtempSync(join(tmpdir(), 'moe-lab-data-'));
    const first = await labServer({ modelDirs: [modelDir], dataDir });
    const c = await TestClient.connect(first.url, { token: first.token });
    await c.hello();
    const finished = await c.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 8 });
    const finishedEvents = await c.untilDone(finished);
    const cut = await c.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 1000, sampling: { temperature: 1 }, ignoreEos: true, seed: 1 });
    await c.waitFor((m) => m.type === 'run_events' && m.runId === cut && m.from + m.events.length > 30);
    c.ws.terminate();
    await first.close();

    const second = await startServer({
      port: 0, modelDirs: [modelDir], dataDir, ui: null, log: memoryLogger(),
      notebooks: await NotebookStore.open(mkdtempSync(join(tmpdir(), 'moe-lab-nb-'))),
    });
    try {
      const get = async (id: string) => (await (await fetch(`${second.url}/api/runs/${id}`, { headers: { Authorization: `Bearer ${second.token}` } })).json()) as { run: { status: string; params: { promptIds: number[] } }; events: RunEvent[] };
      const a = await get(finished);
      assert.equal(a.run.status, 'done');
      assert.deepEqual(a.run.params.promptIds, PROMPT);
      assert.deepEqual(a.events.map((e) => e.t), finishedEvents.map((e) => e.t));
      const b = await get(cut);
      assert.equal(b.run.status, 'interrupted');
      assert.ok(b.events.length > 30, `${b.events.length} events kept`);
      const list = (await (await fetch(`${second.url}/api/runs`, { headers: { Authorization: `Bearer ${second.token}` } })).json()) as { runs: { id: string }[] };
      assert.deepEqual(new Set(list.runs.map((r) => r.id)), new Set([finished, cut]));
      const del = await fetch(`${second.url}/api/runs/${finished}`, { method: 'DELETE', headers: { Authorization: `Bearer ${second.token}` } });
      assert.equal(del.status, 200);
      assert.equal((await fetch(`${second.url}/api/runs/${finished}`, { headers: { Authorization: `Bearer ${second.token}` } })).status, 404);
    } finally {
      await second.close();
    }
  });
});

describe('what the run store reads back', () => {
  it('a damaged row fails that run with STORE_BAD_ROW and leaves every other run readable', async () => {
    const modelDir = await smallModel();
    const dataDir = mkdtempSync(join(tmpdir(), 'moe-lab-data-'));
    const first = await labServer({ modelDirs: [modelDir], dataDir });
    const c = await TestClient.connect(first.url, { token: first.token });
    await c.hello();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await c.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 4 });
      await c.untilDone(id);
      ids.push(id);
    }
    await c.close();
    await first.close();
    const [badEvent, badParams, intact] = ids as [string, string, string];
    const db = new Database(join(dataDir, 'runs.sqlite'));
    db.prepare(`UPDATE run_events SET event = ? WHERE run_id = ? AND seq = 3`).run(JSON.stringify({ t: 'routing', index: 0, phase: 'prefill', ids: 'x', w: [], h: [] }), badEvent);
    db.prepare(`UPDATE runs SET params = ? WHERE id = ?`).run('{"model": ', badParams);
    db.close();

    const second = await labServer({ modelDirs: [modelDir], dataDir });
    try {
      const get = (path: string) => fetch(`${second.url}${path}`, { headers: { Authorization: `Bearer ${second.token}` } });
      const a = await get(`/api/runs/${badEvent}`);
      assert.equal(a.status, 500);
      const aBody = (await a.json()) as { error: { code: string; message: string } };
      assert.equal(aBody.error.code, 'STORE_BAD_ROW');
      assert.match(aBody.error.message, new RegExp(`run ${badEvent} event 3 does not parse: ids`));
      const b = (await (await get(`/api/runs/${badParams}`)).json()) as { error: { code: string; message: string } };
      assert.equal(b.error.code, 'STORE_BAD_ROW');
      assert.match(b.error.message, /parameters is not JSON/);
      assert.equal((await get(`/api/runs/${intact}`)).status, 200);
      const list = (await (await get('/api/runs')).json()) as { runs: { id: string }[] };
      assert.deepEqual(new Set(list.runs.map((r) => r.id)), new Set([badEvent, intact]), 'the run whose own row is damaged is left out; the others are listed');
      // A JSONL export reads every run for its header before sending anything: a clean error.
      const jsonl = await get(`/api/traces?format=jsonl&runs=${intact},${badEvent}`);
      assert.equal(jsonl.status, 500);
      assert.equal(((await jsonl.json()) as { error: { code: string } }).error.code, 'STORE_BAD_ROW');
      // A CSV export streams run by run: meeting the damaged run, it cuts the download short rather
      // than ending it as a well-formed file that lacks a run.
      const csv = await get(`/api/traces?format=csv&runs=${intact},${badEvent}`);
      assert.equal(csv.status, 200);
      await assert.rejects(csv.text());
      assert.equal((await get(`/api/traces?format=csv&runs=${intact}`)).status, 200, 'the server goes on serving');
      // Over the socket too: subscribing to the damaged run ends that subscription with the store's
      // error (it used to throw on a timer and take the server down); the connection goes on.
      const ws = await TestClient.connect(second.url, { token: second.token });
      await ws.hello();
      ws.send({ type: 'subscribe', id: 's1', runId: badEvent, from: 0 });
      const refused = await ws.waitFor((m) => m.type === 'error' && m.runId === badEvent);
      assert.equal((refused as { code: string }).code, 'STORE_BAD_ROW');
      ws.send({ type: 'subscribe', id: 's2', runId: intact, from: 0 });
      const events = await ws.untilDone(intact);
      assert.equal(events.at(-1)?.t, 'done');
      await ws.close();
      // The sidecar is made whole before it is sent: a clean error too.
      const sidecar = await get(`/api/traces?format=csv&runs=${intact},${badEvent}&part=sidecar`);
      assert.equal(sidecar.status, 500);
      assert.equal(((await sidecar.json()) as { error: { code: string } }).error.code, 'STORE_BAD_ROW');
    } finally {
      await second.close();
    }
  });
});

describe('one server per data directory, and a busy database', () => {
  it('a second server on the same data directory is refused while the first runs, and starts once it stopped', async () => {
    const modelDir = await smallModel();
    const dataDir = mkdtempSync(join(tmpdir(), 'moe-lab-data-'));
    const first = await labServer({ modelDirs: [modelDir], dataDir });
    try {
      await assert.rejects(labServer({ modelDirs: [modelDir], dataDir }), (e: unknown) => (e as { code?: string }).code === 'SERVER_DATA_DIR_IN_USE' && String(e).includes(String(process.pid)));
    } finally {
      await first.close();
    }
    const second = await labServer({ modelDirs: [modelDir], dataDir });
    await second.close();
  });

  it('takes over the lock of a server that died without releasing it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'moe-lab-data-'));
    // The pid of a process that has exited.
    const child = spawn(process.execPath, ['-e', '']);
    const pid = child.pid!;
    await new Promise((r) => child.once('exit', r));
    writeFileSync(join(dataDir, 'server.lock'), `${pid}\n`);
    const server = await labServer({ modelDirs: [await smallModel()], dataDir });
    assert.equal(readFileSync(join(dataDir, 'server.lock'), 'utf8').trim(), String(process.pid));
    await server.close();
    assert.ok(!existsSync(join(dataDir, 'server.lock')), 'released at close');
  });

  it('a run finishes while another process holds the database, and is stored in full once it lets go', async () => {
    const server = await labServer({ modelDirs: [await smallModel()] });
    const c = await TestClient.connect(server.url, { token: server.token });
    const other = new Database(join(server.dataDir, 'runs.sqlite'));
    try {
      await c.hello();
      const runId = await c.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 40, ignoreEos: true });
      other.exec('BEGIN EXCLUSIVE'); // another process's write lock: every write of the server's is SQLITE_BUSY
      const events = await c.untilDone(runId);
      assert.equal(events.at(-1)!.t, 'done', 'the stream is not held up');
      await new Promise((r) => setTimeout(r, 300)); // a few housekeeping ticks, each refused
      assert.ok(server.log.lines.some((l) => l.includes('refused a write')), 'the refusal is logged');
      other.exec('ROLLBACK');
      const get = async () => (await (await fetch(`${server.url}/api/runs/${runId}`, { headers: { Authorization: `Bearer ${server.token}` } })).json()) as { run: { status: string }; events: RunEvent[] };
      let stored = await get();
      for (let i = 0; i < 50 && (stored.run.status !== 'done' || stored.events.length < events.length); i++) {
        await new Promise((r) => setTimeout(r, 100));
        stored = await get();
      }
      assert.equal(stored.run.status, 'done');
      // The store keeps full detail; the stream was compact. Same events, in the same order.
      const shape = (evs: RunEvent[]) => evs.map((e) => `${e.t}:${'index' in e ? e.index : ''}`);
      assert.deepEqual(shape(stored.events), shape(events));
    } finally {
      other.close();
      await c.close();
      await server.close();
    }
  });
});

describe('a server started with --quant int8', () => {
  let modelDir: string;
  let server: Awaited<ReturnType<typeof labServer>>;
  before(async () => {
    modelDir = await smallModel();
    server = await labServer({ modelDirs: [modelDir], quant: 'int8', dataDir: mkdtempSync(join(tmpdir(), 'moe-lab-data-')) });
  });
  after(async () => server.close());

  it('lists its models as int8 and runs the int8 weights, with their own hash', async () => {
    const c = await TestClient.connect(server.url, { token: server.token });
    const hello = await c.hello();
    assert.equal(hello.models[0]!.quant, 'int8');
    assert.equal(hello.models[0]!.weightBytes, null, 'not loaded yet');
    const runId = await c.generate({ model: MODEL, promptIds: PROMPT, maxNewTokens: 8 });
    const events = await c.untilDone(runId);
    const started = events[0]!;
    const runner = await ModelRunner.load(modelDir, { cacheDir: testCacheDir(), quant: 'int8' });
    assert.ok(started.t === 'started' && started.modelHash === `${runner.hash}:int8`);
    c.send({ type: 'list_models', id: 'm2' });
    const listed = await c.waitFor((m) => m.type === 'models' && m.id === 'm2');
    assert.ok(listed.type === 'models' && listed.models[0]!.weightBytes === runner.memory.weights);
    // Greedy tokens are the int8 runner's.
    const local: number[] = [];
    for await (const ev of generate(runner, { promptIds: PROMPT, maxNewTokens: 8 })) if (ev.type === 'token' && ev.phase === 'decode') local.push(ev.id);
    assert.deepEqual(events.flatMap((e) => (e.t === 'token' && e.phase === 'decode' ? [e.id] : [])), local);
    await runner.dispose();
    await c.close();
  });
});
