/**
 * Client-supplied notebook paths: a pure syntactic check, then a walk of the real filesystem that
 * follows symlinks one segment at a time and refuses the moment anything leads outside the root.
 */
import { lstat, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { NotebookError, NotebookErrorCode } from './errors.ts';

export const NOTEBOOK_EXTENSION = '.moenb';
export const MAX_PATH_CHARS = 1024;
export const MAX_PATH_SEGMENTS = 32;
/** Leaves room under the usual 255-byte name limit for the temp-file prefix and suffix. */
export const MAX_SEGMENT_BYTES = 200;

/** A path that passed the syntactic rules: forward-slash form and its segments, all non-empty. */
export interface NotebookPath {
  rel: string;
  segments: string[];
}

function bad(message: string, given: unknown): NotebookError {
  return new NotebookError(NotebookErrorCode.BAD_PATH, message, { path: typeof given === 'string' ? given.slice(0, 200) : String(given) });
}

// Control characters are never part of a sensible name and would let a path smuggle line breaks
// into logs; NUL additionally truncates paths in C-level APIs.
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Decodes percent-escapes exactly once. Callers may hand us raw URL segments, so `%2e%2e%2f` must be
 * judged as `../`; a `%` surviving the decode means double encoding (or a malformed escape), which
 * a later layer might decode again, so it is refused rather than guessed at.
 */
function decodeOnce(raw: string): string {
  if (!raw.includes('%')) return raw;
  if (/%(?![0-9A-Fa-f]{2})/.test(raw)) throw bad('path has a malformed percent-escape', raw);
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw bad('path percent-escapes are not valid UTF-8', raw);
  }
  if (decoded.includes('%')) throw bad('path is percent-encoded more than once', raw);
  return decoded;
}

export function checkSegment(seg: string, last: boolean): string | null {
  if (seg === '') return 'path has an empty segment';
  if (seg.startsWith('.')) return 'path segments may not start with "." (hidden or relative)';
  if (seg.includes('%')) return 'path segments may not contain "%"';
  if (seg.includes('\\')) return 'path may not contain backslashes';
  if (CONTROL.test(seg)) return 'path may not contain control characters';
  if (/\p{Cs}/u.test(seg)) return 'path is not well-formed Unicode';
  if (Buffer.byteLength(seg, 'utf8') > MAX_SEGMENT_BYTES) return `path segments are limited to ${MAX_SEGMENT_BYTES} bytes`;
  if (last && (!seg.endsWith(NOTEBOOK_EXTENSION) || seg.length === NOTEBOOK_EXTENSION.length)) {
    return `notebook paths must end in ${NOTEBOOK_EXTENSION}`;
  }
  return null;
}

/** Applies every syntactic rule; touches no filesystem. Throws BAD_PATH. */
export function parseNotebookPath(raw: unknown): NotebookPath {
  if (typeof raw !== 'string') throw bad('path must be a string', raw);
  if (raw.length === 0) throw bad('path is empty', raw);
  if (raw.length > MAX_PATH_CHARS) throw bad(`path is longer than ${MAX_PATH_CHARS} characters`, raw);
  // Checked before decoding too, so the raw form can never reach a message or a syscall unvetted.
  if (raw.includes('\u0000')) throw bad('path may not contain NUL', raw);
  if (raw.includes('\\')) throw bad('path may not contain backslashes', raw);
  const p = decodeOnce(raw);
  if (p.length === 0) throw bad('path is empty', raw);
  if (p.includes('\u0000')) throw bad('path may not contain NUL', raw);
  if (p.includes('\\')) throw bad('path may not contain backslashes', raw);
  // Both flavours: a server on one OS must not accept what the other would treat as absolute.
  if (path.posix.isAbsolute(p) || path.win32.isAbsolute(p) || /^[A-Za-z]:/.test(p)) throw bad('path must be relative', raw);
  if (p.endsWith('/')) throw bad('path must name a file, not a folder', raw);
  const segments = p.split('/');
  if (segments.length > MAX_PATH_SEGMENTS) throw bad(`path has more than ${MAX_PATH_SEGMENTS} segments`, raw);
  for (let i = 0; i < segments.length; i++) {
    const problem = checkSegment(segments[i], i === segments.length - 1);
    if (problem) throw bad(problem, raw);
  }
  return { rel: segments.join('/'), segments };
}

/** True when `real` is `root` itself or lies below it; `root + sep` keeps `/x/nb-evil` out of `/x/nb`. */
export function isInside(root: string, real: string, allowRoot: boolean): boolean {
  if (real === root) return allowRoot;
  return real.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/** Hidden folders inside the root are off limits even when a visible symlink leads into them. */
export function hasHiddenPart(root: string, real: string): boolean {
  const rel = path.relative(root, real);
  return rel !== '' && rel.split(path.sep).some((s) => s.startsWith('.'));
}

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/** Where a parsed path lands on disk, with every existing part already proven to be inside the root. */
export interface ResolvedPath extends NotebookPath {
  /** Real path of the deepest existing folder on the way (the parent itself when it exists). */
  base: string;
  /** Segments below `base` that do not exist yet (the file name last); empty when the file exists. */
  rest: string[];
  /** Real path of the file when it exists (symlinks followed), otherwise null. */
  real: string | null;
  /** stat of the file (following symlinks) when it exists. */
  stats: Stats | null;
  /** A segment before the last exists but is not a folder. */
  parentNotFolder: boolean;
}

/**
 * Walks the path one segment at a time from the (real) root. Plain entries keep the walk real; a
 * symlink is resolved with realpath and must land inside the root, outside any hidden folder, or the
 * whole path is refused, whatever the operation. A dangling symlink is refused too, since its target
 * cannot be vetted and a later write could create it outside the root.
 */
export async function resolveInRoot(root: string, parsed: NotebookPath, raw: string): Promise<ResolvedPath> {
  const { segments } = parsed;
  let cur = root;
  for (let i = 0; i < segments.length; i++) {
    const last = i === segments.length - 1;
    const next = path.join(cur, segments[i]);
    let ls: Stats;
    try {
      ls = await lstat(next);
    } catch (e) {
      const code = errCode(e);
      if (code === 'ENOENT') return { ...parsed, base: cur, rest: segments.slice(i), real: null, stats: null, parentNotFolder: false };
      if (code === 'ENOTDIR') return { ...parsed, base: cur, rest: segments.slice(i), real: null, stats: null, parentNotFolder: true };
      // The length limits are in characters; a long root plus multi-byte names can still exceed the OS limit.
      if (code === 'ENAMETOOLONG') throw bad('path is too long', raw);
      throw e;
    }
    let real = next;
    let st = ls;
    if (ls.isSymbolicLink()) {
      try {
        real = await realpath(next);
        st = await stat(real);
      } catch (e) {
        if (errCode(e) === 'ENOENT' || errCode(e) === 'ELOOP' || errCode(e) === 'ENOTDIR') throw bad('path goes through a symlink that cannot be resolved', raw);
        throw e;
      }
      if (!isInside(root, real, !last) || hasHiddenPart(root, real)) throw bad('path leads outside the notebook folder', raw);
    }
    if (!last && !st.isDirectory()) {
      return { ...parsed, base: cur, rest: segments.slice(i), real: null, stats: null, parentNotFolder: true };
    }
    if (last) return { ...parsed, base: cur, rest: [], real, stats: st, parentNotFolder: false };
    cur = real;
  }
  throw bad('path is empty', raw);
}
