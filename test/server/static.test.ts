/** The web app's static files: a download the client abandons gives its file back. */
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/fixtures.ts';
import { labServer, smallModel } from '../helpers/lab-server.ts';

/** The largest file the editor serves, so a download is still streaming when the client leaves. */
function largestMonacoAsset(): string {
  const dir = join(REPO_ROOT, 'node_modules', 'monaco-editor', 'min', 'vs', 'assets');
  const names = readdirSync(dir).filter((n) => n.endsWith('.js'));
  assert.ok(names.length > 0);
  const size = (n: string) => statSync(join(dir, n)).size;
  return `/vendor/monaco/vs/assets/${names.sort((a, b) => size(b) - size(a))[0]!}`;
}

const openFiles = () => readdirSync('/proc/self/fd').length;

describe('static files', () => {
  let server: Awaited<ReturnType<typeof labServer>>;
  before(async () => {
    // The static routes are served only with a web app; this one answers 404 for everything else.
    server = await labServer({ modelDirs: [await smallModel()], ui: (_req, res) => void res.writeHead(404).end() });
  });
  after(async () => server.close());

  it('closes the file of a download the client abandons', { skip: process.platform !== 'linux' }, async () => {
    const path = largestMonacoAsset();
    const port = new URL(server.url).port;
    const abort = () =>
      new Promise<void>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path, headers: { Authorization: `Bearer ${server.token}` } }, (res) => {
          assert.equal(res.statusCode, 200);
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => {});
      });
    await abort(); // warm-up: anything opened once (the package folder's realpath, sockets) is open before counting
    await new Promise((r) => setTimeout(r, 100));
    const before = openFiles();
    for (let i = 0; i < 40; i++) await abort();
    await new Promise((r) => setTimeout(r, 300));
    const leaked = openFiles() - before;
    assert.ok(leaked < 10, `${leaked} more open file descriptors after 40 abandoned downloads`);
  });
});
