/**
 * Part of `npm run bench` (its own process, so peak RSS is its own): how much memory the KV cache
 * holds while it grows. A context cut to fill memory (runtime/memory.ts fitContext) budgets one
 * cache, so growing must not hold two. Grows a 16-layer, 16-head, 128-dim cache (256 KiB a
 * position) to 4,096 positions (1 GiB) in 512-position steps.
 * Target: peak RSS above the starting RSS ≤ 1.25 × the cache.
 */
import { KvCache } from '../../engine/runtime/kv-cache.ts';
import { formatBytes, peakRss } from '../../engine/runtime/memory.ts';

const L = 16;
const H = 16;
const D = 128;
const POSITIONS = 4096;
const STEP = 512;

const start = process.memoryUsage().rss;
const cache = new KvCache(L, H, D, POSITIONS);
for (let p = 0; p < POSITIONS; p += STEP) {
  cache.reserve(STEP);
  // Write every position, as steps do, so the pages are really held.
  for (let l = 0; l < L; l++) cache.write(l, new Float32Array(H * D * STEP).fill(1), new Float32Array(H * STEP * D).fill(1), STEP);
  cache.advance(STEP);
}
const bytes = L * H * (D + D) * 4 * cache.capacity;
const peak = peakRss() - start;
console.log(`KV cache growth: cache ${formatBytes(bytes)} at ${cache.capacity} positions, peak RSS above start ${formatBytes(peak)} (${(peak / bytes).toFixed(2)}× the cache; target ≤ 1.25×)`);
