/**
 * A small, typed ONNX graph builder. It knows nothing about transformers: it names values,
 * adds nodes, and stores initializers either inline (small constants) or in an external
 * weights file (everything large), so a multi-gigabyte model never sits in the protobuf.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import type { QuantBits } from './quant.ts';

const { onnx } = onnxProto;

export const ElemType = {
  float: onnx.TensorProto.DataType.FLOAT,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
  uint8: onnx.TensorProto.DataType.UINT8,
  float16: onnx.TensorProto.DataType.FLOAT16,
} as const;
export type ElemType = (typeof ElemType)[keyof typeof ElemType];

/** A dimension is a fixed size or a symbolic name shared across the graph. */
export type Dim = number | string;
export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };

export const MS_DOMAIN = 'com.microsoft';
/** ONNX default-domain opset the graph targets; every op below is used with this version's semantics. */
export const OPSET = 17;

type TypedData = Float32Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;

/** Appends tensors to one external-data file, 64-byte aligned so the runtime can read them directly. */
export class WeightsWriter {
  private fd: number;
  private offset = 0;
  constructor(readonly path: string, readonly fileName: string) {
    this.fd = openSync(path, 'w');
  }

  append(data: TypedData): { offset: number; length: number } {
    return this.appendChunks([data]);
  }

  /** One tensor written piece by piece (e.g. expert by expert), so it never sits whole in memory. */
  appendChunks(chunks: Iterable<TypedData>): { offset: number; length: number } {
    const pad = (64 - (this.offset % 64)) % 64;
    if (pad) {
      writeSync(this.fd, new Uint8Array(pad));
      this.offset += pad;
    }
    const at = this.offset;
    for (const data of chunks) {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      let written = 0;
      while (written < bytes.length) written += writeSync(this.fd, bytes, written, bytes.length - written);
      this.offset += bytes.length;
    }
    return { offset: at, length: this.offset - at };
  }

  get size(): number {
    return this.offset;
  }

  close(): void {
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
  }

  /** Closes the file without flushing it (a failed build); nothing after close(). */
  dispose(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** The element type a typed array holds unless told otherwise (Uint8Array: uint8, Uint16Array: float16 bits). */
function elemTypeOf(data: TypedData): ElemType {
  if (data instanceof Float32Array) return ElemType.float;
  if (data instanceof Int32Array) return ElemType.int32;
  if (data instanceof BigInt64Array) return ElemType.int64;
  if (data instanceof Uint16Array) return ElemType.float16;
  return ElemType.uint8;
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.FLOATS, floats: v.floats };
}

export interface NodeOptions {
  domain?: string;
  /** Number of outputs (default 1). */
  outputs?: number;
  /** Explicit output names (e.g. graph outputs); otherwise fresh names are made. */
  names?: string[];
}

export class GraphBuilder {
  private nodes: onnxProto.onnx.INodeProto[] = [];
  private inits: onnxProto.onnx.ITensorProto[] = [];
  private inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private counter = 0;
  private scope = '';
  private constCache = new Map<string, string>();

  /**
   * @param quant how large weight matrices are stored: float32 (null) or block-quantized with
   *   this many bits (graph/quant.ts); layers ask for it through `linear`.
   */
  constructor(
    private readonly weights: WeightsWriter | null,
    readonly quant: QuantBits | null = null,
  ) {}

  /** Prefix for generated names, so a dumped graph reads "layers.3/attn/…". */
  withScope<T>(scope: string, fn: () => T): T {
    const saved = this.scope;
    this.scope = saved ? `${saved}/${scope}` : scope;
    try {
      return fn();
    } finally {
      this.scope = saved;
    }
  }

  fresh(hint: string): string {
    return `${this.scope ? this.scope + '/' : ''}${hint}_${this.counter++}`;
  }

  input(name: string, type: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: ElemType, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** A named initializer. Large tensors go to the external weights file. */
  initializer(name: string, data: TypedData, dims: number[], type: ElemType = elemTypeOf(data)): string {
    if (this.weights && data.byteLength >= 1024) return this.external(this.weights, name, type, dims, this.weights.append(data));
    this.inits.push({ name, dims, dataType: type, rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) });
    return name;
  }

  /**
   * A large initializer produced in pieces, in order, straight into the external weights file.
   * `byteLength` is checked against what the pieces add up to.
   */
  initializerChunks(name: string, type: ElemType, dims: number[], byteLength: number, chunks: Iterable<TypedData>): string {
    if (!this.weights) throw new Error('initializerChunks needs an external weights file');
    const at = this.weights.appendChunks(chunks);
    if (at.length !== byteLength) throw new Error(`${name}: wrote ${at.length} bytes, expected ${byteLength}`);
    return this.external(this.weights, name, type, dims, at);
  }

  /** Declares an initializer whose bytes were written to the external weights file at `at`. */
  private external(weights: WeightsWriter, name: string, type: ElemType, dims: number[], at: { offset: number; length: number }): string {
    this.inits.push({
      name,
      dims,
      dataType: type,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: weights.fileName },
        { key: 'offset', value: String(at.offset) },
        { key: 'length', value: String(at.length) },
      ],
    });
    return name;
  }

  /** A small constant, de-duplicated by value. */
  constI64(values: number[]): string {
    const key = `i64:${values.join(',')}`;
    let name = this.constCache.get(key);
    if (!name) {
      name = `const_i64_${this.constCache.size}`;
      this.initializer(name, BigInt64Array.from(values, BigInt), [values.length]);
      this.constCache.set(key, name);
    }
    return name;
  }

  constF32(value: number): string {
    const key = `f32:${value}`;
    let name = this.constCache.get(key);
    if (!name) {
      name = `const_f32_${this.constCache.size}`;
      this.initializer(name, Float32Array.of(value), []);
      this.constCache.set(key, name);
    }
    return name;
  }

  node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: NodeOptions = {}): string[] {
    const count = opts.names?.length ?? opts.outputs ?? 1;
    const outs = opts.names ?? Array.from({ length: count }, () => this.fresh(op.toLowerCase()));
    this.nodes.push({
      name: this.fresh(`n_${op}`),
      opType: op,
      domain: opts.domain ?? '',
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** Single-output node. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: NodeOptions = {}): string {
    return this.node(op, inputs, attrs, opts)[0]!;
  }

  /**
   * Gives an existing value a new name (e.g. a graph output's), rewriting its producer and every
   * consumer, so naming an output costs no Identity node.
   */
  rename(value: string, name: string): void {
    for (const n of this.nodes) {
      n.output = (n.output ?? []).map((o) => (o === value ? name : o));
      n.input = (n.input ?? []).map((i) => (i === value ? name : i));
    }
  }

  // Thin helpers for the ops the model graph uses most; each is one ONNX node.
  matmul(a: string, b: string): string {
    return this.op('MatMul', [a, b]);
  }
  add(a: string, b: string): string {
    return this.op('Add', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
  reshape(x: string, shape: number[]): string {
    return this.op('Reshape', [x, this.constI64(shape)]);
  }
  transpose(x: string, perm: number[]): string {
    return this.op('Transpose', [x], { perm });
  }
  concat(xs: string[], axis: number): string {
    return this.op('Concat', xs, { axis });
  }

  toModelBytes(): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'moe-lab',
      opsetImport: [
        { domain: '', version: OPSET },
        { domain: MS_DOMAIN, version: 1 },
      ],
      graph: {
        name: 'moe_lab_decoder',
        node: this.nodes,
        initializer: this.inits,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  get nodeCount(): number {
    return this.nodes.length;
  }
}

function valueInfo(name: string, elemType: ElemType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}
