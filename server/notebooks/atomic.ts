/**
 * Crash-safe file replacement. A write lands in a hidden temp file beside the target, is flushed,
 * and only then renamed (or hard-linked) into place, so a reader or a crash at any moment sees the
 * old complete file or the new complete file, never a prefix of one.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/** `.<name>.tmp-<pid>-<16 hex>`: hidden, so listings never show it, and recognisable for cleanup. */
export const TEMP_FILE_PATTERN = /^\..+\.tmp-\d+-[0-9a-f]{16}$/;

export function tempFileName(name: string): string {
  return `.${name}.tmp-${process.pid}-${randomBytes(8).toString('hex')}`;
}

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/** Raised by exclusive writes and moves when the target already exists. */
export class TargetExistsError extends Error {
  readonly code = 'EEXIST';
}

// Filesystems without hard links (some network and FUSE mounts, FAT) report one of these; there the
// no-replace guarantee falls back to check-then-rename, which the store's write lock makes safe
// against its own writers.
const NO_LINK_CODES = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK']);

/** Renames `from` to `to` without ever replacing an existing `to`. */
export async function moveNoReplace(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (e) {
    if (errCode(e) === 'EEXIST') throw new TargetExistsError(`${path.basename(to)} exists`);
    if (!NO_LINK_CODES.has(errCode(e) ?? '')) throw e;
    if (await exists(to)) throw new TargetExistsError(`${path.basename(to)} exists`);
    await rename(from, to);
    return;
  }
  await unlink(from);
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (e) {
    if (errCode(e) === 'ENOENT') return false;
    throw e;
  }
}

/**
 * Makes a rename or unlink in `dir` durable: without this, a power loss after rename can bring back
 * the old directory entry even though the file data was flushed.
 */
export async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, constants.O_RDONLY);
  } catch (e) {
    // Some platforms cannot open folders at all; durability then rests on the OS.
    if (['EISDIR', 'EPERM', 'EACCES'].includes(errCode(e) ?? '')) return;
    throw e;
  }
  try {
    await fh.sync();
  } catch (e) {
    if (!['EINVAL', 'EPERM', 'EBADF', 'ENOTSUP'].includes(errCode(e) ?? '')) throw e;
  } finally {
    await fh.close();
  }
}

export interface AtomicWriteOptions {
  /** Fail with TargetExistsError instead of replacing an existing file. */
  exclusive?: boolean;
  /** Modification time to stamp on the new file (ms since the epoch). */
  mtimeMs?: number;
  /** Permission bits for the new file; kept from the file being replaced so a save does not widen them. */
  mode?: number;
}

/** Writes `data` to `dir/name` atomically; `dir` must exist and be a real (symlink-free) path. */
export async function writeFileAtomic(dir: string, name: string, data: Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const target = path.join(dir, name);
  const tmp = path.join(dir, tempFileName(name));
  // O_EXCL|O_NOFOLLOW: never write through something planted at the temp name.
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
  const fh = await open(tmp, flags, 0o644);
  let placed = false;
  try {
    try {
      await fh.writeFile(data);
      if (opts.mode !== undefined) await fh.chmod(opts.mode);
      if (opts.mtimeMs !== undefined) await fh.utimes(new Date(), new Date(opts.mtimeMs));
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (opts.exclusive) await moveNoReplace(tmp, target);
    else await rename(tmp, target);
    placed = true;
  } finally {
    if (!placed) await unlink(tmp).catch(() => undefined);
  }
  await syncDir(dir);
}

/**
 * Deletes temp files a crashed writer left behind, in every visible folder under `root`. Symlinks
 * and hidden folders are not followed, so nothing outside the root (or private to it) is touched.
 * Age is judged by mtime: a writer in progress keeps bumping it, and the stamp a save sets is never
 * earlier than the moment of writing.
 */
export async function removeStaleTempFiles(root: string, olderThanMs: number, maxDepth: number): Promise<number> {
  let removed = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (['ENOENT', 'EACCES', 'ENOTDIR'].includes(errCode(e) ?? '')) return;
      throw e;
    }
    for (const ent of entries) {
      const full = path.join(dir, ent.name);
      if (ent.isFile() && TEMP_FILE_PATTERN.test(ent.name)) {
        try {
          const st = await lstat(full);
          if (st.isFile() && st.mtimeMs < olderThanMs) {
            await unlink(full);
            removed++;
          }
        } catch (e) {
          if (errCode(e) !== 'ENOENT') throw e;
        }
      } else if (ent.isDirectory() && !ent.name.startsWith('.') && depth < maxDepth) {
        await walk(full, depth + 1);
      }
    }
  };
  await walk(root, 0);
  return removed;
}
