/** Fresh notebooks and cells, and the Jupyter-style change of a cell's kind. */
import type { JsonObject } from './json';
import {
  CELL_ID_PATTERN,
  FORMAT_VERSION,
  type Cell,
  type CodeCell,
  type Interventions,
  type MarkdownCell,
  type Notebook,
  type NotebookModel,
  type PromptCell,
  type Sampling,
  type ViewKind,
  type VizCell,
  type VizSource,
} from './schema';

/** The parts of Web Crypto ids need; `randomUUID` exists only in secure contexts. */
export type IdRandomness = Pick<Crypto, 'getRandomValues'> & { randomUUID?: () => string };

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * A new cell id: a random UUID (36 characters, already within nbformat's 1–64 of [a-zA-Z0-9-_]).
 * Pages served over plain http from another machine lack `randomUUID`, so 128 random bits from
 * `getRandomValues` stand in.
 */
export function newCellId(random: IdRandomness = globalThis.crypto): string {
  const id = typeof random.randomUUID === 'function' ? random.randomUUID() : hex(random.getRandomValues(new Uint8Array(16)));
  // Guards against an odd randomness source rather than UUIDs, which always match.
  const cleaned = id.replace(/[^a-zA-Z0-9_-]/g, '').slice(0, 64);
  if (!CELL_ID_PATTERN.test(cleaned)) throw new Error('could not make a cell id from the randomness source');
  return cleaned;
}

export interface NewNotebookOptions {
  appVersion: string;
  model?: NotebookModel | null;
  title?: string;
  cells?: Cell[];
}

export function newNotebook(options: NewNotebookOptions): Notebook {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      moelab: { format_version: FORMAT_VERSION, app_version: options.appVersion, model: options.model ?? null },
      ...(options.title !== undefined ? { title: options.title } : {}),
    },
    cells: options.cells ?? [],
  };
}

export function newMarkdownCell(source = '', id = newCellId()): MarkdownCell {
  return { id, cell_type: 'markdown', source, metadata: { moelab: { kind: 'markdown' } } };
}

export function newCodeCell(source = '', id = newCellId()): CodeCell {
  return { id, cell_type: 'code', source, metadata: { moelab: { kind: 'code' } }, execution_count: null, outputs: [] };
}

export interface NewPromptCellOptions {
  /** The prompt text. */
  source?: string;
  /** null or absent: the notebook's model. */
  model?: string | null;
  sampling?: Sampling;
  interventions?: Interventions;
  id?: string;
}

export function newPromptCell(options: NewPromptCellOptions = {}): PromptCell {
  return {
    id: options.id ?? newCellId(),
    cell_type: 'code',
    source: options.source ?? '',
    metadata: { moelab: { kind: 'prompt', model: options.model ?? null, sampling: options.sampling ?? {}, interventions: options.interventions ?? {} } },
    execution_count: null,
    outputs: [],
  };
}

export interface NewVizCellOptions {
  view: ViewKind;
  /** What to draw; null or absent until the user picks a run or a cell. */
  source?: VizSource | null;
  /** The second source, for the comparison view. */
  sourceB?: VizSource | null;
  options?: JsonObject;
  /** Free text shown with the view (the cell's `source`). */
  caption?: string;
  id?: string;
}

export function newVizCell(options: NewVizCellOptions): VizCell {
  return {
    id: options.id ?? newCellId(),
    cell_type: 'code',
    source: options.caption ?? '',
    metadata: {
      moelab: {
        kind: 'viz',
        view: options.view,
        source: options.source ?? null,
        ...(options.sourceB !== undefined ? { sourceB: options.sourceB } : {}),
        options: options.options ?? {},
      },
    },
    execution_count: null,
    outputs: [],
  };
}

/** The kinds a cell can be switched to by hand, as Jupyter's M and Y keys do. */
export type ConvertibleKind = 'markdown' | 'code' | 'prompt';

/**
 * The cell as another kind, keeping its id and source. Outputs and kind-specific settings are
 * dropped, as in Jupyter: a code cell's console output says nothing about a prompt's run. A cell
 * already of that kind is returned unchanged. A viz cell can be converted away (its caption
 * becomes the source) but not into, since a view needs a kind and a data source.
 */
export function convertCell(cell: Cell, to: ConvertibleKind): Cell {
  if (cell.metadata.moelab.kind === to) return cell;
  switch (to) {
    case 'markdown':
      return newMarkdownCell(cell.source, cell.id);
    case 'code':
      return newCodeCell(cell.source, cell.id);
    case 'prompt':
      return newPromptCell({ source: cell.source, id: cell.id });
  }
}
