/**
 * The notebook as the editor holds it: cells with their source, settings and outputs, plus
 * editor-only state (stale marks). Pure functions over plain data; the file format lives in
 * ./format and is converted at load and save.
 */

export type CellKind = 'markdown' | 'prompt' | 'code' | 'viz';
export type VizKind = 'token-strip' | 'routing-grid' | 'heatmap' | 'latency' | 'coactivation' | 'compare';

export interface PromptSettings {
  readonly model: string;
  readonly maxNewTokens: number;
  readonly temperature?: number;
  readonly topP?: number;
  readonly topKSampling?: number;
  readonly seed?: number;
  /** "L:E, L:E" (L a layer index or *). */
  readonly ban: string;
  readonly force: string;
  /** Experts per token override. */
  readonly expertsPerToken?: number;
}

export interface VizSettings {
  readonly view: VizKind;
  /** A run id, or the id of a cell whose output holds a run. */
  readonly source: { readonly runId: string } | { readonly cellId: string } | null;
  /** A second source, for the A/B comparison. */
  readonly sourceB?: { readonly runId: string } | { readonly cellId: string } | null;
}

export type CellOutput =
  | { readonly type: 'stream'; readonly name: 'stdout' | 'stderr'; readonly text: string }
  | { readonly type: 'run'; readonly runId: string; readonly modelId: string; readonly modelHash: string | null; readonly status: string; readonly text?: string | null }
  | { readonly type: 'display'; readonly kind: string; readonly data: unknown }
  | { readonly type: 'error'; readonly ename: string; readonly evalue: string; readonly traceback: readonly string[] };

export interface Cell {
  readonly id: string;
  readonly kind: CellKind;
  readonly source: string;
  readonly prompt?: PromptSettings;
  readonly viz?: VizSettings;
  readonly outputs: readonly CellOutput[];
  readonly executionCount: number | null;
  /** An upstream cell changed after this one ran; its output may be out of date. */
  readonly stale?: boolean;
}

export interface NotebookModel {
  readonly cells: readonly Cell[];
  readonly model: { readonly id: string; readonly hash: string | null } | null;
}

export function newCellId(): string {
  return globalThis.crypto.randomUUID().replace(/-/g, '').slice(0, 16);
}

export function defaultPrompt(model: string): PromptSettings {
  return { model, maxNewTokens: 48, ban: '', force: '' };
}

export function newCell(kind: CellKind, model = ''): Cell {
  const base = { id: newCellId(), source: '', outputs: [], executionCount: null };
  switch (kind) {
    case 'prompt':
      return { ...base, kind, prompt: defaultPrompt(model) };
    case 'viz':
      return { ...base, kind, viz: { view: 'heatmap', source: null } };
    default:
      return { ...base, kind };
  }
}

/** Jupyter's M / Y: change a cell's kind, keeping its source; outputs do not carry over. */
export function changeKind(cell: Cell, kind: CellKind, model = ''): Cell {
  if (cell.kind === kind) return cell;
  const fresh = newCell(kind, model);
  return { ...fresh, id: cell.id, source: cell.source };
}

export function insertCell(cells: readonly Cell[], at: number, cell: Cell): Cell[] {
  const next = [...cells];
  next.splice(Math.max(0, Math.min(at, cells.length)), 0, cell);
  return next;
}

export function removeCell(cells: readonly Cell[], index: number): Cell[] {
  return cells.filter((_, i) => i !== index);
}

export function updateCell(cells: readonly Cell[], id: string, f: (c: Cell) => Cell): Cell[] {
  return cells.map((c) => (c.id === id ? f(c) : c));
}

/** What editing a cell changes: its text and settings, never its outputs (runs own those). */
export type CellPatch = Partial<Pick<Cell, 'source' | 'prompt' | 'viz'>>;

/**
 * Merges an edit into cell `id` as the notebook is now; a changed source marks later cells that
 * have run as stale. Outputs written meanwhile by a run are kept.
 */
export function patchCell(cells: readonly Cell[], id: string, patch: CellPatch): Cell[] {
  const index = cells.findIndex((c) => c.id === id);
  const before = cells[index];
  if (!before) return [...cells];
  const updated = updateCell(cells, id, (c) => ({ ...c, ...patch }));
  return patch.source !== undefined && patch.source !== before.source ? markDownstreamStale(updated, index) : updated;
}

/**
 * After cell `index` is edited, every later cell that has run (has outputs) is marked stale,
 * since it may have used what the edited cell produced. Nothing is re-run.
 */
export function markDownstreamStale(cells: readonly Cell[], index: number): Cell[] {
  return cells.map((c, i) => (i > index && (c.outputs.length > 0 || c.executionCount !== null) ? { ...c, stale: true } : c));
}

/** The run id a cell's output holds, if any. */
export function runIdOf(cell: Cell | undefined): string | null {
  const out = cell?.outputs.find((o) => o.type === 'run');
  return out && out.type === 'run' ? out.runId : null;
}

/** Parses "3:5, *:0" into expert references; throws a readable message on bad input. */
export function parseExpertList(spec: string): { layer: number | 'all'; expert: number }[] {
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((part) => {
      const m = /^(\*|\d+)\s*:\s*(\d+)$/.exec(part);
      if (!m) throw new Error(`'${part}' is not LAYER:EXPERT (e.g. 3:5, or *:5 for every MoE layer)`);
      return { layer: m[1] === '*' ? ('all' as const) : Number(m[1]), expert: Number(m[2]) };
    });
}

/**
 * Throws a message naming the cell's field when a number is outside what the server accepts (the
 * ranges of server/protocol.ts), so the cell says "top-p must be …" rather than a schema path.
 */
function checkNumber(label: string, v: number | undefined, range: { int?: boolean; min: number; max?: number; minExclusive?: boolean }): void {
  if (v === undefined) return;
  const { int = false, min, max, minExclusive = false } = range;
  const ok = Number.isFinite(v) && (!int || Number.isInteger(v)) && (minExclusive ? v > min : v >= min) && (max === undefined || v <= max);
  if (ok) return;
  const kind = int ? 'a whole number' : 'a number';
  const span = max === undefined ? `of at least ${min}` : minExclusive ? `above ${min} and at most ${max}` : `from ${min} to ${max}`;
  throw new Error(`${label} must be ${kind} ${span}, got ${v}`);
}

/** The generate parameters of a prompt cell; throws a readable message on a bad field. */
export function promptParams(cell: Cell): Record<string, unknown> {
  const p = cell.prompt ?? defaultPrompt('');
  checkNumber('max tokens', p.maxNewTokens, { int: true, min: 0 });
  checkNumber('temperature', p.temperature, { min: 0, max: 100 });
  checkNumber('top-p', p.topP, { min: 0, max: 1, minExclusive: true });
  checkNumber('top-k', p.topKSampling, { int: true, min: 0 });
  checkNumber('seed', p.seed, { int: true, min: 0, max: 2 ** 32 - 1 });
  checkNumber('experts/token', p.expertsPerToken, { int: true, min: 1 });
  const ban = parseExpertList(p.ban);
  const force = parseExpertList(p.force);
  const sampling = {
    ...(p.temperature !== undefined ? { temperature: p.temperature } : {}),
    ...(p.topP !== undefined ? { topP: p.topP } : {}),
    ...(p.topKSampling !== undefined ? { topK: p.topKSampling } : {}),
  };
  const interventions = {
    ...(ban.length ? { ban } : {}),
    ...(force.length ? { force } : {}),
    ...(p.expertsPerToken !== undefined ? { topK: p.expertsPerToken } : {}),
  };
  return {
    model: p.model,
    prompt: cell.source,
    maxNewTokens: p.maxNewTokens,
    ...(p.seed !== undefined ? { seed: p.seed } : {}),
    ...(Object.keys(sampling).length ? { sampling } : {}),
    ...(Object.keys(interventions).length ? { interventions } : {}),
  };
}
