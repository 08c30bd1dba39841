/**
 * The notebook as the editor holds it: cells with their source, settings and outputs, plus
 * editor-only state (stale marks). Pure functions over plain data; the file format lives in
 * ./format and is converted at load and save.
 */
import { inRange, PARAM_RANGES, type GenerateParams, type NumberRange, type RunEvent } from '../../server/protocol';
import type { Output as FileOutput, JsonObject, RunSummary } from './format';
import { newCellId as newFormatCellId } from './format/new';

export type CellKind = 'markdown' | 'prompt' | 'code' | 'viz';
export type VizKind = 'token-strip' | 'routing-grid' | 'heatmap' | 'latency' | 'coactivation' | 'compare';

export interface PromptSettings {
  /** null: the notebook's model, whichever that is when the cell runs. */
  readonly model: string | null;
  /** Absent: the server's default. 0 routes the prompt without generating. */
  readonly maxNewTokens?: number;
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
  /** The view's own settings, kept as the file holds them (the editor does not set any yet). */
  readonly options?: JsonObject;
}

/** A display or execute_result output as the file held it. */
export type LoadedOutput = Extract<FileOutput, { output_type: 'display_data' | 'execute_result' }>;

export type CellOutput =
  | { readonly type: 'stream'; readonly name: 'stdout' | 'stderr'; readonly text: string }
  | {
      readonly type: 'run';
      readonly runId: string;
      readonly modelId: string;
      readonly modelHash: string | null;
      readonly status: string;
      /** What the run reported when it ended (generated text, token counts, timings). */
      readonly summary?: RunSummary;
      /**
       * The output as loaded. Saving writes it back with only the run bundle brought up to date,
       * so its output type, execution count and other MIME entries survive.
       */
      readonly loaded?: LoadedOutput;
    }
  | {
      readonly type: 'display';
      readonly kind: string;
      readonly data: unknown;
      /** The output as loaded; written back verbatim, since display outputs are replaced, never edited. */
      readonly loaded?: LoadedOutput;
    }
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

/**
 * The format's id maker, so cells added in the editor get ids like those of new files, and pages
 * served over plain http from another machine (no `crypto.randomUUID` there) can still add cells.
 */
export const newCellId = newFormatCellId;

/** `model` null or '': the notebook's model. */
export function defaultPrompt(model: string | null): PromptSettings {
  return { model: model || null, maxNewTokens: 48, ban: '', force: '' };
}

export function newCell(kind: CellKind, model: string | null = null): Cell {
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
export function changeKind(cell: Cell, kind: CellKind, model: string | null = null): Cell {
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
  // A viz cell's source is only its caption: nothing downstream used it.
  return patch.source !== undefined && patch.source !== before.source && before.kind !== 'viz' ? markDownstreamStale(updated, index) : updated;
}

/**
 * After cell `index` is edited, every later cell that has run (has outputs) is marked stale,
 * since it may have used what the edited cell produced. Nothing is re-run.
 */
export function markDownstreamStale(cells: readonly Cell[], index: number): Cell[] {
  return cells.map((c, i) => (i > index && (c.outputs.length > 0 || c.executionCount !== null) ? { ...c, stale: true } : c));
}

type RunOutput = Extract<CellOutput, { type: 'run' }>;

/**
 * A run output once its run has ended, from the run's last event: the server's status for it
 * (a cancelled run is 'cancelled', as the server records it) and the done event's summary.
 */
export function endedRunOutput(output: RunOutput, last: RunEvent): RunOutput {
  if (last.t !== 'done') {
    const { summary: _, ...rest } = output;
    return { ...rest, status: 'failed' };
  }
  const { reason, text, promptTokens, generatedTokens, ttftMs, totalMs, prefillTokensPerSecond, decodeTokensPerSecond } = last;
  const summary: RunSummary = { text, reason, promptTokens, generatedTokens, ttftMs, totalMs, prefillTokensPerSecond, decodeTokensPerSecond };
  return { ...output, status: reason === 'cancelled' ? 'cancelled' : 'done', summary };
}

/**
 * The run id a cell's output holds, if any: a prompt cell's run, else the last run a code cell
 * showed with `lab.show`, so views and comparisons can follow code cells' runs too.
 */
export function runIdOf(cell: Cell | undefined): string | null {
  const out = cell?.outputs.find((o) => o.type === 'run');
  if (out && out.type === 'run') return out.runId;
  const shown = (cell?.outputs ?? []).flatMap((o) => (o.type === 'display' ? [displayRunId(o.data)] : [])).filter((id): id is string => id !== null);
  return shown.at(-1) ?? null;
}

/** The run a `lab.show` display shows (its data is the run object the cell passed), or null. */
export function displayRunId(data: unknown): string | null {
  if (typeof data !== 'object' || data === null || !('runId' in data)) return null;
  return typeof data.runId === 'string' ? data.runId : null;
}

/** Why `spec` is not a valid expert list, or null when it is. */
export function expertListError(spec: string): string | null {
  try {
    parseExpertList(spec);
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
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
 * ranges of server/protocol.ts, PARAM_RANGES), so the cell says "top-p must be …" rather than a schema path.
 */
/** Why `v` is not a valid value of the field `label`, or null when it is (or is absent). */
export function rangeProblem(label: string, v: number | undefined, range: NumberRange): string | null {
  if (v === undefined || inRange(v, range)) return null;
  const { int = false, min, max, minExclusive = false } = range;
  const kind = int ? 'a whole number' : 'a number';
  const span = max === undefined ? `of at least ${min}` : minExclusive ? `above ${min} and at most ${max}` : `from ${min} to ${max}`;
  return `${label} must be ${kind} ${span}, got ${v}`;
}

function checkNumber(label: string, v: number | undefined, range: NumberRange): void {
  const problem = rangeProblem(label, v, range);
  if (problem) throw new Error(problem);
}

/**
 * A prompt written as token ids, `ids: 5, 17, 3` (for checkpoints without a tokenizer, or to feed
 * exact tokens); null for a text prompt. Throws a readable message on a malformed list.
 */
export function promptIdsOf(source: string): number[] | null {
  const m = /^\s*ids:(.*)$/s.exec(source);
  if (!m) return null;
  const parts = m[1]!.split(/[\s,]+/).filter((x) => x !== '');
  if (parts.length === 0 || parts.some((x) => !/^\d+$/.test(x))) {
    throw new Error(`a prompt of token ids is "ids:" and whole numbers, e.g. ids: 5, 17, 3; got '${source.trim().slice(0, 40)}'`);
  }
  return parts.map(Number);
}

/** A prompt cell's text and settings from a run's parameters: promptParams read backwards. */
export function settingsFromParams(params: GenerateParams): { source: string; prompt: PromptSettings } {
  const list = (xs: readonly { layer: number | 'all'; expert: number }[] | undefined) => (xs ?? []).map((x) => `${x.layer === 'all' ? '*' : x.layer}:${x.expert}`).join(', ');
  const s = params.sampling ?? {};
  const i = params.interventions ?? {};
  const prompt: PromptSettings = {
    model: params.model,
    ban: list(i.ban),
    force: list(i.force),
    ...(params.maxNewTokens !== undefined ? { maxNewTokens: params.maxNewTokens } : {}),
    ...(s.temperature !== undefined ? { temperature: s.temperature } : {}),
    ...(s.topP !== undefined ? { topP: s.topP } : {}),
    ...(s.topK !== undefined ? { topKSampling: s.topK } : {}),
    ...(params.seed !== undefined ? { seed: params.seed } : {}),
    ...(i.topK !== undefined ? { expertsPerToken: i.topK } : {}),
  };
  return { source: params.promptIds ? `ids: ${params.promptIds.join(', ')}` : (params.prompt ?? ''), prompt };
}

/**
 * The generate parameters of a prompt cell; throws a readable message on a bad field.
 * `notebookModel` is what a cell without a model of its own runs on.
 */
export function promptParams(cell: Cell, notebookModel: string | null = null): Record<string, unknown> {
  const p = cell.prompt ?? defaultPrompt(null);
  const model = p.model || notebookModel;
  if (!model) throw new Error("choose a model: this cell uses the notebook's model, and the notebook has none");
  checkNumber('max tokens', p.maxNewTokens, PARAM_RANGES.maxNewTokens);
  checkNumber('temperature', p.temperature, PARAM_RANGES.temperature);
  checkNumber('top-p', p.topP, PARAM_RANGES.topP);
  checkNumber('sampling top-k', p.topKSampling, PARAM_RANGES.topKSampling);
  checkNumber('seed', p.seed, PARAM_RANGES.seed);
  checkNumber('experts/token', p.expertsPerToken, PARAM_RANGES.expertsPerToken);
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
  const ids = promptIdsOf(cell.source);
  return {
    model,
    ...(ids ? { promptIds: ids } : { prompt: cell.source }),
    ...(p.maxNewTokens !== undefined ? { maxNewTokens: p.maxNewTokens } : {}),
    ...(p.seed !== undefined ? { seed: p.seed } : {}),
    ...(Object.keys(sampling).length ? { sampling } : {}),
    ...(Object.keys(interventions).length ? { interventions } : {}),
  };
}
