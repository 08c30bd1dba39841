/**
 * Co-activation matrix of one MoE layer: cell (i, j) is P(j | i), the fraction of tokens routed to
 * expert i that were also routed to expert j, over every pair in each token's top-k. Rows are the
 * conditioning expert. The diagonal (P(i | i) = 1) is drawn as background so it does not set the
 * scale; rows of experts never chosen are left empty.
 */
import { packRgba, toCss } from './color';
import { el, expertTicks, layerSelect, Listeners, setText, syncOptions } from './dom';
import { formatWeight } from './format';
import { matrixGeometry } from './layout';
import { MatrixCanvas } from './matrix-canvas';
import { THEME } from './palette';
import { RampLegend } from './ramp-legend';
import { rampIndex, sequentialRamp } from './ramps';
import { frameScheduler, type Renderer } from './renderer';
import type { RunData } from './run-data';
import { coactivation, conditionalMatrix, type Coactivation } from './stats';

export interface CoactivationProps {
  readonly data: RunData;
  /** MoE layer (routing order); defaults to the first. */
  readonly layer?: number;
  readonly onLayerChange?: (layer: number) => void;
  /** Largest matrix side in CSS pixels. */
  readonly size?: number;
}

export interface CoactivationRenderer extends Renderer<CoactivationProps> {
  redraw(): void;
  /** The matrix as of the last draw (for tests). */
  drawn(): { layer: number; co: Coactivation; conditional: Float64Array } | null;
}

const EMPTY = packRgba(THEME.panel);
const DIAGONAL = packRgba(THEME.border);

export function createCoactivation(container: HTMLElement, initial: CoactivationProps): CoactivationRenderer {
  let props = initial;
  let layer = initial.layer ?? 0;
  let lastPropLayer = initial.layer;
  let unsubscribe: (() => void) | null = null;
  let computed = { data: null as RunData | null, version: -1, layer: -1 };
  let painted = '';
  let hovered: { row: number; col: number } | null = null;
  let result: { layer: number; co: Coactivation; conditional: Float64Array; scale: number } | null = null;
  const listeners = new Listeners();

  const root = el('div', { className: 'viz viz-coactivation', testId: 'coactivation' }, container);
  const toolbar = el('div', { className: 'viz-toolbar' }, root);
  const select = layerSelect(toolbar, 'coactivation-layer', 'layer');
  const legend = new RampLegend(toolbar, 'coactivation-legend');
  const info = el('span', { className: 'viz-muted' }, toolbar);
  el('div', { className: 'viz-muted viz-caption', text: 'row i = given expert i · column j = P(j | i)' }, root);
  const body = el('div', { className: 'viz-heatmap-body' }, root);
  // Row labels down the left, column labels across the top, as in a printed matrix.
  const rowAxis = el('div', { className: 'viz-axis-y viz-muted' }, body);
  const wrap = el('div', { className: 'viz-matrix-wrap' }, body);
  const colAxis = el('div', { className: 'viz-axis viz-muted' }, wrap);
  const matrix = new MatrixCanvas(wrap, 'coactivation-canvas', EMPTY);
  const details = el('div', { className: 'viz-details-line', testId: 'coactivation-details', attrs: { 'aria-live': 'polite' } }, root);
  setText(details, 'Hover a cell for P(j | i) and its counts.');

  const scheduler = frameScheduler(() => draw(false));

  function watch(data: RunData): void {
    unsubscribe?.();
    unsubscribe = data.subscribe(() => scheduler.schedule());
  }

  function draw(force: boolean): void {
    const data = props.data;
    if (layer >= data.numLayers) layer = Math.max(0, data.numLayers - 1);
    const stale = computed.data !== data || computed.version !== data.version || computed.layer !== layer;
    const paintKey = `${props.size}|${hovered?.row},${hovered?.col}`;
    if (!force && !stale && paintKey === painted) return;
    painted = paintKey;
    syncOptions(select, Array.from({ length: data.numLayers }, (_, l) => data.layerLabel(l)), layer);
    const E = data.numExperts;
    if (stale || !result) {
      // O(T × k²) per layer: recomputed per frame only while the run changes, which is cheap next
      // to drawing; it is not kept incrementally because the layer can change at any time.
      const co = coactivation(data.routingIds, data.length, data.numLayers, data.topK, E, layer);
      const conditional = conditionalMatrix(co);
      let scale = 0;
      for (let i = 0; i < E; i++) for (let j = 0; j < E; j++) if (i !== j && conditional[i * E + j]! > scale) scale = conditional[i * E + j]!;
      result = { layer, co, conditional, scale };
      computed = { data, version: data.version, layer };
    }
    const r = result!;
    const geom = matrixGeometry(E, E, props.size ?? 448, { minCell: 2, maxCell: 14 });
    const ramp = sequentialRamp().pixels;
    const scale = r.scale > 0 ? r.scale : 1;
    matrix.paint(geom, (i, j) => {
      if (i === j) return DIAGONAL;
      const v = r.conditional[i * E + j]!;
      return Number.isNaN(v) ? EMPTY : ramp[rampIndex(v / scale)]!;
    });
    matrix.outline(hovered, toCss(THEME.text));
    colAxis.style.width = `${geom.width}px`;
    colAxis.style.overflow = 'hidden';
    expertTicks(colAxis, E, geom.cellWidth, geom.width, 'x');
    rowAxis.style.height = `${geom.height}px`;
    rowAxis.style.marginTop = `${colAxis.offsetHeight}px`;
    expertTicks(rowAxis, E, geom.cellHeight, geom.height, 'y');
    legend.set(sequentialRamp(), [{ at: 0, label: '0' }, { at: 1, label: formatWeight(scale) }], 'P(j | i); the scale ends at the largest off-diagonal value');
    setText(info, `${r.co.tokens} routed tokens at ${data.layerLabel(layer)}`);
    root.dataset.version = String(data.version);
    if (hovered) describe(hovered.row, hovered.col);
  }

  function describe(i: number, j: number): void {
    const r = result;
    if (!r) return;
    const E = r.co.experts;
    const ni = r.co.single[i]!;
    const nij = i === j ? ni : r.co.pair[i * E + j]!;
    setText(details, ni === 0 ? `e${i} was never chosen at this layer` : `P(e${j} | e${i}) = ${formatWeight(nij / ni)} · N(e${i}) = ${ni}, N(e${i}, e${j}) = ${nij}`);
  }

  listeners.on(select, 'change', () => {
    layer = Number(select.value);
    props.onLayerChange?.(layer);
    scheduler.schedule();
  });
  listeners.on(matrix.canvas, 'mousemove', (ev) => {
    const c = matrix.cellAt(ev);
    if (c?.row === hovered?.row && c?.col === hovered?.col) return;
    hovered = c;
    scheduler.schedule();
  });
  listeners.on(matrix.canvas, 'mouseleave', () => {
    hovered = null;
    scheduler.schedule();
  });
  matrix.onKeys(listeners, () => hovered, (c) => {
    hovered = c;
    scheduler.schedule();
  });

  watch(initial.data);
  draw(true);

  return {
    update(next) {
      if (next.data !== props.data) watch(next.data);
      if (next.layer !== lastPropLayer) {
        lastPropLayer = next.layer;
        if (next.layer !== undefined) layer = next.layer;
      }
      props = next;
      scheduler.schedule();
    },
    redraw: () => draw(true),
    drawn: () => (result ? { layer: result.layer, co: result.co, conditional: result.conditional } : null),
    destroy() {
      scheduler.cancel();
      unsubscribe?.();
      listeners.removeAll();
      root.remove();
    },
  };
}
