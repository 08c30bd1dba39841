/**
 * One server per data directory. A second server on the same directory would mark the first one's
 * live runs interrupted at start and contend for the database, so the directory holds a lock file
 * with the owner's pid. A lock whose process is gone (a crash, a kill -9) is taken over.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive } from '../../engine/process-alive.ts';

export const DATA_DIR_IN_USE = 'SERVER_DATA_DIR_IN_USE';

export class DataDirInUseError extends Error {
  readonly code = DATA_DIR_IN_USE;
  constructor(readonly dir: string, readonly pid: number) {
    super(`the data directory ${dir} is in use by another MoE Lab server (pid ${pid}); stop it, or give this one its own --data-dir`);
  }
}


export interface DataDirLock {
  release(): void;
}

export function lockDataDir(dir: string): DataDirLock {
  const file = join(dir, 'server.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          rmSync(file, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) throw new DataDirInUseError(dir, pid);
      rmSync(file, { force: true }); // stale: its server is gone
    }
  }
  throw new DataDirInUseError(dir, Number.NaN);
}
