/**
 * The notebook file store behind the HTTP server: `.moenb` files under one root folder, addressed by
 * client-supplied relative paths. Every path is vetted (paths.ts) before any filesystem call that
 * could reach outside the root, and every write is atomic (atomic.ts).
 */
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, realpath, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { moveNoReplace, removeStaleTempFiles, syncDir, TargetExistsError, writeFileAtomic } from './atomic.ts';
import { NotebookError, NotebookErrorCode } from './errors.ts';
import { checkSegment, hasHiddenPart, isInside, MAX_PATH_SEGMENTS, NOTEBOOK_EXTENSION, parseNotebookPath, resolveInRoot, type ResolvedPath } from './paths.ts';

export { NotebookError, NotebookErrorCode, isNotebookError } from './errors.ts';
export { MAX_PATH_CHARS, MAX_PATH_SEGMENTS, NOTEBOOK_EXTENSION, parseNotebookPath, type NotebookPath } from './paths.ts';

/** Largest notebook the store accepts or serves, in UTF-8 bytes. */
export const MAX_NOTEBOOK_BYTES = 16 * 1024 * 1024;
/** Temp files older than this are debris from a crashed writer, not a save in progress. */
export const STALE_TEMP_MS = 60 * 60 * 1000;

export interface NotebookEntry {
  /** Relative to the root, forward slashes, e.g. "lessons/intro.moenb". */
  path: string;
  /** The file name, extension included, e.g. "intro.moenb". */
  name: string;
  /** Size in bytes. */
  size: number;
  /** Last modification, ISO 8601 with milliseconds; pass it back as `expectedModified` to detect conflicts. */
  modified: string;
}

export interface SaveOptions {
  /** The `modified` the client's copy is based on; the save fails with CONFLICT if the file differs. */
  expectedModified?: string;
}

function fail(code: NotebookErrorCode, message: string, rel: string, extra?: Record<string, unknown>): NotebookError {
  return new NotebookError(code, message, { path: rel, ...extra });
}

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/**
 * Whole milliseconds, so the ISO string round-trips exactly through Date.parse. Rounded, not
 * truncated: utimes passes seconds as a double, so a stamp of T ms can read back as T - 1 ns.
 */
function mtimeOf(st: Stats): number {
  return Math.round(st.mtimeMs);
}

function entryOf(rel: string, st: Stats): NotebookEntry {
  return { path: rel, name: rel.slice(rel.lastIndexOf('/') + 1), size: st.size, modified: new Date(mtimeOf(st)).toISOString() };
}

const LONE_SURROGATE = /\p{Cs}/u;

/** Size first (cheap, and bounds the parse), then well-formedness, then JSON syntax. */
function encodeContent(content: unknown, rel: string): Buffer {
  if (typeof content !== 'string') throw fail(NotebookErrorCode.BAD_CONTENT, 'notebook content must be a string', rel);
  if (content.length > MAX_NOTEBOOK_BYTES || Buffer.byteLength(content, 'utf8') > MAX_NOTEBOOK_BYTES) {
    throw fail(NotebookErrorCode.TOO_LARGE, `notebook is larger than ${MAX_NOTEBOOK_BYTES} bytes`, rel, { limit: MAX_NOTEBOOK_BYTES });
  }
  // UTF-8 cannot carry a lone surrogate; writing one would silently change the text.
  if (LONE_SURROGATE.test(content)) throw fail(NotebookErrorCode.BAD_CONTENT, 'notebook content is not well-formed Unicode', rel);
  try {
    JSON.parse(content);
  } catch (e) {
    throw fail(NotebookErrorCode.BAD_CONTENT, `notebook content is not valid JSON: ${(e as Error).message}`, rel);
  }
  return Buffer.from(content, 'utf8');
}

function lastSegment(r: ResolvedPath): string {
  return r.segments[r.segments.length - 1];
}

export class NotebookStore {
  /**
   * Mutations run one at a time: check-then-write steps (EXISTS, CONFLICT, the no-replace fallback)
   * are then atomic with respect to this store's own writers. Reads need no lock, since files are
   * only ever replaced whole.
   */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    /** Real path of the root folder. */
    readonly root: string,
  ) {}

  /** Opens (creating if needed) the store at `root`, and clears temp files left by crashed writers. */
  static async open(root: string): Promise<NotebookStore> {
    if (typeof root !== 'string' || root === '') throw new TypeError('notebook root must be a non-empty path');
    const abs = path.resolve(root);
    await mkdir(abs, { recursive: true });
    const real = await realpath(abs);
    if (!(await stat(real)).isDirectory()) throw new TypeError(`notebook root is not a folder: ${abs}`);
    await removeStaleTempFiles(real, Date.now() - STALE_TEMP_MS, MAX_PATH_SEGMENTS);
    return new NotebookStore(real);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async resolve(raw: string): Promise<ResolvedPath> {
    return resolveInRoot(this.root, parseNotebookPath(raw), raw);
  }

  /**
   * Creates the missing folders of a path and returns the real parent folder. The parent is vetted
   * again after mkdir: the walk in resolveInRoot happened earlier, and a folder swapped for a symlink
   * in between must not redirect the write.
   */
  private async ensureParent(r: ResolvedPath, raw: string): Promise<string> {
    const dir = path.join(r.base, ...r.rest.slice(0, -1));
    if (r.rest.length > 1) await mkdir(dir, { recursive: true });
    const real = await realpath(dir);
    if (!isInside(this.root, real, true) || hasHiddenPart(this.root, real)) throw fail(NotebookErrorCode.BAD_PATH, 'path leads outside the notebook folder', raw);
    return real;
  }

  /** Every `.moenb` file under the root, sorted by path; hidden entries and escaping symlinks are skipped. */
  async list(): Promise<NotebookEntry[]> {
    const out: NotebookEntry[] = [];
    // Only the folders on the current branch: enough to stop symlink cycles without hiding aliases.
    const onBranch = new Set<string>([this.root]);
    const walk = async (dir: string, prefix: string, depth: number): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (dir !== this.root && ['ENOENT', 'EACCES', 'ENOTDIR'].includes(errCode(e) ?? '')) return;
        throw e;
      }
      for (const ent of entries) {
        if (ent.name.startsWith('.')) continue;
        const full = path.join(dir, ent.name);
        let real = full;
        let st: Stats;
        try {
          if (ent.isSymbolicLink()) {
            real = await realpath(full);
            if (!isInside(this.root, real, true) || hasHiddenPart(this.root, real)) continue;
          }
          st = await stat(real);
        } catch (e) {
          if (['ENOENT', 'ELOOP', 'EACCES', 'ENOTDIR'].includes(errCode(e) ?? '')) continue;
          throw e;
        }
        const rel = prefix ? `${prefix}/${ent.name}` : ent.name;
        if (st.isDirectory()) {
          // A path the store would refuse is not shown, so every listed path can be opened.
          if (checkSegment(ent.name, false) || depth + 1 >= MAX_PATH_SEGMENTS || onBranch.has(real)) continue;
          onBranch.add(real);
          await walk(real, rel, depth + 1);
          onBranch.delete(real);
        } else if (st.isFile() && ent.name.endsWith(NOTEBOOK_EXTENSION) && !checkSegment(ent.name, true)) {
          out.push(entryOf(rel, st));
        }
      }
    };
    await walk(this.root, '', 0);
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async read(p: string): Promise<{ entry: NotebookEntry; content: string }> {
    const r = await this.resolve(p);
    if (!r.real || !r.stats?.isFile()) throw fail(NotebookErrorCode.NOT_FOUND, 'no such notebook', r.rel);
    let fh;
    try {
      // The resolved path is symlink-free; O_NOFOLLOW keeps it so if the file is swapped meanwhile.
      fh = await open(r.real, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    } catch (e) {
      if (errCode(e) === 'ENOENT') throw fail(NotebookErrorCode.NOT_FOUND, 'no such notebook', r.rel);
      if (errCode(e) === 'ELOOP') throw fail(NotebookErrorCode.BAD_PATH, 'path leads outside the notebook folder', r.rel);
      throw e;
    }
    try {
      // Size and time come from the open handle, so they describe exactly the bytes returned.
      const st = await fh.stat();
      if (!st.isFile()) throw fail(NotebookErrorCode.NOT_FOUND, 'no such notebook', r.rel);
      if (st.size > MAX_NOTEBOOK_BYTES) throw fail(NotebookErrorCode.TOO_LARGE, `notebook is larger than ${MAX_NOTEBOOK_BYTES} bytes`, r.rel, { limit: MAX_NOTEBOOK_BYTES });
      const content = (await fh.readFile()).toString('utf8');
      return { entry: entryOf(r.rel, st), content };
    } finally {
      await fh.close();
    }
  }

  /** Creates a new notebook (and its missing parent folders); EXISTS if anything is at the path. */
  async create(p: string, content: string): Promise<NotebookEntry> {
    const rel = parseNotebookPath(p).rel;
    const data = encodeContent(content, rel);
    return this.exclusive(async () => {
      const r = await this.resolve(p);
      if (r.parentNotFolder) throw fail(NotebookErrorCode.BAD_PATH, 'a parent of the path is a file, not a folder', r.rel);
      if (r.stats) throw fail(NotebookErrorCode.EXISTS, 'a notebook already exists at this path', r.rel);
      const dir = await this.ensureParent(r, p);
      try {
        await writeFileAtomic(dir, lastSegment(r), data, { exclusive: true, mtimeMs: Date.now() });
      } catch (e) {
        if (e instanceof TargetExistsError) throw fail(NotebookErrorCode.EXISTS, 'a notebook already exists at this path', r.rel);
        throw e;
      }
      return entryOf(r.rel, await stat(path.join(dir, lastSegment(r))));
    });
  }

  /**
   * Replaces (or creates) a notebook atomically. With `expectedModified`, fails with CONFLICT unless
   * the file still carries exactly that timestamp (a file deleted meanwhile is a conflict too).
   */
  async save(p: string, content: string, opts: SaveOptions = {}): Promise<NotebookEntry> {
    const rel = parseNotebookPath(p).rel;
    const expected = opts.expectedModified;
    let expectedMs: number | undefined;
    if (expected !== undefined) {
      expectedMs = typeof expected === 'string' ? Date.parse(expected) : NaN;
      if (Number.isNaN(expectedMs)) throw fail(NotebookErrorCode.BAD_CONTENT, 'expectedModified must be an ISO timestamp', rel);
    }
    const data = encodeContent(content, rel);
    return this.exclusive(async () => {
      const r = await this.resolve(p);
      if (r.parentNotFolder) throw fail(NotebookErrorCode.BAD_PATH, 'a parent of the path is a file, not a folder', r.rel);
      if (r.stats && !r.stats.isFile()) throw fail(NotebookErrorCode.EXISTS, 'something other than a notebook is at this path', r.rel);
      if (expectedMs !== undefined) {
        if (!r.stats) throw fail(NotebookErrorCode.CONFLICT, 'the notebook was deleted since it was read', r.rel, { expected });
        if (mtimeOf(r.stats) !== expectedMs) {
          throw fail(NotebookErrorCode.CONFLICT, 'the notebook changed since it was read', r.rel, { expected, actual: entryOf(r.rel, r.stats).modified });
        }
      }
      // A symlink inside the root is written through to its (vetted) target rather than replaced.
      const dir = r.real ? path.dirname(r.real) : await this.ensureParent(r, p);
      const name = r.real ? path.basename(r.real) : lastSegment(r);
      // Strictly increasing stamps: two saves in the same millisecond must still look different to
      // expectedModified, or the second writer's conflict would go unnoticed.
      const mtimeMs = Math.max(Date.now(), r.stats ? mtimeOf(r.stats) + 1 : 0);
      await writeFileAtomic(dir, name, data, { mtimeMs, mode: r.stats ? r.stats.mode & 0o777 : undefined });
      return entryOf(r.rel, await stat(path.join(dir, name)));
    });
  }

  /** Moves a notebook (creating the target's folders); EXISTS rather than overwrite the target. */
  async rename(from: string, to: string): Promise<NotebookEntry> {
    parseNotebookPath(from);
    parseNotebookPath(to);
    return this.exclusive(async () => {
      const src = await this.resolve(from);
      if (!src.stats?.isFile()) throw fail(NotebookErrorCode.NOT_FOUND, 'no such notebook', src.rel);
      const dst = await this.resolve(to);
      if (dst.parentNotFolder) throw fail(NotebookErrorCode.BAD_PATH, 'a parent of the target is a file, not a folder', dst.rel);
      if (dst.stats) throw fail(NotebookErrorCode.EXISTS, 'a notebook already exists at the target path', dst.rel);
      const dir = await this.ensureParent(dst, to);
      const target = path.join(dir, lastSegment(dst));
      try {
        // The directory entry moves, not the file it may link to.
        await moveNoReplace(path.join(src.base, lastSegment(src)), target);
      } catch (e) {
        if (e instanceof TargetExistsError) throw fail(NotebookErrorCode.EXISTS, 'a notebook already exists at the target path', dst.rel);
        if (errCode(e) === 'ENOENT') throw fail(NotebookErrorCode.NOT_FOUND, 'no such notebook', src.rel);
        throw e;
      }
      await syncDir(dir);
      if (dir !== src.base) await syncDir(src.base);
      let st: Stats;
      try {
        st = await stat(target);
      } catch {
        st = await lstat(target);
      }
      return entryOf(dst.rel, st);
    });
  }

  async delete(p: string): Promise<void> {
    parseNotebookPath(p);
    return this.exclusive(async () => {
      const r = await this.resolve(p);
      if (!r.stats?.isFile()) throw fail(NotebookErrorCode.NOT_FOUND, 'no such notebook', r.rel);
      try {
        await unlink(path.join(r.base, lastSegment(r)));
      } catch (e) {
        if (errCode(e) === 'ENOENT') throw fail(NotebookErrorCode.NOT_FOUND, 'no such notebook', r.rel);
        throw e;
      }
      await syncDir(r.base);
    });
  }
}
