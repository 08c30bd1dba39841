/**
 * One WebSocket client: protocol handshake, message handling, rate limiting, and streaming of the
 * runs it subscribes to.
 *
 * Backpressure policy: a subscription only remembers a cursor into its run's event log. A flush
 * sends the events past the cursor, batched into one `run_events` frame per run (at most one flush
 * per ~16 ms while events arrive fast). While the socket has more than HIGH_WATER bytes waiting
 * (the client is not reading), nothing more is sent to it: it costs no memory beyond that buffer
 * and never delays another client. Sending resumes from the cursor once the buffer drains; a client
 * stalled for STALL_TIMEOUT_MS is disconnected and can reconnect and resume from its last seq.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import { assertNever } from '../../engine/assert-never.ts';
import { EngineError } from '../../engine/errors.ts';
import type { Logger } from '../log.ts';
import type { ModelRegistry } from '../models.ts';
import { parseClientMessage, PROTOCOL_VERSION, ProtocolErrorCode, type ClientMessage, type Detail, type ServerMessage } from '../protocol.ts';
import { ProtocolError, type RunManager } from '../runs/manager.ts';
import { toWire } from '../runs/events.ts';
import { RunStoreError } from '../store/run-store.ts';

export const HIGH_WATER = 1 << 20;
export const STALL_TIMEOUT_MS = 30_000;
const FRAME_MS = 16;
const MAX_EVENTS_PER_FRAME = 2048;
/** A frame stops growing past this many bytes of events, so one frame cannot blow the buffer cap. */
const MAX_FRAME_BYTES = 256 * 1024;

interface Subscription {
  cursor: number;
  readonly detail: Detail;
  unlisten: () => void;
}

/** A flood ends after this long without a dropped message. */
const FLOOD_QUIET_MS = 1000;

export class TokenBucket {
  private tokens: number;
  private last = Date.now();
  constructor(private readonly perSecond: number, private readonly burst = perSecond * 2) {
    this.tokens = burst;
  }
  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export class Connection {
  readonly id = randomUUID();
  alive = true;
  /** The payload of the last ping; a pong must echo it. */
  private pingNonce: Buffer | null = null;
  private greeted = false;
  private readonly subs = new Map<string, Subscription>();
  private readonly bucket: TokenBucket;
  /** Messages dropped in the current flood, and when the last one was. */
  private dropped = 0;
  private lastDrop = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  private lastFlush = 0;
  private stalledSince = 0;
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly runs: RunManager,
    private readonly models: ModelRegistry,
    private readonly app: string,
    private readonly log: Logger,
  ) {
    this.bucket = new TokenBucket(runs.limits.messagesPerSecond);
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    // Only the answer to the last ping counts: unsolicited pongs (allowed as a one-way heartbeat)
    // must not keep a client alive that never reads its pings.
    ws.on('pong', (data: Buffer) => {
      if (this.pingNonce && data.equals(this.pingNonce)) this.alive = true;
    });
    ws.on('close', () => this.dispose());
    ws.on('error', (e) => this.log.warn(`connection ${this.id.slice(0, 8)}: ${e.message}`));
  }

  private send(msg: ServerMessage): void {
    this.sendText(JSON.stringify(msg));
  }

  private sendText(text: string): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(text);
  }

  private error(id: string | null, runId: string | null, code: string, message: string): void {
    this.send({ type: 'error', id, runId, code, message });
  }

  private onMessage(data: unknown, isBinary: boolean): void {
    if (!this.bucket.take()) {
      // A flood lasts until the client has gone FLOOD_QUIET_MS without a dropped message; messages the
      // bucket lets through in between do not end it (otherwise a client sending just over the limit
      // is never cut off). Tell the client once per flood; cut it off after 5 s worth of drops.
      const now = Date.now();
      if (now - this.lastDrop > FLOOD_QUIET_MS) this.dropped = 0;
      this.lastDrop = now;
      // A dropped request that carries an id is answered, so a caller waiting on it (a generate) is
      // not left hanging; the id is read cheaply, without parsing the message it came in.
      const id = isBinary ? null : requestIdOf(data);
      if (this.dropped++ === 0 || id !== null) this.error(id, null, ProtocolErrorCode.RATE_LIMITED, 'too many messages; slow down');
      if (this.dropped > this.runs.limits.messagesPerSecond * 5) this.ws.close(1008, 'rate limit');
      return;
    }
    if (isBinary) return this.error(null, null, ProtocolErrorCode.BAD_MESSAGE, 'binary frames are not accepted');
    const text = frameBytes(data).toString('utf8');
    const parsed = parseClientMessage(text);
    if (!parsed.ok) return this.error(parsed.id, null, parsed.code, parsed.message);
    if (!this.greeted && parsed.msg.type !== 'hello') {
      return this.error('id' in parsed.msg ? (parsed.msg.id ?? null) : null, null, ProtocolErrorCode.HELLO_REQUIRED, 'send hello first');
    }
    void this.handle(parsed.msg).catch((e) => {
      this.log.error(`connection ${this.id.slice(0, 8)}: handling ${parsed.msg.type}`, e);
      this.error('id' in parsed.msg ? (parsed.msg.id ?? null) : null, null, ProtocolErrorCode.INTERNAL, 'internal error');
    });
  }

  private async handle(msg: ClientMessage): Promise<void> {
    switch (msg.type) {
      case 'hello':
        if (msg.protocol !== PROTOCOL_VERSION) {
          this.error(null, null, ProtocolErrorCode.UNSUPPORTED_VERSION, `this server speaks protocol ${PROTOCOL_VERSION}`);
          this.ws.close(4000, 'unsupported protocol version');
          return;
        }
        this.greeted = true;
        this.send({ type: 'hello', protocol: PROTOCOL_VERSION, app: this.app, models: this.models.summaries(), limits: this.runs.limits });
        return;
      case 'list_models':
        this.send({ type: 'models', id: msg.id, models: this.models.summaries() });
        return;
      case 'load_model':
        if (!this.models.has(msg.model)) return this.error(msg.id, null, ProtocolErrorCode.UNKNOWN_MODEL, `unknown model '${msg.model}'`);
        try {
          await this.models.engine(msg.model);
          this.send({ type: 'model_loaded', id: msg.id, model: this.models.summary(msg.model) });
        } catch (e) {
          if (!(e instanceof EngineError)) throw e;
          this.error(msg.id, null, e.code, e.message);
        }
        return;
      case 'generate':
        try {
          const { run, queuePosition } = this.runs.submit(this.id, msg.params, msg.clientRunId ?? null);
          this.send({ type: 'accepted', id: msg.id, runId: run.id, clientRunId: run.clientRunId, queuePosition });
          this.subscribe(run.id, 0, msg.detail ?? 'compact');
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
          this.error(msg.id, null, e.code, e.message);
        }
        return;
      case 'cancel':
        if (!this.runs.cancel(msg.runId) && !this.runs.eventsFrom(msg.runId, 0, 0)) {
          this.error(msg.id ?? null, msg.runId, ProtocolErrorCode.UNKNOWN_RUN, 'no such run');
        }
        return;
      case 'subscribe': {
        const state = this.runs.eventsFrom(msg.runId, 0, 0);
        if (!state) return this.error(msg.id ?? null, msg.runId, ProtocolErrorCode.UNKNOWN_RUN, 'no such run');
        this.send({ type: 'subscribed', id: msg.id ?? null, runId: msg.runId, status: state.status, nextSeq: state.total });
        this.subscribe(msg.runId, msg.from, msg.detail ?? 'compact');
        return;
      }
      case 'unsubscribe':
        this.subs.get(msg.runId)?.unlisten();
        this.subs.delete(msg.runId);
        return;
      default:
        assertNever(msg, 'client message');
    }
  }

  private subscribe(runId: string, from: number, detail: Detail): void {
    this.subs.get(runId)?.unlisten();
    const live = this.runs.get(runId);
    const unlisten = live ? live.listen(() => this.scheduleFlush()) : () => {};
    this.subs.set(runId, { cursor: from, detail, unlisten });
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.closed) return;
    const wait = Math.max(0, FRAME_MS - (Date.now() - this.lastFlush));
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.flush();
    }, wait);
  }

  private flush(): void {
    this.lastFlush = Date.now();
    if (this.ws.bufferedAmount > HIGH_WATER) {
      // The client is not reading. Hold everything (the run log keeps it) and look again later.
      this.stalledSince ||= Date.now();
      if (Date.now() - this.stalledSince > STALL_TIMEOUT_MS) {
        this.log.warn(`connection ${this.id.slice(0, 8)}: stalled for ${STALL_TIMEOUT_MS} ms, closing`);
        this.ws.terminate();
        return;
      }
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flush();
      }, 50);
      return;
    }
    this.stalledSince = 0;
    let more = false;
    for (const [runId, sub] of this.subs) {
      // The buffer cap holds across subscriptions: stop once this flush has filled it.
      if (this.ws.bufferedAmount > HIGH_WATER) {
        more = true;
        break;
      }
      let r: ReturnType<RunManager['eventsFrom']>;
      try {
        r = this.runs.eventsFrom(runId, sub.cursor, MAX_EVENTS_PER_FRAME);
      } catch (e) {
        // A stored run that cannot be read back (a damaged row): this subscription ends with the
        // store's error; the connection, its other runs and the server go on.
        if (!(e instanceof RunStoreError)) throw e;
        this.log.warn(`connection ${this.id.slice(0, 8)}: run ${runId}: ${e.message}`);
        this.error(null, runId, e.code, e.message);
        sub.unlisten();
        this.subs.delete(runId);
        continue;
      }
      if (!r) continue;
      if (r.events.length > 0) {
        const parts: string[] = [];
        let bytes = 0;
        for (const e of r.events) {
          const json = JSON.stringify(toWire(e, sub.detail));
          if (parts.length > 0 && bytes + json.length > MAX_FRAME_BYTES) break;
          parts.push(json);
          bytes += json.length;
        }
        // The frame is the run_events message of ServerMessage, assembled from the events already serialized.
        this.sendText(`{"type":"run_events","runId":${JSON.stringify(runId)},"from":${sub.cursor},"events":[${parts.join(',')}]}`);
        sub.cursor += parts.length;
      }
      if (sub.cursor < r.total) more = true;
      else if (r.status !== 'queued' && r.status !== 'running') {
        sub.unlisten();
        this.subs.delete(runId);
      }
    }
    if (more) this.scheduleFlush();
  }

  /** Heartbeat: called periodically; a client that did not answer the last ping is dropped. */
  heartbeat(): void {
    if (!this.alive) {
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.pingNonce = randomBytes(8);
    this.ws.ping(this.pingNonce);
  }

  /**
   * The server is stopping: send the events its runs ended with (a stopped run's last `done`), as far
   * as the buffer cap allows, then close with 1001 (going away), so the client knows to reconnect
   * rather than seeing the connection drop.
   */
  closeForShutdown(): void {
    if (this.closed) return;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    for (let i = 0; i < 16 && this.subs.size > 0 && this.ws.bufferedAmount <= HIGH_WATER; i++) this.flush();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.ws.close(1001, 'server stopping');
  }

  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const s of this.subs.values()) s.unlisten();
    this.subs.clear();
  }
}

/** A frame's bytes, however `ws` delivered them (one Buffer, fragments, or an ArrayBuffer). */
function frameBytes(data: unknown): Buffer {
  return Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data as Buffer[]) : Buffer.from(data as ArrayBuffer);
}

/** The `id` of a request frame, read from its first bytes (null when there is none to read). */
function requestIdOf(data: unknown): string | null {
  const head = frameBytes(data).subarray(0, 512).toString('utf8');
  return /"id"\s*:\s*"([^"\\]{1,128})"/.exec(head)?.[1] ?? null;
}
