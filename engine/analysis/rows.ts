/**
 * The row view of traces: one row per (run, position, layer, rank), as columns. Every file
 * format writes exactly these columns in this order, then one string column per run field.
 * `tracesFromRows` is the inverse, so a file read back becomes traces again.
 */
import { AnalysisError, AnalysisErrorCode, badInput } from './errors.ts';
import { runMetaFromDoc, type RunDoc } from './meta.ts';
import { emptyMeta, FIELD_NAME, validateTrace, type Phase, type PositionRouting, type RunTrace, type TraceToken } from './trace.ts';

export type ColumnType = 'string' | 'int32' | 'float32';

export interface ColumnSpec {
  readonly name: string;
  readonly type: ColumnType;
  readonly nullable: boolean;
}

/** The fixed columns, in file order (documented in docs/trace-format.md). */
export const BASE_COLUMNS: readonly ColumnSpec[] = [
  { name: 'run_id', type: 'string', nullable: false },
  { name: 'model_id', type: 'string', nullable: false },
  { name: 'model_hash', type: 'string', nullable: true },
  { name: 'token_index', type: 'int32', nullable: false },
  { name: 'token_id', type: 'int32', nullable: true },
  { name: 'token_text', type: 'string', nullable: true },
  { name: 'phase', type: 'string', nullable: false },
  { name: 'layer', type: 'int32', nullable: false },
  { name: 'rank', type: 'int32', nullable: false },
  { name: 'expert', type: 'int32', nullable: false },
  { name: 'gate_weight', type: 'float32', nullable: true },
  { name: 'router_prob', type: 'float32', nullable: true },
  { name: 'router_entropy', type: 'float32', nullable: true },
];

const BASE_NAMES = new Set(BASE_COLUMNS.map((c) => c.name));

export function isBaseColumn(name: string): boolean {
  return BASE_NAMES.has(name);
}

const FITS: Record<ColumnType, (v: unknown) => boolean> = {
  int32: (v) => typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31,
  float32: (v) => typeof v === 'number',
  string: (v) => typeof v === 'string',
};

/** Whether a value read from a file may stand in this column (readers check every cell). */
export function valueFits(spec: ColumnSpec, v: unknown): boolean {
  return v === null ? spec.nullable : FITS[spec.type](v);
}

export function isPhase(v: unknown): v is Phase {
  return v === 'prefill' || v === 'decode';
}

export interface TraceColumns {
  readonly length: number;
  readonly run_id: string[];
  readonly model_id: string[];
  readonly model_hash: (string | null)[];
  readonly token_index: Int32Array;
  readonly token_id: (number | null)[];
  readonly token_text: (string | null)[];
  readonly phase: Phase[];
  readonly layer: Int32Array;
  readonly rank: Int32Array;
  readonly expert: Int32Array;
  readonly gate_weight: (number | null)[];
  readonly router_prob: (number | null)[];
  readonly router_entropy: (number | null)[];
  /** Run-field columns, in file order. */
  readonly fields: Map<string, (string | null)[]>;
}

export type BaseColumnName = Exclude<keyof TraceColumns, 'length' | 'fields'>;

/** Every column in file order with its values, for writers that go column by column. */
export function columnList(c: TraceColumns): { spec: ColumnSpec; values: ArrayLike<string | number | null> }[] {
  const base = BASE_COLUMNS.map((spec) => ({ spec, values: c[spec.name as BaseColumnName] }));
  const fields = [...c.fields].map(([name, values]) => ({ spec: { name, type: 'string' as const, nullable: true }, values }));
  return [...base, ...fields];
}

/** Field column names over several runs, first-seen order; refuses names that clash with fixed columns. */
export function fieldNames(fields: readonly Readonly<Record<string, string>>[]): string[] {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const f of fields) {
    for (const name of Object.keys(f)) {
      if (seen.has(name)) continue;
      if (BASE_NAMES.has(name)) throw badInput(`run field '${name}' has the name of a trace column; rename it`);
      if (!FIELD_NAME.test(name)) throw badInput(`run field '${name}' is not an identifier`);
      seen.add(name);
      names.push(name);
    }
  }
  return names;
}

export function emptyColumns(n: number, fieldColumns: readonly string[]): TraceColumns {
  return {
    length: n,
    run_id: new Array<string>(n),
    model_id: new Array<string>(n),
    model_hash: new Array<string | null>(n),
    token_index: new Int32Array(n),
    token_id: new Array<number | null>(n),
    token_text: new Array<string | null>(n),
    phase: new Array<Phase>(n),
    layer: new Int32Array(n),
    rank: new Int32Array(n),
    expert: new Int32Array(n),
    gate_weight: new Array<number | null>(n),
    router_prob: new Array<number | null>(n),
    router_entropy: new Array<number | null>(n),
    fields: new Map(fieldColumns.map((f) => [f, new Array<string | null>(n).fill(null)])),
  };
}

export function rowCount(t: RunTrace): number {
  return t.routing.length * t.moeLayers.length * t.k;
}

/**
 * Rows of one or more runs: by run, then position, MoE layer (model order) and rank. `layer` is
 * the model's layer index, not the MoE layer's ordinal. `fieldColumns` fixes the field columns
 * (default: every field of these runs).
 */
export function traceRows(traces: RunTrace | readonly RunTrace[], fieldColumns?: readonly string[]): TraceColumns {
  const list: readonly RunTrace[] = Array.isArray(traces) ? traces : [traces as RunTrace];
  const fields = fieldColumns ? [...fieldColumns] : fieldNames(list.map((t) => t.meta.fields));
  const n = list.reduce((a, t) => a + rowCount(t), 0);
  const c = emptyColumns(n, fields);
  let row = 0;
  for (const t of list) {
    const L = t.moeLayers.length;
    const k = t.k;
    const fieldValues = fields.map((f) => [c.fields.get(f)!, t.meta.fields[f] ?? null] as const);
    for (const r of t.routing) {
      const tok = t.tokens[r.index]!;
      for (let l = 0; l < L; l++) {
        const h = r.entropy ? r.entropy[l]! : null;
        for (let j = 0; j < k; j++) {
          const at = l * k + j;
          c.run_id[row] = t.runId;
          c.model_id[row] = t.modelId;
          c.model_hash[row] = t.modelHash;
          c.token_index[row] = r.index;
          c.token_id[row] = tok.id;
          c.token_text[row] = tok.text;
          c.phase[row] = r.phase;
          c.layer[row] = t.moeLayers[l]!;
          c.rank[row] = j;
          c.expert[row] = r.ids[at]!;
          c.gate_weight[row] = r.weights ? r.weights[at]! : null;
          c.router_prob[row] = r.selectedProbs ? r.selectedProbs[at]! : null;
          c.router_entropy[row] = h;
          for (const [col, v] of fieldValues) col[row] = v;
          row++;
        }
      }
    }
  }
  return c;
}

/** Row ranges of each run, in order of first appearance (rows of a run need not be contiguous). */
export function rowsByRun(c: TraceColumns): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (let i = 0; i < c.length; i++) {
    const id = c.run_id[i]!;
    let rows = out.get(id);
    if (!rows) out.set(id, (rows = []));
    rows.push(i);
  }
  return out;
}

function fail(run: string, message: string): AnalysisError {
  return new AnalysisError(AnalysisErrorCode.BAD_FILE, `run '${run}': ${message}`);
}

/**
 * Traces from rows and the file's run metadata. A run with rows but no metadata (a file whose
 * key-value metadata was lost, e.g. rewritten by another tool) is reconstructed from its rows:
 * layers and k from the values present, experts as max id + 1, tokens up to the last position.
 */
export function tracesFromRows(c: TraceColumns, runs: readonly RunDoc[]): RunTrace[] {
  const docs = new Map(runs.map((r) => [r.run_id, r]));
  const byRun = rowsByRun(c);
  const order = [...runs.map((r) => r.run_id), ...[...byRun.keys()].filter((id) => !docs.has(id))];
  return order.map((runId) => {
    const rows = byRun.get(runId) ?? [];
    const doc = docs.get(runId) ?? inferDoc(c, runId, rows);
    const L = doc.moe_layers.length;
    const k = doc.top_k;
    const E = doc.num_experts;
    const layerAt = new Map(doc.moe_layers.map((l, i) => [l, i]));
    const tokens: TraceToken[] = Array.from({ length: doc.num_tokens }, (_, i) => ({ index: i, id: null, text: null, phase: 'prefill' as Phase }));
    const positions = new Map<number, { phase: Phase; ids: Int32Array; w: Float32Array; hasW: boolean; p: Float32Array; hasP: boolean; h: Float32Array; hasH: boolean; filled: number }>();
    for (const i of rows) {
      const t = c.token_index[i]!;
      const l = layerAt.get(c.layer[i]!);
      const j = c.rank[i]!;
      if (l === undefined) throw fail(runId, `row ${i} is for layer ${c.layer[i]}, not one of the run's MoE layers ${doc.moe_layers.join(',')}`);
      if (!(t >= 0 && t < doc.num_tokens)) throw fail(runId, `row ${i} has position ${t}, outside the run's ${doc.num_tokens} tokens`);
      if (!(j >= 0 && j < k)) throw fail(runId, `row ${i} has rank ${j}, outside 0 … ${k - 1}`);
      let p = positions.get(t);
      if (!p) {
        p = { phase: c.phase[i]!, ids: new Int32Array(L * k).fill(-1), w: new Float32Array(L * k), hasW: false, p: new Float32Array(L * k), hasP: false, h: new Float32Array(L), hasH: false, filled: 0 };
        positions.set(t, p);
        tokens[t] = { index: t, id: c.token_id[i] ?? null, text: c.token_text[i] ?? null, phase: c.phase[i]! };
      }
      const at = l * k + j;
      if (p.ids[at] !== -1) throw fail(runId, `position ${t}, layer ${c.layer[i]}, rank ${j} appears twice`);
      p.ids[at] = c.expert[i]!;
      p.filled++;
      const w = c.gate_weight[i];
      if (w !== null && w !== undefined) ((p.w[at] = w), (p.hasW = true));
      const pr = c.router_prob[i];
      if (pr !== null && pr !== undefined) ((p.p[at] = pr), (p.hasP = true));
      const h = c.router_entropy[i];
      if (h !== null && h !== undefined) ((p.h[l] = h), (p.hasH = true));
    }
    const routing: PositionRouting[] = [...positions.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([index, p]) => {
        if (p.filled !== L * k) throw fail(runId, `position ${index} has ${p.filled} of its ${L * k} rows`);
        return { index, phase: p.phase, ids: p.ids, weights: p.hasW ? p.w : null, entropy: p.hasH ? p.h : null, selectedProbs: p.hasP ? p.p : null, probs: null };
      });
    // Positions without routing keep their phase from the neighbours' boundary.
    const firstDecode = routing.find((r) => r.phase === 'decode')?.index ?? Infinity;
    for (let t = 0; t < tokens.length; t++) if (!positions.has(t)) tokens[t] = { ...tokens[t]!, phase: t >= firstDecode ? 'decode' : 'prefill' };
    const first = rows[0];
    const fields: Record<string, string> = { ...doc.fields };
    if (first !== undefined) for (const [f, col] of c.fields) if (col[first] !== null && col[first] !== undefined) fields[f] = col[first]!;
    return validateTrace({
      runId,
      modelId: doc.model_id,
      modelHash: doc.model_hash,
      meta: { ...runMetaFromDoc(doc), fields },
      moeLayers: doc.moe_layers,
      numExperts: E,
      k,
      tokens,
      routing,
    });
  });
}

function inferDoc(c: TraceColumns, runId: string, rows: readonly number[]): RunDoc {
  const layers = new Set<number>();
  let k = 0;
  let E = 0;
  let T = 0;
  for (const i of rows) {
    layers.add(c.layer[i]!);
    k = Math.max(k, c.rank[i]! + 1);
    E = Math.max(E, c.expert[i]! + 1);
    T = Math.max(T, c.token_index[i]! + 1);
  }
  const first = rows[0]!;
  const meta = emptyMeta('moe-lab');
  return {
    run_id: runId,
    model_id: c.model_id[first]!,
    model_hash: c.model_hash[first] ?? null,
    source: meta.source,
    moe_layers: [...layers].sort((a, b) => a - b),
    num_experts: E,
    top_k: k,
    num_tokens: T,
    prompt: null,
    params: {},
    interventions: null,
    fields: {},
    extra: { inferred_from_rows: true },
  };
}

/**
 * Builds columns from rows read one at a time (JSONL, CSV), checking every cell against its
 * column's type. `specs` is the file's column order: the fixed columns, then field columns.
 */
export class RowReader {
  private readonly cols: unknown[][];
  private n = 0;

  constructor(
    readonly specs: readonly ColumnSpec[],
    private readonly where: string,
  ) {
    for (const b of BASE_COLUMNS) {
      if (!specs.some((s) => s.name === b.name)) throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${where}: column '${b.name}' is missing`);
    }
    this.cols = specs.map(() => []);
  }

  /** Appends one row, `values` in `specs` order; `line` locates errors. */
  push(values: readonly unknown[], line: number): void {
    if (values.length !== this.specs.length) {
      throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${this.where}:${line}: ${values.length} values, expected ${this.specs.length}`);
    }
    for (let j = 0; j < values.length; j++) {
      const spec = this.specs[j]!;
      const v = values[j];
      if (!valueFits(spec, v) || (spec.name === 'phase' && !isPhase(v))) {
        throw new AnalysisError(AnalysisErrorCode.BAD_FILE, `${this.where}:${line}: column '${spec.name}' holds ${JSON.stringify(v)}, expected ${spec.nullable ? 'null or ' : ''}${spec.type}`);
      }
      this.cols[j]!.push(v);
    }
    this.n++;
  }

  finish(): TraceColumns {
    const fields = this.specs.filter((s) => !BASE_NAMES.has(s.name)).map((s) => s.name);
    const c = emptyColumns(this.n, fields);
    this.specs.forEach((spec, j) => {
      const src = this.cols[j]!;
      const dst = (BASE_NAMES.has(spec.name) ? c[spec.name as BaseColumnName] : c.fields.get(spec.name)!) as unknown as { [i: number]: unknown };
      for (let i = 0; i < this.n; i++) dst[i] = src[i];
    });
    return c;
  }
}
