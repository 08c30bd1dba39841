/**
 * The MoE Lab server: one HTTP server on 127.0.0.1 carrying the REST API (/api), the WebSocket
 * endpoint (/ws, `ws` in noServer mode, authenticated during the upgrade) and, unless engine-only,
 * the production Next.js app. Every request passes the Host check, the Origin check and
 * authentication before anything else looks at it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { handleApi, type ApiContext } from './api.ts';
import { consoleLogger, type Logger } from './log.ts';
import type { QuantMode } from '../engine/graph/quant.ts';
import { ModelRegistry } from './models.ts';
import type { NotebookStore } from './notebooks/store.ts';
import type { Limits } from './protocol.ts';
import { ProtocolErrorCode } from './protocol.ts';
import { RunManager } from './runs/manager.ts';
import { accessPolicy, authenticated, hostAllowed, originAllowed, securityHeaders, sessionCookie, safeEqual, type AccessPolicy } from './security.ts';
import { serveStatic } from './static.ts';
import { RunStore } from './store/run-store.ts';
import { Connection } from './ws/connection.ts';

export const DEFAULT_LIMITS: Limits = {
  maxQueue: 64,
  maxActiveRunsPerConnection: 4,
  maxConcurrentRuns: 4,
  maxNewTokens: 1024,
  maxPromptTokens: 2048,
  maxPayloadBytes: 1 << 20,
  messagesPerSecond: 50,
};

export const HEARTBEAT_MS = 15_000;

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

export interface ServerOptions {
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  readonly modelDirs: readonly string[];
  readonly dataDir: string;
  readonly notebooks: NotebookStore;
  /** Serves the web app for every path the API does not own; null in engine-only mode. */
  readonly ui: RequestHandler | null;
  readonly token?: string;
  readonly extraOrigins?: readonly string[];
  /**
   * Engine servers the page may connect to (`?engine=URL`, docs/protocol.md), as http(s) URLs: their
   * sockets and REST API are added to the page's connect-src, which otherwise allows only this server.
   */
  readonly engines?: readonly string[];
  readonly limits?: Partial<Limits>;
  readonly log?: Logger;
  readonly appVersion?: string;
  readonly heartbeatMs?: number;
  /** Weight storage for every model this server loads (default float32). */
  readonly quant?: QuantMode;
  /** Caps every model's context (RunnerOptions.maxContext); default: what memory allows. */
  readonly maxContext?: number;
  readonly threads?: number;
}

export interface RunningServer {
  readonly url: string;
  /** The URL to open in a browser: it carries the token. */
  readonly loginUrl: string;
  readonly port: number;
  readonly token: string;
  readonly runs: RunManager;
  readonly store: RunStore;
  /** Open WebSocket connections. */
  readonly connectionCount: () => number;
  close(): Promise<void>;
}

function reject(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: { code, message } }));
}

function rejectUpgrade(socket: Duplex, status: number, reason: string): void {
  socket.write(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}

/** The browser login: a valid ?token= sets the session cookie and redirects to the same path without it. */
function tokenLogin(policy: AccessPolicy, req: IncomingMessage, res: ServerResponse): boolean {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  if (q < 0) return false;
  const params = new URLSearchParams(url.slice(q + 1));
  const token = params.get('token');
  if (token === null) return false;
  if (!safeEqual(token, policy.token)) {
    reject(res, 401, 'AUTH_BAD_TOKEN', 'invalid token');
    return true;
  }
  params.delete('token');
  const rest = params.toString();
  res.writeHead(302, { 'Set-Cookie': sessionCookie(policy), Location: url.slice(0, q) + (rest ? `?${rest}` : '') });
  res.end();
  return true;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? consoleLogger();
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const store = new RunStore(opts.dataDir);
  const interrupted = store.markInterrupted();
  if (interrupted > 0) log.info(`marked ${interrupted} run(s) from the previous process as interrupted`);
  const models = new ModelRegistry(
    opts.modelDirs,
    {
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
      ...(opts.quant ? { quant: opts.quant } : {}),
      ...(opts.maxContext !== undefined ? { maxContext: opts.maxContext } : {}),
    },
    (id, warning) => log.warn(`model ${id}: ${warning}`),
  );
  const runs = new RunManager(store, models, limits, log);
  const app = opts.appVersion ?? '0.1.0';
  const connections = new Set<Connection>();

  const server: Server = createServer();
  // Listen first: the allowlists need the real port.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const policy = accessPolicy(host, port, opts.extraOrigins ?? [], opts.token);
  // CSP source expressions cannot name IPv6 literals, so the [::1] form is left to 'self'.
  const wsOrigins = [...policy.allowedHosts].filter((h) => !h.startsWith('[')).map((h) => `ws://${h}`);
  const headers = securityHeaders([...wsOrigins, ...(opts.engines ?? []).flatMap(engineConnectSources)]);
  const api: ApiContext = { runs, store, models, notebooks: opts.notebooks, log };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    const path = (req.url ?? '/').split('?')[0]!;
    if (!hostAllowed(policy, req)) return reject(res, 403, 'AUTH_BAD_HOST', 'unknown host');
    if (!originAllowed(policy, req)) return reject(res, 403, 'AUTH_BAD_ORIGIN', 'origin not allowed');
    if (req.method === 'GET' && tokenLogin(policy, req, res)) return;
    if (!authenticated(policy, req)) {
      if (path.startsWith('/api/')) return reject(res, 401, 'AUTH_REQUIRED', 'authentication required');
      res.writeHead(401, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>MoE Lab</title><p>Open the URL with the token that <code>moe-lab serve</code> printed.</p>');
      return;
    }
    const handled = path.startsWith('/api/')
      ? handleApi(api, req, res, path)
      : opts.ui
        ? serveStatic(req, res, path).then((done) => (done ? undefined : opts.ui!(req, res)))
        : reject(res, 404, 'NOT_FOUND', 'engine-only server: no web app here');
    void Promise.resolve(handled).catch((e) => {
      log.error(`${req.method} ${path}`, e);
      if (!res.headersSent) reject(res, 500, ProtocolErrorCode.INTERNAL, 'internal error');
      else res.end();
    });
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: limits.maxPayloadBytes, perMessageDeflate: false });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/ws') return rejectUpgrade(socket, 404, 'Not Found');
    if (!hostAllowed(policy, req) || !originAllowed(policy, req)) return rejectUpgrade(socket, 403, 'Forbidden');
    if (!authenticated(policy, req)) return rejectUpgrade(socket, 401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const c = new Connection(ws, runs, models, app, log);
      connections.add(c);
      ws.on('close', () => connections.delete(c));
    });
  });

  const heartbeat = setInterval(() => connections.forEach((c) => c.heartbeat()), opts.heartbeatMs ?? HEARTBEAT_MS);
  heartbeat.unref();

  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url,
    loginUrl: `${url}/?token=${policy.token}`,
    port,
    token: policy.token,
    runs,
    store,
    connectionCount: () => connections.size,
    async close() {
      clearInterval(heartbeat);
      await runs.close();
      // Clients get their runs' last events and a proper close; one that does not finish the
      // closing handshake within a second is cut off.
      for (const c of connections) c.closeForShutdown();
      const clients = [...wss.clients];
      await Promise.race([
        Promise.all(clients.map((ws) => (ws.readyState === ws.CLOSED ? null : new Promise((resolve) => ws.once('close', resolve))))),
        new Promise((resolve) => setTimeout(resolve, 1000)),
      ]);
      for (const c of connections) c.dispose();
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      // close() waits for every open connection, and a client holding one open (a preconnect, a
      // half-sent request) would hold it for ever: they are closed at once, after new ones are refused.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await models.dispose();
      store.close();
    },
  };
}

/** What the page needs to reach an engine server at `url`: its socket and its REST API. */
export function engineConnectSources(url: string): string[] {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--engine must be a URL such as http://127.0.0.1:8788, got '${url}'`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`--engine must be an http or https URL, got '${url}'`);
  return [u.origin, `${u.protocol === 'https:' ? 'wss' : 'ws'}://${u.host}`];
}
