/** HTML escaping shared by the markdown renderer and the HTML export. */

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Safe as element text and as a double- or single-quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** Terminal colour and cursor sequences, as found in tracebacks and captured console output. */
const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/**
 * Links may only point at web pages and mail addresses. An allowlist of literal prefixes cannot be
 * fooled by the tricks that defeat scheme blocklists (mixed case, entities, embedded tabs or
 * newlines, leading spaces), since none of those can make a string start with "https://".
 */
export function isSafeUrl(url: string): boolean {
  return /^(https?:\/\/|mailto:)[^\s\u0000-\u001f\u007f]*$/i.test(url);
}
