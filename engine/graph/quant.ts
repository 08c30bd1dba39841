/**
 * Block-wise symmetric weight quantization of the routed experts, in the layout onnxruntime's
 * `QMoE` (and `MatMulNBits`) read: a weight [N, K] (HF's [out, in]) is quantized row by row along K in blocks of `blockSize`;
 * each block keeps one float32 scale (of either sign) and stores q = round(w / scale) + 2^(bits-1), the zero point
 * both kernels assume when none is given (q - 2^(bits-1) spans -8…7 or -128…127). Int4 packs two values per byte, the even index in the
 * low nibble. K that is not a multiple of the block is zero-padded to one.
 *
 * Pure functions over typed arrays, so the import can quantize one expert at a time straight
 * into the layer's output buffer.
 */
import { EngineError, EngineErrorCode } from '../errors.ts';

export type QuantBits = 4 | 8;
export type QuantMode = 'none' | 'int8' | 'int4';

export const QUANT_MODES: readonly QuantMode[] = ['none', 'int8', 'int4'];

/** A `--quant` value (absent: none); anything else is ENGINE_BAD_CONFIG. */
export function parseQuant(v: string | undefined): QuantMode {
  const q = v ?? 'none';
  if (!(QUANT_MODES as readonly string[]).includes(q)) {
    throw new EngineError(EngineErrorCode.BAD_CONFIG, `--quant must be one of ${QUANT_MODES.join(', ')}, got '${q}'`);
  }
  return q as QuantMode;
}

export function quantBits(mode: QuantMode): QuantBits | null {
  return mode === 'int8' ? 8 : mode === 'int4' ? 4 : null;
}

/**
 * How many of the first MoE layers keep int8 experts in int4 mode: an eighth of them rounded up,
 * never the last (so none for a model with one MoE layer).
 * Rounding error in an early layer's experts reaches every later router, and the first layers'
 * outputs are a large part of the residual stream those routers read. On random mixtrals of 4, 8
 * and 16 MoE layers this lifted top-k agreement with float32 by 3.5, 2.5 and 4.1 points
 * (docs/engine.md). In blocks of 32 an int8 layer holds 9/5 of its int4 bytes: OLMoE-1B-7B (2 of 16
 * layers at int8) stores 10 % more expert bytes than all-int4 would.
 */
export function int8ExpertLayers(moeLayers: number): number {
  // Never the last: its experts feed no router.
  return Math.max(0, Math.min(moeLayers - 1, Math.max(1, Math.ceil(moeLayers / 8))));
}

/** How a mode stores the routed experts of a model with `moeLayers` MoE layers, in words. */
export function describeExpertStorage(mode: QuantMode, moeLayers: number): string {
  const bits = quantBits(mode);
  if (!bits) return 'routed experts float32';
  const n = bits === 4 ? int8ExpertLayers(moeLayers) : 0;
  if (n === 0) return `routed experts ${mode}`;
  return `routed experts int4, those of the first ${n === 1 ? 'MoE layer' : `${n} of ${moeLayers} MoE layers`} int8`;
}

/** The bits MoE layer `moeIndex` (of `moeLayers`) stores its routed experts with under a mode of `bits`. */
export function expertBits(bits: QuantBits, moeIndex: number, moeLayers: number): QuantBits {
  return bits === 4 && moeIndex < int8ExpertLayers(moeLayers) ? 8 : bits;
}

/** The bits of every MoE layer's routed experts under `mode`, in MoE-layer order (empty for float32). */
export function expertBitsPerLayer(mode: QuantMode, moeLayers: number): QuantBits[] {
  const bits = quantBits(mode);
  return bits ? Array.from({ length: moeLayers }, (_, m) => expertBits(bits, m, moeLayers)) : [];
}

/** Block size used for every quantized weight; 32 keeps int4 routing agreement high (tests state it). */
export const QUANT_BLOCK = 32;

export interface QuantLayout {
  readonly bits: QuantBits;
  readonly blockSize: number;
  /** Blocks per row (K padded up to a whole block). */
  readonly blocksPerRow: number;
  /** Bytes of packed values per row. */
  readonly bytesPerRow: number;
}

export function quantLayout(k: number, bits: QuantBits, blockSize = QUANT_BLOCK): QuantLayout {
  const blocksPerRow = Math.ceil(k / blockSize);
  return { bits, blockSize, blocksPerRow, bytesPerRow: (blocksPerRow * blockSize * bits) / 8 };
}

/**
 * Per block, the scale maps the largest-magnitude value onto -2^(b-1), the end of the range with
 * the extra level: the scale is negative when that value is positive, which the kernels multiply
 * through like any other (a positive extreme on +7 would leave int4 seven steps instead of eight on
 * its side). At 4 bits a few slightly smaller scales are tried as well (clipping the extreme value)
 * and the one with the least squared error kept. Int4's relative weight error, extreme on its own
 * side → on -8: gaussian weights 8.7 → 8.3 %, the built-in model's experts 8.8 → 8.3 %.
 */
const INT4_SCALE_STEPS = [1, 0.95, 0.9, 0.85];

/**
 * Quantizes `rows` rows of length k from `w` (row-major) into `data` / `scales`, starting at row
 * `rowOffset` of the destination (so experts can be written one after another).
 */
export function quantizeRowsInto(
  w: Float32Array,
  rows: number,
  k: number,
  lay: QuantLayout,
  data: Uint8Array,
  scales: Float32Array,
  rowOffset = 0,
): void {
  const { bits, blockSize, blocksPerRow, bytesPerRow } = lay;
  const lo = -(1 << (bits - 1)); // -8 / -128
  const hi = (1 << (bits - 1)) - 1; // 7 / 127
  const zero = 1 << (bits - 1);
  const steps = bits === 4 ? INT4_SCALE_STEPS : [1];
  // One block's levels, chosen before packing (a checkpoint has billions of values: plain loops,
  // multiplication by the inverse scale, no per-value calls).
  const q = new Int32Array(blockSize);
  for (let r = 0; r < rows; r++) {
    const src = r * k;
    const dstRow = (rowOffset + r) * bytesPerRow;
    for (let blk = 0; blk < blocksPerRow; blk++) {
      const start = src + blk * blockSize;
      const end = src + Math.min((blk + 1) * blockSize, k);
      let extreme = 0;
      let amax = 0;
      for (let i = start; i < end; i++) {
        const v = w[i]!;
        const a = Math.abs(v);
        if (a > amax) {
          amax = a;
          extreme = v;
        }
      }
      // Scales are what the kernels read back, so they are float32 before anything is rounded with them.
      const base = Math.fround(extreme / lo);
      let scale = base;
      if (steps.length > 1 && base !== 0) {
        let best = Infinity;
        for (let c = 0; c < steps.length; c++) {
          const sc = Math.fround(base * steps[c]!);
          const inv = 1 / sc;
          let err = 0;
          for (let i = start; i < end; i++) {
            const v = w[i]!;
            let l = Math.floor(v * inv + 0.5); // = Math.round, without its -0 (which leaves the fast integer path)
            if (l < lo) l = lo;
            else if (l > hi) l = hi;
            const d = v - l * sc;
            err += d * d;
          }
          if (err < best) {
            best = err;
            scale = sc;
          }
        }
      }
      scales[(rowOffset + r) * blocksPerRow + blk] = scale;
      const inv = scale !== 0 ? 1 / scale : 0;
      // Padding beyond k quantizes 0, i.e. the zero point.
      for (let j = 0; j < blockSize; j++) {
        const i = start + j;
        let l = i < end ? Math.floor(w[i]! * inv + 0.5) : 0;
        if (l < lo) l = lo;
        else if (l > hi) l = hi;
        q[j] = l + zero;
      }
      const at = dstRow + (blk * blockSize * bits) / 8;
      if (bits === 8) for (let j = 0; j < blockSize; j++) data[at + j] = q[j]!;
      else for (let j = 0; j < blockSize; j += 2) data[at + (j >> 1)] = q[j]! | (q[j + 1]! << 4);
    }
  }
}

export interface QuantizedMatrix {
  readonly layout: QuantLayout;
  readonly rows: number;
  readonly k: number;
  readonly data: Uint8Array;
  readonly scales: Float32Array;
}

export function quantizeMatrix(w: Float32Array, rows: number, k: number, bits: QuantBits, blockSize = QUANT_BLOCK): QuantizedMatrix {
  const layout = quantLayout(k, bits, blockSize);
  const data = new Uint8Array(rows * layout.bytesPerRow);
  const scales = new Float32Array(rows * layout.blocksPerRow);
  quantizeRowsInto(w, rows, k, layout, data, scales);
  return { layout, rows, k, data, scales };
}

/** The float weights a quantized matrix stands for (what the kernels compute with). */
export function dequantizeMatrix(m: QuantizedMatrix): Float32Array {
  const { bits, blockSize, blocksPerRow, bytesPerRow } = m.layout;
  const zero = 1 << (bits - 1);
  const out = new Float32Array(m.rows * m.k);
  for (let r = 0; r < m.rows; r++) {
    for (let i = 0; i < m.k; i++) {
      const byte = m.data[r * bytesPerRow + (bits === 8 ? i : i >> 1)]!;
      const q = bits === 8 ? byte : i & 1 ? byte >> 4 : byte & 0x0f;
      out[r * m.k + i] = (q - zero) * m.scales[r * blocksPerRow + Math.floor(i / blockSize)]!;
    }
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → IEEE half bits, round to nearest even (subnormals kept, overflow → ±inf). */
export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // underflows to ±0
    mant |= 0x800000; // implicit leading one, then shift into a subnormal
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // may carry into the exponent, which is right
  return sign | h;
}

export function toFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]!);
  return out;
}
