/**
 * Static files the web app needs from our own origin — never a CDN: the code editor's files
 * (straight from the monaco-editor package) and the notebook kernel's worker script.
 */
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIME: Record<string, string> = {
  '.js': 'application/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.ttf': 'font/ttf',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export const MONACO_PREFIX = '/vendor/monaco/';
export const KERNEL_WORKER_PATH = '/kernel/worker.js';

/** The kernel runs each cell as a script from a blob: URL, so its worker (and only it) may load blob: scripts. */
export const KERNEL_WORKER_CSP = "default-src 'none'; script-src 'self' blob:";

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const MONACO_ROOT = join(REPO, 'node_modules', 'monaco-editor', 'min');

const KERNEL_FILE = join(REPO, 'components', 'kernel', 'kernel-worker.js');

async function sendFile(res: ServerResponse, file: string, cache: string): Promise<void> {
  const info = await stat(file);
  res.writeHead(200, {
    'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
    'Content-Length': info.size,
    'Cache-Control': cache,
  });
  // pipeline closes the file when the client goes away mid-download (pipe alone kept it open, and
  // the request's promise never settled); a client leaving is not an error of ours.
  try {
    await pipeline(createReadStream(file), res);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') throw e;
  }
}

function notFound(res: ServerResponse): void {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found');
}

/** Serves a static path if it is one of ours; returns false when the path is not static. */
export async function serveStatic(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  if (path === KERNEL_WORKER_PATH) {
    res.setHeader('Content-Security-Policy', KERNEL_WORKER_CSP);
    await sendFile(res, KERNEL_FILE, 'no-cache');
    return true;
  }
  if (!path.startsWith(MONACO_PREFIX)) return false;
  const root = await realpath(MONACO_ROOT);
  const rel = path.slice(MONACO_PREFIX.length);
  if (rel.includes('..') || rel.includes('\0') || rel.includes('%') || rel.includes('\\')) return (notFound(res), true);
  let file: string;
  try {
    file = await realpath(join(root, rel));
  } catch {
    return (notFound(res), true);
  }
  if (!file.startsWith(root + sep) || !(await stat(file)).isFile()) return (notFound(res), true);
  await sendFile(res, file, 'public, max-age=86400');
  return true;
}
