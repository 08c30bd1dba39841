/**
 * The exported HTML page in a real browser: hostile notebook content must produce no script
 * execution, no elements beyond text markup, no clobbering ids or names, and no network requests.
 * Skipped where Chromium is not installed.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { exportHtml, newMarkdownCell, type Notebook } from '../../../components/notebook/format/index.ts';
import { XSS, fullNotebook } from './fixtures.ts';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'moe-lab-html-export-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Markdown that would run script or load something if any of it reached the page as markup. */
const HOSTILE_MARKDOWN = [
  '<script>alert(1)</script>',
  '<img src=x onerror=alert(2)>',
  '<svg onload=alert(3)>',
  '<iframe src="javascript:alert(4)"></iframe>',
  '[click](javascript:alert(5))',
  '<form id="x" name="y"><input name="attributes"></form>',
  '<details open ontoggle=alert(6)>',
  '![i](https://127.0.0.1:9/track.png)',
  '```\n</code></pre><script>alert(7)</script>\n```',
].join('\n\n');

describe('HTML export in a browser', { skip: existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}` }, () => {
  it('runs nothing, loads nothing and creates no clobbering elements', async () => {
    const nb: Notebook = { ...fullNotebook(), cells: [...fullNotebook().cells, newMarkdownCell(HOSTILE_MARKDOWN, 'hostile')] };
    const html = exportHtml(nb, { runs: { run_01: { tokens: [{ text: XSS, top1Expert: [1] }, { text: '<script>alert(8)</script>', top1Expert: [2] }] } } });
    const file = join(dir, 'page.html');
    writeFileSync(file, html);
    const url = pathToFileURL(file).href;

    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
    try {
      const page = await browser.newPage();
      const dialogs: string[] = [];
      const requests: string[] = [];
      const errors: string[] = [];
      page.on('dialog', (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      page.on('request', (r) => requests.push(r.url()));
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(url, { waitUntil: 'load' });
      await page.waitForTimeout(200);

      const found = await page.evaluate(() => ({
        dangerous: document.querySelectorAll('script, img, iframe, svg, form, input, details, object, embed, link, base').length,
        named: document.querySelectorAll('body [id], body [name]').length,
        handlers: [...document.querySelectorAll('*')].filter((el) => [...el.attributes].some((a) => a.name.startsWith('on'))).length,
        links: [...document.querySelectorAll('a')].map((a) => a.getAttribute('href')),
        tokens: [...document.querySelectorAll('.tok')].map((s) => s.textContent),
        headings: [...document.querySelectorAll('h1')].map((h) => h.textContent),
      }));
      assert.deepEqual(dialogs, []);
      assert.deepEqual(errors, []);
      assert.deepEqual(requests, [url]);
      assert.equal(found.dangerous, 0);
      assert.equal(found.named, 0);
      assert.equal(found.handlers, 0);
      assert.deepEqual(found.links, ['https://example.com/docs', 'https://127.0.0.1:9/track.png']);
      assert.deepEqual(found.tokens, [XSS, '<script>alert(8)</script>']);
      assert.ok(found.headings.includes(`Routing study ${XSS}`));

      if (process.env['MOE_LAB_SCREENSHOT']) await page.screenshot({ path: process.env['MOE_LAB_SCREENSHOT'], fullPage: true });
    } finally {
      await browser.close();
    }
  });
});
