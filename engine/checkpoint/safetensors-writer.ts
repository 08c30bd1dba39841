/**
 * Writes a .safetensors file tensor by tensor: the header is computed from the declared shapes
 * first, then each tensor's bytes are appended as they are produced, so no more than one tensor
 * is ever held in memory.
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import type { SafetensorsDtype } from './safetensors.ts';

export interface TensorDecl {
  readonly name: string;
  readonly dtype: Extract<SafetensorsDtype, 'F32' | 'BF16' | 'F16'>;
  readonly shape: readonly number[];
}

const BYTES = { F32: 4, BF16: 2, F16: 2 } as const;

/** float32 → bfloat16 bits, round to nearest even. */
export function floatToBf16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

export async function writeSafetensors(file: string, decls: readonly TensorDecl[], produce: (d: TensorDecl) => Float32Array | Promise<Float32Array>): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const d of decls) {
    const bytes = d.shape.reduce((a, b) => a * b, 1) * BYTES[d.dtype];
    header[d.name] = { dtype: d.dtype, shape: d.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    writeSync(fd, len);
    writeSync(fd, json);
    for (const d of decls) {
      const values = await produce(d);
      const n = d.shape.reduce((a, b) => a * b, 1);
      if (values.length !== n) throw new Error(`${d.name}: produced ${values.length} values for shape [${d.shape}]`);
      const data = d.dtype === 'BF16' ? floatToBf16(values) : d.dtype === 'F32' ? values : null;
      if (!data) throw new Error('F16 writing is not implemented');
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
