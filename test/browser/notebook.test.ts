/**
 * The notebook in a real browser (Debian's Chromium via playwright-core) against the production
 * build started with `npm start`: create a notebook, run a prompt cell and see tokens stream, run
 * a code cell typed into the editor, keyboard shortcuts, save and reload, .ipynb export validated
 * against the nbformat 4.5 schema, no worker errors and no request leaving this machine.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Ajv from 'ajv';
import type { Browser, Page } from 'playwright-core';
import { ARTIFACTS, launchBrowser, startApp, watchPage, type RunningApp } from '../helpers/app.ts';
import { REPO_ROOT } from '../helpers/fixtures.ts';
import { smallModel } from '../helpers/lab-server.ts';

describe('notebook in the browser', () => {
  let app: RunningApp;
  let browser: Browser;
  let page: Page;
  let log: ReturnType<typeof watchPage>;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    app = await startApp({ models: [await smallModel(), await smallModel('slow-random', 'slow')] });
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page = await context.newPage();
    log = watchPage(page);
    await page.goto(app.loginUrl);
    await page.waitForURL(`${app.url}/`);
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
  });

  const cells = () => page.locator('[data-testid="cell"]');
  /** Uncaught exceptions in the page (an error thrown while React unmounts a cell can leave the notebook half-updated). */
  const pageErrors = (l = log) => l.console.filter((line) => line.startsWith('pageerror'));
  const cellKinds = async () => cells().evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')));

  it('creates a notebook and opens it in command mode', async () => {
    await page.getByLabel('new notebook name').fill('browser-test');
    await page.getByRole('button', { name: 'New notebook' }).click();
    await page.waitForURL(/\/notebook\?path=browser-test\.moenb/);
    await page.locator('[data-testid="notebook"]').waitFor();
    assert.equal(await page.locator('[data-testid="notebook"]').getAttribute('data-mode'), 'command');
    assert.deepEqual(await cellKinds(), ['code']);
  });

  it('keyboard shortcuts insert, convert and delete cells', async () => {
    await page.keyboard.press('b'); // insert below
    await page.keyboard.press('a'); // insert above the new one
    assert.deepEqual(await cellKinds(), ['code', 'code', 'code']);
    await page.keyboard.press('m');
    assert.deepEqual(await cellKinds(), ['code', 'markdown', 'code']);
    await page.keyboard.press('y');
    assert.deepEqual(await cellKinds(), ['code', 'code', 'code']);
    await page.keyboard.press('d');
    await page.keyboard.press('d');
    assert.deepEqual(await cellKinds(), ['code', 'code']);
    await page.keyboard.press('ArrowUp');
    await page.keyboard.press('p'); // the first cell becomes a prompt
    assert.deepEqual(await cellKinds(), ['prompt', 'code']);
    // Code editors were created and thrown away above, some before they finished loading.
    assert.deepEqual(pageErrors(), []);
  });

  it('runs a prompt cell and streams its tokens', async () => {
    const prompt = cells().nth(0);
    assert.equal(await page.getByLabel('export traces').isDisabled(), true, 'no traces to export before a run');
    await prompt.getByLabel('max tokens').fill('600');
    await prompt.getByLabel('prompt').fill('Hello, experts');
    // Record how many tokens are on screen at every DOM update, to see them arrive while streaming.
    await page.evaluate(() => {
      const seen: number[] = [];
      (window as unknown as { __counts: number[] }).__counts = seen;
      new MutationObserver(() => seen.push(document.querySelectorAll('[data-testid="token-strip"] [data-index]').length)).observe(document.body, { childList: true, subtree: true });
    });
    // Shift+Enter in the editor runs the cell.
    await prompt.getByLabel('prompt').press('Shift+Enter');
    await prompt.locator('[data-testid="run-summary"]', { hasText: 'length' }).waitFor({ timeout: 60_000 });
    const final = await prompt.locator('[data-testid="token-strip"] [data-index]').count();
    const counts = await page.evaluate(() => (window as unknown as { __counts: number[] }).__counts);
    const partial = new Set(counts.filter((c) => c > 0 && c < final));
    assert.ok(final >= 600, `${final} tokens shown`);
    assert.ok(partial.size >= 3, `tokens appeared in steps while streaming (partial counts seen: ${[...partial].slice(0, 10).join(', ')})`);
    const traces = await page.getByLabel('export traces').getAttribute('href');
    assert.match(traces ?? '', /^\/api\/traces\?format=parquet&runs=[0-9a-f-]{36}$/);
  });

  it('runs TypeScript typed into the code editor and shows its console output', async () => {
    const code = cells().nth(1);
    await code.locator('.monaco-editor').waitFor({ timeout: 30_000 });
    await code.locator('.monaco-editor').click();
    await page.keyboard.type('const n: number = 6 * 7;\nconsole.log(`answer ${n}`);');
    // The editor has rendered the last line before the run key goes in.
    await code.locator('.monaco-editor .view-lines', { hasText: 'console.log(`answer ${n}`);' }).waitFor();
    await page.keyboard.press('Control+Enter');
    await code.locator('[data-testid="cell-output"]', { hasText: 'answer 42' }).waitFor({ timeout: 30_000 }).catch(async (e) => {
      await page.screenshot({ path: join(ARTIFACTS, 'code-cell-failure.png'), fullPage: true });
      const cellText = await code.innerText();
      throw new Error(`${String(e)}\ncell: ${cellText}\nconsole: ${log.console.slice(-10).join('\n')}`);
    });
    // Variables persist between cells, like a kernel.
    await page.keyboard.press('Escape');
    await page.keyboard.press('b');
    await page.keyboard.press('Enter');
    const next = cells().nth(2);
    await next.locator('.monaco-editor').waitFor({ timeout: 30_000 });
    await next.locator('.monaco-editor').click();
    await page.keyboard.type('console.log(n + 1)');
    await next.locator('.monaco-editor .view-lines', { hasText: 'console.log(n + 1)' }).waitFor();
    await page.keyboard.press('Shift+Enter');
    await next.locator('[data-testid="cell-output"]', { hasText: '43' }).waitFor({ timeout: 30_000 });
  });

  it('interrupt stops a runaway cell and the kernel runs again', async () => {
    await page.keyboard.press('Escape');
    await page.keyboard.press('b');
    await page.keyboard.press('Enter');
    const id = await page.locator('.cell.selected').getAttribute('data-cell-id');
    const loop = page.locator(`[data-cell-id="${id}"]`);
    await loop.locator('.monaco-editor').waitFor({ timeout: 30_000 });
    await loop.locator('.monaco-editor').click();
    await page.keyboard.type('while (true) {}');
    await page.keyboard.press('Control+Enter');
    await loop.locator('.cell-count', { hasText: '[*]' }).waitFor();
    await page.getByLabel('interrupt').click();
    await loop.locator('[data-testid="cell-output"]', { hasText: 'Interrupted' }).waitFor({ timeout: 10_000 });
    await loop.locator('.monaco-editor').click();
    await page.keyboard.press('Control+a');
    await page.keyboard.type('console.log(typeof n)');
    await page.keyboard.press('Control+Enter');
    // A fresh kernel: the earlier variable is gone, and code runs again.
    await loop.locator('[data-testid="cell-output"]', { hasText: 'undefined' }).waitFor({ timeout: 30_000 }).catch(async (e) => {
      await page.screenshot({ path: join(ARTIFACTS, 'interrupt-failure.png'), fullPage: true });
      throw e;
    });
  });

  it('saves, and a reload finds sources and outputs intact', async () => {
    await page.keyboard.press('Escape');
    // Two saves at once (the button, then the key before the first returns) both land: the second
    // waits for the first instead of writing over a version the server no longer has.
    await page.getByLabel('save', { exact: true }).click();
    await page.keyboard.press('Control+s');
    await page.locator('[data-testid="save-state"]', { hasText: /^saved$/ }).waitFor().catch(async (e) => {
      throw new Error(`${String(e)}\nsave state: ${await page.locator('[data-testid="save-state"]').innerText()}`);
    });
    await page.screenshot({ path: join(ARTIFACTS, 'notebook.png'), fullPage: true });
    await page.reload();
    await page.locator('[data-testid="notebook"]').waitFor();
    const prompt = cells().nth(0);
    assert.equal(await prompt.getByLabel('prompt').inputValue(), 'Hello, experts');
    await prompt.locator('[data-testid="run-summary"]', { hasText: 'length' }).waitFor();
    // The summary can show before the strip has drawn every stored token: wait for them.
    await prompt.locator('[data-testid="token-strip"] [data-index="599"]').waitFor();
    await cells().nth(1).locator('[data-testid="cell-output"]', { hasText: 'answer 42' }).waitFor();
    await cells().nth(1).locator('.monaco-editor', { hasText: 'const n' }).waitFor({ timeout: 30_000 });
  });

  it('a running prompt cell resumes its stream after a reload', async () => {
    const prompt = cells().nth(0);
    await prompt.getByLabel('model').selectOption('slow-random');
    await prompt.getByLabel('max tokens').fill('1000');
    await prompt.getByRole('button', { name: 'run cell' }).click();
    // The first run of this model also builds its graph.
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="token-strip"] [data-index]').length > 30, undefined, { timeout: 120_000 });
    await page.locator('[data-testid="save-state"]', { hasText: /^saved$/ }).waitFor();
    const runId = (await prompt.locator('.run-view').getAttribute('data-run-id'))!;
    await page.reload();
    const status = ((await (await page.request.get(`${app.url}/api/runs/${runId}`)).json()) as { run: { status: string } }).run.status;
    assert.equal(status, 'running', 'the run was still going when the page reloaded');
    await page.locator('[data-testid="notebook"]').waitFor();
    const resumed = cells().nth(0);
    const atReload = await resumed.locator('[data-testid="token-strip"] [data-index]').count();
    // The cell shows the resumed run as running, with its Stop, as before the reload.
    await resumed.getByLabel('stop cell').waitFor({ timeout: 30_000 });
    assert.equal(await resumed.locator('.cell-count').innerText(), '[*]');
    await resumed.locator('[data-testid="run-summary"]', { hasText: 'length' }).waitFor({ timeout: 60_000 });
    await resumed.getByLabel('stop cell').waitFor({ state: 'detached' });
    // And the saved notebook records how the run ended, not 'running'.
    let saved = '';
    for (let i = 0; i < 50 && !/"status":\s*"done"/.test(saved); i++) {
      await page.waitForTimeout(200);
      saved = ((await (await page.request.get(`${app.url}/api/notebooks/browser-test.moenb`)).json()) as { content: string }).content;
    }
    assert.match(saved, /"status":\s*"done"/);
    assert.doesNotMatch(saved, /"status":\s*"running"/);
    const final = await resumed.locator('[data-testid="token-strip"] [data-index]').count();
    // Prompt tokens plus all 1000 new ones, each exactly once.
    const indices = await resumed.locator('[data-testid="token-strip"] [data-index]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-index'))));
    assert.equal(new Set(indices).size, indices.length);
    assert.ok(final >= 1000 && final > atReload, `${atReload} tokens at reload, ${final} at the end`);
  });

  it('exports a valid nbformat 4.5 .ipynb', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByLabel('export ipynb').click()]);
    const file = join(ARTIFACTS, 'browser-test.ipynb');
    await download.saveAs(file);
    const ipynb = JSON.parse(readFileSync(file, 'utf8')) as { nbformat: number; nbformat_minor: number; cells: unknown[] };
    // The schema declares draft-04, which this validator does not bundle; it uses no keyword whose
    // meaning changed since (checked in test/components/notebook/ipynb.test.ts), so compile it as draft-07.
    const { $schema: _draft, ...schema } = JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'schemas', 'nbformat.v4.5.schema.json'), 'utf8')) as Record<string, unknown>;
    const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
    assert.ok(validate(ipynb), JSON.stringify(validate.errors?.slice(0, 3)));
    assert.equal(ipynb.nbformat_minor, 5);
    assert.equal(ipynb.cells.length, await cells().count());
  });

  it('loads nothing from outside this machine, every worker starts and nothing threw', async () => {
    const outside = log.requests.filter((u) => !u.startsWith(app.url) && !u.startsWith('blob:') && !u.startsWith('data:'));
    assert.deepEqual(outside, []);
    assert.ok(log.requests.some((u) => u.includes('/vendor/monaco/')), 'the editor came from this server');
    const bad = log.console.filter((l) => /Could not create web worker|Failed to construct 'Worker'|Refused to|Content Security Policy/i.test(l));
    assert.deepEqual(bad, []);
    assert.deepEqual(pageErrors(), []);
  });

  /** A second page, signed in (its log watched from the start), and notebook `path` of these cells stored on the server. */
  /** A code cell of a notebook file, for pageWithNotebook. */
  const code = (id: string, source: string) => ({ id, cell_type: 'code', source, execution_count: null, outputs: [], metadata: { moelab: { kind: 'code' } } });

  async function pageWithNotebook(path: string, cells: unknown[]): Promise<{ fresh: Page; freshLog: ReturnType<typeof watchPage> }> {
    const fresh = await browser.newPage();
    const freshLog = watchPage(fresh);
    await fresh.goto(app.loginUrl);
    await fresh.waitForURL(`${app.url}/`);
    const r = await fresh.request.post(`${app.url}/api/notebooks/${path}`, {
      data: JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: { moelab: { format_version: 1, app_version: '0.1.0', model: null } }, cells }),
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(r.status(), 201);
    return { fresh, freshLog };
  }

  it('the notebook page loads without the editor bundle until a code cell needs it', async () => {
    // A notebook with only a markdown cell.
    const { fresh, freshLog } = await pageWithNotebook('no-code.moenb', [{ id: 'm1', cell_type: 'markdown', source: '# Just text', metadata: { moelab: { kind: 'markdown' } } }]);
    const t0 = Date.now();
    await fresh.goto(`${app.url}/notebook?path=no-code.moenb`);
    await fresh.locator('[data-testid="markdown"]', { hasText: 'Just text' }).waitFor();
    const ms = Date.now() - t0;
    const timing = await fresh.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
      return { domInteractive: nav.domInteractive, load: nav.loadEventEnd };
    });
    process.stdout.write(`# page-load: notebook page interactive after ${timing.domInteractive.toFixed(0)} ms (DOM), notebook rendered after ${ms} ms\n`);
    writeFileSync(join(ARTIFACTS, 'page-load.json'), JSON.stringify({ renderedMs: ms, ...timing }, null, 1));
    assert.ok(!freshLog.requests.some((u) => u.includes('/vendor/monaco/')), 'no editor files for a notebook without code cells');
    await fresh.close();
  });

  it("runs the cell whose editor has focus, after another cell's editor was deleted", async () => {
    // Each editor binds the run keys; a deleted editor's binding must go with it, or it takes the
    // keys over and runs the wrong cell with its own (empty) text.
    const { fresh, freshLog } = await pageWithNotebook('two-editors.moenb', [code('c1', ''), code('c2', '')]);
    await fresh.goto(`${app.url}/notebook?path=two-editors.moenb`);
    const freshCells = fresh.locator('[data-testid="cell"]');
    await freshCells.nth(1).locator('.monaco-editor').waitFor({ timeout: 30_000 });
    await freshCells.nth(0).locator('.monaco-editor').waitFor({ timeout: 30_000 });
    await fresh.keyboard.press('ArrowDown');
    await fresh.keyboard.press('d');
    await fresh.keyboard.press('d');
    await freshCells.nth(1).waitFor({ state: 'detached' });
    await freshCells.nth(0).locator('.monaco-editor').click();
    await fresh.keyboard.type('console.log(`first ${6 * 7}`);');
    await freshCells.nth(0).locator('.monaco-editor .view-lines', { hasText: 'console.log(`first ${6 * 7}`);' }).waitFor();
    await fresh.keyboard.press('Control+Enter');
    await freshCells.nth(0).locator('[data-testid="cell-output"]', { hasText: 'first 42' }).waitFor({ timeout: 30_000 });
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it('Run all numbers the cells that execute 1, 2, … and leaves markdown unnumbered', async () => {
    const md = (id: string) => ({ id, cell_type: 'markdown', source: `# ${id}`, metadata: { moelab: { kind: 'markdown' } } });
    const logs = (id: string) => code(id, `console.log('${id}')`);
    const { fresh, freshLog } = await pageWithNotebook('numbering.moenb', [md('m1'), logs('c1'), md('m2'), logs('c2')]);
    await fresh.goto(`${app.url}/notebook?path=numbering.moenb`);
    const freshCells = fresh.locator('[data-testid="cell"]');
    await freshCells.nth(3).waitFor();
    await fresh.getByLabel('run all').click();
    await freshCells.nth(3).locator('[data-testid="cell-output"]', { hasText: 'c2' }).waitFor({ timeout: 30_000 });
    const counts = await freshCells.locator('.cell-count').allTextContents();
    assert.deepEqual(counts, ['[ ]', '[1]', '[ ]', '[2]']);
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it('a save that conflicts with another tab offers to keep this version or load the saved one', async () => {
    const { fresh: a, freshLog } = await pageWithNotebook('two-tabs.moenb', [code('t1', "console.log('one')")]);
    const b = await browser.newPage();
    await b.goto(app.loginUrl);
    await b.waitForURL(`${app.url}/`);
    for (const p of [a, b]) {
      await p.goto(`${app.url}/notebook?path=two-tabs.moenb`);
      await p.locator('[data-testid="cell"]').nth(0).waitFor();
    }
    const addCellAndSave = async (p: Page) => {
      await p.locator('[data-testid="cell"]').nth(0).click();
      await p.keyboard.press('Escape');
      await p.keyboard.press('b');
      await p.getByLabel('save', { exact: true }).click();
    };
    await addCellAndSave(a);
    await a.locator('[data-testid="save-state"]', { hasText: /^saved$/ }).waitFor();
    await addCellAndSave(b);
    await b.locator('[data-testid="save-state"]', { hasText: /NOTEBOOK_CONFLICT/ }).waitFor();
    await b.getByLabel('keep my version').click();
    await b.locator('[data-testid="save-state"]', { hasText: /^saved$/ }).waitFor();
    const cellsSaved = async () => (JSON.parse(((await (await b.request.get(`${app.url}/api/notebooks/two-tabs.moenb`)).json()) as { content: string }).content) as { cells: unknown[] }).cells.length;
    assert.equal(await cellsSaved(), 2, "this tab's version (2 cells) replaced the other's");
    // The other tab now conflicts in turn, and loads the saved version.
    await addCellAndSave(a);
    await a.locator('[data-testid="save-state"]', { hasText: /NOTEBOOK_CONFLICT/ }).waitFor();
    await a.getByLabel('load the saved version').click();
    await a.locator('[data-testid="cell"]').nth(1).waitFor();
    assert.equal(await a.locator('[data-testid="cell"]').count(), 2);
    assert.deepEqual(pageErrors(freshLog), []);
    await b.close();
    await a.close();
  });

  it('a viz cell names the cell it follows before that cell has run, and shows and edits its caption', async () => {
    const { fresh, freshLog } = await pageWithNotebook('viz-caption.moenb', [
      { id: 'p1', cell_type: 'code', source: 'Hello', execution_count: null, outputs: [], metadata: { moelab: { kind: 'prompt', model: null, sampling: { maxNewTokens: 4 }, interventions: {} } } },
      { id: 'v1', cell_type: 'code', source: 'Expert use for the greeting', execution_count: null, outputs: [], metadata: { moelab: { kind: 'viz', view: 'heatmap', source: { cellId: 'p1' }, options: {} } } },
    ]);
    await fresh.goto(`${app.url}/notebook?path=viz-caption.moenb`);
    const viz = fresh.locator('[data-testid="cell"]').nth(1);
    await viz.getByLabel('source').waitFor();
    assert.match(await viz.getByLabel('source').locator('option:checked').innerText(), /cell 1: Hello \(not run yet\)/);
    assert.match(await viz.innerText(), /Run cell 1 to see its heatmap/);
    assert.equal(await viz.getByLabel('caption').inputValue(), 'Expert use for the greeting');
    await fresh.getByLabel('run all').click();
    await viz.locator('[data-testid="expert-heatmap"]').waitFor({ timeout: 30_000 });
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it('after clicking Run in edit mode, keys are commands again', async () => {
    const { fresh, freshLog } = await pageWithNotebook('run-button.moenb', [code('k1', "console.log('ran')")]);
    await fresh.goto(`${app.url}/notebook?path=run-button.moenb`);
    const cell = fresh.locator('[data-testid="cell"]').nth(0);
    await cell.locator('.monaco-editor').waitFor({ timeout: 30_000 });
    await cell.locator('.monaco-editor').click();
    const notebook = fresh.locator('[data-testid="notebook"]');
    assert.equal(await notebook.getAttribute('data-mode'), 'edit');
    await cell.getByRole('button', { name: 'run cell' }).click();
    await cell.locator('[data-testid="cell-output"]', { hasText: 'ran' }).waitFor({ timeout: 30_000 });
    await fresh.keyboard.press('b');
    await fresh.locator('[data-testid="cell"]').nth(1).waitFor();
    assert.equal(await notebook.getAttribute('data-mode'), 'command');
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it('Run all waits for a prompt cell to finish, and stops at one whose run fails in the engine', async () => {
    const prompt = (id: string, interventions: object) => ({
      id,
      cell_type: 'code',
      source: 'Hi',
      execution_count: null,
      outputs: [],
      metadata: { moelab: { kind: 'prompt', model: null, sampling: { maxNewTokens: 4 }, interventions } },
    });
    const { fresh, freshLog } = await pageWithNotebook('runall-prompts.moenb', [
      prompt('p1', {}),
      code('c1', "console.log('after the first prompt')"),
      prompt('p2', { ban: [{ layer: 0, expert: 99 }] }),
      code('c2', "console.log('never')"),
    ]);
    await fresh.goto(`${app.url}/notebook?path=runall-prompts.moenb`);
    const cells = fresh.locator('[data-testid="cell"]');
    await cells.nth(3).waitFor();
    await fresh.getByLabel('run all').click();
    await cells.nth(2).locator('[data-testid="cell-output"]', { hasText: 'ENGINE_BAD_INTERVENTION' }).waitFor({ timeout: 30_000 });
    // The failed run shows its error in the error style, not empty views above a grey line.
    assert.match(await cells.nth(2).locator('.out-error').innerText(), /ENGINE_BAD_INTERVENTION/);
    assert.equal(await cells.nth(2).locator('[data-testid="token-strip"]').count(), 0);
    assert.match((await cells.nth(1).locator('[data-testid="cell-output"]').allInnerTexts()).join('\n'), /after the first prompt/);
    await fresh.waitForTimeout(500);
    assert.equal(await cells.nth(3).locator('.cell-count').innerText(), '[ ]', 'Run all stopped at the failed prompt');
    assert.doesNotMatch((await cells.nth(3).locator('[data-testid="cell-output"]').allInnerTexts()).join('\n'), /never/);
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it('lab calls that fail throw errors with their codes, a refused run does not hang the cell, and an unknown view says so', async () => {
    const source = [
      "for (const f of [() => lab.generate({ prompt: 'x', maxNewTokens: -1 }), () => lab.run('00000000-0000-0000-0000-000000000000')]) {",
      "  try { await f(); console.log('no error'); } catch (e) { console.log('error:', e.message); }",
      '}',
      "lab.show('nonsense', { runId: 'r1' });",
      "console.log('end');",
    ].join('\n');
    const cell = code('c1', source);
    const { fresh, freshLog } = await pageWithNotebook('lab-errors.moenb', [cell]);
    await fresh.goto(`${app.url}/notebook?path=lab-errors.moenb`);
    await fresh.getByLabel('run all').click();
    const out = fresh.locator('[data-testid="cell-output"]', { hasText: 'end' });
    await out.waitFor({ timeout: 30_000 });
    const text = await out.innerText();
    assert.match(text, /error: PROTO_BAD_MESSAGE: invalid message: params\.maxNewTokens/);
    assert.match(text, /error: API_NOT_FOUND: no such run/);
    assert.doesNotMatch(text, /no error/);
    assert.match(await fresh.locator('[data-testid="cell-output"]').innerText(), /lab\.show: no view 'nonsense'; the views are token-strip, routing-grid/);
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it("cells own the kernel's global names, values print as themselves, an odd throw stops Run all without breaking the page", async () => {
    const { fresh, freshLog } = await pageWithNotebook('kernel-names.moenb', [
      // Names the kernel itself once used at global scope.
      code('k1', "const format = (x: number) => x.toFixed(2);\nlet calls = [1];\nvar onmessage = 5;\nconsole.log(new Map([[1, 'a']]), new Set([2]), 10n, NaN, /x/);"),
      code('k2', "console.log('second', format(1.5), calls.length);"),
      code('k3', "throw { name: 'Odd', message: { detail: 1 } };"),
      code('k4', "console.log('after the error');"),
    ]);
    await fresh.goto(`${app.url}/notebook?path=kernel-names.moenb`);
    const freshCells = fresh.locator('[data-testid="cell"]');
    await freshCells.nth(3).waitFor();
    await fresh.getByLabel('run all').click();
    await freshCells.nth(2).locator('[data-testid="cell-output"]', { hasText: 'Odd' }).waitFor({ timeout: 30_000 });
    const out = async (i: number) => (await freshCells.nth(i).locator('[data-testid="cell-output"]').allInnerTexts()).join('\n');
    assert.match(await out(0), /Map\(1\) \{[\s\S]*1 => "a"[\s\S]*Set\(1\) \{[\s\S]*10n NaN \/x\//);
    assert.match(await out(1), /second 1\.50 1/);
    assert.match(await out(2), /Odd: \{[\s\S]*"detail": 1/);
    await fresh.waitForTimeout(500);
    assert.equal(await freshCells.nth(3).locator('.cell-count').innerText(), '[ ]', 'Run all stopped at the error');
    assert.equal(await out(3), '');
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it("a timer writes to the cell that set it, also after that cell finished; its error ends only that cell's own run", async () => {
    const { fresh, freshLog } = await pageWithNotebook('background.moenb', [
      code('b1', [
        "const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));",
        "let ticks = 0;",
        "setInterval(() => { ticks++; }, 5);",
        "setTimeout(() => console.log('late from one'), 300);",
        "setTimeout(() => { throw new Error('boom later'); }, 600);",
        "setTimeout('console.log(\\'string timer\\'); null.x', 700);",
        "console.log('one ends');",
      ].join('\n')),
      // Reads a Blob between writes: a task the kernel did not start, while cell 1's timers fire.
      code('b2', "for (let i = 0; i < 3; i++) { await new Blob(['x']).text(); await sleep(400); console.log('two', i); }"),
      code('b3', "await new Promise((res) => setTimeout(() => res(JSON.parse('{')), 10));\nconsole.log('never');"),
      code('b4', "console.log('four runs');"),
    ]);
    await fresh.goto(`${app.url}/notebook?path=background.moenb`);
    const freshCells = fresh.locator('[data-testid="cell"]');
    await freshCells.nth(3).waitFor();
    await fresh.getByLabel('run all').click();
    await freshCells.nth(2).locator('.out-error').waitFor({ timeout: 30_000 });
    const out = async (i: number) => (await freshCells.nth(i).locator('[data-testid="cell-output"]').allInnerTexts()).join('\n');
    const one = await out(0);
    assert.match(one, /one ends[\s\S]*late from one/);
    assert.match(one, /boom later/);
    // The page's security policy allows no eval, so a timer given a string fails, in its own cell.
    assert.match(one, /EvalError/);
    assert.equal((await out(1)).trim(), 'two 0\ntwo 1\ntwo 2', "the running cell got all of its own output and none of the first cell's");
    assert.equal(await freshCells.nth(1).locator('.cell-count').innerText(), '[2]');
    assert.match(await out(2), /SyntaxError/);
    assert.doesNotMatch(await out(2), /never/);
    assert.notEqual(await freshCells.nth(2).locator('.cell-count').innerText(), '[*]', 'a cell whose awaited timer threw is not left running');
    await fresh.waitForTimeout(500);
    assert.equal(await freshCells.nth(3).locator('.cell-count').innerText(), '[ ]', 'Run all stopped at the failed cell');
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it('a rejection handled a moment later is not an error; one never handled is, in the cell that made it', async () => {
    const { fresh, freshLog } = await pageWithNotebook('rejections.moenb', [
      code('r1', [
        "const p = Promise.reject(new Error('handled later'));",
        'await new Promise((r) => setTimeout(r, 300));',
        "try { await p; } catch (e) { console.log('caught', (e as Error).message); }",
        "Promise.reject(new Error('never handled'));",
        "console.log('one ends');",
      ].join('\n')),
      code('r2', "console.log('two runs');"),
    ]);
    await fresh.goto(`${app.url}/notebook?path=rejections.moenb`);
    const cells = fresh.locator('[data-testid="cell"]');
    await cells.nth(1).waitFor();
    await fresh.getByLabel('run all').click();
    await cells.nth(0).locator('.out-error').waitFor({ timeout: 30_000 });
    const errors = await cells.nth(0).locator('.out-error').allInnerTexts();
    assert.equal(errors.length, 1, errors.join('\n---\n'));
    assert.match(errors[0]!, /never handled/);
    const one = (await cells.nth(0).locator('[data-testid="cell-output"]').allInnerTexts()).join('\n');
    assert.match(one, /caught handled later[\s\S]*one ends/);
    assert.match((await cells.nth(1).locator('[data-testid="cell-output"]').allInnerTexts()).join('\n'), /two runs/, 'Run all went on');
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it('number fields keep what is typed, mid-number included, and a sampling top-k is shown and saved', async () => {
    const promptCell = {
      id: 'p1',
      cell_type: 'code',
      source: 'Hello',
      execution_count: null,
      outputs: [],
      metadata: { moelab: { kind: 'prompt', model: null, sampling: { temperature: 0.7, topK: 4 }, interventions: {} } },
    };
    const { fresh, freshLog } = await pageWithNotebook('numbers.moenb', [promptCell]);
    await fresh.goto(`${app.url}/notebook?path=numbers.moenb`);
    const cell = fresh.locator('[data-testid="cell"]').nth(0);
    const temperature = cell.getByLabel('temperature');
    await temperature.waitFor();
    assert.equal(await cell.getByLabel('sampling top-k').inputValue(), '4', 'a sampling top-k in the file is shown');
    // One Backspace on 0.7 leaves "0." (still 0.x on the way to another digit), not "0".
    await temperature.click();
    await temperature.press('End');
    await temperature.press('Backspace');
    assert.equal(await temperature.inputValue(), '0.');
    await temperature.pressSequentially('95');
    assert.equal(await temperature.inputValue(), '0.95');
    // A value outside the parameter's range is kept as typed and marked with the reason; the cell
    // keeps its last valid value, so the notebook still saves.
    const seed = cell.getByLabel('seed');
    await seed.pressSequentially('-');
    assert.equal(await seed.inputValue(), '-');
    assert.equal(await seed.getAttribute('aria-invalid'), 'true', 'a lone minus is marked, not dropped');
    await seed.pressSequentially('5');
    assert.equal(await seed.inputValue(), '-5');
    assert.match((await seed.getAttribute('title')) ?? '', /seed must be a whole number from 0/);
    await seed.fill('');
    await seed.pressSequentially('7');
    assert.equal(await seed.getAttribute('aria-invalid'), 'false');
    const topK = cell.getByLabel('sampling top-k');
    await topK.fill('');
    await topK.pressSequentially('12');
    await fresh.getByLabel('save', { exact: true }).click();
    await fresh.locator('[data-testid="save-state"]', { hasText: /^saved$/ }).waitFor().catch(async (e) => {
      throw new Error(`${String(e)}\nsave state: ${await fresh.locator('[data-testid="save-state"]').innerText()}`);
    });
    const saved = (await (await fresh.request.get(`${app.url}/api/notebooks/numbers.moenb`)).json()) as { content: string };
    const sampling = (JSON.parse(saved.content) as { cells: { metadata: { moelab: { sampling: Record<string, number> } } }[] }).cells[0]!.metadata.moelab.sampling;
    assert.deepEqual(sampling, { temperature: 0.95, topK: 12, seed: 7 });
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it("the code editor accepts top-level await, which cells may use, and still reports type errors", async () => {
    const { fresh, freshLog } = await pageWithNotebook('await.moenb', [code('a1', "const r = await Promise.resolve(1);\nconst s: string = r;")]);
    await fresh.goto(`${app.url}/notebook?path=await.moenb`);
    await fresh.locator('.monaco-editor').waitFor({ timeout: 30_000 });
    // The TypeScript worker reports asynchronously: wait until the type error is in.
    const codes = await fresh.waitForFunction(
      () => {
        const m = (window as unknown as { monaco?: { editor: { getModelMarkers(f: object): { code?: string | { value: string } }[] } } }).monaco;
        const all = m?.editor.getModelMarkers({}).map((x) => (typeof x.code === 'object' ? x.code.value : x.code)) ?? [];
        return all.includes('2322') ? all : null;
      },
      null,
      { timeout: 30_000 },
    );
    const markers = (await codes.jsonValue()) as string[];
    assert.ok(!markers.includes('1375') && !markers.includes('1378'), `markers: ${markers.join(', ')}`);
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it("a timer printing every 300 ms does not put off the autosave of a cell's deletion", async () => {
    const { fresh, freshLog } = await pageWithNotebook('ticking.moenb', [
      code('k1', "setInterval(() => console.log('tick'), 300);"),
      { id: 'k2', cell_type: 'markdown', source: '# delete me', metadata: { moelab: { kind: 'markdown' } } },
    ]);
    await fresh.goto(`${app.url}/notebook?path=ticking.moenb`);
    const freshCells = fresh.locator('[data-testid="cell"]');
    await freshCells.nth(1).waitFor();
    await fresh.getByLabel('run all').click();
    await freshCells.nth(0).locator('[data-testid="cell-output"]', { hasText: 'tick' }).waitFor({ timeout: 30_000 });
    await fresh.keyboard.press('Escape');
    await fresh.keyboard.press('ArrowDown');
    await fresh.keyboard.press('d');
    await fresh.keyboard.press('d');
    assert.equal(await freshCells.count(), 1);
    const savedCells = async () => {
      const body = (await (await fresh.request.get(`${app.url}/api/notebooks/ticking.moenb`)).json()) as { content: string };
      return (JSON.parse(body.content) as { cells: unknown[] }).cells.length;
    };
    let saved = await savedCells();
    for (let i = 0; i < 40 && saved !== 1; i++) {
      await fresh.waitForTimeout(500);
      saved = await savedCells();
    }
    assert.equal(saved, 1, 'the deletion reached the file while the timer kept printing');
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it("a code cell's lab.show view finds its run again after a reload", async () => {
    const { fresh, freshLog } = await pageWithNotebook('show-reload.moenb', [
      code('s1', "const run = await lab.generate({ promptIds: [1, 2, 3], maxNewTokens: 4, ignoreEos: true });\nlab.show('token-strip', run);"),
    ]);
    await fresh.goto(`${app.url}/notebook?path=show-reload.moenb`);
    const summary = fresh.locator('[data-testid="cell"]').first().locator('[data-testid="run-summary"]');
    await fresh.getByLabel('run all').click();
    await summary.filter({ hasText: 'new tokens' }).waitFor({ timeout: 30_000 });
    // Reload once the file holds the view's output.
    const stored = async () => ((await (await fresh.request.get(`${app.url}/api/notebooks/show-reload.moenb`)).json()) as { content: string }).content;
    for (let i = 0; i < 40 && !(await stored()).includes('display_data'); i++) await fresh.waitForTimeout(250);
    await fresh.reload();
    await summary.filter({ hasText: 'new tokens' }).waitFor({ timeout: 15_000 });
    assert.match(await summary.innerText(), /3 prompt \+ 4 new tokens/);
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it("an error's traceback names the cells and their own line numbers, also across cells", async () => {
    const { fresh, freshLog } = await pageWithNotebook('traceback.moenb', [
      code('t1', '// a helper\nfunction pick(o: any) {\n  return o.x.y;\n}'),
      code('t2', 'const z = 1;\n\npick({});'),
    ]);
    await fresh.goto(`${app.url}/notebook?path=traceback.moenb`);
    const freshCells = fresh.locator('[data-testid="cell"]');
    await freshCells.nth(1).waitFor();
    await fresh.getByLabel('run all').click();
    const error = freshCells.nth(1).locator('.out-error');
    await error.waitFor({ timeout: 30_000 });
    const text = await error.innerText();
    assert.match(text, /^TypeError: Cannot read properties of undefined \(reading 'y'\)/);
    assert.match(text, /at pick \(cell \[1\]:3:\d+\)/);
    assert.match(text, /cell \[2\]:3:\d+/);
    assert.doesNotMatch(text, /blob:|worker\.js/);
    assert.doesNotMatch(text, /cell \[2\]:4:/, 'no frame of the wrapper past the cell\'s last line');
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it("interrupting a cell, from the toolbar or its own stop button, cancels the generation it was waiting for", async () => {
    const cell = code('g1', "await lab.generate({ model: 'slow-random', promptIds: [1, 2, 3], maxNewTokens: 1000, ignoreEos: true });");
    const { fresh, freshLog } = await pageWithNotebook('interrupt-generate.moenb', [cell]);
    await fresh.goto(`${app.url}/notebook?path=interrupt-generate.moenb`);
    await fresh.locator('[data-testid="cell"]').first().waitFor();
    const runsNow = async () => ((await (await fresh.request.get(`${app.url}/api/runs`)).json()) as { runs: { id: string; status: string; modelId: string }[] }).runs;
    for (const stop of ['interrupt', 'stop cell']) {
      const before = new Set((await runsNow()).map((r) => r.id));
      await fresh.getByLabel('run all').click();
      let started: { id: string; status: string } | undefined;
      for (let i = 0; i < 100 && !started; i++) {
        started = (await runsNow()).find((r) => !before.has(r.id) && r.status === 'running');
        if (!started) await fresh.waitForTimeout(100);
      }
      assert.ok(started, `the cell started a generation (${stop})`);
      await fresh.getByLabel(stop).click();
      let status = '';
      for (let i = 0; i < 100 && status !== 'cancelled'; i++) {
        status = (await runsNow()).find((r) => r.id === started!.id)?.status ?? '';
        if (status !== 'cancelled') await fresh.waitForTimeout(100);
      }
      assert.equal(status, 'cancelled', stop);
      await fresh.locator('.cell-count', { hasText: '[*]' }).waitFor({ state: 'detached' });
    }
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it("a cell run again while it runs shows [*] until both runs end, and only the last run's output", async () => {
    const source = "console.log('start');\nawait new Promise((r) => setTimeout(r, 1500));\nconsole.log('end');";
    const cell = { id: 'twice', cell_type: 'code', source, execution_count: null, outputs: [], metadata: { moelab: { kind: 'code' } } };
    const { fresh, freshLog } = await pageWithNotebook('twice.moenb', [cell]);
    await fresh.goto(`${app.url}/notebook?path=twice.moenb`);
    const c = fresh.locator('[data-testid="cell"]').first();
    await c.locator('.monaco-editor').waitFor({ timeout: 30_000 });
    await c.locator('.monaco-editor').click();
    await fresh.keyboard.press('Control+Enter');
    await c.locator('[data-testid="cell-output"]', { hasText: 'start' }).waitFor({ timeout: 30_000 });
    await fresh.keyboard.press('Control+Enter'); // queued behind the first run
    // The first run ends 1.5 s after it started; the second then runs for 1.5 s more.
    await fresh.waitForTimeout(2000);
    assert.equal(await c.locator('.cell-count').innerText(), '[*]', 'still running: the second run');
    assert.equal((await c.locator('[data-testid="cell-output"]').innerText()).trim(), 'start', "the first run's output went with it");
    await c.locator('.cell-count', { hasText: '[2]' }).waitFor({ timeout: 30_000 });
    assert.equal((await c.locator('[data-testid="cell-output"]').innerText()).trim(), 'start\nend');
    assert.deepEqual(pageErrors(freshLog), []);
    await fresh.close();
  });

  it('the playground shows a run with every view', async () => {
    await page.goto(`${app.url}/playground`);
    const play = page.locator('[data-testid="playground"]');
    await play.getByLabel('prompt').fill('Routing, token by token');
    await play.getByRole('button', { name: 'run cell' }).click();
    await play.locator('[data-testid="run-summary"]', { hasText: 'length' }).waitFor({ timeout: 60_000 });
    for (const id of ['token-strip', 'expert-heatmap']) await play.locator(`[data-testid="${id}"]`).first().waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'playground.png'), fullPage: true });
  });
});
