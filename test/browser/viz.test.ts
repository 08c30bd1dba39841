/**
 * Routing views in a real browser against the production app: they update while a run streams,
 * hover details match the run's stored routing, a banned expert disappears from the heatmap, and
 * each view is saved as a screenshot artifact; a DeepSeek-V3 run marks what its load-balancing bias changed.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { RunEvent } from '../../server/protocol.ts';
import { ARTIFACTS, launchBrowser, startApp, type RunningApp } from '../helpers/app.ts';
import { smallModel } from '../helpers/lab-server.ts';
import { makeCheckpoint } from '../helpers/checkpoints.ts';

type Routing = Extract<RunEvent, { t: 'routing' }>;

describe('routing views in the browser', () => {
  let app: RunningApp;
  let browser: Browser;
  let page: Page;
  let baseRun = '';
  let routing: Routing[] = [];
  let k = 2;
  let deepseek = '';

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    deepseek = makeCheckpoint({ from: 'deepseek_v3', tokenizer: true });
    app = await startApp({ models: [await smallModel(), deepseek] });
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(app.loginUrl);
    await page.waitForURL(`${app.url}/`);
    await page.goto(`${app.url}/playground`);
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
    if (deepseek) rmSync(deepseek, { recursive: true, force: true });
  });

  const play = () => page.locator('[data-testid="playground"]');

  async function runPrompt(text: string, tokens: number, ban = '', model = 'tiny-random'): Promise<string> {
    // The small random model (8 experts), not the built-in one that the app also offers.
    await play().getByLabel('model').selectOption(model);
    await play().getByLabel('prompt').fill(text);
    await play().getByLabel('max tokens').fill(String(tokens));
    await play().getByLabel('ban').fill(ban);
    const before = await page.locator('.run-view').getAttribute('data-run-id').catch(() => null);
    await play().getByRole('button', { name: 'run cell' }).click();
    await page.waitForFunction((prev) => {
      const id = document.querySelector('.run-view')?.getAttribute('data-run-id');
      return id && id !== prev;
    }, before);
    await play().locator('[data-testid="run-summary"]', { hasText: 'length' }).waitFor({ timeout: 60_000 });
    return (await page.locator('.run-view').getAttribute('data-run-id'))!;
  }

  async function stored(runId: string): Promise<Routing[]> {
    const body = (await (await page.request.get(`${app.url}/api/runs/${runId}`)).json()) as { events: RunEvent[] };
    return body.events.filter((e): e is Routing => e.t === 'routing');
  }

  it('the heatmap and the token strip update while tokens arrive', async () => {
    // A short strip box, so this run's text outgrows it and the strip has to follow the stream.
    await page.addStyleTag({ content: '[data-testid="token-strip"] .viz-tokens { max-height: 80px; }' });
    await page.evaluate(() => {
      const seen: { heat: string | null; tokens: number }[] = [];
      (window as unknown as { __seen: typeof seen }).__seen = seen;
      new MutationObserver(() =>
        seen.push({
          heat: document.querySelector('[data-testid="expert-heatmap"]')?.getAttribute('data-version') ?? null,
          tokens: document.querySelectorAll('[data-testid="token-strip"] [data-index]').length,
        }),
      ).observe(document.body, { childList: true, subtree: true, attributes: true });
    });
    baseRun = await runPrompt('Streaming routing, token after token', 600);
    const seen = await page.evaluate(() => (window as unknown as { __seen: { heat: string | null; tokens: number }[] }).__seen);
    const final = await play().locator('[data-testid="token-strip"] [data-index]').count();
    const heatVersions = new Set(seen.map((s) => s.heat).filter((v) => v !== null));
    const partialTokens = new Set(seen.map((s) => s.tokens).filter((n) => n > 0 && n < final));
    assert.ok(heatVersions.size >= 3, `heatmap redrawn ${heatVersions.size} times during the run`);
    assert.ok(partialTokens.size >= 3, `token strip grew in ${partialTokens.size} steps`);
    routing = await stored(baseRun);
    k = routing[0]!.ids.length / routing[0]!.h.length;
    // The routing grid followed the run to its last row, the final batch included.
    const grid = await page.locator('.viz-grid-scroller').evaluate((el) => ({ top: el.scrollTop, max: el.scrollHeight - el.clientHeight }));
    assert.ok(grid.max > 0 && grid.top >= grid.max - 1, `grid scrolled to ${grid.top} of ${grid.max}`);
    // So did the token strip, once its text outgrew its box (its last frame drawn).
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="playground"] [data-testid="token-strip"] [data-index]').length >= n, routing.length, { timeout: 10_000 });
    const strip = await play().locator('[data-testid="token-strip"] .viz-tokens').evaluate((el) => ({ top: el.scrollTop, max: el.scrollHeight - el.clientHeight }));
    assert.ok(strip.max > 0 && strip.top >= strip.max - 1, `token strip scrolled to ${strip.top} of ${strip.max}`);
  });

  it('hovering a token shows exactly the stored routing at every layer', async () => {
    const heatTop = async () => (await play().locator('[data-testid="expert-heatmap"]').boundingBox())!.y;
    const positions: number[] = [];
    for (const index of [3, 40, 321]) {
      await play().locator(`[data-testid="token-strip"] [data-index="${index}"]`).first().hover();
      const panel = play().locator(`[data-testid="token-details"][data-index="${index}"]`).first();
      await panel.waitFor();
      const r = routing.find((x) => x.index === index)!;
      const rows = panel.locator('tr[data-layer]');
      assert.equal(await rows.count(), r.h.length);
      for (let m = 0; m < r.h.length; m++) {
        const shown = await rows.nth(m).locator('[data-expert]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-expert'))));
        assert.deepEqual(shown, r.ids.slice(m * k, (m + 1) * k), `token ${index} layer ${m}`);
        const text = await rows.nth(m).innerText();
        for (let j = 0; j < k; j++) assert.ok(text.includes(r.w[m * k + j]!.toFixed(2)) || text.includes(r.w[m * k + j]!.toFixed(3)), `weight ${r.w[m * k + j]} in "${text}"`);
      }
      assert.equal(await panel.getByTestId('weight-sum').count(), 0, 'weights that sum to 1 need no note');
      positions.push(await heatTop());
      await page.mouse.move(5, 5);
      positions.push(await heatTop());
    }
    // The details panel keeps its height: the views below stay put as the pointer comes and goes.
    assert.equal(new Set(positions).size, 1, `heatmap top at ${positions.join(', ')}`);
  });

  it('the keyboard reaches every token of the strip: arrows pin the next one and show its routing, Esc unpins', async () => {
    const strip = play().locator('[data-testid="token-strip"] .viz-tokens');
    await strip.focus();
    await page.keyboard.press('Home');
    await play().locator('[data-testid="token-details"][data-index="0"]').waitFor();
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    await play().locator('[data-testid="token-details"][data-index="2"]').waitFor();
    assert.equal(await play().locator('[data-testid="token-strip"] .viz-tok-pinned').getAttribute('data-index'), '2');
    await page.keyboard.press('Escape');
    assert.equal(await play().locator('[data-testid="token-strip"] .viz-tok-pinned').count(), 0);
  });

  it('the keyboard reaches every heatmap and co-activation cell: arrows show a cell as hovering does', async () => {
    const heat = play().locator('[data-testid="expert-heatmap-canvas"]').first();
    await heat.focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    await play().getByTestId('heatmap-details').filter({ hasText: /^L0 · e2/ }).waitFor({ timeout: 5_000 });
    const co = play().locator('[data-testid="coactivation-canvas"]').first();
    await co.focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowRight');
    await play().getByTestId('coactivation-details').filter({ hasText: /P\(e1 \| e1\)|N\(e1\)|e1 was never chosen/ }).waitFor({ timeout: 5_000 });
  });

  it('a character split over tokens reads whole in the strip: the token that only starts it is an empty box', async () => {
    await runPrompt('Москва — столица', 2);
    // The strip draws on the next animation frame after the run's last event.
    const strip = '[data-testid="playground"] [data-testid="token-strip"] .viz-tokens';
    await page.waitForFunction((sel) => (document.querySelector(sel)?.textContent ?? '').startsWith('Москва'), strip, { timeout: 10_000 }).catch(() => {});
    const tokens = play().locator('[data-testid="token-strip"] [data-index]');
    const text = (await tokens.allTextContents()).join('');
    // The prompt reads as typed (a random model's own bytes after it may be invalid UTF-8).
    assert.ok(text.startsWith('Москва — столица'), text);
    assert.ok((await play().locator('[data-testid="token-strip"] .viz-tok-partial').count()) > 0, 'the tokenizer splits these characters');
  });

  it('marks the experts a load-balancing bias chose, and names those it displaced (DeepSeek-V3)', async () => {
    const runId = await runPrompt('The bias moves experts around.', 40, '', basename(deepseek));
    const events = await stored(runId);
    const kd = events[0]!.ids.length / events[0]!.h.length;
    // The first (position, layer) where the bias changed the chosen set.
    let found: { index: number; layer: number; added: number[]; dropped: number[] } | null = null;
    for (const r of events) {
      assert.ok(r.ub, 'a router with a bias reports its unbiased choice');
      for (let m = 0; m < r.h.length && !found; m++) {
        const ids = r.ids.slice(m * kd, (m + 1) * kd);
        const without = r.ub.slice(m * kd, (m + 1) * kd);
        const added = ids.filter((e) => !without.includes(e));
        if (added.length > 0) found = { index: r.index, layer: m, added, dropped: without.filter((e) => !ids.includes(e)) };
      }
      if (found) break;
    }
    assert.ok(found, 'the fixture bias changes some choice within 40 tokens');
    await play().locator(`[data-testid="token-strip"] [data-index="${found.index}"]`).first().hover();
    const row = play().locator(`[data-testid="token-details"][data-index="${found.index}"] tr[data-layer="${found.layer}"]`).first();
    await row.waitFor();
    const biased = await row.locator('.viz-chip-biased').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-expert'))));
    assert.deepEqual(biased.sort(), [...found.added].sort());
    assert.equal(await row.getByTestId('bias-note').innerText(), `bias: without it ${found.dropped.map((e) => `e${e}`).join(', ')}`);
    // Its gate weights sum to routed_scaling_factor (2.5 in the fixture), and the row says so.
    assert.equal(await row.getByTestId('weight-sum').innerText(), 'Σ 2.50');
  });

  /** Hovers the heatmap cell (layer, expert) and returns its details line. */
  async function heatmapCell(layer: number, expert: number, layers: number, experts: number): Promise<string> {
    // Leave any token first: its hover panel collapses, which moves everything below it.
    await page.mouse.move(1, 1);
    await play().locator('[data-testid="token-details"][data-index]').waitFor({ state: 'detached' }).catch(() => {});
    const canvas = play().locator('[data-testid="expert-heatmap-canvas"]').first();
    await canvas.scrollIntoViewIfNeeded();
    const box = (await canvas.boundingBox())!;
    await page.mouse.move(box.x + ((expert + 0.5) * box.width) / experts, box.y + ((layer + 0.5) * box.height) / layers);
    const details = play().locator('[data-testid="heatmap-details"]').first();
    await details.filter({ hasText: `e${expert}:` }).waitFor({ timeout: 5000 }).catch(async (e) => {
      await page.screenshot({ path: join(ARTIFACTS, 'heatmap-failure.png') });
      throw new Error(`${String(e)} box=${JSON.stringify(box)} details=${await details.innerText()}`);
    });
    return details.innerText();
  }

  it('banning an expert removes it from the heatmap of every layer', async () => {
    const L = routing[0]!.h.length;
    const E = 8;
    const counts = Array.from({ length: E }, (_, e) => routing.filter((r) => r.ids.slice(0, k).includes(e)).length);
    const banned = counts.indexOf(Math.max(...counts));
    const before = await heatmapCell(0, banned, L, E);
    assert.match(before, new RegExp(`e${banned}: [1-9]\\d* selections`), before);
    const bannedRun = await runPrompt('Streaming routing, token after token', 300, `*:${banned}`);
    const stored2 = await stored(bannedRun);
    assert.ok(stored2.every((r) => !r.ids.includes(banned)));
    for (let l = 0; l < L; l++) assert.match(await heatmapCell(l, banned, L, E), new RegExp(`e${banned}: 0 selections`));
    // The other experts are still used.
    assert.match(await heatmapCell(0, (banned + 1) % E, L, E), /selections/);
  });

  it('refuses to run while a number field holds an invalid value, instead of running the last valid one', async () => {
    const k = play().getByLabel('experts/token');
    await k.fill('0');
    assert.equal(await k.getAttribute('aria-invalid'), 'true');
    const before = await page.locator('.run-view').getAttribute('data-run-id');
    await play().getByRole('button', { name: 'run cell' }).click();
    await page.locator('p.error', { hasText: /experts\/token .*: correct the marked field to run/ }).waitFor();
    assert.equal(await page.locator('.run-view').getAttribute('data-run-id'), before, 'no run started');
    await k.fill('');
    assert.equal(await k.getAttribute('aria-invalid'), 'false');
  });

  it('a prompt written as token ids runs as those ids (checkpoints without a tokenizer)', async () => {
    const runId = await runPrompt('ids: 5, 6, 7, 8', 3);
    const body = (await (await page.request.get(`${app.url}/api/runs/${runId}`)).json()) as { run: { params: { promptIds?: number[]; prompt?: string } } };
    assert.deepEqual(body.run.params.promptIds, [5, 6, 7, 8]);
    assert.equal(body.run.params.prompt, undefined);
  });

  it('a reload in the middle of a run shows it again, with its settings, and follows it to the end', async () => {
    await play().getByLabel('model').selectOption('tiny-random');
    await play().getByLabel('prompt').fill('Reload me while I stream');
    await play().getByLabel('max tokens').fill('900');
    await play().getByLabel('ban').fill('*:5');
    // The address bar holds the previous run until this one is accepted.
    const previous = new URL(page.url()).searchParams.get('run');
    await play().getByRole('button', { name: 'run cell' }).click();
    await page.waitForURL((u) => u.pathname === '/playground' && u.searchParams.get('run') !== null && u.searchParams.get('run') !== previous);
    const runId = new URL(page.url()).searchParams.get('run')!;
    await play().locator('[data-testid="token-strip"] [data-index="20"]').waitFor();
    await page.reload();
    await play().locator(`.run-view[data-run-id="${runId}"]`).waitFor().catch(async (e) => {
      await page.screenshot({ path: join(ARTIFACTS, 'reload-failure.png'), fullPage: true });
      throw new Error(`${String(e)}\npage says: ${await play().innerText()}`);
    });
    assert.equal(await play().getByLabel('prompt').inputValue(), 'Reload me while I stream');
    assert.equal(await play().getByLabel('max tokens').inputValue(), '900');
    assert.equal(await play().getByLabel('ban').inputValue(), '*:5');
    await play().locator('[data-testid="run-summary"]', { hasText: 'length' }).waitFor({ timeout: 60_000 });
    const events = await stored(runId);
    // The strip's last frame follows the run's last event.
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="playground"] [data-testid="token-strip"] [data-index]').length >= n, events.length, { timeout: 10_000 }).catch(() => {});
    assert.equal(await play().locator('[data-testid="token-strip"] [data-index]').count(), events.length, 'every position shown');
    await play().getByLabel('ban').fill('');
  });

  it('writes a screenshot of each view', async () => {
    for (const id of ['token-strip', 'expert-heatmap', 'routing-grid', 'latency-summary', 'coactivation-details']) {
      const el = play().locator(`[data-testid="${id}"]`).first();
      await el.waitFor();
      const view = el.locator('xpath=ancestor-or-self::*[contains(@class,"viz-view") or contains(@class,"viz-root")][1]');
      await ((await view.count()) ? view.first() : el).screenshot({ path: join(ARTIFACTS, `view-${id}.png`) });
    }
    await page.screenshot({ path: join(ARTIFACTS, 'playground-views.png'), fullPage: true });
    // Every matrix names its experts without hovering: axes on the co-activation matrix, a colour
    // legend on the routing grid.
    const labels = (sel: string) => play().locator(sel).allTextContents();
    assert.equal((await labels('[data-testid="coactivation"] .viz-axis span'))[0], 'e0');
    assert.deepEqual((await labels('[data-testid="coactivation"] .viz-axis-y span')).slice(0, 2), ['e0', 'e1']);
    assert.deepEqual((await labels('[data-testid="grid-legend"] [data-expert]')).slice(0, 3), ['e0', 'e1', 'e2']);
    // The share scale ends at the most one expert can hold, 1/k = 50 % at top-2 of 8, not at 100 %.
    await play().getByTestId('heatmap-mode-share').click();
    await play().getByTestId('heatmap-legend').filter({ hasText: /≥50\.0 ?%/ }).waitFor({ timeout: 5_000 });
    assert.match(await play().getByTestId('heatmap-legend').innerText(), /≤3\.1 ?%[\s\S]*≥50\.0 ?%/);
  });

  it('compares two runs side by side in a notebook viz cell', async () => {
    // The two latest runs of one model (different prompts and lengths), so both parts of the view show.
    const runs = (await (await page.request.get(`${app.url}/api/runs`)).json()) as { runs: { id: string; modelId: string }[] };
    const [b, a] = runs.runs.filter((r) => r.modelId === 'tiny-random').map((r) => r.id);
    const nb = {
      nbformat: 4,
      nbformat_minor: 5,
      metadata: { moelab: { format_version: 1, app_version: '0.1.0', model: null } },
      cells: [{ id: 'cmp', cell_type: 'code', source: '', execution_count: null, outputs: [], metadata: { moelab: { kind: 'viz', view: 'compare', source: { runId: a }, sourceB: { runId: b }, options: {} } } }],
    };
    const res = await page.request.post(`${app.url}/api/notebooks/compare.moenb`, { data: JSON.stringify(nb), headers: { 'Content-Type': 'application/json' } });
    assert.equal(res.status(), 201);
    await page.goto(`${app.url}/notebook?path=compare.moenb`);
    const cmp = page.locator('[data-testid="run-compare"]').first();
    await cmp.waitFor().catch(async (e) => {
      await page.screenshot({ path: join(ARTIFACTS, 'compare-failure.png'), fullPage: true });
      throw e;
    });
    // Until run B has loaded the summary asks for a second run; then it reports the comparison.
    await page.locator('[data-testid="compare-summary"]', { hasText: /\d/ }).first().waitFor({ timeout: 30_000 });
    assert.match(await page.locator('[data-testid="compare-summary"]').first().innerText(), /positions differ/);
    assert.equal((await cmp.locator('.viz-compare-util .viz-axis span').allTextContents())[0], 'e0', 'the difference matrix names its experts');
    // Runs of different lengths: a position only one run has stays on that run's line.
    const offset = (sel: string) => cmp.locator(sel).evaluateAll((els) => els.map((e) => e.getBoundingClientRect().top - e.parentElement!.getBoundingClientRect().top));
    const [onlyA, onlyB, both] = [await offset('[data-diff="only-a"] .viz-diff-a'), await offset('[data-diff="only-b"] .viz-diff-b'), await offset('[data-diff="different"] .viz-diff-b')];
    assert.ok(onlyA.length + onlyB.length > 0 && both.length > 0, 'the two runs differ in length');
    assert.ok(onlyA.every((y) => y < 2), `A-only tokens on the top line (${onlyA.join(', ')})`);
    assert.ok(onlyB.every((y) => y > 5 && Math.abs(y - both[0]!) < 1), `B-only tokens on B's line (${onlyB.join(', ')}; B's line at ${both[0]})`);
    await cmp.screenshot({ path: join(ARTIFACTS, 'view-compare.png') });
  });

  it('says why two runs of differently shaped models have no expert-share comparison', async () => {
    const list = (await (await page.request.get(`${app.url}/api/runs`)).json()) as { runs: { id: string; modelId: string }[] };
    const tiny = list.runs.find((r) => r.modelId === 'tiny-random')!.id;
    const ds = list.runs.find((r) => r.modelId !== 'tiny-random')!.id;
    const nb = {
      nbformat: 4,
      nbformat_minor: 5,
      metadata: { moelab: { format_version: 1, app_version: '0.1.0', model: null } },
      cells: [{ id: 'cmp2', cell_type: 'code', source: '', execution_count: null, outputs: [], metadata: { moelab: { kind: 'viz', view: 'compare', source: { runId: tiny }, sourceB: { runId: ds }, options: {} } } }],
    };
    const res = await page.request.post(`${app.url}/api/notebooks/compare-shapes.moenb`, { data: JSON.stringify(nb), headers: { 'Content-Type': 'application/json' } });
    assert.equal(res.status(), 201);
    await page.goto(`${app.url}/notebook?path=compare-shapes.moenb`);
    const summary = page.locator('[data-testid="compare-summary"]', { hasText: /positions differ/ }).first();
    await summary.waitFor({ timeout: 30_000 });
    assert.match(await summary.innerText(), /no expert-share comparison: A has 4 layers × 8 experts, B \d+ layers × \d+ experts/);
  });
});
