/** The server is closed by default: host, origin, token, payload, rate and message checks over real sockets. */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { fixtureDir } from '../helpers/fixtures.ts';
import { labServer, TestClient } from '../helpers/lab-server.ts';
import { accessPolicy } from '../../server/security.ts';
import { engineConnectSources } from '../../server/app.ts';

/** A raw HTTP request (no client-side URL normalisation), returning status, headers and body. */
function raw(url: string, path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

/** Tries a WebSocket upgrade; resolves to the HTTP status of a refusal, or 101 when it opened. */
function upgradeStatus(url: string, headers: Record<string, string>, origin?: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/ws', { headers, ...(origin ? { origin } : {}) });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => resolve(0));
  });
}

describe('access control', () => {
  let server: Awaited<ReturnType<typeof labServer>>;
  let auth: Record<string, string>;
  before(async () => {
    server = await labServer({ modelDirs: [fixtureDir('mixtral')], limits: { messagesPerSecond: 20 } });
    auth = { Authorization: `Bearer ${server.token}` };
  });
  after(async () => server.close());

  it('listens on 127.0.0.1 and the token is 256 bits', () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(server.token, /^[0-9a-f]{64}$/);
  });

  it('refuses foreign origins, whatever the token', async () => {
    const port = new URL(server.url).port;
    for (const origin of ['http://evil.example', 'null', `http://localhost:${port}.evil.com`, `http://127.0.0.1:${Number(port) + 1}`, `https://127.0.0.1:${port}`, `http://127.0.0.1:${port}/`]) {
      assert.equal(await upgradeStatus(server.url, auth, origin), 403, `ws origin ${origin}`);
      assert.equal((await raw(server.url, '/api/models', { ...auth, Origin: origin })).status, 403, `http origin ${origin}`);
    }
    // The app's own origins pass.
    assert.equal(await upgradeStatus(server.url, auth, `http://127.0.0.1:${port}`), 101);
    assert.equal(await upgradeStatus(server.url, auth, `http://localhost:${port}`), 101);
  });

  it('refuses a foreign Host header (DNS rebinding)', async () => {
    assert.equal((await raw(server.url, '/api/models', { ...auth, Host: 'evil.example' })).status, 403);
    assert.equal((await raw(server.url, '/api/models', { ...auth, Host: `attacker.com:${new URL(server.url).port}` })).status, 403);
    assert.equal(await upgradeStatus(server.url, { ...auth, Host: 'evil.example' }), 403);
  });

  it('refuses a missing or wrong token', async () => {
    assert.equal((await raw(server.url, '/api/models')).status, 401);
    assert.equal((await raw(server.url, '/api/models', { Authorization: 'Bearer nope' })).status, 401);
    assert.equal((await raw(server.url, '/api/models', { Authorization: `Bearer ${server.token.slice(0, -1)}${server.token.endsWith('0') ? '1' : '0'}` })).status, 401);
    assert.equal(await upgradeStatus(server.url, {}), 401);
    assert.equal(await upgradeStatus(server.url, { Authorization: 'Bearer wrong' }), 401);
    assert.equal((await raw(server.url, '/?token=wrong')).status, 401);
    assert.equal((await raw(server.url, '/api/models', auth)).status, 200);
  });

  it('exchanges the token for an HttpOnly SameSite=Strict cookie that authenticates the socket', async () => {
    const login = await raw(server.url, `/?token=${server.token}&x=1`);
    assert.equal(login.status, 302);
    assert.equal(login.headers['location'], '/?x=1', 'the token is dropped from the URL');
    const cookie = String(login.headers['set-cookie']);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    assert.ok(!cookie.includes(server.token), 'the cookie does not carry the token');
    const session = cookie.split(';')[0]!;
    assert.equal(await upgradeStatus(server.url, { Cookie: session }), 101);
    assert.equal((await raw(server.url, '/api/models', { Cookie: session })).status, 200);
    assert.match(session, new RegExp(`^moelab_session_${new URL(server.url).port}=`), 'the cookie is named after the port');
    assert.equal((await raw(server.url, '/api/models', { Cookie: `moelab_session_${new URL(server.url).port}=forged` })).status, 401);
  });

  it('lets the page reach an engine server only as --engine names it, as http(s)', () => {
    assert.deepEqual(engineConnectSources('http://127.0.0.1:8788/'), ['http://127.0.0.1:8788', 'ws://127.0.0.1:8788']);
    assert.deepEqual(engineConnectSources('https://gpu.example:443'), ['https://gpu.example', 'wss://gpu.example']);
    for (const bad of ['127.0.0.1:8788', 'ftp://x', 'javascript:alert(1)']) assert.throws(() => engineConnectSources(bad), /--engine must be/, bad);
  });

  it('sends security headers', async () => {
    const r = await raw(server.url, '/api/models', auth);
    assert.match(String(r.headers['content-security-policy']), /default-src 'self'/);
    assert.match(String(r.headers['content-security-policy']), /frame-ancestors 'none'/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['referrer-policy'], 'no-referrer');
  });

  it('closes a connection that sends an oversize frame with 1009', async () => {
    const c = await TestClient.connect(server.url, { token: server.token });
    const code = await new Promise<number>((resolve) => {
      c.ws.once('close', (code) => resolve(code));
      c.send(JSON.stringify({ type: 'hello', protocol: 1, client: 'x'.repeat(2 * 1024 * 1024) }));
    });
    assert.equal(code, 1009);
  });

  it('answers malformed JSON, unknown types and bad fields with stable codes, and keeps the connection', async () => {
    const c = await TestClient.connect(server.url, { token: server.token });
    c.send('{not json');
    assert.equal(((await c.waitFor((m) => m.type === 'error')) as { code: string }).code, 'PROTO_BAD_JSON');
    c.received.length = 0;
    c.send({ type: 'list_models', id: '1' });
    const early = (await c.waitFor((m) => m.type === 'error')) as { code: string; id: string | null };
    assert.deepEqual([early.code, early.id], ['PROTO_HELLO_REQUIRED', '1'], 'the refusal answers the request it refuses');
    await c.hello();
    c.received.length = 0;
    c.send({ type: 'launch_missiles' });
    assert.equal(((await c.waitFor((m) => m.type === 'error')) as { code: string }).code, 'PROTO_BAD_MESSAGE');
    c.received.length = 0;
    c.send({ type: 'generate', id: '2', params: { model: 'mixtral', promptIds: [1], maxNewTokens: -3 } });
    // The error answers the request it is about, naming the field.
    const bad = (await c.waitFor((m) => m.type === 'error')) as { id: string | null; code: string; message: string };
    assert.deepEqual([bad.id, bad.code], ['2', 'PROTO_BAD_MESSAGE']);
    assert.match(bad.message, /params\.maxNewTokens/);
    c.received.length = 0;
    c.send({ type: 'generate', id: 'x'.repeat(65), params: { model: 'mixtral', promptIds: [1], sampling: { topP: 2 } } });
    assert.equal(((await c.waitFor((m) => m.type === 'error')) as { id: string | null }).id, null, 'an id the schema would refuse is not echoed');
    c.received.length = 0;
    c.send({ type: 'generate', id: '3', params: { model: 'nope', promptIds: [1] } });
    assert.equal(((await c.waitFor((m) => m.type === 'error')) as { code: string }).code, 'PROTO_UNKNOWN_MODEL');
    c.received.length = 0;
    c.send({ type: 'subscribe', id: '4', runId: 'nope', from: 0 });
    assert.equal(((await c.waitFor((m) => m.type === 'error')) as { code: string }).code, 'PROTO_UNKNOWN_RUN');
    c.received.length = 0;
    c.send({ type: 'generate', id: '5', params: { model: 'mixtral', promptIds: [1], maxNewTokens: 100000 } });
    assert.equal(((await c.waitFor((m) => m.type === 'error')) as { code: string }).code, 'PROTO_LIMIT_EXCEEDED');
    // Still usable.
    c.send({ type: 'list_models', id: '6' });
    assert.equal((await c.waitFor((m) => m.type === 'models')).type, 'models');
    await c.close();
  });

  it('a run that fails in the engine reports the engine error code', async () => {
    const c = await TestClient.connect(server.url, { token: server.token });
    await c.hello();
    const runId = await c.generate({ model: 'mixtral', promptIds: [1, 2], interventions: { topK: 99 } });
    const events = await c.untilDone(runId);
    const last = events.at(-1)!;
    assert.ok(last.t === 'error' && last.code === 'ENGINE_BAD_TOP_K', JSON.stringify(last));
    await c.close();
  });

  it('refuses an unsupported protocol version', async () => {
    const c = await TestClient.connect(server.url, { token: server.token });
    const closed = new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code)));
    c.send({ type: 'hello', protocol: 99 });
    assert.equal(((await c.waitFor((m) => m.type === 'error')) as { code: string }).code, 'PROTO_UNSUPPORTED_VERSION');
    assert.equal(await closed, 4000);
  });

  it('rate-limits a flooding client', async () => {
    const c = await TestClient.connect(server.url, { token: server.token });
    await c.hello();
    // 90 at once against a limit of 20 a second: most are dropped, fewer than the 100 that close the connection.
    for (let i = 0; i < 90; i++) c.send({ type: 'list_models', id: String(i) });
    assert.equal(((await c.waitFor((m) => m.type === 'error')) as { code: string }).code, 'PROTO_RATE_LIMITED');
    // Every request is answered all the same: with its result or with PROTO_RATE_LIMITED and its id,
    // so no caller is left waiting.
    await c.waitFor((m) => (m.type === 'models' || m.type === 'error') && m.id === '89');
    const answered = c.received.filter((m) => m.type === 'models').length;
    assert.ok(answered < 90, `${answered} of 90 answered`);
    const ids = new Set(c.received.flatMap((m) => ((m.type === 'models' || (m.type === 'error' && m.code === 'PROTO_RATE_LIMITED')) && m.id !== null ? [m.id] : [])));
    assert.equal(ids.size, 90);
    c.ws.terminate();
  });

  it('closes a connection that keeps sending faster than the limit with 1008, even though some messages get through', async () => {
    const c = await TestClient.connect(server.url, { token: server.token });
    await c.hello();
    const closed = new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code)));
    // About 1,000 messages a second (20 per 20 ms) against a limit of 50: the bucket lets some
    // through all along, which must not reset the flood.
    let open = true;
    void closed.then(() => (open = false));
    const started = Date.now();
    for (let i = 0; open && Date.now() - started < 10_000; i++) {
      for (let j = 0; j < 20 && open; j++) c.send({ type: 'list_models', id: `${i}-${j}` });
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(!open, 'still open after 10 s of flooding');
    assert.equal(await closed, 1008);
    // Each dropped request is answered with its id (a caller waiting on it learns why), and no more
    // than the drops it takes to close the connection.
    const limited = c.received.filter((m) => m.type === 'error' && m.code === 'PROTO_RATE_LIMITED');
    assert.ok(limited.length > 1 && limited.length <= 20 * 5 + 1, `${limited.length} refusals`);
    assert.ok(limited.every((m) => m.type === 'error' && m.id !== null));
  });

  it('tells a flood of messages without ids once that it is rate-limited', async () => {
    const c = await TestClient.connect(server.url, { token: server.token });
    await c.hello();
    for (let i = 0; i < 60; i++) c.send({ type: 'list_models' });
    await c.waitFor((m) => m.type === 'error');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(c.received.filter((m) => m.type === 'error' && m.code === 'PROTO_RATE_LIMITED').length, 1, 'told once per flood');
    c.ws.terminate();
  });

  it('answers a malformed run-list limit with API_BAD_REQUEST, not an internal error', async () => {
    for (const limit of ['1.5', '-3', 'x', '0']) {
      const r = await raw(server.url, `/api/runs?limit=${limit}`, auth);
      assert.equal(r.status, 400, `${limit}: ${r.status} ${r.body}`);
      assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'API_BAD_REQUEST');
    }
    assert.equal((await raw(server.url, '/api/runs?limit=5000', auth)).status, 200, 'a large limit is capped, not refused');
  });

  it('closes at once on shutdown, even with a half-sent request on an open connection', async () => {
    const s = await labServer({ modelDirs: [] });
    const sock = connect(Number(new URL(s.url).port), '127.0.0.1');
    await new Promise((resolve) => sock.once('connect', resolve));
    sock.on('error', () => {});
    sock.write(`PUT /api/notebooks/a.moenb HTTP/1.1\r\nHost: ${new URL(s.url).host}\r\nAuthorization: Bearer ${s.token}\r\nContent-Length: 100\r\n\r\n{"cel`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Before, close() waited for that client for ever; a hang shows here as a timeout, not a slow pass.
    const outcome = await Promise.race([s.close().then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('still waiting after 20 s'), 20_000))]);
    sock.destroy();
    assert.equal(outcome, 'closed');
  });

  it('keeps notebook paths inside the notebook root over HTTP', async () => {
    for (const p of ['..%2f..%2fetc%2fpasswd', '%2e%2e/%2e%2e/etc/passwd.moenb', '..%252f..%252fx.moenb', 'a%00.moenb', '.hidden.moenb']) {
      const r = await raw(server.url, `/api/notebooks/${p}`, auth);
      assert.equal(r.status, 400, `${p}: ${r.status} ${r.body}`);
      assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'NOTEBOOK_BAD_PATH');
    }
    const created = await raw(server.url, '/api/notebooks/lessons/a.moenb', { ...auth, 'Content-Type': 'application/json' }, 'POST', '{"cells":[]}');
    assert.equal(created.status, 201);
    const read = await raw(server.url, '/api/notebooks/lessons/a.moenb', auth);
    assert.equal((JSON.parse(read.body) as { content: string }).content, '{"cells":[]}');
    // A rename body over its cap is refused as too large, not as bad JSON.
    const code = (r: { body: string }) => (JSON.parse(r.body) as { error: { code: string } }).error.code;
    const huge = await raw(server.url, '/api/notebooks/lessons/a.moenb', { ...auth, 'Content-Type': 'application/json' }, 'PATCH', JSON.stringify({ to: 'b.moenb', pad: 'x'.repeat(100_000) }));
    assert.deepEqual([huge.status, code(huge)], [413, 'API_TOO_LARGE']);
    const garbled = await raw(server.url, '/api/notebooks/lessons/a.moenb', { ...auth, 'Content-Type': 'application/json' }, 'PATCH', '{"to":');
    assert.deepEqual([garbled.status, code(garbled)], [400, 'API_BAD_JSON']);
  });

  it('never writes the token to the log', async () => {
    await raw(server.url, `/?token=${server.token}`);
    await raw(server.url, `/api/models?token=${server.token}`, auth);
    await upgradeStatus(server.url, { Authorization: `Bearer ${server.token}x` });
    assert.ok(server.log.lines.every((l) => !l.includes(server.token)));
  });
});

describe('heartbeat', () => {
  it('drops a socket that stops answering pings', async () => {
    const server = await labServer({ modelDirs: [fixtureDir('mixtral')], heartbeatMs: 100 });
    try {
      const live = await TestClient.connect(server.url, { token: server.token });
      const dead = await TestClient.connect(server.url, { token: server.token });
      await live.hello();
      await dead.hello();
      assert.equal(server.connectionCount(), 2);
      // A paused socket reads nothing, so it never sees a ping and never answers.
      dead.ws.pause();
      const t0 = Date.now();
      while (server.connectionCount() > 1 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
      assert.equal(server.connectionCount(), 1, 'the dead socket was dropped');
      assert.ok(Date.now() - t0 < 1000, `dropped after ${Date.now() - t0} ms`);
      // The live one, which answers, stays.
      live.send({ type: 'list_models', id: 'x' });
      assert.equal((await live.waitFor((m) => m.type === 'models')).type, 'models');
      await live.close();
    } finally {
      await server.close();
    }
  });

  it('unsolicited pongs do not keep alive a socket that never answers a ping', async () => {
    const server = await labServer({ modelDirs: [fixtureDir('mixtral')], heartbeatMs: 100 });
    try {
      const faker = await TestClient.connect(server.url, { token: server.token, autoPong: false });
      await faker.hello();
      const pongs = setInterval(() => faker.ws.pong(Buffer.from('alive')), 20);
      const t0 = Date.now();
      while (server.connectionCount() > 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
      clearInterval(pongs);
      assert.equal(server.connectionCount(), 0, 'dropped although it kept sending pongs');
      assert.ok(Date.now() - t0 < 1000, `dropped after ${Date.now() - t0} ms`);
    } finally {
      await server.close();
    }
  });
});

describe('the hosts a server answers to', () => {
  it('on a wildcard address: loopback, this machine\'s addresses and host name, nothing else', () => {
    const p = accessPolicy('0.0.0.0', 9000);
    assert.ok(p.allowedHosts.has(`${hostname().toLowerCase()}:9000`));
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) if (a.family === 'IPv4') assert.ok(p.allowedHosts.has(`${a.address}:9000`), a.address);
    }
    assert.ok(p.allowedHosts.has('127.0.0.1:9000') && p.allowedHosts.has('[::1]:9000'));
    assert.ok(!p.allowedHosts.has('evil.example:9000') && !p.allowedHosts.has(`${hostname().toLowerCase()}:9001`));
    assert.ok(p.allowedOrigins.has(`http://${hostname().toLowerCase()}:9000`));
  });

  it('on loopback: loopback names only', () => {
    assert.deepEqual([...accessPolicy('127.0.0.1', 9000).allowedHosts].sort(), ['127.0.0.1:9000', '[::1]:9000', 'localhost:9000']);
  });
});
