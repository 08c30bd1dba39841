/** A real MoE Lab server on a random loopback port, and a protocol client over real sockets. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startServer, type RunningServer, type ServerOptions } from '../../server/app.ts';
import { memoryLogger } from '../../server/log.ts';
import { NotebookStore } from '../../server/notebooks/store.ts';
import type { RunEvent, ServerMessage } from '../../server/protocol.ts';
import { randomMixtral } from '../bench/random-checkpoint.ts';
import { byteTokenizerJson } from './checkpoints.ts';

/** A small random-weight Mixtral-format model (vocab 256, byte tokenizer): fast, but long runs take a while. */
export async function smallModel(name = 'tiny-random', size: 'small' | 'slow' = 'small'): Promise<string> {
  const dir = join(mkdtempSync(join(tmpdir(), 'moe-lab-model-')), name);
  // 'slow' is several times slower per token: long enough runs to act on while they stream.
  const shape = size === 'small' ? { layers: 4, hidden: 128, ffn: 256 } : { layers: 6, hidden: 256, ffn: 512 };
  await randomMixtral(dir, { ...shape, heads: 4, kvHeads: 2, experts: 8, topK: 2, vocab: 256, context: 2048 });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(byteTokenizerJson()));
  return dir;
}

export async function labServer(opts: Partial<ServerOptions> & { modelDirs: string[] }): Promise<RunningServer & { log: ReturnType<typeof memoryLogger>; dataDir: string }> {
  const log = memoryLogger();
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'moe-lab-data-'));
  const server = await startServer({
    port: 0,
    notebooks: await NotebookStore.open(mkdtempSync(join(tmpdir(), 'moe-lab-nb-'))),
    ui: null,
    log,
    ...opts,
    dataDir,
  });
  return Object.assign(server, { log, dataDir });
}

export interface ClientOptions {
  readonly token?: string | null;
  readonly origin?: string;
  readonly host?: string;
  readonly cookie?: string;
  /** false: do not answer the server's pings (a client that only pretends to be alive). */
  readonly autoPong?: boolean;
}

/** Protocol client: every message received, with helpers to wait for specific ones. */
export class TestClient {
  readonly received: ServerMessage[] = [];
  private waiters: { pred: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }[] = [];
  private nextId = 1;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as ServerMessage;
      this.received.push(m);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(m)) return true;
        w.resolve(m);
        return false;
      });
    });
  }

  static connect(url: string, opts: ClientOptions = {}): Promise<TestClient> {
    const headers: Record<string, string> = {};
    if (opts.token) headers['Authorization'] = `Bearer ${opts.token}`;
    if (opts.cookie) headers['Cookie'] = opts.cookie;
    if (opts.host) headers['Host'] = opts.host;
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/ws', { headers, ...(opts.origin ? { origin: opts.origin } : {}), ...(opts.autoPong === false ? { autoPong: false } : {}) });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new TestClient(ws)));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  id(): string {
    return String(this.nextId++);
  }

  waitFor(pred: (m: ServerMessage) => boolean, timeoutMs = 20_000): Promise<ServerMessage> {
    const hit = this.received.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting for a message')), timeoutMs);
      this.waiters.push({ pred, resolve: (m) => (clearTimeout(t), resolve(m)) });
    });
  }

  async hello(): Promise<Extract<ServerMessage, { type: 'hello' }>> {
    this.send({ type: 'hello', protocol: 1 });
    return (await this.waitFor((m) => m.type === 'hello')) as Extract<ServerMessage, { type: 'hello' }>;
  }

  async generate(params: Record<string, unknown>, detail: 'compact' | 'full' = 'compact'): Promise<string> {
    const id = this.id();
    this.send({ type: 'generate', id, params, detail });
    const m = await this.waitFor((x) => (x.type === 'accepted' || x.type === 'error') && x.id === id);
    if (m.type === 'error') throw Object.assign(new Error(m.message), { code: m.code });
    return (m as Extract<ServerMessage, { type: 'accepted' }>).runId;
  }

  /** All run events of a run received so far, in order, checking frames are contiguous. */
  events(runId: string): RunEvent[] {
    const out: RunEvent[] = [];
    for (const m of this.received) {
      if (m.type !== 'run_events' || m.runId !== runId) continue;
      if (m.from !== out.length) throw new Error(`frame from ${m.from} after ${out.length} events`);
      out.push(...m.events);
    }
    return out;
  }

  async untilDone(runId: string, timeoutMs = 60_000): Promise<RunEvent[]> {
    await this.waitFor((m) => m.type === 'run_events' && m.runId === runId && m.events.some((e) => e.t === 'done' || e.t === 'error'), timeoutMs);
    return this.events(runId);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}
