/**
 * The one JSON layout notebooks are written in: object keys sorted, arrays in order, one-space
 * indent (as Jupyter writes), trailing newline. Equal documents give equal bytes however their
 * objects were built, so saves diff cleanly and a reload-then-save changes nothing.
 */

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function write(value: unknown, indent: string, step: string, out: string[]): void {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') {
    out.push(JSON.stringify(value));
    return;
  }
  if (typeof value === 'number') {
    // JSON.stringify would quietly write NaN/Infinity as null: a changed value, not a saved one.
    if (!Number.isFinite(value)) throw new TypeError(`cannot write the non-finite number ${value} as JSON`);
    out.push(JSON.stringify(value));
    return;
  }
  if (Array.isArray(value)) {
    if (value.length === 0) {
      out.push('[]');
      return;
    }
    const inner = indent + step;
    out.push('[');
    value.forEach((item, i) => {
      out.push(i === 0 ? '\n' : ',\n', inner);
      write(item === undefined ? null : item, inner, step, out);
    });
    out.push('\n', indent, ']');
    return;
  }
  if (typeof value === 'object') {
    // Own enumerable keys only, sorted here: JS objects put integer-like keys first whatever the
    // insertion order, so relying on property order would not be canonical.
    const keys = Object.keys(value)
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .sort(compareKeys);
    if (keys.length === 0) {
      out.push('{}');
      return;
    }
    const inner = indent + step;
    out.push('{');
    keys.forEach((key, i) => {
      out.push(i === 0 ? '\n' : ',\n', inner, JSON.stringify(key), ': ');
      write((value as Record<string, unknown>)[key], inner, step, out);
    });
    out.push('\n', indent, '}');
    return;
  }
  throw new TypeError(`cannot write a ${typeof value} as JSON`);
}

/** Canonical JSON text of `value` (see the module comment), ending in a newline. */
export function canonicalJson(value: unknown, indentWidth = 1): string {
  const out: string[] = [];
  write(value, '', ' '.repeat(indentWidth), out);
  out.push('\n');
  return out.join('');
}
