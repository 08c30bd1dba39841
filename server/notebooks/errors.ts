/**
 * Every failure of the notebook store carries a stable code and the HTTP status the server should
 * answer with, so routes map errors without inspecting message text (which is free to improve).
 */
export const NotebookErrorCode = {
  /** No notebook at that path (or the path names something that is not a notebook file). */
  NOT_FOUND: 'NOTEBOOK_NOT_FOUND',
  /** create/rename would replace something that already exists. */
  EXISTS: 'NOTEBOOK_EXISTS',
  /** The client-supplied path is malformed, hidden, not a .moenb file, or leads outside the root. */
  BAD_PATH: 'NOTEBOOK_BAD_PATH',
  /** The content (or the file on disk) is larger than MAX_NOTEBOOK_BYTES. */
  TOO_LARGE: 'NOTEBOOK_TOO_LARGE',
  /** The content is not valid JSON text. */
  BAD_CONTENT: 'NOTEBOOK_BAD_CONTENT',
  /** The file changed (or vanished) since the version the client based its save on. */
  CONFLICT: 'NOTEBOOK_CONFLICT',
} as const;

export type NotebookErrorCode = (typeof NotebookErrorCode)[keyof typeof NotebookErrorCode];

const STATUS: Record<NotebookErrorCode, number> = {
  NOTEBOOK_NOT_FOUND: 404,
  NOTEBOOK_EXISTS: 409,
  NOTEBOOK_BAD_PATH: 400,
  NOTEBOOK_TOO_LARGE: 413,
  NOTEBOOK_BAD_CONTENT: 400,
  NOTEBOOK_CONFLICT: 409,
};

export class NotebookError extends Error {
  override readonly name = 'NotebookError';
  /** The HTTP status a route should answer with. */
  readonly status: number;

  constructor(
    readonly code: NotebookErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.status = STATUS[code];
  }

  /** Plain-object form for JSON responses; never includes absolute server paths. */
  toJSON(): { code: NotebookErrorCode; message: string; details?: Record<string, unknown> } {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export function isNotebookError(e: unknown): e is NotebookError {
  return e instanceof NotebookError;
}
