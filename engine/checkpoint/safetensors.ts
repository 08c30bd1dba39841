/**
 * Safetensors reading, one tensor at a time. The header is parsed and validated up front; a
 * tensor's bytes are read only when asked for and converted straight into a Float32Array, so
 * converting a checkpoint never holds the whole file (or two copies of a tensor) in memory.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { EngineError, EngineErrorCode } from '../errors.ts';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64';
const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8 };

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly file: string;
  /** Absolute byte offsets in `file`. */
  readonly begin: number;
  readonly end: number;
}

/** Largest header we accept; real headers are a few hundred KiB at most. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const entrySchema = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});

function corrupt(file: string, why: string): EngineError {
  return new EngineError(EngineErrorCode.CORRUPT_SAFETENSORS, `${file}: ${why}`, { file });
}

/** Reads and validates one .safetensors file's header. */
export function readSafetensorsHeader(file: string): TensorInfo[] {
  if (!existsSync(file)) throw new EngineError(EngineErrorCode.MISSING_FILE, `missing weights file ${file}`, { file });
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw corrupt(file, 'file is shorter than the 8-byte header length');
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 0 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
      throw corrupt(file, `header length ${headerLen} does not fit the file (${size} bytes)`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    readSync(fd, headerBuf, 0, headerLen, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch {
      throw corrupt(file, 'header is not valid JSON');
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      throw corrupt(file, 'header is not a JSON object');
    }
    const dataStart = 8 + headerLen;
    const out: TensorInfo[] = [];
    for (const [name, value] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = entrySchema.safeParse(value);
      if (!e.success) throw corrupt(file, `entry '${name}' is malformed`);
      const { dtype, shape, data_offsets: [s, t] } = e.data;
      if (!Object.hasOwn(DTYPE_BYTES, dtype)) {
        // A well-formed header in a format the engine does not read (FP8 releases, int8 exports).
        throw new EngineError(
          EngineErrorCode.BAD_WEIGHTS,
          `${file}: tensor '${name}' is ${dtype}; the engine reads F32, F16 and BF16 weights` +
            (dtype.startsWith('F8') ? ' (convert an FP8 checkpoint such as DeepSeek-V3\'s release to BF16 first)' : ''),
          { file, name, dtype },
        );
      }
      const bytes = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype as SafetensorsDtype];
      if (t < s || t - s !== bytes) throw corrupt(file, `entry '${name}' offsets do not match its shape`);
      if (dataStart + t > size) throw corrupt(file, `entry '${name}' points past the end of the file`);
      out.push({ name, dtype: dtype as SafetensorsDtype, shape, file, begin: dataStart + s, end: dataStart + t });
    }
    // As the reference reader requires: the tensors tile the data area exactly, no overlap (two
    // names reading the same bytes), no gap and nothing after the last one.
    const byStart = [...out].sort((a, b) => a.begin - b.begin || a.end - b.end);
    let at = dataStart;
    for (const t of byStart) {
      if (t.begin !== at) throw corrupt(file, `tensor '${t.name}' ${t.begin < at ? 'overlaps the one before it' : 'leaves a gap before it'} in the data area`);
      at = t.end;
    }
    if (at !== size) throw corrupt(file, `${size - at} bytes after the last tensor`);
    return out;
  } finally {
    closeSync(fd);
  }
}

const indexSchema = z.object({ weight_map: z.record(z.string(), z.string()) });

/** All tensors of a checkpoint folder: a single model.safetensors or a sharded index. */
export class TensorStore {
  private readonly byName = new Map<string, TensorInfo>();

  constructor(readonly dir: string) {
    const single = join(dir, 'model.safetensors');
    const index = join(dir, 'model.safetensors.index.json');
    if (existsSync(index)) {
      let parsed;
      try {
        parsed = indexSchema.parse(JSON.parse(readFileSync(index, 'utf8')));
      } catch {
        throw corrupt(index, 'shard index is not valid');
      }
      const weightMap = parsed.weight_map;
      const shards = [...new Set(Object.values(weightMap))];
      for (const f of shards) {
        if (f === '' || f.includes('/') || f.includes('\\') || f.startsWith('.')) throw corrupt(index, `bad shard name '${f}'`);
        // The index says where each tensor is: a copy of it in another shard is not read.
        for (const t of readSafetensorsHeader(join(dir, f))) if (Object.hasOwn(weightMap, t.name) && weightMap[t.name] === f) this.byName.set(t.name, t);
      }
      for (const [name, f] of Object.entries(weightMap)) {
        if (!this.byName.has(name)) throw corrupt(index, `tensor '${name}' is not in ${f}, where the index puts it`);
      }
    } else if (existsSync(single)) {
      for (const t of readSafetensorsHeader(single)) this.byName.set(t.name, t);
    } else {
      throw new EngineError(EngineErrorCode.MISSING_FILE, `no model.safetensors or model.safetensors.index.json in ${dir}`, {
        file: single,
      });
    }
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new EngineError(EngineErrorCode.BAD_WEIGHTS, `tensor '${name}' is missing from the checkpoint`, { name });
    return t;
  }

  get names(): string[] {
    return [...this.byName.keys()];
  }

  /** Reads one tensor as float32, checking its shape. */
  read(name: string, expectShape?: readonly number[]): Float32Array {
    const t = this.info(name);
    if (expectShape && (t.shape.length !== expectShape.length || t.shape.some((d, i) => d !== expectShape[i]))) {
      throw new EngineError(
        EngineErrorCode.BAD_WEIGHTS,
        `tensor '${name}' has shape [${t.shape}], expected [${expectShape}]`,
        { name },
      );
    }
    const bytes = readRange(t.file, t.begin, t.end - t.begin);
    return toFloat32(bytes, t.dtype);
  }
}

function readRange(file: string, position: number, length: number): Uint8Array {
  // Allocate 8-byte aligned storage so typed-array views over it are legal for every dtype.
  const buf = new Uint8Array(new ArrayBuffer(Math.ceil(length / 8) * 8), 0, length);
  const fd = openSync(file, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, position + done);
      if (n === 0) throw corrupt(file, 'unexpected end of file');
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** Converts raw little-endian tensor bytes to float32. */
export function toFloat32(bytes: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  switch (dtype) {
    case 'F32':
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    case 'BF16': {
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
      const out = new Float32Array(src.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
      return out;
    }
    case 'F16': {
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i]!);
      return out;
    }
    case 'I32':
      return Float32Array.from(new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
    case 'I64':
      return Float32Array.from(new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8), Number);
  }
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
