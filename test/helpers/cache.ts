/** One graph cache folder per test process run, under the repo's ignored .cache/. */
import { join } from 'node:path';
import { REPO_ROOT } from './fixtures.ts';

export function testCacheDir(): string {
  return process.env['MOE_LAB_CACHE'] ?? join(REPO_ROOT, '.cache', 'test');
}
