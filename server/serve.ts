/**
 * `moe-lab serve`: the app (or, with --engine-only, the engine server alone) on 127.0.0.1.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseQuant } from '../engine/graph/quant.ts';
import { parseMaxContext } from '../engine/runtime/memory.ts';
import { startServer, type RequestHandler } from './app.ts';
import { consoleLogger } from './log.ts';
import { ModelRegistry } from './models.ts';
import { NotebookStore } from './notebooks/store.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_PORT = 8787;

export const SERVE_USAGE = `moe-lab serve [--port N] [--host ADDR --allow-remote] [--engine-only]
  [--model DIR]... [--models-dir DIR] [--quant none|int8|int4] [--max-context N] [--data-dir DIR]
  [--notebooks DIR] [--allow-origin URL]... [--engine URL]...

  Serves MoE Lab on http://127.0.0.1:${DEFAULT_PORT} and prints a URL carrying the access token.
  --engine-only  the WebSocket/REST engine server without the web app (e.g. on a GPU host);
                 allow the app's origin with --allow-origin http://127.0.0.1:PORT, and start
                 the app with --engine http://127.0.0.1:ENGINE_PORT so its pages may reach it.
  Models: every checkpoint folder in --models-dir (default: the built-in models) plus each --model;
  --quant runs them with block-quantized weights (for checkpoints larger than memory in float32).
  A model's context is its max_position_embeddings, or as many positions as this machine's memory
  holds the KV cache of; --max-context N caps it at N.
  Runs are stored under --data-dir (default ~/.moe-lab/data), notebooks under --notebooks
  (default ~/.moe-lab/notebooks).`;

export const WELCOME_NOTEBOOK = join(REPO_ROOT, 'server', 'notebooks', 'welcome.moenb');

/** A new notebook root starts with the welcome notebook, which walks through the built-in model. */
async function seedWelcome(store: NotebookStore): Promise<void> {
  if ((await store.list()).length > 0 || !existsSync(WELCOME_NOTEBOOK)) return;
  await store.create('welcome.moenb', readFileSync(WELCOME_NOTEBOOK, 'utf8'));
}

/** Builds the production web app once, if it has not been built yet. */
function ensureBuilt(log: ReturnType<typeof consoleLogger>): void {
  if (existsSync(join(REPO_ROOT, '.next', 'BUILD_ID'))) return;
  log.info('building the web app (first start only; later starts reuse it)…');
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'node_modules', 'next', 'dist', 'bin', 'next'), 'build'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' },
  });
  if (r.status !== 0) throw new Error('building the web app failed');
}

async function nextHandler(): Promise<RequestHandler> {
  process.env['NEXT_TELEMETRY_DISABLED'] = '1';
  const { default: next } = await import('next');
  const app = next({ dev: false, dir: REPO_ROOT, quiet: true });
  await app.prepare();
  const handle = app.getRequestHandler();
  return (req, res) => handle(req, res);
}

export async function runServe(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'allow-remote': { type: 'boolean', default: false },
      'engine-only': { type: 'boolean', default: false },
      model: { type: 'string', multiple: true },
      'models-dir': { type: 'string' },
      quant: { type: 'string' },
      'max-context': { type: 'string' },
      'data-dir': { type: 'string' },
      notebooks: { type: 'string' },
      'allow-origin': { type: 'string', multiple: true },
      engine: { type: 'string', multiple: true },
      quiet: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const log = consoleLogger(values.quiet);
  const host = values.host ?? '127.0.0.1';
  const loopback = host === '127.0.0.1' || host === '::1' || host === 'localhost';
  if (!loopback && !values['allow-remote']) {
    throw new Error(`refusing to listen on ${host}: pass --allow-remote to expose MoE Lab beyond this machine`);
  }
  if (!loopback) log.warn(`listening on ${host}: anyone who can reach this address and has the token can run models and read notebooks`);
  const quant = parseQuant(values.quant);
  const port = values.port !== undefined ? Number(values.port) : DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0–65535, got ${values.port}`);
  const maxContext = parseMaxContext(values['max-context']);

  const home = join(homedir(), '.moe-lab');
  const modelDirs = [...ModelRegistry.scan(resolve(values['models-dir'] ?? join(REPO_ROOT, 'models'))), ...(values.model ?? [])];
  const notebooksRoot = resolve(values.notebooks ?? join(home, 'notebooks'));
  mkdirSync(notebooksRoot, { recursive: true });
  const notebooks = await NotebookStore.open(notebooksRoot);
  await seedWelcome(notebooks);
  const engineOnly = values['engine-only'];
  if (!engineOnly) ensureBuilt(log);

  const server = await startServer({
    host,
    port,
    modelDirs,
    dataDir: resolve(values['data-dir'] ?? join(home, 'data')),
    notebooks,
    ui: engineOnly ? null : await nextHandler(),
    extraOrigins: values['allow-origin'] ?? [],
    engines: values.engine ?? [],
    quant,
    ...(maxContext !== undefined ? { maxContext } : {}),
    log,
  });
  process.stdout.write(
    `MoE Lab ${engineOnly ? 'engine server ' : ''}is running. Open this URL (it carries your access token):\n\n    ${server.loginUrl}\n\n` +
      `models: ${modelDirs.length ? modelDirs.map((d) => d.split('/').pop()).join(', ') : '(none)'} · notebooks: ${notebooksRoot}\n`,
  );
  let stopping = false;
  const stop = () => {
    // A second signal stops at once (the store is consistent after every write; live runs were
    // already marked interrupted by the first, or will be on the next start).
    if (stopping) process.exit(130);
    stopping = true;
    log.info('shutting down');
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
