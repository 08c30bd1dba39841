/**
 * The production app, started the way the README says (`npm start`), on a free port with its own
 * data and notebook folders, and Debian's Chromium driven by playwright-core.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { REPO_ROOT } from './fixtures.ts';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/** Hash of every source the web app is built from, to rebuild only when they changed. */
function sourceHash(): string {
  const h = createHash('sha256');
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(tsx?|css|js|json)$/.test(e.name)) h.update(p).update(readFileSync(p));
    }
  };
  for (const d of ['app', 'components']) walk(join(REPO_ROOT, d));
  for (const f of ['server/protocol.ts', 'next.config.js', 'package.json']) h.update(f).update(readFileSync(join(REPO_ROOT, f)));
  return h.digest('hex');
}

/** Builds the web app unless the current build came from the same sources. */
export function ensureAppBuilt(): void {
  const stamp = join(REPO_ROOT, '.next', 'moe-lab-sources');
  const hash = sourceHash();
  if (existsSync(join(REPO_ROOT, '.next', 'BUILD_ID')) && existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return;
  const r = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error('next build failed');
  writeFileSync(stamp, hash);
}

export interface RunningApp {
  readonly url: string;
  readonly loginUrl: string;
  readonly notebooks: string;
  readonly output: () => string;
  stop(): Promise<void>;
}

/** `npm start -- --port 0 …`: waits for the printed URL with the token. */
export async function startApp(opts: { modelsDir?: string; models?: string[]; notebooks?: string; dataDir?: string } = {}): Promise<RunningApp> {
  ensureAppBuilt();
  const notebooks = opts.notebooks ?? mkdtempSync(join(tmpdir(), 'moe-lab-app-nb-'));
  const args = ['start', '--', '--port', '0', '--notebooks', notebooks, '--data-dir', opts.dataDir ?? mkdtempSync(join(tmpdir(), 'moe-lab-app-data-'))];
  if (opts.modelsDir) args.push('--models-dir', opts.modelsDir);
  for (const m of opts.models ?? []) args.push('--model', m);
  const child: ChildProcess = spawn('npm', args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const loginUrl = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the app did not start:\n${out}`)), 120_000);
    const check = () => {
      const m = /http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[0]);
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => reject(new Error(`the app exited with ${code}:\n${out}`)));
  });
  return {
    url: loginUrl.split('/?')[0]!,
    loginUrl,
    notebooks,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        process.kill(-child.pid!, 'SIGTERM');
        setTimeout(() => child.exitCode === null && process.kill(-child.pid!, 'SIGKILL'), 5000).unref();
      }),
  };
}

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM) || !statSync(CHROMIUM).isFile()) throw new Error(`Chromium not found at ${CHROMIUM} (install Debian's chromium package)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** Console messages and every request's URL, to check for worker errors and outside requests. */
export function watchPage(page: Page): { console: string[]; requests: string[] } {
  const log = { console: [] as string[], requests: [] as string[] };
  page.on('console', (m) => log.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.console.push(`pageerror: ${e.stack ?? e.message}`));
  page.on('request', (r) => log.requests.push(r.url()));
  page.on('worker', (w) => w.on('console', (m) => log.console.push(`worker ${m.type()}: ${m.text()}`)));
  return log;
}

export const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
