/**
 * A/B comparison of two runs of one model (typically the same prompt with and without an
 * intervention): the tokens aligned by position with differences marked, and per layer the change
 * in each expert's share of the selections (B − A) on a diverging scale, with each layer's total
 * variation distance as text.
 */
import { packRgba, toCss } from './color';
import { el, expertTicks, Listeners, setText } from './dom';
import { formatNum, formatPct, visibleToken } from './format';
import { matrixGeometry } from './layout';
import { MatrixCanvas } from './matrix-canvas';
import { THEME } from './palette';
import { RampLegend } from './ramp-legend';
import { divergingRamp, rampIndex, signedToDiverging } from './ramps';
import { frameScheduler, type Renderer } from './renderer';
import type { RunData } from './run-data';
import { shares, tokenDiff, utilizationDiff, type DiffKind, type TokenDiff, type UtilizationDiff } from './stats';

export interface CompareProps {
  readonly a: RunData;
  readonly b: RunData | null;
  readonly labelA?: string;
  readonly labelB?: string;
  /** Height of one layer row of the difference heatmap, CSS pixels. */
  readonly rowHeight?: number;
}

export interface CompareRenderer extends Renderer<CompareProps> {
  redraw(): void;
  /** The comparison as of the last draw (for tests). */
  drawn(): { diff: TokenDiff; util: UtilizationDiff | null } | null;
}

const EMPTY = packRgba(THEME.panel);
const LABEL_WIDTH = 44;
const STATS_WIDTH = 120;

export function createCompare(container: HTMLElement, initial: CompareProps): CompareRenderer {
  let props = initial;
  let subs: (() => void)[] = [];
  let drawnKey = '';
  let drawnRuns: [RunData | null, RunData | null] = [null, null];
  let diff: TokenDiff | null = null;
  let util: UtilizationDiff | null = null;
  let hoveredCell: { row: number; col: number } | null = null;
  let width = 0;
  const listeners = new Listeners();

  const root = el('div', { className: 'viz viz-compare', testId: 'run-compare' }, container);
  const summary = el('div', { className: 'viz-summary', testId: 'compare-summary' }, root);
  const tokens = el('div', { className: 'viz-tokens viz-diff', testId: 'compare-tokens' }, root);
  const tokenDetails = el('div', { className: 'viz-details-line', testId: 'compare-token-details' }, root);
  const section = el('div', { className: 'viz-compare-util' }, root);
  const toolbar = el('div', { className: 'viz-toolbar' }, section);
  el('span', { text: 'expert share, B − A' }, toolbar);
  const legend = new RampLegend(toolbar, 'compare-legend');
  const legendKey = el('span', { className: 'viz-muted' }, toolbar);
  const body = el('div', { className: 'viz-heatmap-body' }, section);
  const labels = el('div', { className: 'viz-row-labels' }, body);
  const matrixWrap = el('div', { className: 'viz-matrix-wrap' }, body);
  const axis = el('div', { className: 'viz-axis viz-muted' }, matrixWrap);
  const matrix = new MatrixCanvas(matrixWrap, 'compare-canvas', EMPTY);
  const statsCol = el('div', { className: 'viz-row-stats', testId: 'compare-stats' }, body);
  const details = el('div', { className: 'viz-details-line', testId: 'compare-details', attrs: { 'aria-live': 'polite' } }, section);
  setText(tokenDetails, 'Hover a token to compare the two runs at that position.');
  setText(details, 'Hover a cell for both runs’ shares.');

  const spans: HTMLSpanElement[] = [];
  const spanKeys: string[] = [];
  const scheduler = frameScheduler(() => draw(false));

  function watch(): void {
    for (const off of subs) off();
    subs = [props.a, props.b].filter((d): d is RunData => d !== null).map((d) => d.subscribe(() => scheduler.schedule()));
  }

  function tokenText(d: RunData, i: number): string {
    return i < d.length && d.hasToken(i) ? visibleToken(d.tokenLabel(i)) : '';
  }

  function drawTokens(a: RunData, b: RunData, d: TokenDiff): void {
    const n = d.kinds.length;
    for (let i = spans.length; i < n; i++) {
      const s = el('span', { className: 'viz-tok', attrs: { 'data-index': String(i) } }, tokens);
      spans.push(s);
      spanKeys.push('');
    }
    while (spans.length > n) {
      spans.pop()!.remove();
      spanKeys.pop();
    }
    for (let i = 0; i < n; i++) {
      const kind: DiffKind = d.kinds[i]!;
      const ta = tokenText(a, i);
      const tb = tokenText(b, i);
      const key = `${kind}\u0000${ta}\u0000${tb}`;
      if (spanKeys[i] === key) continue;
      spanKeys[i] = key;
      const s = spans[i]!;
      s.dataset.diff = kind;
      s.className = `viz-tok viz-diff-${kind}`;
      if (kind === 'same') s.replaceChildren(ta);
      // A position only one run has keeps that run's line: A's on top, B's below an empty A line.
      else if (kind === 'only-a') s.replaceChildren(el('span', { className: 'viz-diff-a', text: ta }), el('span', { className: 'viz-diff-gap' }));
      else if (kind === 'only-b') s.replaceChildren(el('span', { className: 'viz-diff-gap' }), el('span', { className: 'viz-diff-b', text: tb }));
      else s.replaceChildren(el('span', { className: 'viz-diff-a', text: ta }), el('span', { className: 'viz-diff-b', text: tb }));
    }
  }

  function draw(force: boolean): void {
    const { a, b } = props;
    const w = width || root.clientWidth || 760;
    const key = `${a.version}|${b?.version}|${w}|${props.rowHeight}|${props.labelA}|${props.labelB}|${hoveredCell?.row},${hoveredCell?.col}`;
    if (!force && key === drawnKey && drawnRuns[0] === a && drawnRuns[1] === b) return;
    if (drawnRuns[0] !== a || drawnRuns[1] !== b) {
      for (const s of spans.splice(0)) s.remove();
      spanKeys.length = 0;
    }
    drawnKey = key;
    drawnRuns = [a, b];
    root.dataset.version = `${a.version}:${b?.version ?? '-'}`;
    const nameA = props.labelA ?? 'A';
    const nameB = props.labelB ?? 'B';
    if (!b) {
      diff = null;
      util = null;
      setText(summary, 'Choose a second run to compare.');
      section.hidden = true;
      return;
    }
    diff = tokenDiff(a, b);
    drawTokens(a, b, diff);
    const first = diff.firstDivergence;
    setText(summary, `${nameA} vs ${nameB} · ${first < 0 ? 'identical tokens' : `first divergence at #${first}`} · ${diff.differing} of ${diff.kinds.length} positions differ`);

    const sameShape = a.numLayers === b.numLayers && a.numExperts === b.numExperts && a.numLayers > 0;
    section.hidden = !sameShape;
    if (!sameShape) {
      util = null;
      // Said in the summary, which stays visible: the expert-share section is hidden.
      const shape = (d: RunData) => `${d.numLayers} layers × ${d.numExperts} experts`;
      setText(summary, `${summary.textContent} · no expert-share comparison: ${nameA} has ${shape(a)}, ${nameB} ${shape(b)}`);
      return;
    }
    const L = a.numLayers;
    const E = a.numExperts;
    util = utilizationDiff(a.counts, b.counts, L, E);
    const u = util;
    const rowHeight = props.rowHeight ?? 16;
    const geom = matrixGeometry(L, E, Math.max(E * 2, w - LABEL_WIDTH - STATS_WIDTH - 24), { minCell: 2, maxCell: 20, cellHeight: rowHeight });
    const ramp = divergingRamp().pixels;
    matrix.paint(geom, (l, e) => ramp[rampIndex(signedToDiverging(u.delta[l * E + e]!, u.maxAbs))]!);
    matrix.outline(hoveredCell, toCss(THEME.text));
    legend.set(divergingRamp(), [
      { at: 0, label: `−${formatPct(u.maxAbs)}` },
      { at: 0.5, label: '0', strong: true },
      { at: 1, label: `+${formatPct(u.maxAbs)}` },
    ], 'difference in share of the layer’s selections, B − A');
    setText(legendKey, `blue: more in ${nameA} · orange: more in ${nameB}`);

    if (labels.childElementCount !== L + 1) {
      labels.replaceChildren(el('div', { className: 'viz-row viz-muted', text: 'layer' }), ...Array.from({ length: L }, (_, l) => el('div', { className: 'viz-row', text: a.layerLabel(l) })));
      statsCol.replaceChildren(
        el('div', { className: 'viz-row viz-muted', text: 'TV distance', attrs: { title: 'total variation distance between the two runs’ share distributions: ½ Σ|B − A|' } }),
        ...Array.from({ length: L }, (_, l) => el('div', { className: 'viz-row viz-num', attrs: { 'data-layer': String(l) } })),
      );
    }
    const h = `${rowHeight}px`;
    axis.style.height = axis.style.lineHeight = h;
    axis.style.width = `${geom.width}px`;
    axis.style.overflow = 'hidden';
    expertTicks(axis, E, geom.cellWidth, geom.width, 'x');
    for (const col of [labels, statsCol]) for (const r of Array.from(col.children) as HTMLElement[]) if (r.style.height !== h) r.style.height = r.style.lineHeight = h;
    for (let l = 0; l < L; l++) setText(statsCol.children[l + 1]!, formatNum(u.totalVariation[l]!, 3));
    if (hoveredCell) describeCell(hoveredCell.row, hoveredCell.col);
  }

  function describeCell(l: number, e: number): void {
    const { a, b } = props;
    if (!b || !util) return;
    const E = a.numExperts;
    const sa = shares(a.layerCounts(l), 1, E)[e]!;
    const sb = shares(b.layerCounts(l), 1, E)[e]!;
    const d = util.delta[l * E + e]!;
    setText(details, `${a.layerLabel(l)} · e${e}: ${props.labelA ?? 'A'} ${formatPct(sa, 2)} → ${props.labelB ?? 'B'} ${formatPct(sb, 2)} (${d >= 0 ? '+' : '−'}${formatPct(Math.abs(d), 2)})`);
  }

  listeners.on(tokens, 'mouseover', (ev) => {
    const s = ev.target instanceof Element ? ev.target.closest<HTMLElement>('[data-index]') : null;
    const { a, b } = props;
    if (!s || !b) return;
    const i = Number(s.dataset.index);
    const side = (d: RunData, name: string) => (i < d.length && d.hasToken(i) ? `${name} “${visibleToken(d.tokenLabel(i))}” (id ${d.tokenIds[i]})` : `${name} —`);
    setText(tokenDetails, `#${i} · ${s.dataset.diff} · ${side(a, props.labelA ?? 'A')} · ${side(b, props.labelB ?? 'B')}`);
  });
  listeners.on(matrix.canvas, 'mousemove', (ev) => {
    const c = matrix.cellAt(ev);
    if (c?.row === hoveredCell?.row && c?.col === hoveredCell?.col) return;
    hoveredCell = c;
    scheduler.schedule();
  });
  listeners.on(matrix.canvas, 'mouseleave', () => {
    hoveredCell = null;
    scheduler.schedule();
  });
  matrix.onKeys(listeners, () => hoveredCell, (c) => {
    hoveredCell = c;
    scheduler.schedule();
  });
  width = listeners.onWidthChange(root, (w) => {
    width = w;
    scheduler.schedule();
  });
  watch();
  draw(true);

  return {
    update(next) {
      const rewatch = next.a !== props.a || next.b !== props.b;
      props = next;
      if (rewatch) watch();
      scheduler.schedule();
    },
    redraw: () => draw(true),
    drawn: () => (diff ? { diff, util } : null),
    destroy() {
      scheduler.cancel();
      for (const off of subs) off();
      listeners.removeAll();
      root.remove();
    },
  };
}
