/**
 * A strict structural check of generated HTML. Since every '<' from user text must arrive escaped,
 * each '<' in the output has to open a tag from the allowlist, with only allowlisted attributes,
 * each written as name="value" with no raw '<', '>' or '"' inside.
 */
import assert from 'node:assert/strict';

export interface TagPolicy {
  /** tag name → the attributes it may carry. */
  readonly tags: Readonly<Record<string, readonly string[]>>;
  /** Checks an attribute value beyond its syntax (e.g. that an href is http(s)/mailto). */
  readonly checkAttr?: (tag: string, attr: string, value: string) => string | null;
}

const TAG = /^<(\/?)([a-z][a-z0-9]*)((?: [a-z-]+="[^"<>]*")*)>/;
const ATTR = / ([a-z-]+)="([^"<>]*)"/g;

/** Returns the tags seen, in order; fails the test on anything outside the policy. */
export function assertHtmlFollows(html: string, policy: TagPolicy, label = ''): string[] {
  const seen: string[] = [];
  let from = 0;
  for (;;) {
    const at = html.indexOf('<', from);
    if (at < 0) break;
    // The doctype is the one non-tag construct the page export writes.
    if (html.startsWith('<!DOCTYPE html>', at)) {
      from = at + 1;
      continue;
    }
    const m = TAG.exec(html.slice(at, at + 2000));
    assert.ok(m, `${label}: unexpected markup at ${at}: ${JSON.stringify(html.slice(at, at + 80))}`);
    const [, , name, attrs] = m;
    assert.ok(Object.hasOwn(policy.tags, name!), `${label}: tag <${name}> is not allowed`);
    for (const a of attrs!.matchAll(ATTR)) {
      const [, attr, value] = a;
      assert.ok(policy.tags[name!]!.includes(attr!), `${label}: attribute ${attr} on <${name}> is not allowed`);
      const problem = policy.checkAttr?.(name!, attr!, value!);
      assert.equal(problem ?? null, null, `${label}: ${problem}`);
    }
    seen.push(name!);
    from = at + m[0].length;
  }
  return seen;
}

/** The attribute value as the browser will read it. */
export function decodeAttr(value: string): string {
  return value
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

export function checkHref(tag: string, attr: string, value: string): string | null {
  if (tag === 'a' && attr === 'href' && !/^(https?:\/\/|mailto:)/i.test(decodeAttr(value))) return `unsafe href ${JSON.stringify(value)}`;
  if (tag === 'a' && attr === 'rel' && value !== 'noopener noreferrer') return `unexpected rel ${JSON.stringify(value)}`;
  if (tag === 'ol' && attr === 'start' && !/^\d+$/.test(value)) return `non-numeric start ${JSON.stringify(value)}`;
  return null;
}

export const MARKDOWN_POLICY: TagPolicy = {
  tags: {
    h1: [], h2: [], h3: [], h4: [], h5: [], h6: [],
    p: [], em: [], strong: [], del: [], code: [], pre: [], blockquote: [], hr: [], br: [],
    ul: [], ol: ['start'], li: [],
    a: ['href', 'rel'],
  },
  checkAttr: checkHref,
};
