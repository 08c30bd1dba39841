/**
 * Browser client of the MoE Lab protocol: connects to /ws (the session cookie authenticates it),
 * greets, and streams runs. Every run keeps the next seq it expects, so after a reconnect it
 * resubscribes from exactly there.
 */
import { parseServerMessage, PROTOCOL_VERSION, type ModelSummary, type RunEvent, type ServerMessage } from '../server/protocol';

/** Codes of the errors the client itself raises, next to the server's PROTO_* codes. */
export const ClientErrorCode = {
  /** The connection closed before the server answered the request. */
  DISCONNECTED: 'CLIENT_DISCONNECTED',
  /** The server sent a message this client cannot read (another version of the app, say). */
  BAD_MESSAGE: 'CLIENT_BAD_MESSAGE',
} as const;

export interface RunHandlers {
  onEvents(events: RunEvent[], from: number): void;
  onError?(code: string, message: string): void;
}

export class LabClient {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<string, (m: ServerMessage) => void>();
  private runs = new Map<string, { next: number; handlers: RunHandlers; done: boolean; askedFrom?: number }>();
  models: ModelSummary[] = [];
  private retries = 0;
  private closing = false;
  onStatus: (s: 'connecting' | 'open' | 'closed') => void = () => {};
  /** Called with the server's models on every greeting, the first one after a failed attempt included. */
  onModels: (models: ModelSummary[]) => void = () => {};

  constructor(private readonly url: string) {}

  connect(): Promise<void> {
    this.onStatus('connecting');
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let greeted = false;
      ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, client: 'moe-lab-web' }));
      ws.onmessage = (e) => {
        const parsed = parseServerMessage(String(e.data));
        if (!parsed.ok) {
          this.unreadable(parsed);
          // A greeting we cannot read is a server we cannot talk to: close (and retry later).
          if (!greeted) ws.close(4002, ClientErrorCode.BAD_MESSAGE);
          return;
        }
        const m = parsed.msg;
        if (m.type === 'hello') {
          greeted = true;
          this.models = m.models;
          this.retries = 0;
          this.onStatus('open');
          this.onModels(m.models);
          // Resume every unfinished run from the first event we have not seen.
          for (const [runId, r] of this.runs) if (!r.done) this.subscribe(runId, r.next);
          resolve();
          return;
        }
        this.dispatch(m);
      };
      ws.onclose = () => {
        this.onStatus('closed');
        reject(new Error('connection closed'));
        // A request sent on this socket gets no answer now; its caller must not wait forever. (A
        // generate the server accepted still runs there; the run store has it.)
        for (const answer of this.pending.values()) answer({ type: 'error', id: null, runId: null, code: ClientErrorCode.DISCONNECTED, message: 'the connection to the server closed before it answered (if the server restarted, open the URL it printed in a new tab: it signs this browser in again)' });
        this.pending.clear();
        // Reconnect with backoff; unfinished runs resume where they stopped (see the hello handler).
        if (!this.closing) setTimeout(() => void this.connect().catch(() => {}), Math.min(5000, 250 * 2 ** this.retries++));
      };
    });
  }

  /**
   * A message that does not parse fails the request or run it names (they would otherwise wait for
   * good); one that names neither is only logged.
   */
  private unreadable(bad: { id: string | null; runId: string | null; message: string }): void {
    console.error(`${ClientErrorCode.BAD_MESSAGE}: ${bad.message}`);
    const run = bad.runId ? this.runs.get(bad.runId) : undefined;
    if (run && !run.done) {
      run.done = true;
      run.handlers.onError?.(ClientErrorCode.BAD_MESSAGE, bad.message);
      // Nothing more of it can be shown: stop the server sending it (the run itself goes on, stored).
      this.ws?.send(JSON.stringify({ type: 'unsubscribe', runId: bad.runId }));
    }
    const answer = bad.id ? this.pending.get(bad.id) : undefined;
    if (answer) {
      this.pending.delete(bad.id!);
      answer({ type: 'error', id: bad.id, runId: bad.runId, code: ClientErrorCode.BAD_MESSAGE, message: bad.message });
    }
  }

  private dispatch(m: ServerMessage): void {
    if (m.type === 'run_events') {
      const r = this.runs.get(m.runId);
      if (!r || r.done) return;
      if (m.from > r.next) {
        // A gap (events we never got): ask again from the first missing one, once per position.
        if (r.askedFrom !== r.next) this.subscribe(m.runId, r.next);
        r.askedFrom = r.next;
        return;
      }
      // Frames can overlap what we have (two subscriptions to one run, say): keep only the new part.
      const events = m.events.slice(r.next - m.from);
      if (events.length === 0) return;
      const from = r.next;
      r.next += events.length;
      if (events.some((e) => e.t === 'done' || e.t === 'error')) r.done = true;
      r.handlers.onEvents(events, from);
      return;
    }
    if (m.type === 'error' && m.runId) this.runs.get(m.runId)?.handlers.onError?.(m.code, m.message);
    const id = 'id' in m ? m.id : null;
    if (id && this.pending.has(id)) {
      this.pending.get(id)!(m);
      this.pending.delete(id);
    }
  }

  private request(msg: Record<string, unknown>): Promise<ServerMessage> {
    const id = String(this.nextId++);
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws?.send(JSON.stringify({ ...msg, id }));
    });
  }

  async generate(params: Record<string, unknown>, handlers: RunHandlers): Promise<string> {
    const reply = await this.request({ type: 'generate', params, detail: 'full', clientRunId: String(params['clientRunId'] ?? '') || undefined });
    if (reply.type === 'error') throw new Error(`${reply.code}: ${reply.message}`);
    if (reply.type !== 'accepted') throw new Error(`unexpected reply ${reply.type}`);
    this.runs.set(reply.runId, { next: 0, handlers, done: false });
    return reply.runId;
  }

  /** Streams an existing run from event `from` on (e.g. after a reload, to resume a running cell). */
  attach(runId: string, from: number, handlers: RunHandlers): void {
    this.runs.set(runId, { next: from, handlers, done: false });
    this.subscribe(runId, from);
  }

  /** Asks for a run's events from `from` on, with full detail (the views show router distributions). */
  private subscribe(runId: string, from: number): void {
    this.ws?.send(JSON.stringify({ type: 'subscribe', runId, from, detail: 'full' }));
  }

  cancel(runId: string): void {
    this.ws?.send(JSON.stringify({ type: 'cancel', runId }));
  }

  close(): void {
    this.closing = true;
    this.ws?.close();
  }
}

/** The app's own origin's /ws, or an engine server given as ?engine=http://host:port. */
export function engineSocketUrl(loc: Location): string {
  const engine = new URLSearchParams(loc.search).get('engine');
  const base = engine ? new URL(engine) : new URL(loc.href);
  return `${base.protocol === 'https:' ? 'wss' : 'ws'}://${base.host}/ws`;
}
