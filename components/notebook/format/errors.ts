/**
 * Every failure to read or write a notebook file carries a stable code. Callers (the notebook UI,
 * import dialogs, tests) branch on `code`, never on message text, which is free to improve.
 */
import type { z } from 'zod';

export const NotebookFormatErrorCode = {
  /** The text is not JSON at all. */
  INVALID_JSON: 'NOTEBOOK_FORMAT_INVALID_JSON',
  /** JSON, but not a notebook this version can read: wrong shape, bad values, unsupported nbformat. */
  INVALID: 'NOTEBOOK_FORMAT_INVALID',
  /** Written by a newer MoE Lab whose `format_version` this version does not know. */
  TOO_NEW: 'NOTEBOOK_FORMAT_TOO_NEW',
} as const;

export type NotebookFormatErrorCode = (typeof NotebookFormatErrorCode)[keyof typeof NotebookFormatErrorCode];

export class NotebookFormatError extends Error {
  override readonly name = 'NotebookFormatError';
  constructor(
    readonly code: NotebookFormatErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }

  /** Plain-object form that survives `postMessage` and JSON. */
  toJSON(): { code: NotebookFormatErrorCode; message: string; details?: Record<string, unknown> } {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export function isNotebookFormatError(e: unknown): e is NotebookFormatError {
  return e instanceof NotebookFormatError;
}

/** At most this many issues are reported; one broken cell copied fifty times should not flood the UI. */
const MAX_ISSUES = 20;

type Issue = z.core.$ZodIssue;

function pathText(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(document)' : path.map((p) => String(p)).join('.');
}

/**
 * A union reports every branch's complaints; the branch with the fewest is the one the author meant
 * (a prompt cell with a bad temperature fails the markdown branch on everything, the prompt branch
 * on one field), so only its issues are shown.
 */
function flatten(issues: readonly Issue[], prefix: readonly PropertyKey[], out: string[]): void {
  for (const issue of issues) {
    if (out.length >= MAX_ISSUES) return;
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const best = issue.errors.reduce((a, b) => (b.length < a.length ? b : a));
      flatten(best, path, out);
      continue;
    }
    out.push(`${pathText(path)}: ${issue.message}`);
  }
}

/** The issues of a failed zod parse as short "path: message" lines. */
export function describeIssues(error: z.ZodError): string[] {
  const out: string[] = [];
  flatten(error.issues, [], out);
  return out;
}

export function invalid(message: string, details?: Record<string, unknown>): NotebookFormatError {
  return new NotebookFormatError(NotebookFormatErrorCode.INVALID, message, details);
}

/** The error for a document that failed schema validation. */
export function invalidFromZod(error: z.ZodError, what = 'notebook'): NotebookFormatError {
  const issues = describeIssues(error);
  return invalid(`${what} is not valid: ${issues[0] ?? 'unknown problem'}`, { issues });
}
