/** The host KV cache: block growth keeps what was written, and a reset gives back the capacity. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CACHE_BLOCK, KvCache } from '../../engine/runtime/kv-cache.ts';

describe('KV cache', () => {
  it('grows by blocks keeping written positions, masks the padding, and shrinks back on reset', () => {
    const c = new KvCache(1, 1, 2, 4096);
    assert.equal(c.capacity, CACHE_BLOCK);
    // Write positions 0..69 with value = position, so a bad copy on growth would show.
    for (let p = 0; p < 70; p++) {
      c.reserve(1);
      c.write(0, Float32Array.of(p, -p), Float32Array.of(p + 0.5, -p - 0.5), 1);
      c.advance(1);
    }
    assert.equal(c.capacity, 2 * CACHE_BLOCK);
    const { kt, v } = c.layer(0);
    const C = c.capacity;
    assert.deepEqual([kt[0], kt[69], kt[C + 69], v[2 * 69], v[2 * 69 + 1]], [0, 69, -69, 69.5, -69.5]);
    assert.equal(c.mask[69], 0);
    assert.equal(c.mask[70], -Infinity);
    c.reset();
    assert.equal(c.length, 0);
    assert.equal(c.capacity, CACHE_BLOCK, 'a short run after a long one attends over one block again');
    assert.ok(c.mask.every((m) => m === -Infinity));
  });
});
