/**
 * The browser's protocol client against a real server over a real socket (the `ws` package stands
 * in for the browser's WebSocket, with the bearer token a browser would carry as its cookie).
 */
import assert from 'node:assert/strict';
import { freePort } from '../helpers/ports.ts';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { ClientErrorCode, LabClient } from '../../components/lab-client.ts';
import type { ModelSummary, RunEvent } from '../../server/protocol.ts';
import { labServer, smallModel } from '../helpers/lab-server.ts';

const MODEL = 'tiny-random';
let token = '';
class BrowserLikeSocket extends WebSocket {
  constructor(url: string) {
    super(url, { headers: { Authorization: `Bearer ${token}` } });
    // A browser reports a failed connection as a close; ws also emits 'error', which must not throw.
    this.on('error', () => {});
  }
}


const until = async (cond: () => boolean, ms = 20_000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('the browser protocol client', () => {
  let modelDir: string;
  before(async () => {
    modelDir = await smallModel();
    (globalThis as { WebSocket?: unknown }).WebSocket = BrowserLikeSocket;
  });
  after(() => {
    delete (globalThis as { WebSocket?: unknown }).WebSocket;
  });

  it('fills the model list once the server comes up, though the first attempt failed', async () => {
    const port = await freePort();
    const c = new LabClient(`ws://127.0.0.1:${port}/ws`);
    const lists: ModelSummary[][] = [];
    c.onModels = (m) => lists.push(m);
    await assert.rejects(c.connect(), /connection closed/);
    const server = await labServer({ modelDirs: [modelDir], port });
    token = server.token;
    try {
      await until(() => lists.length > 0);
      assert.deepEqual(lists[0]!.map((m) => m.id), [MODEL]);
    } finally {
      c.close();
      await server.close();
    }
  });

  /** A server and a client connected to it, both closed after `body`. */
  async function connected(body: (c: LabClient, server: Awaited<ReturnType<typeof labServer>>) => Promise<void>): Promise<void> {
    const server = await labServer({ modelDirs: [modelDir] });
    token = server.token;
    const c = new LabClient(`${server.url.replace('http', 'ws')}/ws`);
    try {
      await c.connect();
      await body(c, server);
    } finally {
      c.close();
      await server.close();
    }
  }

  it('a request whose socket closes before the answer fails instead of waiting forever', () =>
    connected(async (c) => {
      const pending = c.generate({ model: MODEL, promptIds: [1, 2, 3], maxNewTokens: 2 }, { onEvents: () => {} });
      (c as unknown as { ws: WebSocket }).ws.terminate(); // the connection drops before `accepted` arrives
      await assert.rejects(pending, /CLIENT_DISCONNECTED/);
    }));

  it('a run streamed twice over one connection (overlapping frames) still arrives whole, once', () =>
    connected(async (c, server) => {
      const got: RunEvent[] = [];
      let contiguous = true;
      const runId = await c.generate({ model: MODEL, promptIds: [1, 2, 3], maxNewTokens: 300, ignoreEos: true }, {
        onEvents: (evs, from) => {
          if (from !== got.length) contiguous = false;
          got.push(...evs);
        },
      });
      await until(() => got.length > 20);
      // A second subscription from 0 on the same connection (as a resubscribe racing an attach does):
      // the server now sends frames that overlap what the client has.
      (c as unknown as { ws: WebSocket }).ws.send(JSON.stringify({ type: 'subscribe', runId, from: 0, detail: 'full' }));
      await until(() => got.some((e) => e.t === 'done'));
      const decoded = got.filter((e) => e.t === 'token' && e.phase === 'decode').length;
      assert.equal(decoded, 300);
      assert.ok(contiguous, 'each delivery starts where the last ended');
      const stored = (await (await fetch(`${server.url}/api/runs/${runId}`, { headers: { Authorization: `Bearer ${server.token}` } })).json()) as { events: RunEvent[] };
      assert.equal(got.length, stored.events.length);
    }));

  /**
   * A server that speaks another dialect: `answer` decides what it sends for each message the
   * client sends (after its own greeting, which `hello` replaces when given).
   */
  async function oddServer(answer: (msg: Record<string, unknown>) => unknown[], hello?: unknown): Promise<{ url: string; received: Record<string, unknown>[]; close(): Promise<void> }> {
    const received: Record<string, unknown>[] = [];
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const goodHello = { type: 'hello', protocol: 1, app: 'moe-lab', models: [], limits: { maxQueue: 1, maxActiveRunsPerConnection: 1, maxConcurrentRuns: 1, maxNewTokens: 1, maxPromptTokens: 1, maxPayloadBytes: 1, messagesPerSecond: 1 } };
    wss.on('connection', (ws) => {
      ws.on('message', (data) => {
        const msg = JSON.parse(String(data)) as Record<string, unknown>;
        received.push(msg);
        const replies = msg['type'] === 'hello' ? [hello ?? goodHello] : answer(msg);
        // One frame per task, as a browser delivers them (ws would hand several over in one tick).
        replies.forEach((r, i) => setTimeout(() => ws.send(typeof r === 'string' ? r : JSON.stringify(r)), 20 * i));
      });
    });
    const { port } = wss.address() as { port: number };
    return { url: `ws://127.0.0.1:${port}/ws`, received, close: () => new Promise((r) => wss.close(() => r())) };
  }

  it('a reply it cannot read fails the request that waits for it, with CLIENT_BAD_MESSAGE', async () => {
    const server = await oddServer((m) => [{ type: 'accepted', id: m['id'], runId: 7, clientRunId: null, queuePosition: 'first' }]);
    const c = new LabClient(server.url);
    const logged = console.error;
    console.error = () => {};
    try {
      await c.connect();
      await assert.rejects(c.generate({ model: 'm' }, { onEvents: () => {} }), new RegExp(`^Error: ${ClientErrorCode.BAD_MESSAGE}: the server sent an invalid message: runId`));
    } finally {
      console.error = logged;
      c.close();
      await server.close();
    }
  });

  it('a run frame it cannot read ends that run with CLIENT_BAD_MESSAGE instead of a silent stall', async () => {
    const server = await oddServer((m) =>
      m['type'] === 'generate'
        ? [
            { type: 'accepted', id: m['id'], runId: 'r1', clientRunId: null, queuePosition: 0 },
            { type: 'run_events', runId: 'r1', from: 0, events: [{ t: 'routing', index: 0, phase: 'prefill', ids: ['a'], w: [1], h: [0] }] },
            'not json',
          ]
        : [],
    );
    const c = new LabClient(server.url);
    const errors: string[] = [];
    const logged = console.error;
    console.error = () => {};
    try {
      await c.connect();
      const got: RunEvent[] = [];
      await c.generate({ model: 'm' }, { onEvents: (evs) => got.push(...evs), onError: (code, message) => errors.push(`${code}: ${message}`) });
      await until(() => errors.length > 0);
      assert.match(errors[0]!, /^CLIENT_BAD_MESSAGE: the server sent an invalid message: events\.0\.ids: expected an array of numbers$/);
      assert.deepEqual(got, [], 'nothing unparsed reached the views');
      await until(() => server.received.some((m) => m['type'] === 'unsubscribe'));
      assert.deepEqual(server.received.at(-1), { type: 'unsubscribe', runId: 'r1' }, 'the server is told to stop sending the run');
    } finally {
      console.error = logged;
      c.close();
      await server.close();
    }
  });

  it('a greeting it cannot read closes the connection rather than leaving it half open', async () => {
    const server = await oddServer(() => [], { type: 'hello', protocol: 1 });
    const c = new LabClient(server.url);
    const logged = console.error;
    console.error = () => {};
    try {
      await assert.rejects(c.connect(), /connection closed/);
    } finally {
      console.error = logged;
      c.close();
      await server.close();
    }
  });
});
