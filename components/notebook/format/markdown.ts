/**
 * A small markdown renderer whose output is safe to insert as HTML: a CommonMark subset
 * (headings, paragraphs, emphasis, strikethrough, inline code, fenced and indented code blocks,
 * block quotes, lists, rules, links, hard breaks).
 *
 * Safety comes from construction, not filtering: every character of the source reaches the output
 * escaped, and the only markup is the fixed tags this module writes. Raw HTML and entities in the
 * source are therefore shown as text. The only attributes ever written are `href` (http, https and
 * mailto URLs only, always with rel="noopener noreferrer") and a numeric `start` on ordered lists;
 * never `id` or `name`, so rendered notes cannot clobber DOM globals. Images render as links, since
 * loading remote images would leak that a notebook was opened.
 */
import { escapeHtml, isSafeUrl } from './escape';

/** Quotes and list items nest at most this deep; deeper markers are kept as text. */
const MAX_BLOCK_DEPTH = 16;
/** Link labels longer than this are not links; bounds the work a stray '[' can cause. */
const MAX_LABEL_CHARS = 1000;
const MAX_URL_CHARS = 2048;
const MAX_URL_PARENS = 32;

type Block =
  | { type: 'heading'; level: number; text: string }
  | { type: 'paragraph'; text: string }
  | { type: 'code'; text: string }
  | { type: 'hr' }
  | { type: 'quote'; children: Block[] }
  | { type: 'list'; ordered: boolean; start: number; tight: boolean; items: Block[][] };

// ---- block structure -----------------------------------------------------------------------

const FENCE_OPEN = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const FENCE_CLOSE = /^ {0,3}(`{3,}|~{3,})[ \t]*$/;
const ATX = /^ {0,3}(#{1,6})(?=[ \t]|$)(.*)$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;
const BULLET = /^( {0,3})([-+*])(?:([ \t]+)(.*))?$/;
const ORDERED = /^( {0,3})(\d{1,9})([.)])(?:([ \t]+)(.*))?$/;

interface ListMarker {
  ordered: boolean;
  /** The bullet character, or the ordered delimiter ('.' or ')'). */
  symbol: string;
  start: number;
  /** Columns a continuation line must be indented to belong to the item. */
  contentIndent: number;
  first: string;
}

function isBlank(line: string): boolean {
  return /^[ \t]*$/.test(line);
}

function indentOf(line: string): number {
  return /^ */.exec(line)![0].length;
}

function listMarker(line: string): ListMarker | null {
  const b = BULLET.exec(line);
  const o = b ? null : ORDERED.exec(line);
  const m = b ?? o;
  if (!m) return null;
  const indent = m[1].length;
  const markerWidth = b ? 1 : m[2].length + 1;
  const spacing = (b ? m[3] : m[4]) ?? '';
  const rest = (b ? m[4] : m[5]) ?? '';
  // Five or more spaces after the marker start an indented code block inside the item.
  const gap = spacing.length >= 1 && spacing.length <= 4 ? spacing.length : 1;
  const first = spacing.length > 4 ? ' '.repeat(spacing.length - 1) + rest : rest;
  return { ordered: !b, symbol: b ? m[2] : m[3], start: b ? 1 : Number(m[2]), contentIndent: indent + markerWidth + gap, first };
}

function fenceOpen(line: string): RegExpExecArray | null {
  const m = FENCE_OPEN.exec(line);
  // A backtick fence's info string may not contain backticks (that is inline code instead).
  if (!m || (m[2][0] === '`' && m[3].includes('`'))) return null;
  return m;
}

/** Whether `line` starts a block that ends a paragraph without a blank line. */
function interruptsParagraph(line: string): boolean {
  if (fenceOpen(line) || ATX.test(line) || HR.test(line) || QUOTE.test(line)) return true;
  const marker = listMarker(line);
  // As in CommonMark, only a non-empty item, and only an ordered one numbered 1, interrupts:
  // "in 1999. Then" inside a sentence must not become a list.
  return marker !== null && marker.first.trim() !== '' && (!marker.ordered || marker.start === 1);
}

const isSpaceOrTab = (ch: string | undefined) => ch === ' ' || ch === '\t';

/**
 * An ATX heading's content without its optional closing run of '#' (which must follow a space or
 * tab, or be the whole content). A scan from the end, not a regex: `[ \t]+#+[ \t]*$` retried at
 * every position of a long run of spaces is quadratic.
 */
function withoutClosingHashes(content: string): string {
  let end = content.length;
  while (end > 0 && isSpaceOrTab(content[end - 1])) end--;
  let hashes = end;
  while (hashes > 0 && content[hashes - 1] === '#') hashes--;
  if (hashes === end) return content;
  return hashes === 0 || isSpaceOrTab(content[hashes - 1]) ? content.slice(0, hashes) : content;
}

function stripIndent(line: string, n: number): string {
  return line.slice(Math.min(n, indentOf(line)));
}

function parseBlocks(lines: string[], depth: number): Block[] {
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i++;
      continue;
    }

    const fence = fenceOpen(line);
    if (fence) {
      const indent = fence[1].length;
      const marker = fence[2];
      const body: string[] = [];
      i++;
      while (i < lines.length) {
        const close = FENCE_CLOSE.exec(lines[i]);
        if (close && close[1][0] === marker[0] && close[1].length >= marker.length) {
          i++;
          break;
        }
        body.push(stripIndent(lines[i], indent));
        i++;
      }
      blocks.push({ type: 'code', text: body.join('\n') });
      continue;
    }

    if (indentOf(line) >= 4) {
      const body: string[] = [];
      while (i < lines.length && (isBlank(lines[i]) || indentOf(lines[i]) >= 4)) body.push(stripIndent(lines[i++], 4));
      while (body.length > 0 && isBlank(body[body.length - 1])) body.pop();
      blocks.push({ type: 'code', text: body.join('\n') });
      continue;
    }

    const atx = ATX.exec(line);
    if (atx) {
      const text = withoutClosingHashes(atx[2]).trim();
      blocks.push({ type: 'heading', level: atx[1].length, text });
      i++;
      continue;
    }

    if (HR.test(line)) {
      blocks.push({ type: 'hr' });
      i++;
      continue;
    }

    if (depth < MAX_BLOCK_DEPTH && QUOTE.test(line)) {
      const inner: string[] = [];
      while (i < lines.length && QUOTE.test(lines[i])) inner.push(QUOTE.exec(lines[i++])![1]);
      blocks.push({ type: 'quote', children: parseBlocks(inner, depth + 1) });
      continue;
    }

    if (depth < MAX_BLOCK_DEPTH && listMarker(line)) {
      const next = parseList(lines, i, depth, blocks);
      // parseList always takes the first line; the guard only protects against a future edit.
      i = next > i ? next : i + 1;
      continue;
    }

    const para: string[] = [line];
    i++;
    let heading = 0;
    while (i < lines.length && !isBlank(lines[i])) {
      const setext = SETEXT.exec(lines[i]);
      if (setext) {
        heading = setext[1][0] === '=' ? 1 : 2;
        i++;
        break;
      }
      if (interruptsParagraph(lines[i])) break;
      para.push(lines[i++]);
    }
    const text = para.map((l) => l.trimStart()).join('\n').trimEnd();
    blocks.push(heading ? { type: 'heading', level: heading, text } : { type: 'paragraph', text });
  }
  return blocks;
}

/** Parses the list starting at `lines[start]` into `out`; returns the index after it. */
function parseList(lines: string[], start: number, depth: number, out: Block[]): number {
  const first = listMarker(lines[start])!;
  const items: Block[][] = [];
  let tight = true;
  let i = start;
  while (i < lines.length) {
    const marker = listMarker(lines[i]);
    if (!marker || marker.ordered !== first.ordered || marker.symbol !== first.symbol || HR.test(lines[i])) break;
    const body: string[] = [marker.first];
    i++;
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) body.push('');
      else if (indentOf(line) >= marker.contentIndent) body.push(line.slice(marker.contentIndent));
      // A lazy continuation: an unindented line that carries on the item's paragraph.
      else if (!isBlank(body[body.length - 1]) && !interruptsParagraph(line) && !listMarker(line)) body.push(line.trimStart());
      else break;
      i++;
    }
    let trailingBlanks = 0;
    while (body.length > 1 && isBlank(body[body.length - 1])) {
      body.pop();
      trailingBlanks++;
    }
    const children = parseBlocks(body, depth + 1);
    if (children.filter((b) => b.type === 'paragraph').length > 1) tight = false;
    items.push(children);
    if (trailingBlanks > 0) {
      const next = i < lines.length ? listMarker(lines[i]) : null;
      if (next && next.ordered === first.ordered && next.symbol === first.symbol) tight = false;
      else {
        // The blank lines end the list; give them back so the next block starts cleanly.
        i -= trailingBlanks;
        break;
      }
    }
  }
  out.push({ type: 'list', ordered: first.ordered, start: first.start, tight, items });
  return i;
}

// ---- inline content ------------------------------------------------------------------------

interface Delimiter {
  kind: 'delim';
  ch: '*' | '_' | '~';
  count: number;
  canOpen: boolean;
  canClose: boolean;
  /** Tags emitted after the run's unused characters (outermost first). */
  opens: string[];
  /** Tags emitted before the run's unused characters (innermost first). */
  closes: string[];
}
type InlineNode = { kind: 'html'; html: string } | Delimiter;

const ASCII_PUNCT = /[!-/:-@[-`{-~]/;
const WHITESPACE = /\s/;
const PUNCT = /[\p{P}\p{S}]/u;
const AUTOLINK_URL = /<((?:https?:\/\/|mailto:)[^\s<>]*)>/iy;
const AUTOLINK_EMAIL = /<([a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*)>/y;

function runLength(src: string, at: number, ch: string): number {
  let n = 0;
  while (src[at + n] === ch) n++;
  return n;
}

function linkHtml(url: string, labelHtml: string): string {
  return isSafeUrl(url) ? `<a href="${escapeHtml(url)}" rel="noopener noreferrer">${labelHtml}</a>` : labelHtml;
}

/** A code span opening at `at`; `failed` remembers backtick run lengths known to have no closer. */
function codeSpan(src: string, at: number, failed: Set<number>): { html: string; end: number } | null {
  const n = runLength(src, at, '`');
  if (failed.has(n)) return null;
  let from = at + n;
  for (;;) {
    const k = src.indexOf('`', from);
    if (k < 0) {
      failed.add(n);
      return null;
    }
    const m = runLength(src, k, '`');
    if (m === n) {
      let content = src.slice(at + n, k).replace(/\n/g, ' ');
      if (content.length > 2 && content.startsWith(' ') && content.endsWith(' ') && content.trim() !== '') content = content.slice(1, -1);
      return { html: `<code>${escapeHtml(content)}</code>`, end: k + m };
    }
    from = k + m;
  }
}

function unescapePunct(s: string): string {
  return s.replace(/\\([!-/:-@[-`{-~])/g, '$1');
}

/** An inline link `[label](destination "title")` whose '[' is at `at`. */
function inlineLink(src: string, at: number): { label: string; url: string; end: number } | null {
  let level = 0;
  let j = at;
  const limit = Math.min(src.length, at + MAX_LABEL_CHARS);
  for (; j < limit; j++) {
    const ch = src[j];
    if (ch === '\\') j++;
    else if (ch === '[') level++;
    else if (ch === ']' && --level === 0) break;
  }
  if (level !== 0 || j >= limit || src[j + 1] !== '(') return null;
  const label = src.slice(at + 1, j);
  let k = j + 2;
  const skipSpace = () => {
    while (k < src.length && /[ \t\n]/.test(src[k])) k++;
  };
  skipSpace();
  let url = '';
  if (src[k] === '<') {
    const close = src.indexOf('>', k);
    if (close < 0 || close - k > MAX_URL_CHARS) return null;
    url = src.slice(k + 1, close);
    if (/[<\n]/.test(url)) return null;
    k = close + 1;
  } else {
    const begin = k;
    let parens = 0;
    while (k < src.length && k - begin <= MAX_URL_CHARS) {
      const ch = src[k];
      if (ch === '\\' && k + 1 < src.length) k += 2;
      else if (WHITESPACE.test(ch) || ch.charCodeAt(0) < 0x20) break;
      else if (ch === '(') {
        // CommonMark's nesting limit; also stops a run of "[a](" costing a full scan per '['.
        if (++parens > MAX_URL_PARENS) return null;
        k++;
      }
      else if (ch === ')') {
        if (parens === 0) break;
        parens--;
        k++;
      } else k++;
    }
    if (parens !== 0) return null;
    url = src.slice(begin, k);
  }
  skipSpace();
  const quote = src[k];
  if (quote === '"' || quote === "'" || quote === '(') {
    const closer = quote === '(' ? ')' : quote;
    k++;
    while (k < src.length && src[k] !== closer) k += src[k] === '\\' ? 2 : 1;
    if (k >= src.length) return null;
    k++;
    skipSpace();
  }
  if (src[k] !== ')') return null;
  return { label, url: unescapePunct(url), end: k + 1 };
}

function delimiter(src: string, at: number, ch: '*' | '_' | '~', count: number): Delimiter {
  const before = at > 0 ? src[at - 1] : ' ';
  const after = at + count < src.length ? src[at + count] : ' ';
  const wsBefore = WHITESPACE.test(before);
  const wsAfter = WHITESPACE.test(after);
  const pBefore = PUNCT.test(before);
  const pAfter = PUNCT.test(after);
  const left = !wsAfter && (!pAfter || wsBefore || pBefore);
  const right = !wsBefore && (!pBefore || wsAfter || pAfter);
  // Underscores inside words (snake_case_names) are never emphasis.
  const canOpen = ch === '_' ? left && (!right || pBefore) : left;
  const canClose = ch === '_' ? right && (!left || pAfter) : right;
  return { kind: 'delim', ch, count, canOpen, canClose, opens: [], closes: [] };
}

/**
 * Pairs emphasis delimiters (CommonMark's delimiter-stack algorithm, without the rule of three).
 * Matching a closer discards the openers between it and its opener, so tags always nest; the
 * per-character floor stops repeated searches through openers already known not to match.
 */
function matchEmphasis(nodes: InlineNode[]): void {
  const stack: number[] = [];
  const floor: Record<Delimiter['ch'], number> = { '*': 0, _: 0, '~': 0 };
  nodes.forEach((node, idx) => {
    if (node.kind !== 'delim') return;
    while (node.canClose && node.count > 0) {
      let j = stack.length - 1;
      while (j >= floor[node.ch]) {
        const o = nodes[stack[j]] as Delimiter;
        if (o.ch === node.ch && o.count > 0) break;
        j--;
      }
      if (j < floor[node.ch]) {
        floor[node.ch] = stack.length;
        break;
      }
      const opener = nodes[stack[j]] as Delimiter;
      const use = node.ch === '~' ? 2 : opener.count >= 2 && node.count >= 2 ? 2 : 1;
      const tag = node.ch === '~' ? 'del' : use === 2 ? 'strong' : 'em';
      opener.opens.unshift(`<${tag}>`);
      node.closes.push(`</${tag}>`);
      opener.count -= use;
      node.count -= use;
      stack.length = opener.count > 0 ? j + 1 : j;
      for (const ch of ['*', '_', '~'] as const) floor[ch] = Math.min(floor[ch], stack.length);
    }
    if (node.count > 0 && node.canOpen) stack.push(idx);
  });
}

function renderInline(src: string, allowLinks: boolean): string {
  const nodes: InlineNode[] = [];
  const failedTicks = new Set<number>();
  let text = '';
  const flush = () => {
    if (text !== '') nodes.push({ kind: 'html', html: escapeHtml(text) });
    text = '';
  };
  const emit = (html: string) => {
    flush();
    nodes.push({ kind: 'html', html });
  };

  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === '\\') {
      const next = src[i + 1];
      if (next === '\n') {
        emit('<br>\n');
        i += 2;
      } else if (next !== undefined && ASCII_PUNCT.test(next)) {
        text += next;
        i += 2;
      } else {
        text += c;
        i++;
      }
      continue;
    }
    if (c === '`') {
      const span = codeSpan(src, i, failedTicks);
      if (span) {
        emit(span.html);
        i = span.end;
      } else {
        const n = runLength(src, i, '`');
        text += '`'.repeat(n);
        i += n;
      }
      continue;
    }
    if (c === ' ') {
      // Spaces are taken a run at a time, so those ending a line are known on the spot: two or
      // more make a hard break, fewer are dropped. (Trimming them off the text at each newline
      // rescanned the whole paragraph each time: quadratic.)
      const n = runLength(src, i, ' ');
      if (src[i + n] === '\n') {
        if (n >= 2) emit('<br>\n');
        else text += '\n';
        i += n + 1;
      } else {
        text += ' '.repeat(n);
        i += n;
      }
      continue;
    }
    if (c === '\n') {
      text += '\n';
      i++;
      continue;
    }
    if (allowLinks && (c === '[' || (c === '!' && src[i + 1] === '['))) {
      const link = inlineLink(src, c === '!' ? i + 1 : i);
      if (link) {
        emit(linkHtml(link.url, renderInline(link.label, false)));
        i = link.end;
        continue;
      }
      text += c;
      i++;
      continue;
    }
    if (c === '<') {
      AUTOLINK_URL.lastIndex = i;
      AUTOLINK_EMAIL.lastIndex = i;
      const url = AUTOLINK_URL.exec(src);
      const email = url ? null : AUTOLINK_EMAIL.exec(src);
      if (url && allowLinks && isSafeUrl(url[1])) {
        emit(linkHtml(url[1], escapeHtml(url[1])));
        i += url[0].length;
        continue;
      }
      if (email && allowLinks) {
        emit(linkHtml(`mailto:${email[1]}`, escapeHtml(email[1])));
        i += email[0].length;
        continue;
      }
      text += c;
      i++;
      continue;
    }
    if (c === '*' || c === '_' || c === '~') {
      const n = runLength(src, i, c);
      if (c === '~' && n !== 2) text += c.repeat(n);
      else {
        flush();
        nodes.push(delimiter(src, i, c, n));
      }
      i += n;
      continue;
    }
    text += c;
    i++;
  }
  flush();
  matchEmphasis(nodes);
  return nodes.map((n) => (n.kind === 'html' ? n.html : n.closes.join('') + n.ch.repeat(n.count) + n.opens.join(''))).join('');
}

// ---- output --------------------------------------------------------------------------------

function renderBlocks(blocks: Block[], tight: boolean): string {
  return blocks
    .map((b): string => {
      switch (b.type) {
        case 'heading':
          return `<h${b.level}>${renderInline(b.text, true)}</h${b.level}>`;
        case 'paragraph':
          return tight ? renderInline(b.text, true) : `<p>${renderInline(b.text, true)}</p>`;
        case 'code':
          return `<pre><code>${escapeHtml(b.text)}</code></pre>`;
        case 'hr':
          return '<hr>';
        case 'quote':
          return `<blockquote>\n${renderBlocks(b.children, false)}\n</blockquote>`;
        case 'list': {
          const open = b.ordered ? (b.start !== 1 ? `<ol start="${b.start}">` : '<ol>') : '<ul>';
          const items = b.items.map((item) => `<li>${renderBlocks(item, b.tight)}</li>`).join('\n');
          return `${open}\n${items}\n${b.ordered ? '</ol>' : '</ul>'}`;
        }
      }
    })
    .join('\n');
}

/** Expands tabs in leading whitespace to four-column stops, so indentation counts in spaces. */
function expandLeadingTabs(line: string): string {
  const lead = /^[ \t]*/.exec(line)![0];
  if (!lead.includes('\t')) return line;
  let col = 0;
  for (const ch of lead) col = ch === '\t' ? col + 4 - (col % 4) : col + 1;
  return ' '.repeat(col) + line.slice(lead.length);
}

/** Renders markdown to HTML that is safe to insert into a page (see the module comment). */
export function renderMarkdown(src: string): string {
  const lines = src.replace(/\r\n?/g, '\n').replace(/\u0000/g, '\uFFFD').split('\n').map(expandLeadingTabs);
  return renderBlocks(parseBlocks(lines, 0), false);
}
