/**
 * Browser benchmark of the two views that must stay fast on long runs: full redraws of the routing
 * grid and the utilization heatmap on a synthetic 4,096 × 16 × 64 (top-8) trace, and how many
 * routing events per second the heatmap absorbs when they stream in, batched per animation frame
 * as the protocol delivers them. A page bundles this and prints the result.
 */
import type { RunEvent } from '../../server/protocol';
import { createHeatmap } from './heatmap';
import { createRoutingGrid } from './routing-grid';
import { RunData } from './run-data';
import { median } from './stats';
import { syntheticTrace } from './synthetic';

export interface VizBenchmarkOptions {
  readonly tokens?: number;
  readonly layers?: number;
  readonly experts?: number;
  readonly topK?: number;
  readonly seed?: number;
  /** Forced redraws timed per view (after three untimed warm-up draws). */
  readonly redraws?: number;
  /** Routing events appended per animation frame in the streaming test. */
  readonly eventsPerFrame?: number;
  /** Size of the views, CSS pixels. */
  readonly width?: number;
  readonly gridHeight?: number;
}

export interface VizBenchmarkResult {
  /** One full redraw of the grid's visible rows each, at scroll positions spread over the trace. */
  gridRedrawMs: number[];
  /** One full redraw of the heatmap (matrix, stats, legend) each. */
  heatmapRedrawMs: number[];
  /** Routing events per second streamed through RunData into the live heatmap, by wall clock. */
  heatmapEventsPerSecond: number;
  /** The same path's CPU-bound ceiling: events / (time in append + median redraw per frame). */
  heatmapCapacityEventsPerSecond: number;
  /** Most routing events the heatmap's drawn counts ever trailed the data by (one frame's worth = keeping up). */
  heatmapMaxLagEvents: number;
  /** The heatmap drew exactly the final counts. */
  heatmapFinalCountsMatch: boolean;
  gridTopkRedrawMs: number[];
  trace: { tokens: number; layers: number; experts: number; topK: number; events: number; routingEvents: number };
  medians: { gridRedrawMs: number; gridTopkRedrawMs: number; heatmapRedrawMs: number };
}

const nextFrame = () => new Promise<number>((resolve) => requestAnimationFrame(resolve));

export async function runVizBenchmark(container: HTMLElement, opts: VizBenchmarkOptions = {}): Promise<VizBenchmarkResult> {
  const tokens = opts.tokens ?? 4096;
  const layers = opts.layers ?? 16;
  const experts = opts.experts ?? 64;
  const topK = opts.topK ?? 8;
  const redraws = opts.redraws ?? 60;
  const perFrame = opts.eventsPerFrame ?? 16;
  const width = opts.width ?? 1000;
  const events = syntheticTrace({ tokens, layers, experts, topK, seed: opts.seed ?? 1 });
  const full = RunData.fromEvents(events);

  const host = (testId: string) => {
    const d = document.createElement('div');
    d.dataset.testid = testId;
    d.style.width = `${width}px`;
    container.appendChild(d);
    return d;
  };

  // Routing grid: every redraw at a different scroll position, as while scrolling through the run.
  const gridHost = host('bench-grid');
  const grid = createRoutingGrid(gridHost, { data: full, height: opts.gridHeight ?? 600, follow: false });
  await nextFrame();
  const timeGrid = async (mode: 'top1' | 'topk'): Promise<number[]> => {
    grid.update({ data: full, height: opts.gridHeight ?? 600, follow: false, mode });
    await nextFrame();
    // Untimed warm-up: first draws pay for JIT compilation and the ImageData allocation.
    for (let i = 0; i < 3; i++) grid.redraw();
    const out: number[] = [];
    for (let i = 0; i < redraws; i++) {
      grid.scrollToRow(Math.floor((i / Math.max(1, redraws - 1)) * (tokens - 1)));
      const t0 = performance.now();
      grid.redraw();
      out.push(performance.now() - t0);
      if (i % 10 === 9) await nextFrame();
    }
    return out;
  };
  const gridRedrawMs = await timeGrid('top1');
  const gridTopkRedrawMs = await timeGrid('topk');
  grid.destroy();
  gridHost.remove();

  const heatHost = host('bench-heatmap');
  const heat = createHeatmap(heatHost, { data: full, mode: 'share' });
  await nextFrame();
  for (let i = 0; i < 3; i++) heat.redraw();
  const heatmapRedrawMs: number[] = [];
  for (let i = 0; i < redraws; i++) {
    const t0 = performance.now();
    heat.redraw();
    heatmapRedrawMs.push(performance.now() - t0);
    if (i % 10 === 9) await nextFrame();
  }
  heat.destroy();

  // Streaming: the events in their real order, `perFrame` routing events (and whatever token and
  // timing events lie between them) per animation frame; the heatmap redraws on its own frame callback.
  const live = new RunData();
  const liveHeat = createHeatmap(heatHost, { data: live, mode: 'share' });
  const batches: RunEvent[][] = [];
  let batch: RunEvent[] = [];
  let routingInBatch = 0;
  let routingEvents = 0;
  for (const e of events) {
    batch.push(e);
    if (e.t === 'routing') {
      routingEvents++;
      if (++routingInBatch === perFrame) {
        batches.push(batch);
        batch = [];
        routingInBatch = 0;
      }
    }
  }
  if (batch.length > 0) batches.push(batch);
  await nextFrame();
  let appendMs = 0;
  let maxLag = 0;
  const drawnRouted = () => {
    const d = liveHeat.drawnCounts();
    let s = 0;
    for (let e = 0; e < d.experts; e++) s += d.counts[e]!;
    return d.layers > 0 && live.topK > 0 ? s / live.topK : 0;
  };
  const start = performance.now();
  for (const b of batches) {
    await nextFrame();
    maxLag = Math.max(maxLag, live.routedCount - drawnRouted());
    const t0 = performance.now();
    live.append(b);
    appendMs += performance.now() - t0;
  }
  // The last batch is drawn on the frame after it was appended.
  await nextFrame();
  await nextFrame();
  const elapsed = performance.now() - start;
  const final = liveHeat.drawnCounts();
  const heatmapFinalCountsMatch = final.version === live.version && final.counts.length === live.counts.length && final.counts.every((c, i) => c === live.counts[i]);
  liveHeat.destroy();
  heatHost.remove();

  const heatMedian = median(heatmapRedrawMs) ?? 0;
  const busyMs = appendMs + heatMedian * batches.length;
  return {
    gridRedrawMs,
    heatmapRedrawMs,
    heatmapEventsPerSecond: (routingEvents / elapsed) * 1000,
    heatmapCapacityEventsPerSecond: busyMs > 0 ? (routingEvents / busyMs) * 1000 : Infinity,
    heatmapMaxLagEvents: maxLag,
    heatmapFinalCountsMatch,
    gridTopkRedrawMs,
    trace: { tokens, layers, experts, topK, events: events.length, routingEvents },
    medians: { gridRedrawMs: median(gridRedrawMs) ?? 0, gridTopkRedrawMs: median(gridTopkRedrawMs) ?? 0, heatmapRedrawMs: heatMedian },
  };
}
