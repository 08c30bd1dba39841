/** Number and token formatting shared by the views' text (which browser tests read). */

export function formatMs(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '–';
  return v >= 100 ? `${v.toFixed(0)} ms` : v >= 10 ? `${v.toFixed(1)} ms` : `${v.toFixed(2)} ms`;
}

export function formatNum(v: number | null, digits = 2): string {
  return v === null || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

export function formatPct(v: number, digits = 1): string {
  return Number.isFinite(v) ? `${(v * 100).toFixed(digits)}%` : '–';
}

/** Gate weights and probabilities: three decimals is what the wire format can distinguish usefully. */
export function formatWeight(v: number): string {
  return Number.isFinite(v) ? v.toFixed(3) : '–';
}

/**
 * A token as a label: whitespace made visible (a leading space as ·, newline ↵, tab →) so tokens
 * that are only whitespace still show up, and an empty token as ∅.
 */
export function visibleToken(text: string): string {
  if (text === '') return '∅';
  return text.replace(/\n/g, '↵').replace(/\t/g, '→').replace(/\r/g, '␍').replace(/^ /, '·');
}
