/** The `.moenb` notebook format: schema, load/save, creation, and export to .ipynb and HTML. */
export * from './errors';
export * from './warnings';
export * from './json';
export * from './schema';
export { canonicalJson } from './canonical-json';
export { MIGRATIONS, formatVersionOf, migrate } from './migrate';
export { stripUnsafeContent } from './sanitize';
export { parseJsonText, parseNotebook, parseNotebookValue, serializeNotebook, validateNotebook, type ParseResult } from './serialize';
export * from './new';
export * from './ipynb';
export * from './html';
export { renderMarkdown } from './markdown';
export { escapeHtml, isSafeUrl, stripAnsi } from './escape';
export { VIEW_LABELS, describeVizCell, describeVizKind, describeVizSource, expertRefsText, runText } from './describe';
