/**
 * Export to Jupyter's `.ipynb` (nbformat 4.5) and import back.
 *
 * A `.moenb` is already nbformat-shaped, so export mostly re-spells it the way Jupyter writes
 * files: sources and texts as line lists, a kernelspec and language_info for TypeScript. Prompt
 * and viz cells become code cells (the prompt text or the caption as source) with every MoE Lab
 * setting kept verbatim under `metadata.moelab`, which is what makes import exact.
 *
 * Jupyter cannot draw MoE Lab's own MIME types, so export adds a `text/plain` fallback where an
 * output lacks one (a prompt's generated text, a view's description) and lists what it added in
 * the output's `metadata.moelab.derived`; import removes exactly those again.
 */
import { z } from 'zod';
import { canonicalJson } from './canonical-json';
import { describeVizCell, describeVizKind, runText } from './describe';
import { invalid, invalidFromZod } from './errors';
import { isPlainObject, type JsonObject, type JsonValue } from './json';
import { newCellId } from './new';
import { CELL_ID_PATTERN, FORMAT_VERSION, MIME, multilineSchema, type Cell, type MimeBundle, type Notebook, type NotebookInput, type Output } from './schema';
import { checkDepth, parseJsonText, parseNotebookValue, validateNotebook, type ParseResult } from './serialize';
import { FormatWarningCode, type FormatWarning } from './warnings';

// ---- the exported document -----------------------------------------------------------------

export interface IpynbMimeBundle {
  [mime: string]: JsonValue;
}

export type IpynbOutput =
  | { output_type: 'stream'; name: 'stdout' | 'stderr'; text: string[] }
  | { output_type: 'execute_result'; execution_count: number | null; data: IpynbMimeBundle; metadata: JsonObject }
  | { output_type: 'display_data'; data: IpynbMimeBundle; metadata: JsonObject }
  | { output_type: 'error'; ename: string; evalue: string; traceback: string[] };

export interface IpynbMarkdownCell {
  id: string;
  cell_type: 'markdown';
  metadata: { moelab: JsonObject };
  source: string[];
}

export interface IpynbCodeCell {
  id: string;
  cell_type: 'code';
  metadata: { moelab: JsonObject };
  source: string[];
  execution_count: number | null;
  outputs: IpynbOutput[];
}

export type IpynbCell = IpynbMarkdownCell | IpynbCodeCell;

export interface IpynbNotebook {
  nbformat: 4;
  nbformat_minor: 5;
  metadata: {
    kernelspec: { name: string; display_name: string; language: string };
    language_info: { name: string; file_extension: string; mimetype: string; codemirror_mode: string; pygments_lexer: string };
    moelab: JsonObject;
    title?: string;
  };
  cells: IpynbCell[];
}

/**
 * Code cells are TypeScript, so the language is declared as such. The kernel name is MoE Lab's
 * own: no Jupyter kernel runs prompt or viz cells, and naming a real TypeScript kernel would
 * invite running prompt text as code.
 */
export const IPYNB_KERNELSPEC = { name: 'moelab', display_name: 'MoE Lab (TypeScript)', language: 'typescript' } as const;
export const IPYNB_LANGUAGE_INFO = {
  name: 'typescript',
  file_extension: '.ts',
  mimetype: 'text/typescript',
  codemirror_mode: 'typescript',
  pygments_lexer: 'typescript',
} as const;

/** Jupyter's line-list form: every line keeps its '\n' except possibly the last. */
export function splitLines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

function exportBundle(data: MimeBundle, fallbackText: string | null): { data: IpynbMimeBundle; metadata: JsonObject } {
  const out: IpynbMimeBundle = {};
  const text = data[MIME.TEXT];
  if (text !== undefined) out[MIME.TEXT] = splitLines(text);
  const json = data[MIME.JSON];
  if (json !== undefined) out[MIME.JSON] = json;
  const run = data[MIME.RUN];
  if (run !== undefined) out[MIME.RUN] = run as JsonObject;
  const viz = data[MIME.VIZ];
  if (viz !== undefined) out[MIME.VIZ] = viz as JsonObject;
  if (text !== undefined) return { data: out, metadata: {} };
  const derived = run !== undefined ? runText(run) : viz !== undefined ? describeVizKind(viz.kind) : fallbackText;
  if (derived === null) return { data: out, metadata: {} };
  out[MIME.TEXT] = splitLines(derived);
  return { data: out, metadata: { moelab: { derived: [MIME.TEXT] } } };
}

function exportOutput(output: Output): IpynbOutput {
  switch (output.output_type) {
    case 'stream':
      return { output_type: 'stream', name: output.name, text: splitLines(output.text) };
    case 'error':
      return { output_type: 'error', ename: output.ename, evalue: output.evalue, traceback: [...output.traceback] };
    case 'execute_result':
      return { output_type: 'execute_result', execution_count: output.execution_count, ...exportBundle(output.data, null) };
    case 'display_data':
      return { output_type: 'display_data', ...exportBundle(output.data, null) };
  }
}

function exportCell(cell: Cell): IpynbCell {
  const moelab = cell.metadata.moelab as JsonObject;
  if (cell.cell_type === 'markdown') return { id: cell.id, cell_type: 'markdown', metadata: { moelab }, source: splitLines(cell.source) };
  const outputs = cell.outputs.map(exportOutput);
  // A view with nothing cached would be an empty cell in Jupyter; say what it shows instead.
  if (cell.metadata.moelab.kind === 'viz' && outputs.length === 0) {
    const text = describeVizCell(cell.metadata.moelab);
    outputs.push({ output_type: 'display_data', data: { [MIME.TEXT]: splitLines(text) }, metadata: { moelab: { derived: [MIME.TEXT] } } });
  }
  return { id: cell.id, cell_type: 'code', metadata: { moelab }, source: splitLines(cell.source), execution_count: cell.execution_count, outputs };
}

/** The notebook as a valid nbformat 4.5 document. Validates first, so nothing unsafe is exported. */
export function exportIpynb(nb: Notebook | NotebookInput): IpynbNotebook {
  const valid = validateNotebook(nb);
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { ...IPYNB_KERNELSPEC },
      language_info: { ...IPYNB_LANGUAGE_INFO },
      moelab: valid.metadata.moelab as JsonObject,
      ...(valid.metadata.title !== undefined ? { title: valid.metadata.title } : {}),
    },
    cells: valid.cells.map(exportCell),
  };
}

/** `.ipynb` text as Jupyter writes it: sorted keys, one-space indent, trailing newline. */
export function serializeIpynb(nb: Notebook | NotebookInput): string {
  return canonicalJson(exportIpynb(nb));
}

// ---- import --------------------------------------------------------------------------------

const ipynbSchema = z.object({
  nbformat: z.literal(4),
  nbformat_minor: z.number().int().min(0),
  metadata: z.record(z.string(), z.unknown()),
  cells: z.array(z.unknown()),
});

const ipynbCellSchema = z.object({
  cell_type: z.string(),
  id: z.unknown().optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  source: multilineSchema,
  outputs: z.array(z.unknown()).optional(),
  execution_count: z.number().int().min(0).nullable().optional(),
  attachments: z.unknown().optional(),
});

export interface ImportOptions {
  /** Recorded as the notebook's app_version when the file was not written by MoE Lab. */
  appVersion?: string;
}

/** Removes the text/plain fallbacks export added (see the module comment). */
function undoDerived(outputs: readonly unknown[]): unknown[] {
  const kept: unknown[] = [];
  for (const output of outputs) {
    if (!isPlainObject(output) || !isPlainObject(output.metadata) || !isPlainObject(output.metadata.moelab)) {
      kept.push(output);
      continue;
    }
    const { moelab, ...metadata } = output.metadata;
    const derived = Array.isArray(moelab.derived) ? moelab.derived.filter((m): m is string => typeof m === 'string') : [];
    if (!isPlainObject(output.data)) {
      kept.push({ ...output, metadata });
      continue;
    }
    const data = Object.fromEntries(Object.entries(output.data).filter(([mime]) => !derived.includes(mime)));
    if (Object.keys(data).length > 0) kept.push({ ...output, data, metadata });
  }
  return kept;
}

/**
 * Cells keep their ids when valid and unique. Files older than nbformat 4.5 have none, which is
 * normal and not worth a warning; a malformed or repeated id is.
 */
function assignIds(cells: readonly { id?: unknown }[], warnings: FormatWarning[]): string[] {
  const taken = new Set<string>();
  for (const c of cells) if (typeof c.id === 'string' && CELL_ID_PATTERN.test(c.id)) taken.add(c.id);
  const used = new Set<string>();
  return cells.map((c) => {
    if (typeof c.id === 'string' && CELL_ID_PATTERN.test(c.id) && !used.has(c.id)) {
      used.add(c.id);
      return c.id;
    }
    let id = newCellId();
    while (taken.has(id) || used.has(id)) id = newCellId();
    used.add(id);
    if (c.id !== undefined) {
      warnings.push({ code: FormatWarningCode.CELL_ID_REPLACED, message: `cell id ${JSON.stringify(c.id)} was invalid or repeated and was replaced`, cellId: id });
    }
    return id;
  });
}

/** Converts one Jupyter cell to the raw `.moenb` shape, or null to leave it out. */
function importCell(cell: z.infer<typeof ipynbCellSchema>, id: string, warnings: FormatWarning[]): Record<string, unknown> | null {
  const moelab = cell.metadata?.moelab;
  const attachments = cell.attachments !== undefined ? { attachments: cell.attachments } : {};
  switch (cell.cell_type) {
    case 'markdown':
      return { id, cell_type: 'markdown', source: cell.source, metadata: { moelab: moelab ?? { kind: 'markdown' } }, ...attachments };
    case 'code':
      return {
        id,
        cell_type: 'code',
        source: cell.source,
        metadata: { moelab: moelab ?? { kind: 'code' } },
        execution_count: cell.execution_count ?? null,
        outputs: undoDerived(cell.outputs ?? []),
      };
    case 'raw':
      warnings.push({ code: FormatWarningCode.CELL_CONVERTED, message: 'a raw cell became a markdown cell', cellId: id });
      return { id, cell_type: 'markdown', source: cell.source, metadata: { moelab: { kind: 'markdown' } }, ...attachments };
    default:
      warnings.push({ code: FormatWarningCode.CELL_DROPPED, message: `left out a cell of unknown type "${cell.cell_type}"`, cellId: id, details: { cellType: cell.cell_type } });
      return null;
  }
}

/** Imports a parsed `.ipynb` (nbformat 4, any minor version). Does not modify `value`. */
export function importIpynbValue(value: unknown, options: ImportOptions = {}): ParseResult {
  checkDepth(value);
  if (isPlainObject(value) && typeof value.nbformat === 'number' && value.nbformat !== 4) {
    throw invalid(`only nbformat 4 notebooks can be imported (this one is nbformat ${value.nbformat})`, { nbformat: value.nbformat });
  }
  const top = ipynbSchema.safeParse(value);
  if (!top.success) throw invalidFromZod(top.error, 'ipynb notebook');
  const cells = top.data.cells.map((raw, i) => {
    const cell = ipynbCellSchema.safeParse(raw);
    if (!cell.success) throw invalidFromZod(cell.error, `ipynb cell ${i}`);
    return cell.data;
  });

  const warnings: FormatWarning[] = [];
  const ids = assignIds(cells, warnings);
  const meta = top.data.metadata;
  const doc = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      // A notebook MoE Lab did not write gets today's format; one it did keeps its version, so
      // migration and the too-new check apply exactly as for a .moenb file.
      moelab: meta.moelab ?? { format_version: FORMAT_VERSION, app_version: options.appVersion ?? 'unknown', model: null },
      ...(typeof meta.title === 'string' ? { title: meta.title } : {}),
    },
    cells: cells.map((c, i) => importCell(c, ids[i], warnings)).filter((c) => c !== null),
  };
  const result = parseNotebookValue(doc);
  return { notebook: result.notebook, warnings: [...warnings, ...result.warnings] };
}

/** Imports `.ipynb` text. */
export function importIpynb(text: string, options: ImportOptions = {}): ParseResult {
  return importIpynbValue(parseJsonText(text, 'ipynb notebook'), options);
}
