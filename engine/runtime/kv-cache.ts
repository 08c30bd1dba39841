/**
 * Run state: the KV cache of one sequence, kept on the host in the layouts the graph consumes
 * (Kᵀ [Hkv, Dh, C], V [Hkv, C, Dh]), so feeding it costs nothing and each step only copies the
 * new tokens' K/V in. Capacity grows in blocks; positions past `length` are masked with -inf.
 */

/** Capacity grows in multiples of this many positions (each growth copies the cache once). */
export const CACHE_BLOCK = 64;

export class KvCache {
  private kt: Float32Array[] = [];
  private v: Float32Array[] = [];
  private maskBuf = new Float32Array(0);
  private cap = 0;
  private len = 0;

  constructor(
    readonly numLayers: number,
    readonly numKvHeads: number,
    readonly headDim: number,
    readonly maxPositions: number,
  ) {
    this.grow(CACHE_BLOCK);
  }

  get length(): number {
    return this.len;
  }

  get capacity(): number {
    return this.cap;
  }

  /** Makes room for `extra` more positions. */
  reserve(extra: number): void {
    const need = this.len + extra;
    // Grow by whole blocks, not by doubling: padded positions are still multiplied (then masked),
    // so spare capacity costs attention time on every step, while a growth copy is paid once.
    if (need > this.cap) this.grow(Math.ceil(need / CACHE_BLOCK) * CACHE_BLOCK);
  }

  private grow(newCap: number): void {
    const { numKvHeads: H, headDim: Dh } = this;
    const old = { kt: this.kt, v: this.v, cap: this.cap };
    this.kt = [];
    this.v = [];
    for (let l = 0; l < this.numLayers; l++) {
      const kt = new Float32Array(H * Dh * newCap);
      const v = new Float32Array(H * newCap * Dh);
      if (old.cap > 0) {
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < Dh; d++) {
            const src = (h * Dh + d) * old.cap;
            kt.set(old.kt[l]!.subarray(src, src + this.len), (h * Dh + d) * newCap);
          }
          v.set(old.v[l]!.subarray(h * old.cap * Dh, (h * old.cap + this.len) * Dh), h * newCap * Dh);
        }
      }
      this.kt.push(kt);
      this.v.push(v);
    }
    this.cap = newCap;
    this.maskBuf = new Float32Array(newCap).fill(-Infinity);
    this.maskBuf.fill(0, 0, this.len);
  }

  /** Feeds for layer l: Kᵀ [Hkv, Dh, C], V [Hkv, C, Dh]. */
  layer(l: number): { kt: Float32Array; v: Float32Array } {
    return { kt: this.kt[l]!, v: this.v[l]! };
  }

  /** [C]: 0 for filled positions, -inf past them. */
  get mask(): Float32Array {
    return this.maskBuf;
  }

  /** Writes one layer's new K/V (present Kᵀ [Hkv, Dh, T], V [Hkv, T, Dh]) after the current length. */
  write(l: number, presentKt: Float32Array, presentV: Float32Array, T: number): void {
    const { numKvHeads: H, headDim: Dh, cap, len } = this;
    const kt = this.kt[l]!;
    const v = this.v[l]!;
    for (let h = 0; h < H; h++) {
      for (let d = 0; d < Dh; d++) {
        const row = h * Dh + d;
        kt.set(presentKt.subarray(row * T, row * T + T), row * cap + len);
      }
      v.set(presentV.subarray(h * T * Dh, (h + 1) * T * Dh), (h * cap + len) * Dh);
    }
  }

  /** Marks T more positions as filled (after every layer was written). */
  advance(T: number): void {
    this.maskBuf.fill(0, this.len, this.len + T);
    this.len += T;
  }

  reset(): void {
    this.len = 0;
    this.maskBuf.fill(-Infinity);
  }
}
