/**
 * Problems a load repaired instead of refusing. The document still opens; the UI shows these so
 * the user knows what was removed or changed and why.
 */

export const FormatWarningCode = {
  /** The file was written in an older format_version and was upgraded in memory. */
  MIGRATED: 'NOTEBOOK_FORMAT_MIGRATED',
  /** An output held a MIME type that is never stored (HTML, scripts, images, anything unknown). */
  MIME_STRIPPED: 'NOTEBOOK_FORMAT_MIME_STRIPPED',
  /** An output was removed whole: its type is unknown, or stripping left it without data. */
  OUTPUT_DROPPED: 'NOTEBOOK_FORMAT_OUTPUT_DROPPED',
  /** Cell attachments (inline files, often HTML-capable images) were removed. */
  ATTACHMENTS_DROPPED: 'NOTEBOOK_FORMAT_ATTACHMENTS_DROPPED',
  /** Import: a cell had a type MoE Lab has no equivalent for and became a markdown cell. */
  CELL_CONVERTED: 'NOTEBOOK_FORMAT_CELL_CONVERTED',
  /** Import: a cell of an unknown type was left out. */
  CELL_DROPPED: 'NOTEBOOK_FORMAT_CELL_DROPPED',
  /** Import: a cell id was missing, malformed or duplicated and was replaced by a fresh one. */
  CELL_ID_REPLACED: 'NOTEBOOK_FORMAT_CELL_ID_REPLACED',
} as const;

export type FormatWarningCode = (typeof FormatWarningCode)[keyof typeof FormatWarningCode];

export interface FormatWarning {
  readonly code: FormatWarningCode;
  readonly message: string;
  /** The cell concerned, when there is one (after any id replacement). */
  readonly cellId?: string;
  readonly details?: Readonly<Record<string, string | number>>;
}
