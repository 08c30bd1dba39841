/**
 * Expert utilization heatmap: MoE layer × expert, live while a run streams. Reads RunData's running
 * per-layer counts (kept up to date as routing arrives), so a redraw costs O(L × E) however long the
 * trace. Count mode uses a sequential scale; share mode a diverging one centred on the uniform share
 * 1/E, so "fair load" is the neutral middle and over- and under-used experts stand out. Each row ends
 * with its load statistics as text.
 */
import { el, expertTicks, Listeners, setText } from './dom';
import { formatNum, formatPct } from './format';
import { matrixGeometry } from './layout';
import { MatrixCanvas } from './matrix-canvas';
import { packRgba, toCss } from './color';
import { THEME } from './palette';
import { RampLegend } from './ramp-legend';
import { divergingRamp, rampIndex, sequentialRamp, shareToDiverging } from './ramps';
import { frameScheduler, type Renderer } from './renderer';
import type { RunData } from './run-data';
import { loadStats, type LoadStats } from './stats';

export type HeatmapMode = 'count' | 'share';

export interface HeatmapProps {
  readonly data: RunData;
  readonly mode?: HeatmapMode;
  readonly onModeChange?: (mode: HeatmapMode) => void;
  /** Height of one layer row in CSS pixels. */
  readonly rowHeight?: number;
}

export interface DrawnCounts {
  readonly layers: number;
  readonly experts: number;
  /** [L × E] counts as of the last draw (a copy). */
  readonly counts: Uint32Array;
  readonly mode: HeatmapMode;
  readonly version: number;
}

export interface HeatmapRenderer extends Renderer<HeatmapProps> {
  redraw(): void;
  drawnCounts(): DrawnCounts;
  /** Load statistics per layer as of the last draw. */
  drawnStats(): readonly LoadStats[];
}

const LABEL_WIDTH = 44;
const STATS_WIDTH = 220;
const EMPTY = packRgba(THEME.panel);
const SHARE_OCTAVES = 3;

export function createHeatmap(container: HTMLElement, initial: HeatmapProps): HeatmapRenderer {
  let props = initial;
  let mode: HeatmapMode = initial.mode ?? 'share';
  let unsubscribe: (() => void) | null = null;
  let drawn = { data: null as RunData | null, version: -1, mode, width: -1, hover: '' };
  let snapshot: DrawnCounts = { layers: 0, experts: 0, counts: new Uint32Array(0), mode, version: -1 };
  let stats: LoadStats[] = [];
  let hovered: { row: number; col: number } | null = null;
  let width = 0;
  const listeners = new Listeners();

  const root = el('div', { className: 'viz viz-heatmap', testId: 'expert-heatmap' }, container);
  const toolbar = el('div', { className: 'viz-toolbar' }, root);
  const toggle = el('div', { className: 'viz-toggle', attrs: { role: 'group', 'aria-label': 'value' } }, toolbar);
  const countBtn = el('button', { text: 'count', testId: 'heatmap-mode-count', attrs: { type: 'button' } }, toggle);
  const shareBtn = el('button', { text: 'share', testId: 'heatmap-mode-share', attrs: { type: 'button' } }, toggle);
  const legend = new RampLegend(toolbar, 'heatmap-legend');
  const info = el('span', { className: 'viz-muted' }, toolbar);
  const body = el('div', { className: 'viz-heatmap-body' }, root);
  const labels = el('div', { className: 'viz-row-labels' }, body);
  const matrixWrap = el('div', { className: 'viz-matrix-wrap' }, body);
  // The expert axis sits above the matrix, in the row the label and stats columns use for headers.
  const axis = el('div', { className: 'viz-axis viz-muted' }, matrixWrap);
  const matrix = new MatrixCanvas(matrixWrap, 'expert-heatmap-canvas', EMPTY);
  const statsCol = el('div', { className: 'viz-row-stats', testId: 'heatmap-stats' }, body);
  const details = el('div', { className: 'viz-details-line', testId: 'heatmap-details', attrs: { 'aria-live': 'polite' } }, root);
  setText(details, 'Hover a cell for its count and share.');

  const scheduler = frameScheduler(() => draw(false));

  function watch(data: RunData): void {
    unsubscribe?.();
    unsubscribe = data.subscribe(() => scheduler.schedule());
  }

  function setMode(m: HeatmapMode, notify: boolean): void {
    if (m === mode) return;
    mode = m;
    if (notify) props.onModeChange?.(m);
    scheduler.schedule();
  }

  function syncRows(data: RunData, rowHeight: number): void {
    const L = data.numLayers;
    if (labels.childElementCount !== L + 1 || statsCol.childElementCount !== L + 1) {
      labels.replaceChildren(el('div', { className: 'viz-row viz-muted', text: 'layer' }), ...Array.from({ length: L }, (_, l) => el('div', { className: 'viz-row', text: data.layerLabel(l), attrs: { 'data-layer': String(l) } })));
      statsCol.replaceChildren(
        el('div', { className: 'viz-row viz-muted', text: 'CV · max/mean · H', attrs: { title: 'coefficient of variation of the counts (population std / mean), busiest expert over the mean, entropy of the shares normalised by log2 E (1 = uniform)' } }),
        ...Array.from({ length: L }, (_, l) => el('div', { className: 'viz-row viz-num', attrs: { 'data-layer': String(l) } })),
      );
    }
    const h = `${rowHeight}px`;
    for (const col of [labels, statsCol]) for (const r of Array.from(col.children) as HTMLElement[]) if (r.style.height !== h) r.style.height = r.style.lineHeight = h;
  }

  function draw(force: boolean): void {
    const data = props.data;
    const w = width || root.clientWidth || 760;
    const hover = hovered ? `${hovered.row},${hovered.col}` : '';
    if (!force && drawn.data === data && drawn.version === data.version && drawn.mode === mode && drawn.width === w && drawn.hover === hover) return;
    const L = data.numLayers;
    const E = data.numExperts;
    const rowHeight = props.rowHeight ?? 16;
    const geom = matrixGeometry(L, E, Math.max(E * 2, w - LABEL_WIDTH - STATS_WIDTH - 24), { minCell: 2, maxCell: 20, cellHeight: rowHeight });
    syncRows(data, rowHeight);

    const counts = data.counts;
    stats = loadStats(counts, L, E);
    let max = 0;
    for (let i = 0; i < L * E; i++) if (counts[i]! > max) max = counts[i]!;
    const seq = sequentialRamp().pixels;
    const div = divergingRamp().pixels;
    // An expert chosen at every position holds 1/k of the selections: the scale ends there (two
    // octaves above 1/E for k = 2 of 8), not at a share no expert can reach.
    const octaves = Math.max(1, Math.min(SHARE_OCTAVES, Math.log2(E / Math.max(1, data.topK))));
    matrix.paint(geom, (l, e) => {
      const total = stats[l]!.total;
      if (total === 0) return EMPTY;
      const c = counts[l * E + e]!;
      return mode === 'count' ? seq[rampIndex(max > 0 ? c / max : 0)]! : div[rampIndex(shareToDiverging(c / total, E, octaves))]!;
    });
    matrix.outline(hovered, toCss(THEME.text));

    for (let l = 0; l < L; l++) {
      const s = stats[l]!;
      const row = statsCol.children[l + 1];
      if (row) setText(row, s.total === 0 ? '–' : `${formatNum(s.cv)} · ${formatNum(s.maxOverMean)} · ${formatNum(s.normalizedEntropy)}`);
    }
    axis.style.width = `${geom.width}px`;
    axis.style.height = axis.style.lineHeight = `${rowHeight}px`;
    axis.style.overflow = 'hidden';
    expertTicks(axis, E, geom.cellWidth, geom.width, 'x');

    const uniform = E > 0 ? 1 / E : 0;
    if (mode === 'share') {
      legend.set(divergingRamp(), [
        { at: 0, label: `≤${formatPct(uniform / 2 ** octaves)}` },
        { at: 0.5, label: `1/E = ${formatPct(uniform)}`, strong: true },
        { at: 1, label: `≥${formatPct(Math.min(1, uniform * 2 ** octaves))}` },
      ], 'share of the layer’s selections; the middle colour is the uniform share 1/E');
    } else {
      const fair = stats[0] && E > 0 ? stats[0].total / E : 0;
      legend.set(sequentialRamp(), [
        { at: 0, label: '0' },
        ...(max > 0 && fair > 0 ? [{ at: fair / max, label: `uniform ${formatNum(fair, 0)}`, strong: true }] : []),
        { at: 1, label: String(max) },
      ], 'selections per expert; the marked tick is the uniform count (routed tokens × k / E)');
    }
    countBtn.setAttribute('aria-pressed', String(mode === 'count'));
    shareBtn.setAttribute('aria-pressed', String(mode === 'share'));
    root.dataset.mode = mode;
    setText(info, `${data.routedCount} routed tokens · ${L} layers × ${E} experts · top-${data.topK}`);
    if (hovered) describe(hovered.row, hovered.col);

    root.dataset.version = String(data.version);
    snapshot = { layers: L, experts: E, counts: counts.slice(0, L * E), mode, version: data.version };
    drawn = { data, version: data.version, mode, width: w, hover };
  }

  function describe(l: number, e: number): void {
    const data = props.data;
    const s = stats[l];
    if (!s) return;
    const c = data.counts[l * data.numExperts + e] ?? 0;
    const share = s.total > 0 ? c / s.total : 0;
    setText(details, `${data.layerLabel(l)} · e${e}: ${c} selections · ${formatPct(share, 2)} of the layer (${formatNum(share * data.numExperts)}× uniform)`);
  }

  listeners.on(countBtn, 'click', () => setMode('count', true));
  listeners.on(shareBtn, 'click', () => setMode('share', true));
  listeners.on(matrix.canvas, 'mousemove', (ev) => {
    const c = matrix.cellAt(ev);
    if (c?.row === hovered?.row && c?.col === hovered?.col) return;
    hovered = c;
    if (c) describe(c.row, c.col);
    scheduler.schedule();
  });
  listeners.on(matrix.canvas, 'mouseleave', () => {
    hovered = null;
    scheduler.schedule();
  });
  matrix.onKeys(listeners, () => hovered, (c) => {
    hovered = c;
    if (c) describe(c.row, c.col);
    scheduler.schedule();
  });
  width = listeners.onWidthChange(root, (w) => {
    width = w;
    scheduler.schedule();
  });
  watch(initial.data);
  draw(true);

  return {
    update(next) {
      if (next.data !== props.data) watch(next.data);
      if (next.mode && next.mode !== props.mode) mode = next.mode;
      props = next;
      scheduler.schedule();
    },
    redraw: () => draw(true),
    drawnCounts: () => snapshot,
    drawnStats: () => stats,
    destroy() {
      scheduler.cancel();
      unsubscribe?.();
      listeners.removeAll();
      root.remove();
    },
  };
}
