/**
 * Run state: the KV cache of one sequence, kept on the host in the layouts the graph consumes
 * (Kᵀ [Hkv, Dk, C], V [Hkv, C, Dv]), so feeding it costs nothing and each step only copies the
 * new tokens' K/V in. Capacity grows in blocks; positions past `length` are masked with -inf.
 * Dk = Dv except for DeepSeek's MLA, whose keys carry extra RoPE dims.
 */

/** Capacity grows in multiples of this many positions (each growth copies the cache once). */
export const CACHE_BLOCK = 64;

const EMPTY = new Float32Array(0);

export class KvCache {
  private kt: Float32Array[] = [];
  private v: Float32Array[] = [];
  private maskBuf = new Float32Array(0);
  private cap = 0;
  private len = 0;

  /** Width of each cached value vector. */
  readonly vHeadDim: number;

  /**
   * @param headDim  width of each cached key vector (Dk)
   * @param vHeadDim width of each cached value vector (Dv); defaults to headDim
   */
  constructor(
    readonly numLayers: number,
    readonly numKvHeads: number,
    readonly headDim: number,
    readonly maxPositions: number,
    vHeadDim?: number,
  ) {
    this.vHeadDim = vHeadDim ?? headDim;
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
    const { numKvHeads: H, headDim: Dk, vHeadDim: Dv } = this;
    const old = { kt: this.kt, v: this.v, cap: this.cap };
    this.kt = [];
    this.v = [];
    for (let l = 0; l < this.numLayers; l++) {
      const kt = new Float32Array(H * Dk * newCap);
      const v = new Float32Array(H * newCap * Dv);
      if (old.cap > 0) {
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < Dk; d++) {
            const src = (h * Dk + d) * old.cap;
            kt.set(old.kt[l]!.subarray(src, src + this.len), (h * Dk + d) * newCap);
          }
          v.set(old.v[l]!.subarray(h * old.cap * Dv, (h * old.cap + this.len) * Dv), h * newCap * Dv);
        }
        // Each layer's old buffers are let go once copied, so a growth holds the new cache plus one
        // old layer, not two whole caches (a context sized to fill memory leaves no room for that).
        old.kt[l] = EMPTY;
        old.v[l] = EMPTY;
      }
      this.kt.push(kt);
      this.v.push(v);
    }
    this.cap = newCap;
    this.maskBuf = new Float32Array(newCap).fill(-Infinity);
    this.maskBuf.fill(0, 0, this.len);
  }

  /** Feeds for layer l: Kᵀ [Hkv, Dk, C], V [Hkv, C, Dv]. */
  layer(l: number): { kt: Float32Array; v: Float32Array } {
    return { kt: this.kt[l]!, v: this.v[l]! };
  }

  /** [C]: 0 for filled positions, -inf past them. */
  get mask(): Float32Array {
    return this.maskBuf;
  }

  /** Writes one layer's new K/V (present Kᵀ [Hkv, Dk, T], V [Hkv, T, Dv]) after the current length. */
  write(l: number, presentKt: Float32Array, presentV: Float32Array, T: number): void {
    const { numKvHeads: H, headDim: Dk, vHeadDim: Dv, cap, len } = this;
    const kt = this.kt[l]!;
    const v = this.v[l]!;
    for (let h = 0; h < H; h++) {
      for (let d = 0; d < Dk; d++) {
        const row = h * Dk + d;
        kt.set(presentKt.subarray(row * T, row * T + T), row * cap + len);
      }
      v.set(presentV.subarray(h * T * Dv, (h + 1) * T * Dv), (h * cap + len) * Dv);
    }
  }

  /** Marks T more positions as filled (after every layer was written). */
  advance(T: number): void {
    this.maskBuf.fill(0, this.len, this.len + T);
    this.len += T;
  }

  /**
   * Empties the cache for a new sequence. Capacity goes back to one block: padded positions are
   * still multiplied (then masked), so a cache left at the size of a long run would slow every step
   * of the next, short one.
   */
  reset(): void {
    this.len = 0;
    if (this.cap > CACHE_BLOCK) {
      this.cap = 0;
      this.grow(CACHE_BLOCK);
    } else {
      this.maskBuf.fill(-Infinity);
    }
  }
}
