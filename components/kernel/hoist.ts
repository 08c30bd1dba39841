/**
 * Makes a cell's top-level declarations outlive the cell, as in a Jupyter kernel, while still
 * allowing top-level `await`. The cell body runs inside an async function; each top-level
 * `const`/`let`/`var`, `function` and `class` becomes an assignment to a global declared with
 * `var` before it, so the next cell (a separate script in the same worker) sees it.
 *
 * It is a small scanner, not a parser: it tracks strings, template literals, regular expressions,
 * comments and bracket depth, and rewrites declarations that start a statement at depth 0 (simple
 * names, and object or array destructuring of simple names).
 */

export interface HoistResult {
  /** Names declared at the top level, in order of appearance. */
  readonly names: string[];
  /** The script to run: `var names…; self.__cell = (async () => { body })();` */
  readonly script: string;
  /** The script's line (1-based) that holds the cell's first line; the cell's lines follow in order. */
  readonly firstLine: number;
}

/** A JavaScript name (Unicode letters included: `const π = …`). */
const IDENT = /^[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*/u;
/** A character of a name, keyword or number. */
const WORD_CHAR = /[\p{ID_Continue}$\u200c\u200d]/u;
const SPACE = /\s/;

/** Depth marks for what is not code: string, template and regular-expression text, and comments. */
const TEXT = -1;
const COMMENT = -2;

/** Words after which a `/` starts a regular expression rather than dividing (`return /x/`). */
const REGEX_AFTER_WORD = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await']);
/** Statement heads whose `(…)` a regular expression may follow (`if (ok) /x/.test(s)`). */
const PAREN_HEADS = new Set(['if', 'while', 'for', 'with']);
/**
 * Tokens after which a `{` opens a block although an expression could start there: the start of a
 * statement, an arrow's body, and keywords that take a block.
 */
const BLOCK_AFTER = new Set(['', ';', '{', '}', '=>', 'else', 'do', 'try', 'finally']);

/** End (exclusive, flags included) of the regular-expression literal whose opening `/` is at i, or -1 when none closes on its line. */
function regexEnd(src: string, i: number): number {
  let inClass = false;
  for (let k = i + 1; k < src.length; k++) {
    const c = src[k]!;
    if (c === '\n') return -1;
    if (c === '\\') k++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '/') {
      let e = k + 1;
      while (e < src.length && WORD_CHAR.test(src[e]!)) e++;
      return e;
    }
  }
  return -1;
}

interface Scan {
  /** Bracket depth before each character; TEXT or COMMENT where there is no code. */
  readonly depth: Int32Array;
  /** Whether every closing bracket had an opening one and none is left open. */
  readonly balanced: boolean;
}

/**
 * Bracket depth before each character. Template substitutions (`${…}`) count as code at one level
 * deeper. A `/` starts a regular expression where a value cannot end (after an operator, an opening
 * bracket, a keyword such as `return`, or the head of an `if`), and divides after a name, a number,
 * a literal or a closing bracket, which is how JavaScript tells them apart too.
 */
function scan(src: string): Scan {
  const depth = new Int32Array(src.length).fill(TEXT);
  let d = 0;
  let balanced = true;
  const templates: number[] = [];
  /** Whether a `/` here would start a regular expression. */
  let regexOk = true;
  let lastWord = '';
  /** Whether the last token was a `.`: the word after it is a property name, never a keyword. */
  let afterDot = false;
  /** For each open `(`: whether it is the head of an if/while/for/with, after which code starts again. */
  const parens: boolean[] = [];
  /** For each open `{`: whether it is a block (a statement may follow its `}`) rather than an object. */
  const braces: boolean[] = [];
  /** The last token: a word, a punctuator (`=>` whole), '' at the start, or 'value' for a literal. */
  let prev = '';
  const skipTemplateText = (from: number): number => {
    let k = from;
    for (; k < src.length; k++) {
      if (src[k] === '\\') k++;
      else if (src[k] === '`') return k;
      else if (src[k] === '$' && src[k + 1] === '{') {
        templates.push(d);
        d++;
        regexOk = true;
        prev = '${';
        return k + 1;
      }
    }
    return k;
  };
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    const next = src[i + 1];
    if (c === '/' && next === '/') {
      for (; i < src.length && src[i] !== '\n'; i++) depth[i] = COMMENT;
      i--;
      continue;
    }
    if (c === '/' && next === '*') {
      const close = src.indexOf('*/', i + 2);
      const stop = close < 0 ? src.length : close + 2;
      depth.fill(COMMENT, i, stop);
      i = stop - 1;
      continue;
    }
    if (c === '/' && regexOk) {
      const end = regexEnd(src, i);
      if (end > 0) {
        i = end - 1;
        regexOk = false;
        lastWord = '';
        prev = 'value';
        continue;
      }
    }
    if (c === '"' || c === "'") {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === '\\') i++;
      regexOk = false;
      lastWord = '';
      prev = 'value';
      continue;
    }
    if (c === '`') {
      i = skipTemplateText(i + 1);
      if (src[i] === '`') regexOk = false;
      lastWord = '';
      prev = 'value';
      continue;
    }
    if (c === '}' && templates.length > 0 && templates[templates.length - 1] === d - 1) {
      templates.pop();
      d--;
      i = skipTemplateText(i + 1);
      if (src[i] === '`') regexOk = false;
      prev = 'value';
      continue;
    }
    depth[i] = d;
    if (WORD_CHAR.test(c)) {
      let e = i + 1;
      while (e < src.length && WORD_CHAR.test(src[e]!)) depth[e++] = d;
      lastWord = afterDot ? '' : src.slice(i, e);
      regexOk = REGEX_AFTER_WORD.has(lastWord);
      prev = lastWord || 'value';
      afterDot = false;
      i = e - 1;
      continue;
    }
    if (SPACE.test(c)) continue;
    afterDot = c === '.';
    if ((c === '+' || c === '-') && src[i + 1] === c) {
      // regexOk stays: after a value (`i++ / 2`) a `/` divides; after a prefix `++` a name follows.
      depth[++i] = d;
    } else if (c === '{' || c === '(' || c === '[') {
      if (c === '(') parens.push(PAREN_HEADS.has(lastWord));
      // Where no expression can start (`) {`, `class A {`), or a statement starts, `{` opens a block.
      if (c === '{') braces.push(!regexOk || BLOCK_AFTER.has(prev) || prev === ')');
      d++;
      regexOk = true;
    } else if (c === '}' || c === ')' || c === ']') {
      if (d === 0) balanced = false;
      d = Math.max(0, d - 1);
      // After a block's `}` a statement starts (`if (a) { … }⏎/x/.test(s)`); after an object's, a value ended.
      regexOk = c === ')' ? parens.pop() === true : c === '}' ? braces.pop() === true : false;
    } else regexOk = true;
    prev = c === '>' && src[i - 1] === '=' ? '=>' : src[i]!;
    lastWord = '';
  }
  return { depth, balanced: balanced && d === 0 && templates.length === 0 };
}

/**
 * The first top-level occurrence of `sep` in `s` (outside brackets, strings, templates, regular
 * expressions and comments), or -1; null when the brackets do not balance. An `=` that is part of
 * `==` or `=>` does not count.
 */
function firstTop(s: string, sep: ',' | ':' | '=', from = 0): number | null {
  const { depth, balanced } = scan(s);
  if (!balanced) return null;
  for (let i = from; i < s.length; i++) {
    if (depth[i] !== 0 || s[i] !== sep) continue;
    if (sep === '=' && (s[i + 1] === '=' || s[i + 1] === '>' || '=!<>'.includes(s[i - 1] ?? ''))) continue;
    return i;
  }
  return -1;
}

/** Splits `s` at its top-level commas; null when the brackets do not balance. */
function splitTopCommas(s: string): string[] | null {
  const parts: string[] = [];
  let from = 0;
  for (;;) {
    const at = firstTop(s, ',', from);
    if (at === null) return null;
    if (at < 0) return [...parts, s.slice(from)];
    parts.push(s.slice(from, at));
    from = at + 1;
  }
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
  const elements = splitTopCommas(p.slice(1, -1));
  if (!elements) return null;
  const names: string[] = [];
  for (const raw of elements) {
    let e = raw.trim();
    if (e === '') continue; // an array hole, or a trailing comma
    e = e.replace(/^\.\.\./, '');
    let target = e;
    if (object) {
      // `key: target`; a `:` after the default's `=` belongs to the default (`a = ok ? 1 : 2`).
      const colon = firstTop(e, ':');
      const eq = firstTop(e, '=');
      if (colon === null || eq === null) return null;
      if (colon >= 0 && (eq < 0 || colon < eq)) target = e.slice(colon + 1);
    }
    const eq = firstTop(target, '=');
    if (eq === null) return null;
    if (eq >= 0) target = target.slice(0, eq);
    target = target.trim();
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
  const { depth } = scan(js);
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
          // Names are read with the pattern's comments blanked out (`{ a, // first` …).
          const bound = pattern ? patternNames(withoutComments(pattern, depth, start)) : null;
          if (bound) {
            names.push(...bound);
            // `({ a, b } = value)`: parenthesised so the braces are a pattern, not a block; after a
            // `;`, so a previous line without one is not called with it (`f()\n(…)` is a call).
            const stmtEnd = findStatementEnd(js, depth, i + decl[0].length + pattern.length);
            out += `;(${pattern}${js.slice(i + decl[0].length + pattern.length, stmtEnd)})`;
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

/**
 * End of the statement starting before `from`: the next top-level `;`, or a line end that cannot
 * continue it (judged on its code: comments dropped, literals standing in as a value).
 */
function findStatementEnd(js: string, depth: Int32Array, from: number): number {
  let code = '';
  // A comment ending the statement's line stays after it, outside the parentheses it is wrapped in.
  const beforeComment = (end: number) => {
    let e = end;
    while (e > from && (depth[e - 1] === COMMENT || SPACE.test(js[e - 1]!))) e--;
    return e;
  };
  for (let k = from; k < js.length; k++) {
    if (depth[k] === COMMENT) continue;
    code += depth[k] === TEXT ? 'x' : js[k];
    if (depth[k] !== 0) continue;
    if (js[k] === ';') return k;
    if (js[k] === '\n' && !/[=+\-*/,.?:&|(\[{]\s*$/.test(code.slice(0, -1))) return beforeComment(k);
  }
  return beforeComment(js.length);
}

/** `s` (which starts at `offset` in the scanned source) with its comments turned into spaces. */
function withoutComments(s: string, depth: Int32Array, offset: number): string {
  let out = '';
  for (let k = 0; k < s.length; k++) out += depth[offset + k] === COMMENT ? ' ' : s[k];
  return out;
}

/** End (exclusive) of a function/class declaration: just after the `}` closing its body. */
function findBlockEnd(js: string, depth: Int32Array, from: number): number {
  let open = from;
  while (open < js.length && !(js[open] === '{' && depth[open] === 0)) open++;
  for (let k = open + 1; k < js.length; k++) if (js[k] === '}' && depth[k] === 1) return k + 1;
  return js.length;
}
