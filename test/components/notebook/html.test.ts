/** The static HTML export: one page, no script, a strict CSP, and every piece of user text escaped. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HTML_CSP, exportHtml, type HtmlRunData, type Notebook } from '../../../components/notebook/format/index.ts';
import { XSS, fullNotebook } from './fixtures.ts';
import { MARKDOWN_POLICY, assertHtmlFollows, checkHref } from './html-check.ts';

const ESCAPED_XSS = '&lt;img src=x onerror=alert(1)&gt;';

const PAGE_POLICY = {
  tags: {
    ...MARKDOWN_POLICY.tags,
    html: ['lang'],
    head: [],
    meta: ['charset', 'http-equiv', 'content', 'name'],
    title: [],
    style: [],
    body: [],
    main: [],
    header: ['class'],
    section: ['class'],
    div: ['class'],
    p: ['class'],
    pre: ['class'],
    ul: ['class'],
    li: [],
    span: ['class', 'style', 'title'],
  },
  checkAttr(tag: string, attr: string, value: string): string | null {
    if (attr === 'style' && !/^background:hsl\(\d+(\.\d+)? 70% 82%\)$/.test(value)) return `unexpected style ${JSON.stringify(value)}`;
    if (attr === 'class' && !/^[a-z -]+$/.test(value)) return `unexpected class ${JSON.stringify(value)}`;
    return checkHref(tag, attr, value);
  },
};

const runs: Record<string, HtmlRunData> = {
  run_01: {
    tokens: [
      { text: 'Packets', top1Expert: [3, 1] },
      { text: ' drift', top1Expert: [5, 1] },
      { text: ` ${XSS}`, top1Expert: [3, null] },
      { text: '</span><script>alert(1)</script>' },
    ],
    summary: { generatedTokens: 4, reason: 'length', totalMs: 12 },
  },
};

/** The page with CSS blocks removed, so checks look at markup only. */
function markup(html: string): string {
  return html.replace(/<style>[\s\S]*?<\/style>/, '<style></style>');
}

describe('HTML export', () => {
  const page = exportHtml(fullNotebook(), { runs, colorLayer: 0 });

  it('contains no script at all and follows the tag and attribute allowlist', () => {
    assert.ok(!/<script/i.test(page));
    assertHtmlFollows(markup(page), PAGE_POLICY, 'page');
    assert.ok(!/\son[a-z]+=/i.test(markup(page).replace(/>[^<]*</g, '><')));
    assert.ok(!/javascript:/i.test(markup(page).replace(/>[^<]*</g, '><')));
  });

  it('declares the CSP before any content, and is one self-contained document', () => {
    assert.ok(page.startsWith('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'));
    const csp = `<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; style-src &#39;unsafe-inline&#39;; img-src data:">`;
    assert.ok(page.includes(csp));
    assert.ok(page.indexOf(csp) < page.indexOf('<title>'));
    assert.equal(HTML_CSP, "default-src 'none'; style-src 'unsafe-inline'; img-src data:");
    assert.equal((page.match(/<html/g) ?? []).length, 1);
    const tagsOnly = markup(page).replace(/>[^<]*</g, '><');
    assert.ok(!/\b(src|srcset)=|<link|url\(/i.test(tagsOnly));
    assert.ok(!/@import|url\(/.test(page), 'the stylesheet loads nothing');
  });

  it('escapes a malicious title, prompt, markdown, stream, error, JSON and generated text', () => {
    assert.ok(!page.includes(XSS));
    assert.ok(page.includes(`<title>Routing study ${ESCAPED_XSS}</title>`));
    assert.ok(page.includes(`<pre>Write a haiku about routers ${ESCAPED_XSS}</pre>`));
    assert.ok(page.includes(`<p>${ESCAPED_XSS}</p>`), 'markdown');
    assert.ok(page.includes(`32\n${ESCAPED_XSS}`), 'stream');
    assert.ok(page.includes(`<pre class="error">TypeError: x is undefined ${ESCAPED_XSS}\n    at cell code-1:2</pre>`), 'error, ANSI codes removed');
    assert.ok(page.includes(`&quot;note&quot;: &quot;${ESCAPED_XSS}&quot;`), 'json');
  });

  it('renders markdown cells as markup, safely', () => {
    assert.ok(page.includes('<h1>Routing study</h1>'));
    assert.ok(page.includes('<a href="https://example.com/docs" rel="noopener noreferrer">the docs</a>'));
    assert.ok(page.includes('<ul>\n<li>one</li>\n<li>two</li>\n</ul>'));
  });

  it('shows generated tokens as spans coloured by their top-1 expert, escaped', () => {
    const spans = [...page.matchAll(/<span class="tok"([^>]*)>([^<]*)<\/span>/g)];
    assert.equal(spans.length, 4);
    assert.deepEqual(
      spans.map((s) => s[2]),
      ['Packets', ' drift', ` ${ESCAPED_XSS}`, '&lt;/span&gt;&lt;script&gt;alert(1)&lt;/script&gt;'],
    );
    const bg = spans.map((s) => /background:([^"]+)/.exec(s[1]!)?.[1] ?? null);
    assert.equal(bg[0], bg[2], 'same expert, same colour');
    assert.notEqual(bg[0], bg[1], 'different experts, different colours');
    assert.equal(bg[3], null, 'no routing data, no colour');
    assert.match(spans[0]![1]!, /title="layer 0: expert 3, layer 1: expert 1"/);
    assert.ok(page.includes('expert 3</li>') && page.includes('expert 5</li>'), 'legend');
  });

  it('colours by the last MoE layer unless asked for another, as the app does', () => {
    const byLayer1 = exportHtml(fullNotebook(), { runs });
    assert.match(byLayer1, /coloured by the top-1 expert at MoE layer index 1/);
    const bg = [...byLayer1.matchAll(/<span class="tok"(?: style="background:([^"]+)")?/g)].map((m) => m[1] ?? null);
    assert.equal(bg[0], bg[1]);
    assert.equal(bg[2], null);
  });

  it('falls back to the summary text, then the output text, without run data, and never looks up inherited keys', () => {
    const plain = exportHtml(fullNotebook());
    assert.ok(plain.includes(`<pre>Packets drift east ${ESCAPED_XSS}</pre>`));
    assert.ok(plain.includes('<pre>the run failed</pre>'));
    assert.ok(!plain.includes('class="tok"'));
    const nb = fullNotebook();
    const cell = nb.cells[1]!;
    if (cell.cell_type !== 'code') return assert.fail('expected a prompt cell');
    const out = cell.outputs[0]!;
    if (out.output_type !== 'display_data') return assert.fail('expected display_data');
    out.data['application/vnd.moelab.run+json']!.runId = 'constructor';
    assert.doesNotThrow(() => exportHtml(nb, { runs: {} }));
  });

  it('shows the status line for a run saved with an empty text/plain and no summary text', () => {
    const nb = fullNotebook();
    const cell = nb.cells[3]!;
    if (cell.cell_type !== 'code') return assert.fail('expected the failed prompt cell');
    const out = cell.outputs[0]!;
    if (out.output_type !== 'display_data') return assert.fail('expected display_data');
    out.data['text/plain'] = '';
    assert.match(exportHtml(nb), /run <code>run_02<\/code> · failed · model <code>moe-lab-tiny<\/code><\/div><pre>\[run run_02: failed\]<\/pre>/);
  });

  it('refuses forged expert ids as style values', () => {
    const forged = { run_01: { tokens: [{ text: 'x', top1Expert: ['1);background:url(https://evil.example)' as unknown as number] }] } };
    const html = exportHtml(fullNotebook(), { runs: forged });
    assert.ok(!html.includes('evil.example'));
    assert.match(html, /<span class="tok" title="layer 0: \?">x<\/span>/);
    assertHtmlFollows(markup(html), PAGE_POLICY, 'forged');
  });

  it('lists prompt settings and describes viz cells in words', () => {
    assert.ok(page.includes('<li>temperature 0.7</li>'));
    assert.ok(page.includes('<li>top-k 40</li>') && page.includes('<li>max new tokens 32</li>'));
    assert.ok(page.includes('<li>ban 1:3</li>') && page.includes('<li>force *:0</li>') && page.includes('<li>experts per token 2</li>'));
    assert.ok(page.includes('token strip of run run_01'));
    assert.ok(page.includes('run comparison of the output of cell prompt-1 and run run_02'));
  });

  it('is deterministic', () => {
    assert.equal(exportHtml(fullNotebook(), { runs, colorLayer: 0 }), page);
  });

  it('validates the notebook first', () => {
    const bad = fullNotebook() as unknown as { cells: { id: string }[] };
    bad.cells[0]!.id = 'bad id';
    assert.throws(() => exportHtml(bad as unknown as Notebook));
  });
});
