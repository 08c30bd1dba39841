/**
 * The remote-engine setup of docs/protocol.md, in Chromium: an app server started with `engines`
 * (serve --engine URL) lets its page open that engine's socket; without it, the page's security
 * policy blocks the connection. The page here is a small stand-in for the app's, doing what
 * `engineSocketUrl` does with `?engine=`.
 */
import assert from 'node:assert/strict';
import { freePort } from '../helpers/ports.ts';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import type { RequestHandler } from '../../server/app.ts';
import { launchBrowser } from '../helpers/app.ts';
import { labServer, smallModel } from '../helpers/lab-server.ts';


const page: RequestHandler = (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/html' });
  res.end(`<!doctype html><script>
    window.result = new Promise((resolve) => {
      document.addEventListener('securitypolicyviolation', (e) => resolve('blocked by ' + e.violatedDirective));
      const engine = new URL(new URLSearchParams(location.search).get('engine'));
      try {
        const ws = new WebSocket('ws://' + engine.host + '/ws');
        ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', protocol: 1 }));
        ws.onmessage = (m) => resolve(JSON.parse(m.data).type);
        ws.onerror = () => setTimeout(() => resolve('socket error'), 200);
      } catch (e) { resolve('threw ' + e.message); }
    });
  </script>`);
};

describe('an app page reaching an engine server', () => {
  let browser: Browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => browser?.close());

  for (const allowed of [true, false]) {
    it(allowed ? 'connects to the engine the app was started with (--engine)' : 'is blocked from an engine the app was not told of', async () => {
      const model = await smallModel();
      const appPort = await freePort();
      const engine = await labServer({ modelDirs: [model], ui: null, extraOrigins: [`http://127.0.0.1:${appPort}`] });
      const app = await labServer({ modelDirs: [], port: appPort, ui: page, ...(allowed ? { engines: [engine.url] } : {}) });
      const tab = await browser.newPage();
      try {
        await tab.goto(`${engine.url}/?token=${engine.token}`); // the engine's own session cookie
        await tab.goto(`${app.url}/?token=${app.token}`);
        await tab.goto(`${app.url}/?engine=${encodeURIComponent(engine.url)}`);
        const result = await tab.evaluate(() => (window as unknown as { result: Promise<string> }).result);
        assert.equal(result, allowed ? 'hello' : 'blocked by connect-src');
      } finally {
        await tab.close();
        await app.close();
        await engine.close();
      }
    });
  }
});
