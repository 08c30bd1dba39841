/**
 * The `.moenb` document: an nbformat 4.5 notebook whose cells carry MoE Lab's meaning in
 * `metadata.moelab`. Keeping nbformat's shape means export to `.ipynb` is a thin mapping and
 * Jupyter tooling can at least read the files.
 *
 * Outputs hold data only. A MIME bundle may carry plain text, JSON and MoE Lab's own run and
 * visualization payloads; markup or script types (text/html, application/javascript, image/svg+xml,
 * …) are not representable here at all, so a validated notebook can never save them.
 */
import { z } from 'zod';
import { jsonObjectSchema, jsonValueSchema } from './json';

/** The `.moenb` layout version this code writes. Older versions are migrated on load (migrate.ts). */
export const FORMAT_VERSION = 1;

/** nbformat 4.5: ids are 1–64 characters of letters, digits, '-' and '_', unique in the notebook. */
export const CELL_ID_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

export const MIME = {
  TEXT: 'text/plain',
  JSON: 'application/json',
  RUN: 'application/vnd.moelab.run+json',
  VIZ: 'application/vnd.moelab.viz+json',
} as const;

/** The only MIME types an output may hold; anything else is stripped on load (sanitize.ts). */
export const ALLOWED_MIME_TYPES: readonly string[] = Object.values(MIME);

export const CELL_KINDS = ['markdown', 'prompt', 'code', 'viz'] as const;
export type CellKind = (typeof CELL_KINDS)[number];

export const VIEW_KINDS = ['token-strip', 'routing-grid', 'heatmap', 'latency', 'coactivation', 'compare'] as const;
export type ViewKind = (typeof VIEW_KINDS)[number];

/** Mirrors the server's RunStatus (a test pins the two together). */
export const RUN_STATUSES = ['queued', 'running', 'done', 'cancelled', 'failed', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

const cellId = z.string().regex(CELL_ID_PATTERN, 'cell id must be 1-64 characters of [a-zA-Z0-9-_]');

/** nbformat stores text as a string or as a list of lines; it is always a single string in memory. */
export const multilineSchema = z.union([z.string(), z.array(z.string())]).transform((v) => (typeof v === 'string' ? v : v.join('')));

// ---- prompt parameters ---------------------------------------------------------------------

/** Absent fields mean the engine's defaults; the ranges match the server protocol's. */
export const samplingSchema = z
  .object({
    temperature: z.number().min(0).max(100).optional(),
    topK: z.number().int().min(0).optional(),
    topP: z.number().gt(0).max(1).optional(),
    seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
    /** 0 routes the prompt without generating (the protocol allows it, so the file must too). */
    maxNewTokens: z.number().int().min(0).optional(),
  })
  .strict();
export type Sampling = z.infer<typeof samplingSchema>;

export const expertRefSchema = z
  .object({
    layer: z.union([z.number().int().min(0), z.literal('all')]),
    expert: z.number().int().min(0),
  })
  .strict();
export type ExpertRef = z.infer<typeof expertRefSchema>;

export const interventionsSchema = z
  .object({
    ban: z.array(expertRefSchema).optional(),
    force: z.array(expertRefSchema).optional(),
    /** Experts per token instead of the model's own top-k. */
    topK: z.number().int().min(1).optional(),
  })
  .strict();
export type Interventions = z.infer<typeof interventionsSchema>;

export const unparsedInterventionsSchema = z
  .object({ ban: z.string().optional(), force: z.string().optional() })
  .strict();
export type UnparsedInterventions = z.infer<typeof unparsedInterventionsSchema>;

// ---- outputs -------------------------------------------------------------------------------

export const runSummarySchema = z
  .object({
    text: z.string().nullable().optional(),
    reason: z.enum(['eos', 'stop', 'length', 'cancelled']).optional(),
    promptTokens: z.number().int().min(0).optional(),
    generatedTokens: z.number().int().min(0).optional(),
    ttftMs: z.number().min(0).nullable().optional(),
    totalMs: z.number().min(0).optional(),
    prefillTokensPerSecond: z.number().min(0).nullable().optional(),
    decodeTokensPerSecond: z.number().min(0).nullable().optional(),
  })
  .strict();
export type RunSummary = z.infer<typeof runSummarySchema>;

/** A prompt cell's result: the run it started, so its full trace can be fetched again. */
export const runBundleSchema = z
  .object({
    runId: z.string().min(1).max(128),
    modelId: z.string().min(1),
    modelHash: z.string().nullable(),
    status: z.enum(RUN_STATUSES),
    summary: runSummarySchema.optional(),
  })
  .strict();
export type RunBundle = z.infer<typeof runBundleSchema>;

/** Data for a visualization, drawn by the app; never markup. */
export const vizBundleSchema = z.object({ kind: z.enum(VIEW_KINDS), data: jsonValueSchema }).strict();
export type VizBundle = z.infer<typeof vizBundleSchema>;

export const mimeBundleSchema = z
  .object({
    [MIME.TEXT]: multilineSchema.optional(),
    [MIME.JSON]: jsonValueSchema.optional(),
    [MIME.RUN]: runBundleSchema.optional(),
    [MIME.VIZ]: vizBundleSchema.optional(),
  })
  .strict()
  .refine((b) => Object.values(b).some((v) => v !== undefined), 'a MIME bundle needs at least one entry');
export type MimeBundle = z.infer<typeof mimeBundleSchema>;

/** Per-output metadata is not kept: outputs are data only, so any keys are dropped on load. */
const outputMetadataSchema = z.object({}).default({});

export const streamOutputSchema = z
  .object({ output_type: z.literal('stream'), name: z.enum(['stdout', 'stderr']), text: multilineSchema })
  .strict();
export const executeResultSchema = z
  .object({
    output_type: z.literal('execute_result'),
    execution_count: z.number().int().min(0).nullable(),
    data: mimeBundleSchema,
    metadata: outputMetadataSchema,
  })
  .strict();
export const displayDataSchema = z
  .object({ output_type: z.literal('display_data'), data: mimeBundleSchema, metadata: outputMetadataSchema })
  .strict();
export const errorOutputSchema = z
  .object({ output_type: z.literal('error'), ename: z.string(), evalue: z.string(), traceback: z.array(z.string()) })
  .strict();

export const outputSchema = z.discriminatedUnion('output_type', [streamOutputSchema, executeResultSchema, displayDataSchema, errorOutputSchema]);
export type Output = z.infer<typeof outputSchema>;
export type StreamOutput = z.infer<typeof streamOutputSchema>;
export type ExecuteResultOutput = z.infer<typeof executeResultSchema>;
export type DisplayDataOutput = z.infer<typeof displayDataSchema>;
export type ErrorOutput = z.infer<typeof errorOutputSchema>;

// ---- cells ---------------------------------------------------------------------------------

/** Cell metadata holds only `moelab`; other keys (Jupyter's `collapsed`, `tags`, …) are dropped. */
function cellMetadata<T extends z.ZodRawShape>(shape: T) {
  return z.object({ moelab: z.object(shape).strict() });
}

export const markdownCellSchema = z
  .object({
    id: cellId,
    cell_type: z.literal('markdown'),
    source: multilineSchema,
    metadata: cellMetadata({ kind: z.literal('markdown') }),
  })
  .strict();

/** Prompt, code and viz cells are all nbformat code cells; they differ in `metadata.moelab`. */
function codeLikeCell<T extends z.ZodRawShape>(moelab: T) {
  return z
    .object({
      id: cellId,
      cell_type: z.literal('code'),
      source: multilineSchema,
      metadata: cellMetadata(moelab),
      execution_count: z.number().int().min(0).nullable(),
      outputs: z.array(outputSchema),
    })
    .strict();
}

/** TypeScript run in the notebook's worker; outputs are its captured console and results. */
export const codeCellSchema = codeLikeCell({ kind: z.literal('code') });

/** The cell `source` is the prompt text. */
export const promptCellSchema = codeLikeCell({
  kind: z.literal('prompt'),
  /** null: the notebook's model (metadata.moelab.model). */
  model: z.string().min(1).nullable(),
  sampling: samplingSchema,
  interventions: interventionsSchema,
  /**
   * Ban or force text as typed when it is not a valid expert list, kept so a save loses nothing
   * the user wrote. `interventions` then has no list for that field, and the cell cannot run
   * until the text is fixed.
   */
  unparsed: unparsedInterventionsSchema.optional(),
});

export const vizSourceSchema = z.union([z.object({ runId: z.string().min(1).max(128) }).strict(), z.object({ cellId }).strict()]);
export type VizSource = z.infer<typeof vizSourceSchema>;

/** The cell `source` is a free-text caption. */
export const vizCellSchema = codeLikeCell({
  kind: z.literal('viz'),
  view: z.enum(VIEW_KINDS),
  /** What to draw: a stored run, or another cell's output. null until the user picks one. */
  source: vizSourceSchema.nullable(),
  /** The second data source of the comparison view. */
  sourceB: vizSourceSchema.nullable().optional(),
  options: jsonObjectSchema,
});

export const cellSchema = z.union([markdownCellSchema, promptCellSchema, codeCellSchema, vizCellSchema]);

export type MarkdownCell = z.infer<typeof markdownCellSchema>;
export type CodeCell = z.infer<typeof codeCellSchema>;
export type PromptCell = z.infer<typeof promptCellSchema>;
export type VizCell = z.infer<typeof vizCellSchema>;
export type Cell = z.infer<typeof cellSchema>;
/** Cells that are nbformat code cells and so have outputs. */
export type CodeLikeCell = CodeCell | PromptCell | VizCell;

export type PromptMeta = PromptCell['metadata']['moelab'];
export type VizMeta = VizCell['metadata']['moelab'];

// ---- notebook ------------------------------------------------------------------------------

export const notebookModelSchema = z.object({ id: z.string().min(1), hash: z.string().nullable() }).strict();
export type NotebookModel = z.infer<typeof notebookModelSchema>;

export const notebookMoelabSchema = z
  .object({
    format_version: z.literal(FORMAT_VERSION),
    /** The MoE Lab version that wrote the file. */
    app_version: z.string().min(1).max(64),
    /** The model the notebook's prompts run on by default, pinned by content hash when known. */
    model: notebookModelSchema.nullable(),
  })
  .strict();

export const notebookSchema = z
  .object({
    nbformat: z.literal(4),
    nbformat_minor: z.literal(5),
    // Only MoE Lab's own keys and nbformat's title are kept; kernelspec and language_info are
    // written by the .ipynb export, since the kernel of a .moenb is always the app's worker.
    metadata: z.object({ moelab: notebookMoelabSchema, title: z.string().optional() }),
    cells: z.array(cellSchema),
  })
  .strict()
  .superRefine((nb, ctx) => {
    const seen = new Set<string>();
    nb.cells.forEach((cell, i) => {
      if (seen.has(cell.id)) ctx.addIssue({ code: 'custom', path: ['cells', i, 'id'], message: `duplicate cell id "${cell.id}"` });
      seen.add(cell.id);
    });
  });
export type Notebook = z.infer<typeof notebookSchema>;
/** What may be passed in (before defaults and source normalisation). */
export type NotebookInput = z.input<typeof notebookSchema>;

export type CellOfKind<K extends CellKind> = Extract<Cell, { metadata: { moelab: { kind: K } } }>;

/** Narrows a cell by its MoE Lab kind (TypeScript cannot narrow on the nested field itself). */
export function isCellKind<K extends CellKind>(cell: Cell, kind: K): cell is CellOfKind<K> {
  return cell.metadata.moelab.kind === kind;
}

export function isCodeLike(cell: Cell): cell is CodeLikeCell {
  return cell.cell_type === 'code';
}
