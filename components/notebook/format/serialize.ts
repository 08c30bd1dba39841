/**
 * Reading and writing `.moenb` text. Loading is: JSON → depth check → migration → stripping of
 * unsafe outputs → schema validation. Writing validates too, so a document that was built by
 * hand (or cast past the types) with HTML in it fails loudly instead of reaching disk.
 */
import { canonicalJson } from './canonical-json';
import { NotebookFormatError, NotebookFormatErrorCode, invalid, invalidFromZod } from './errors';
import { MAX_JSON_DEPTH, jsonDepth } from './json';
import { migrate } from './migrate';
import { stripUnsafeContent } from './sanitize';
import { FORMAT_VERSION, notebookSchema, type Notebook, type NotebookInput } from './schema';
import { FormatWarningCode, type FormatWarning } from './warnings';

export interface ParseResult {
  readonly notebook: Notebook;
  /** What the load changed: a migration, stripped outputs. Empty for a clean current file. */
  readonly warnings: FormatWarning[];
}

/** Parses JSON text, mapping a syntax error to NOTEBOOK_FORMAT_INVALID_JSON. */
export function parseJsonText(text: string, what = 'notebook'): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new NotebookFormatError(NotebookFormatErrorCode.INVALID_JSON, `${what} is not valid JSON: ${(e as Error).message}`);
  }
}

export function checkDepth(value: unknown): void {
  if (jsonDepth(value) > MAX_JSON_DEPTH) throw invalid(`document is nested more than ${MAX_JSON_DEPTH} levels deep`);
}

/**
 * Validates a current-version document (no migration, no stripping), mapping failures to
 * NOTEBOOK_FORMAT_INVALID. Returns the normalised notebook: sources joined, defaults filled,
 * unknown metadata keys dropped.
 */
export function validateNotebook(value: unknown): Notebook {
  checkDepth(value);
  const result = notebookSchema.safeParse(value);
  if (!result.success) throw invalidFromZod(result.error);
  return result.data;
}

/** Loads an already-parsed document (any supported format_version). Does not modify `value`. */
export function parseNotebookValue(value: unknown): ParseResult {
  checkDepth(value);
  const warnings: FormatWarning[] = [];
  const { doc: migrated, from } = migrate(value);
  if (from < FORMAT_VERSION) {
    warnings.push({
      code: FormatWarningCode.MIGRATED,
      message: `upgraded from format version ${from} to ${FORMAT_VERSION}; saving writes the new format`,
      details: { from, to: FORMAT_VERSION },
    });
  }
  const stripped = stripUnsafeContent(migrated);
  warnings.push(...stripped.warnings);
  return { notebook: validateNotebook(stripped.doc), warnings };
}

/** Loads `.moenb` text. */
export function parseNotebook(text: string): ParseResult {
  return parseNotebookValue(parseJsonText(text));
}

/**
 * The canonical `.moenb` text of a notebook: sorted keys, one-space indent, trailing newline.
 * `serializeNotebook(parseNotebook(serializeNotebook(nb)).notebook) === serializeNotebook(nb)`.
 */
export function serializeNotebook(nb: Notebook | NotebookInput): string {
  return canonicalJson(validateNotebook(nb));
}
