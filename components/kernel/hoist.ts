/**
 * Makes a cell's top-level declarations outlive the cell, as in a Jupyter kernel, while still
 * allowing top-level `await`. The cell body runs inside an async function; each top-level
 * `const`/`let`/`var`, `function` and `class` becomes an assignment to a global declared with
 * `var` before it, so the next cell (a separate script in the same worker) sees it.
 *
 * It is a small scanner, not a parser: it tracks strings, template literals, comments and bracket
 * depth, and rewrites declarations that start a statement at depth 0 (simple names, and object or
 * array destructuring of simple names).
 */

export interface HoistResult {
  /** Names declared at the top level, in order of appearance. */
  readonly names: string[];
  /** The script to run: `var names…; self.__cell = (async () => { body })();` */
  readonly script: string;
  /** The script's line (1-based) that holds the cell's first line; the cell's lines follow in order. */
  readonly firstLine: number;
}

const IDENT = /^[A-Za-z_$][\w$]*/;

/**
 * Bracket depth before each character, or -1 inside strings, template text and comments.
 * Template substitutions (`${…}`) count as code at one level deeper.
 */
function depthMap(src: string): Int32Array {
  const depth = new Int32Array(src.length).fill(-1);
  let d = 0;
  const templates: number[] = [];
  const skipTemplateText = (from: number): number => {
    let k = from;
    for (; k < src.length; k++) {
      if (src[k] === '\\') k++;
      else if (src[k] === '`') return k;
      else if (src[k] === '$' && src[k + 1] === '{') {
        templates.push(d);
        d++;
        return k + 1;
      }
    }
    return k;
  };
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    const next = src[i + 1];
    if (c === '/' && next === '/') {
      while (i < src.length && src[i] !== '\n') i++;
      i--;
      continue;
    }
    if (c === '/' && next === '*') {
      const close = src.indexOf('*/', i + 2);
      i = close < 0 ? src.length : close + 1;
      continue;
    }
    if (c === '"' || c === "'") {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === '\\') i++;
      continue;
    }
    if (c === '`') {
      i = skipTemplateText(i + 1);
      continue;
    }
    if (c === '}' && templates.length > 0 && templates[templates.length - 1] === d - 1) {
      templates.pop();
      d--;
      i = skipTemplateText(i + 1);
      continue;
    }
    depth[i] = d;
    if (c === '{' || c === '(' || c === '[') d++;
    else if (c === '}' || c === ')' || c === ']') d = Math.max(0, d - 1);
  }
  return depth;
}

/**
 * Splits `s` at top-level occurrences of `sep` (outside brackets, strings and templates); null when
 * the brackets do not balance.
 */
function splitTop(s: string, sep: string): string[] | null {
  const parts: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"' || c === "'" || c === '`') {
      for (i++; i < s.length && s[i] !== c; i++) if (s[i] === '\\') i++;
    } else if (c === '{' || c === '[' || c === '(') depth++;
    else if (c === '}' || c === ']' || c === ')') {
      if (--depth < 0) return null;
    } else if (depth === 0 && s.startsWith(sep, i) && !(sep === '=' && (s[i + 1] === '=' || s[i + 1] === '>'))) {
      parts.push(s.slice(from, i));
      from = i + sep.length;
    }
  }
  return depth === 0 ? [...parts, s.slice(from)] : null;
}

/**
 * Names bound by a destructuring pattern, nested ones and defaults included:
 * `{ a, b: { c }, d = {}, ...e }` → a, c, d, e; `[f, , [g] = [], ...h]` → f, g, h.
 * Null for anything else (the declaration is then left as it is).
 */
function patternNames(pattern: string): string[] | null {
  const p = pattern.trim();
  const object = p.startsWith('{') && p.endsWith('}');
  if (!object && !(p.startsWith('[') && p.endsWith(']'))) return null;
  const elements = splitTop(p.slice(1, -1), ',');
  if (!elements) return null;
  const names: string[] = [];
  for (const raw of elements) {
    let e = raw.trim();
    if (e === '') continue; // an array hole, or a trailing comma
    e = e.replace(/^\.\.\./, '');
    let target = e;
    if (object) {
      const keyed = splitTop(e, ':');
      if (!keyed) return null;
      target = keyed.length > 1 ? keyed.slice(1).join(':') : e;
    }
    const withDefault = splitTop(target, '=');
    if (!withDefault) return null;
    target = withDefault[0]!.trim();
    if (target.startsWith('{') || target.startsWith('[')) {
      const inner = patternNames(target);
      if (!inner) return null;
      names.push(...inner);
    } else if (IDENT.exec(target)?.[0] === target) names.push(target);
    else return null;
  }
  return names;
}

export function hoistTopLevel(js: string): HoistResult {
  const depth = depthMap(js);
  const names: string[] = [];
  let out = '';
  const functions: string[] = [];
  let i = 0;
  const atStatementStart = (k: number) => {
    let j = k - 1;
    while (j >= 0 && (js[j] === ' ' || js[j] === '\t')) j--;
    return j < 0 || js[j] === '\n' || js[j] === ';' || js[j] === '}';
  };
  while (i < js.length) {
    if (depth[i] === 0 && atStatementStart(i)) {
      const rest = js.slice(i);
      const decl = /^(const|let|var)\s+/.exec(rest);
      if (decl) {
        const after = rest.slice(decl[0].length);
        const simple = IDENT.exec(after);
        if (simple && /^\s*(=|;|\n|$)/.test(after.slice(simple[0].length))) {
          names.push(simple[0]);
          out += simple[0];
          i += decl[0].length + simple[0].length;
          continue;
        }
        const open = after[0];
        if (open === '{' || open === '[') {
          // The bracket that closes the pattern: the next one back at the statement's depth.
          const start = i + decl[0].length;
          let close = -1;
          for (let k = start + 1; k < js.length; k++) {
            if (depth[k] === 0) {
              close = k - start - 1;
              break;
            }
          }
          const pattern = close > 0 ? after.slice(0, close + 1) : '';
          const bound = pattern ? patternNames(pattern) : null;
          if (bound) {
            names.push(...bound);
            // `({ a, b } = value)`: parenthesised so the braces are a pattern, not a block.
            const stmtEnd = findStatementEnd(js, depth, i + decl[0].length + pattern.length);
            out += `(${pattern}${js.slice(i + decl[0].length + pattern.length, stmtEnd)})`;
            i = stmtEnd;
            continue;
          }
        }
      }
      const fn = /^(async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)/.exec(rest);
      const cls = fn ? null : /^class\s+([A-Za-z_$][\w$]*)/.exec(rest);
      if (fn || cls) {
        const name = (fn ?? cls)![fn ? 2 : 1]!;
        names.push(name);
        const end = findBlockEnd(js, depth, i);
        if (fn) {
          // A function stays a declaration, so it is hoisted within the cell (`main()` may come
          // before `function main`); the cell's first line hands it to the global scope.
          functions.push(name);
          out += js.slice(i, end);
        } else out += `${name} = ${js.slice(i, end)};`; // `P = class P {…};`
        i = end;
        continue;
      }
    }
    out += js[i];
    i++;
  }
  const unique = [...new Set(names)];
  const header = unique.length ? `var ${unique.join(', ')};\n` : '';
  // On the opening line, so the cell's lines keep their numbers.
  const publish = functions.map((f) => `self.${f} = ${f};`).join(' ');
  return { names: unique, script: `${header}self.__cell = (async () => {${publish}\n${out}\n})();\n`, firstLine: header ? 3 : 2 };
}

/** End of the statement starting before `from`: the next top-level `;`, or a line end that cannot continue it. */
function findStatementEnd(js: string, depth: Int32Array, from: number): number {
  for (let k = from; k < js.length; k++) {
    if (depth[k] !== 0) continue;
    if (js[k] === ';') return k;
    if (js[k] === '\n' && !/[=+\-*/,.?:&|(\[{]\s*$/.test(js.slice(from, k))) return k;
  }
  return js.length;
}

/** End (exclusive) of a function/class declaration: just after the `}` closing its body. */
function findBlockEnd(js: string, depth: Int32Array, from: number): number {
  let open = from;
  while (open < js.length && !(js[open] === '{' && depth[open] === 0)) open++;
  for (let k = open + 1; k < js.length; k++) if (js[k] === '}' && depth[k] === 1) return k + 1;
  return js.length;
}
