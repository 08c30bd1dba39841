/** The markdown renderer: the CommonMark subset it supports, and that no input yields unsafe HTML. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderMarkdown } from '../../../components/notebook/format/index.ts';
import { MARKDOWN_POLICY, assertHtmlFollows, decodeAttr } from './html-check.ts';
import { randomText, seeded } from './fixtures.ts';

describe('markdown rendering', () => {
  const cases: [string, string, string][] = [
    ['ATX headings, closing hashes dropped', '# One\n## Two ##\n###### Six', '<h1>One</h1>\n<h2>Two</h2>\n<h6>Six</h6>'],
    ['a hash without a space is text', '#hashtag', '<p>#hashtag</p>'],
    ['setext headings', 'Big\n===\nSmall\n---', '<h1>Big</h1>\n<h2>Small</h2>'],
    ['paragraphs split by blank lines, soft breaks kept', 'a\nb\n\nc', '<p>a\nb</p>\n<p>c</p>'],
    ['hard breaks', 'a  \nb\\\nc', '<p>a<br>\nb<br>\nc</p>'],
    ['emphasis and strong', '*a* _b_ **c** __d__ ***e***', '<p><em>a</em> <em>b</em> <strong>c</strong> <strong>d</strong> <em><strong>e</strong></em></p>'],
    ['underscores inside words are literal', 'snake_case_name', '<p>snake_case_name</p>'],
    ['unmatched delimiters stay literal', '*a **b', '<p>*a **b</p>'],
    ['nested emphasis', '*a **b** c*', '<p><em>a <strong>b</strong> c</em></p>'],
    ['strikethrough', '~~gone~~ ~one~', '<p><del>gone</del> ~one~</p>'],
    ['inline code is escaped and not parsed', '`<b>*x*</b>`', '<p><code>&lt;b&gt;*x*&lt;/b&gt;</code></p>'],
    ['double-backtick code spans', '`` a ` b ``', '<p><code>a ` b</code></p>'],
    ['backslash escapes', '\\*not em\\* \\# \\[x\\]', '<p>*not em* # [x]</p>'],
    ['fenced code keeps text verbatim', '```ts\nif (a < b) { *x* }\n```', '<pre><code>if (a &lt; b) { *x* }</code></pre>'],
    ['tilde fences and longer closers', '~~~\n```\n~~~~', '<pre><code>```</code></pre>'],
    ['an unclosed fence runs to the end', '```\ncode', '<pre><code>code</code></pre>'],
    ['indented code', '    x = 1\n    y = 2', '<pre><code>x = 1\ny = 2</code></pre>'],
    ['tight bullet list', '- a\n- b', '<ul>\n<li>a</li>\n<li>b</li>\n</ul>'],
    ['loose list', '- a\n\n- b', '<ul>\n<li><p>a</p></li>\n<li><p>b</p></li>\n</ul>'],
    ['nested list', '- a\n  - b\n- c', '<ul>\n<li>a\n<ul>\n<li>b</li>\n</ul></li>\n<li>c</li>\n</ul>'],
    ['ordered list with a start', '3. x\n4. y', '<ol start="3">\n<li>x</li>\n<li>y</li>\n</ol>'],
    ['a list item continued lazily', '- a\nstill a', '<ul>\n<li>a\nstill a</li>\n</ul>'],
    ['a number mid-paragraph does not start a list', 'in\n1999. Then', '<p>in\n1999. Then</p>'],
    ['a list item with code inside', '- run:\n\n  ```\n  go\n  ```', '<ul>\n<li>run:\n<pre><code>go</code></pre></li>\n</ul>'],
    ['block quotes, nested', '> a\n> > b', '<blockquote>\n<p>a</p>\n<blockquote>\n<p>b</p>\n</blockquote>\n</blockquote>'],
    ['thematic breaks', '---\n* * *', '<hr>\n<hr>'],
    ['links', '[site](https://example.com/a_(b)?q=1&r=2 "title")', '<p><a href="https://example.com/a_(b)?q=1&amp;r=2" rel="noopener noreferrer">site</a></p>'],
    ['angle-bracket link destinations', '[x](<https://e.com/a b>)', '<p>x</p>'],
    ['mailto links', '[mail](mailto:a@b.c)', '<p><a href="mailto:a@b.c" rel="noopener noreferrer">mail</a></p>'],
    ['autolinks', '<https://e.com> <a@b.co>', '<p><a href="https://e.com" rel="noopener noreferrer">https://e.com</a> <a href="mailto:a@b.co" rel="noopener noreferrer">a@b.co</a></p>'],
    ['emphasis inside a link label', '[*a*](https://e.com)', '<p><a href="https://e.com" rel="noopener noreferrer"><em>a</em></a></p>'],
    ['relative links become plain text', '[here](#top) [there](./x.md)', '<p>here there</p>'],
    ['images become links to their source', '![chart](https://e.com/c.png)', '<p><a href="https://e.com/c.png" rel="noopener noreferrer">chart</a></p>'],
    ['raw HTML is shown as text', '<b>bold</b> &amp; &copy;', '<p>&lt;b&gt;bold&lt;/b&gt; &amp;amp; &amp;copy;</p>'],
    ['CRLF line endings', '# T\r\n\r\npara\r\n', '<h1>T</h1>\n<p>para</p>'],
    ['an empty document', '', ''],
  ];
  for (const [what, src, html] of cases) {
    it(what, () => assert.equal(renderMarkdown(src), html));
  }
});

/** Inputs that try to get script, event handlers, dangerous URLs or clobbering names into the page. */
const XSS_PAYLOADS = [
  '<script>alert(1)</script>',
  '<SCRIPT SRC=https://evil.example/x.js></SCRIPT>',
  '<img src=x onerror=alert(1)>',
  '<svg onload=alert(1)>',
  '<svg><script>alert(1)</script></svg>',
  '<iframe src="javascript:alert(1)"></iframe>',
  '<a href="javascript:alert(1)">x</a>',
  '<form id="test"><input name="attributes"></form>',
  '<img name="getElementById" id="body">',
  '<details open ontoggle=alert(1)>',
  '<style>*{display:none}</style>',
  '<!-- <script>alert(1)</script> -->',
  '<<script>script>alert(1)<</script>/script>',
  '&lt;script&gt;alert(1)&lt;/script&gt;',
  '&#60;script&#62;alert(1)&#60;/script&#62;',
  '\\<script>alert(1)\\</script>',
  '[x](javascript:alert(1))',
  '[x](JaVaScRiPt:alert(1))',
  '[x]( javascript:alert(1))',
  '[x](java\tscript:alert(1))',
  '[x](java&#x09;script:alert(1))',
  '[x](&#106;avascript:alert(1))',
  '[x](javascript&colon;alert(1))',
  '[x](\\javascript:alert(1))',
  '[x](vbscript:msgbox(1))',
  '[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
  '[x](file:///etc/passwd)',
  '[x](//evil.example/steal)',
  '[x](<javascript:alert(1)>)',
  '![x](javascript:alert(1))',
  '![x" onerror="alert(1)](https://e.com/i.png)',
  '[x](https://e.com/" onmouseover="alert(1))',
  "[x](https://e.com/' onmouseover='alert(1))",
  '[x](https://e.com/"><script>alert(1)</script>)',
  '[x](https://e.com "t\\" onclick=\\"alert(1)")',
  '[<img src=x onerror=alert(1)>](https://e.com)',
  '[x](https://e.com)<img src=x onerror=alert(1)>',
  '<javascript:alert(1)>',
  '<https://e.com/"onmouseover="alert(1)>',
  '<mailto:a@b.c?body=<script>>',
  '# <script>alert(1)</script>',
  '**<img src=x onerror=alert(1)>**',
  '`</code><script>alert(1)</script>`',
  '```\n</code></pre><script>alert(1)</script>\n```',
  '```"><script>alert(1)</script>\ncode\n```',
  '- <script>alert(1)</script>\n  - [x](javascript:alert(1))',
  '> <img src=x onerror=alert(1)>',
  '1. <a id="x">',
  '<div style="background:url(javascript:alert(1))">',
  '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
  '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
  '[a](https://e.com)[b](javascript:alert(1))',
  '*[x](javascript:alert(1))*',
  '[[x](javascript:alert(1))](https://e.com)',
  '\u0000<script>alert(1)</script>',
  'x\u2028<script>alert(1)</script>',
];

function assertSafe(html: string, label: string): void {
  assertHtmlFollows(html, MARKDOWN_POLICY, label);
  assert.ok(!/<script/i.test(html), `${label}: <script`);
  assert.ok(!/\son[a-z]+\s*=/i.test(html.replace(/&[a-z]+;|&#\d+;/g, '').replace(/>[^<]*</g, '><')), `${label}: event handler attribute`);
  for (const m of html.matchAll(/ href="([^"]*)"/g)) assert.match(decodeAttr(m[1]!), /^(https?:\/\/|mailto:)/i, `${label}: href`);
  assert.ok(!/\s(id|name)=/i.test(html.replace(/>[^<]*</g, '><')), `${label}: id/name attribute`);
  assert.equal((html.match(/<a /g) ?? []).length, (html.match(/ rel="noopener noreferrer"/g) ?? []).length, `${label}: link without rel`);
}

describe('markdown safety', () => {
  for (const payload of XSS_PAYLOADS) {
    it(`renders ${JSON.stringify(payload).slice(0, 70)} safely`, () => assertSafe(renderMarkdown(payload), payload));
  }

  it('shows a blocked link label as plain text, dropping the URL', () => {
    assert.equal(renderMarkdown('[click](javascript:alert(1))'), '<p>click</p>');
  });

  it('escapes quotes inside an allowed URL so it cannot leave the attribute', () => {
    assert.equal(renderMarkdown('<https://e.com/"x>'), '<p><a href="https://e.com/&quot;x" rel="noopener noreferrer">https://e.com/&quot;x</a></p>');
  });

  it('is safe on 2000 random markdown-ish inputs', () => {
    const rand = seeded(1337);
    const pieces = ['<', '>', '"', "'", '&', '[', ']', '(', ')', '*', '_', '`', '~', '\\', '\n', '- ', '1. ', '> ', '#', ' ', 'javascript:', 'https://', 'a', 'on', '=', '<script>', '```'];
    for (let i = 0; i < 2000; i++) {
      let src = randomText(rand, 10);
      for (let j = Math.floor(rand() * 30); j > 0; j--) src += pieces[Math.floor(rand() * pieces.length)];
      assertSafe(renderMarkdown(src), JSON.stringify(src));
    }
  });

  // Inputs that took the previous renderer minutes (trailing spaces were trimmed by a regex over
  // the whole paragraph at every newline, and a heading's closing '#'s by a regex retried at every
  // space). They check the output only: a quadratic renderer shows up as this test hanging.
  it('renders long runs of spaces, a space-filled heading and a 400 KB paragraph exactly', () => {
    const spaced = 'a' + ' '.repeat(1000) + 'b';
    assert.equal(renderMarkdown(`${spaced}\n`.repeat(800)), `<p>${`${spaced}\n`.repeat(799)}${spaced}</p>`);
    const wide = ' '.repeat(400_000);
    assert.equal(renderMarkdown(`# a${wide}b #`), `<h1>a${wide}b</h1>`);
    assert.equal(renderMarkdown(`# a${wide}b#`), `<h1>a${wide}b#</h1>`);
    const words = 'word word word word word word word word';
    const paragraph = `${words}\n`.repeat(10_000);
    assert.equal(paragraph.length, 400_000);
    assert.equal(renderMarkdown(paragraph), `<p>${paragraph.trimEnd()}</p>`);
    assert.equal(renderMarkdown(`${words}  \n`.repeat(10_000)), `<p>${`${words}<br>\n`.repeat(9_999)}${words}</p>`);
  });

  it('stays fast on pathological input', () => {
    const inputs = ['*a '.repeat(20_000), '[' .repeat(20_000), '`'.repeat(5000) + ' x ' + '``'.repeat(5000), '> '.repeat(5000) + 'x', '- '.repeat(5000) + 'x', '_a_'.repeat(20_000), '**'.repeat(20_000), '[a]('.repeat(20_000)];
    for (const src of inputs) {
      const start = performance.now();
      assertSafe(renderMarkdown(src), src.slice(0, 20));
      assert.ok(performance.now() - start < 2000, `${src.slice(0, 10)}… took ${performance.now() - start} ms`);
    }
  });
});
