/**
 * `npm run bench:ui` — redraw time of the routing grid and the expert heatmap on a synthetic trace
 * of 4,096 tokens × 16 layers × 64 experts (top-8), and how many routing events per second the
 * heatmap keeps up with, measured in Debian's Chromium (headless). Targets: ≤ 16 ms per redraw,
 * ≥ 200 routing events per second.
 */
import { build } from 'esbuild';
import { join } from 'node:path';
import { launchBrowser } from '../helpers/app.ts';
import { REPO_ROOT } from '../helpers/fixtures.ts';

const bundle = await build({
  entryPoints: [join(REPO_ROOT, 'components', 'viz', 'bench-harness.ts')],
  bundle: true,
  format: 'iife',
  globalName: 'vizBench',
  write: false,
  platform: 'browser',
  target: 'es2022',
  logLevel: 'silent',
});
const script = bundle.outputFiles[0]!.text;

const browser = await launchBrowser();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  await page.setContent('<!doctype html><html><body style="margin:0;background:#0f1115"><div id="root" style="width:1200px"></div></body></html>');
  await page.addScriptTag({ content: script });
  const r = await page.evaluate(async () => {
    const w = window as unknown as { vizBench: { runVizBenchmark(el: HTMLElement): Promise<{ gridRedrawMs: number[]; heatmapRedrawMs: number[]; heatmapEventsPerSecond: number; heatmapMaxLagEvents: number }> } };
    return w.vizBench.runVizBenchmark(document.getElementById('root')!);
  });
  const stats = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
    return { median: q(0.5), p95: q(0.95), max: s[s.length - 1]! };
  };
  const g = stats(r.gridRedrawMs);
  const h = stats(r.heatmapRedrawMs);
  const line = (name: string, x: ReturnType<typeof stats>, n: number) =>
    console.log(`  ${name.padEnd(26)} median ${x.median.toFixed(2)} ms · p95 ${x.p95.toFixed(2)} ms · max ${x.max.toFixed(2)} ms over ${n} redraws  (target ≤ 16 ms: ${x.p95 <= 16 ? 'met' : 'missed'} at p95)`);
  console.log(`UI benchmark in Chromium ${browser.version()}: synthetic trace 4,096 tokens × 16 layers × 64 experts, top-8`);
  line('routing grid redraw', g, r.gridRedrawMs.length);
  line('expert heatmap redraw', h, r.heatmapRedrawMs.length);
  console.log(`  heatmap live updates        ${r.heatmapEventsPerSecond.toFixed(0)} routing events/s absorbed, never more than ${r.heatmapMaxLagEvents} events behind  (target ≥ 200/s: ${r.heatmapEventsPerSecond >= 200 ? 'met' : 'missed'})`);
} finally {
  await browser.close();
}
