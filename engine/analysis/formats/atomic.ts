/**
 * Files appear whole or not at all: written under a temporary name next to the target, flushed
 * to disk, then renamed over it. A reader (or a resumed trace) never sees half a file, whenever
 * the writer is killed.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export const TEMP_MARK = '.partial-';

/** A temporary name beside `path`, unique to this process and call. */
export function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}${TEMP_MARK}${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}

export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.includes(TEMP_MARK);
}

function fsyncPath(path: string, flags: string): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Moves a finished temporary file into place, durably. */
export function commitTemp(tmp: string, path: string): void {
  fsyncPath(tmp, 'r+');
  renameSync(tmp, path);
  try {
    fsyncPath(dirname(path), 'r');
  } catch {
    // Some filesystems refuse to open directories; the rename is still atomic there.
  }
}

/**
 * A failed write names the file asked for, not the temporary one (which no longer exists), and
 * keeps the system's code (ENOENT, EACCES, ENOSPC…).
 */
function aboutTarget(e: unknown, path: string): unknown {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string') return e;
  return Object.assign(new Error(`cannot write ${path}: ${code}`, { cause: e }), { code });
}

export function atomicWriteFile(path: string, data: string | Uint8Array): void {
  const tmp = tempPath(path);
  try {
    writeFileSync(tmp, data);
    commitTemp(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw aboutTarget(e, path);
  }
}

/** Like atomicWriteFile, for content produced in chunks (never held whole in memory). */
export function atomicWriteChunks(path: string, chunks: Iterable<string | Uint8Array>): void {
  const tmp = tempPath(path);
  try {
    const fd = openSync(tmp, 'w');
    try {
      for (const c of chunks) {
        const bytes = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
        // writeSync may write less than asked; carry on from where it stopped.
        for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
      }
    } finally {
      closeSync(fd);
    }
    commitTemp(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw aboutTarget(e, path);
  }
}
