/**
 * Routing grid: one row per token, one column per MoE layer; a cell's colour is the expert the
 * token chose (top-1, or every top-k expert as slices proportional to its gate weight) and its
 * strength the gate weight. Thousands of rows stay smooth because only the rows in view are drawn,
 * into one reused ImageData, on a canvas that sticks to the top of a scroller whose spacer gives the
 * scrollbar the full height.
 */
import { showHint, showTokenDetails } from './details';
import { el, Listeners, PixelBuffer, setText, sizeCanvas, swatch } from './dom';
import { visibleToken } from './format';
import { deviceSpan, fitColumnWidth, gridHitTest, maxScrollTop, scrollToReveal, visibleRows, type Cell, type GridGeometry } from './layout';
import { expertCss, expertRgb, expertShadeTable, SHADE_LEVELS, shadeLevel, THEME } from './palette';
import { mixRgb, packRgba, toCss } from './color';
import { frameScheduler, type Renderer } from './renderer';
import { PHASE_CODE, type RunData } from './run-data';

export type GridMode = 'top1' | 'topk';

export interface RoutingGridProps {
  readonly data: RunData;
  /** Row height in CSS pixels. */
  readonly rowHeight?: number;
  /** Height of the scrolling viewport in CSS pixels. */
  readonly height?: number;
  readonly mode?: GridMode;
  /** Keep the newest row in view while the run streams, unless the user scrolled away from the end. */
  readonly follow?: boolean;
  readonly onPin?: (cell: { index: number; layer: number } | null) => void;
}

export interface RoutingGridRenderer extends Renderer<RoutingGridProps> {
  /** Draws the visible rows now, whatever changed; returns nothing, time it from outside. */
  redraw(): void;
  scrollToRow(row: number): void;
  pin(cell: { index: number; layer: number } | null): void;
  /** Geometry of the last draw, for tests. */
  geometry(): GridGeometry & { first: number; end: number; scrollTop: number };
}

const LABEL_WIDTH = 168;
const HINT = 'Hover a cell to see the token’s routing; click to pin it (arrow keys move, Esc unpins).';
/** Experts named in the colour legend; a model with more lists the first ones (hover names any). */
const LEGEND_LIMIT = 32;
const PANEL = packRgba(THEME.panel);
const PENDING = packRgba(THEME.border);
const PREFILL_MARK = packRgba(THEME.muted);
const DECODE_MARK = packRgba(THEME.accent);

export function createRoutingGrid(container: HTMLElement, initial: RoutingGridProps): RoutingGridRenderer {
  let props = initial;
  let unsubscribe: (() => void) | null = null;
  let hovered: Cell | null = null;
  let pinned: Cell | null = null;
  let detailsKey = '';
  let drawn = { data: null as RunData | null, version: -1, key: '' };
  let geom: GridGeometry = { labelWidth: LABEL_WIDTH, columnWidth: 24, rowHeight: 14, columns: 0, rows: 0 };
  let last = { first: 0, end: 0, scrollTop: 0 };
  let viewportWidth = 0;
  let rowsSeen = 0;
  const listeners = new Listeners();

  const root = el('div', { className: 'viz viz-grid', testId: 'routing-grid' }, container);
  const toolbar = el('div', { className: 'viz-toolbar' }, root);
  const modeLabel = el('label', { className: 'viz-control' }, toolbar);
  el('span', { text: 'cells' }, modeLabel);
  const modeSelect = el('select', { testId: 'grid-mode', attrs: { 'aria-label': 'cell content' } }, modeLabel);
  modeSelect.append(new Option('top-1 expert', 'top1'), new Option('all top-k, by weight', 'topk'));
  const info = el('span', { className: 'viz-muted' }, toolbar);
  // Which colour is which expert, so a class can read the grid without hovering every cell.
  const legend = el('div', { className: 'viz-legend', testId: 'grid-legend' }, root);
  const header = el('div', { className: 'viz-grid-header' }, root);
  const scroller = el('div', { className: 'viz-grid-scroller', attrs: { tabindex: '0', role: 'grid', 'aria-label': 'routing grid: tokens by layers' } }, root);
  const canvas = el('canvas', { className: 'viz-grid-canvas', testId: 'routing-grid-canvas' }, scroller);
  const spacer = el('div', { className: 'viz-grid-spacer' }, scroller);
  const details = el('div', { className: 'viz-details', testId: 'grid-details', attrs: { 'aria-live': 'polite' } }, root);
  const ctx = canvas.getContext('2d', { alpha: false });
  const pixels = ctx ? new PixelBuffer(ctx) : null;
  showHint(details, HINT);

  const scheduler = frameScheduler(() => draw(false));
  let mode: GridMode = initial.mode ?? 'top1';
  modeSelect.value = mode;

  function watch(data: RunData): void {
    unsubscribe?.();
    unsubscribe = data.subscribe(() => scheduler.schedule());
  }

  function viewportHeight(): number {
    return props.height ?? 420;
  }

  function layout(data: RunData): void {
    const rowHeight = props.rowHeight ?? 14;
    const width = viewportWidth || scroller.clientWidth || 640;
    const columnWidth = fitColumnWidth(width, LABEL_WIDTH, data.numLayers, 6, 48);
    const changed = geom.columnWidth !== columnWidth || geom.columns !== data.numLayers || geom.rowHeight !== rowHeight;
    geom = { labelWidth: LABEL_WIDTH, columnWidth, rowHeight, columns: data.numLayers, rows: data.length };
    const vh = viewportHeight();
    const h = `${vh}px`;
    if (scroller.style.height !== h) scroller.style.height = h;
    const spacerHeight = `${Math.max(0, data.length * rowHeight - vh)}px`;
    if (spacer.style.height !== spacerHeight) spacer.style.height = spacerHeight;
    if (changed || header.childElementCount !== data.numLayers + 1) {
      const labels = [el('span', { className: 'viz-grid-corner', text: 'token' })];
      labels[0]!.style.width = `${LABEL_WIDTH}px`;
      // Label every column when they are wide enough, otherwise every few.
      const every = Math.max(1, Math.ceil(28 / columnWidth));
      for (let l = 0; l < data.numLayers; l++) {
        const s = el('span', { className: 'viz-grid-col', text: l % every === 0 ? data.layerLabel(l) : '' });
        s.style.width = `${columnWidth}px`;
        labels.push(s);
      }
      header.replaceChildren(...labels);
    }
  }

  function follow(data: RunData): void {
    // Follow the end only if the view was at the end before these rows arrived, and was already
    // showing this run's rows: a finished run opened afresh starts at its first token, while a
    // streaming one keeps following through its last rows, which come with its end.
    const vh = viewportHeight();
    const rowHeight = geom.rowHeight;
    const wasAtEnd = scroller.scrollTop >= maxScrollTop(vh, rowHeight, rowsSeen) - rowHeight;
    const streaming = !data.done || rowsSeen > 0;
    if ((props.follow ?? true) && data.length > rowsSeen && wasAtEnd && streaming) scroller.scrollTop = maxScrollTop(vh, rowHeight, data.length);
    rowsSeen = data.length;
  }

  /** Everything besides the data that changes the picture. */
  function viewKey(): string {
    return `${mode}|${scroller.scrollTop}|${viewportWidth}|${props.rowHeight}|${props.height}|${hovered?.row},${hovered?.col}|${pinned?.row},${pinned?.col}`;
  }

  function draw(force: boolean): void {
    const data = props.data;
    if (!force && drawn.data === data && drawn.version === data.version && drawn.key === viewKey()) return;
    if (drawn.data !== data) {
      hovered = pinned = null;
      rowsSeen = 0;
      show(null);
    }
    layout(data);
    follow(data);
    paint(data);
    setText(info, `${data.length} tokens × ${data.numLayers} MoE layers · ${data.numExperts} experts, top-${data.topK}`);
    drawLegend(data.numExperts);
    refreshDetails(data);
    root.dataset.version = String(data.version);
    drawn = { data, version: data.version, key: viewKey() };
  }

  function drawLegend(experts: number): void {
    if (legend.dataset.experts === String(experts)) return;
    legend.dataset.experts = String(experts);
    const shown = Math.min(experts, LEGEND_LIMIT);
    const items: HTMLElement[] = [el('span', { className: 'viz-muted', text: 'expert:' })];
    for (let e = 0; e < shown; e++) {
      const item = el('span', { className: 'viz-legend-item', attrs: { 'data-expert': String(e) } });
      swatch(item, expertCss(e));
      item.append(`e${e}`);
      items.push(item);
    }
    if (experts > shown) items.push(el('span', { className: 'viz-muted', text: `… e${experts - 1} (hover a cell for its expert)` }));
    legend.replaceChildren(...items);
  }

  function paint(data: RunData): void {
    if (!ctx || !pixels) return;
    const { labelWidth, columnWidth, rowHeight, columns } = geom;
    const vh = viewportHeight();
    const width = labelWidth + columns * columnWidth;
    const dpr = sizeCanvas(canvas, width, vh);
    const scrollTop = scroller.scrollTop;
    const { image, pixels: px } = pixels.get(canvas.width, canvas.height);
    const stride = image.width;
    px.fill(PANEL);
    const { first, end } = visibleRows(scrollTop, vh, rowHeight, data.length, 2);
    const L = data.numLayers;
    const k = data.topK;
    const ids = data.routingIds;
    const weights = data.weights;
    // A one-device-pixel gap separates cells once they are big enough to afford it.
    const gapX = columnWidth * dpr >= 6 ? 1 : 0;
    const gapY = rowHeight * dpr >= 6 ? 1 : 0;
    const markEnd = Math.round(3 * dpr);
    const height = image.height;
    const colStart = new Int32Array(L);
    const colEnd = new Int32Array(L);
    for (let l = 0; l < L; l++) {
      const [x0, x1] = deviceSpan(l, columnWidth, dpr, labelWidth);
      colStart[l] = x0;
      colEnd[l] = Math.min(stride, x1 - gapX);
    }
    for (let row = first; row < end; row++) {
      const [y0, y1raw] = deviceSpan(row, rowHeight, dpr, -scrollTop);
      const ya = Math.max(0, y0);
      const yb = Math.min(height, y1raw - gapY);
      if (ya >= yb) continue;
      // Every device line of a row is identical: paint the first, then copy it down, which is far
      // cheaper than filling each cell slice line by line.
      const line = ya * stride;
      const phase = data.phases[row];
      if (phase !== PHASE_CODE.none) px.fill(phase === PHASE_CODE.prefill ? PREFILL_MARK : DECODE_MARK, line, line + markEnd);
      const routed = data.routed[row] === 1;
      for (let l = 0; l < L; l++) {
        const x0 = colStart[l]!;
        const x1 = colEnd[l]!;
        if (x0 >= x1) continue;
        if (!routed) {
          px.fill(PENDING, line + x0, line + x1);
          continue;
        }
        const o = (row * L + l) * k;
        if (mode === 'top1' || k === 1) {
          px.fill(expertShadeTable(ids[o]!)[shadeLevel(weights[o]!)]!, line + x0, line + x1);
          continue;
        }
        // Slices proportional to the gate weights, each at full strength: the width carries the weight.
        let total = 0;
        for (let j = 0; j < k; j++) total += Math.max(0, weights[o + j]!);
        let acc = 0;
        let xa = x0;
        for (let j = 0; j < k; j++) {
          acc += Math.max(0, weights[o + j]!);
          const xb = j === k - 1 ? x1 : x0 + Math.round(total > 0 ? (acc / total) * (x1 - x0) : ((j + 1) / k) * (x1 - x0));
          if (xb > xa) px.fill(expertShadeTable(ids[o + j]!)[SHADE_LEVELS - 1]!, line + xa, line + xb);
          xa = xb;
        }
      }
      for (let y = ya + 1; y < yb; y++) px.copyWithin(y * stride, line, line + stride);
    }
    ctx.putImageData(image, 0, 0);

    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = `${Math.min(12, rowHeight - 2)}px ui-monospace, SFMono-Regular, Menlo, monospace`;
    ctx.textBaseline = 'middle';
    const textColor = toCss(THEME.text);
    const mutedColor = toCss(THEME.muted);
    const maxChars = Math.floor((labelWidth - 56) / 7);
    if (rowHeight >= 9) {
      for (let row = first; row < end; row++) {
        const y = row * rowHeight - scrollTop + rowHeight / 2;
        ctx.fillStyle = mutedColor;
        ctx.textAlign = 'right';
        ctx.fillText(String(row), 44, y);
        ctx.fillStyle = textColor;
        ctx.textAlign = 'left';
        const t = visibleToken(data.tokenLabel(row));
        ctx.fillText(t.length > maxChars ? `${t.slice(0, maxChars - 1)}…` : t, 52, y);
      }
    }
    outline(hovered, toCss(mixRgb(THEME.text, THEME.panel, 0.3)), 1);
    outline(pinned, toCss(THEME.accent), 2);
    ctx.setTransform(1, 0, 0, 1, 0, 0);

    last = { first, end, scrollTop };
    canvas.dataset.firstRow = String(first);
    canvas.dataset.endRow = String(end);
    canvas.dataset.rows = String(data.length);

    function outline(cell: Cell | null, color: string, lineWidth: number): void {
      if (!cell || !ctx) return;
      ctx.strokeStyle = color;
      ctx.lineWidth = lineWidth;
      ctx.strokeRect(labelWidth + cell.col * columnWidth + lineWidth / 2, cell.row * rowHeight - scrollTop + lineWidth / 2, columnWidth - lineWidth - gapX / dpr, rowHeight - lineWidth - gapY / dpr);
    }
  }

  function refreshDetails(data: RunData): void {
    const cell = pinned ?? hovered;
    if (!cell) return;
    const key = `${cell.row}:${cell.col}:${data.hasToken(cell.row)}:${data.hasRouting(cell.row)}:${pinned !== null}`;
    if (key !== detailsKey) show(cell);
  }

  function show(cell: Cell | null): void {
    const data = props.data;
    if (!cell || cell.row >= data.length) {
      showHint(details, HINT);
      detailsKey = '';
      delete details.dataset.pinned;
      return;
    }
    showTokenDetails(details, data, cell.row, { highlightLayer: cell.col });
    details.dataset.pinned = String(pinned !== null);
    const e = data.topExpert(cell.row, cell.col);
    if (e >= 0) details.querySelector('.viz-details-head')?.append(cellBadge(e, data.layerWeights(cell.row, cell.col)[0]!, data.layerLabel(cell.col)));
    detailsKey = `${cell.row}:${cell.col}:${data.hasToken(cell.row)}:${data.hasRouting(cell.row)}:${pinned !== null}`;
  }

  function cellBadge(e: number, w: number, layer: string): HTMLElement {
    const b = el('span', { className: 'viz-chip viz-chip-strong', text: `${layer} → e${e} (${w.toFixed(3)})${pinned ? ' · pinned' : ''}` });
    b.style.borderColor = toCss(expertRgb(e));
    return b;
  }

  function pin(cell: { index: number; layer: number } | null): void {
    const next = cell ? { row: cell.index, col: cell.layer } : null;
    const same = next && pinned && next.row === pinned.row && next.col === pinned.col;
    pinned = same ? null : next;
    props.onPin?.(pinned ? { index: pinned.row, layer: pinned.col } : null);
    show(pinned ?? hovered);
    scheduler.schedule();
  }

  function hit(ev: MouseEvent): Cell | null {
    const r = canvas.getBoundingClientRect();
    return gridHitTest({ ...geom, rows: props.data.length }, ev.clientX - r.left, ev.clientY - r.top, scroller.scrollTop);
  }

  listeners.on(canvas, 'mousemove', (ev) => {
    const c = hit(ev);
    if (c?.row === hovered?.row && c?.col === hovered?.col) return;
    hovered = c;
    if (!pinned) show(c);
    scheduler.schedule();
  });
  listeners.on(canvas, 'mouseleave', () => {
    hovered = null;
    if (!pinned) show(null);
    scheduler.schedule();
  });
  listeners.on(canvas, 'click', (ev) => {
    const c = hit(ev);
    if (c) pin({ index: c.row, layer: c.col });
  });
  listeners.on(scroller, 'scroll', () => scheduler.schedule(), { passive: true });
  listeners.on(scroller, 'keydown', (ev) => {
    const data = props.data;
    if (ev.key === 'Escape') return pin(null);
    const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const m = moves[ev.key];
    if (!m || data.length === 0) return;
    ev.preventDefault();
    const from = pinned ?? { row: 0, col: 0 };
    const row = Math.max(0, Math.min(data.length - 1, from.row + m[0]));
    const col = Math.max(0, Math.min(data.numLayers - 1, from.col + m[1]));
    pinned = null; // pin() toggles; moving always pins the new cell
    pin({ index: row, layer: col });
    scroller.scrollTop = scrollToReveal(row, scroller.scrollTop, viewportHeight(), geom.rowHeight);
  });
  listeners.on(modeSelect, 'change', () => {
    mode = modeSelect.value === 'topk' ? 'topk' : 'top1';
    scheduler.schedule();
  });
  viewportWidth = listeners.onWidthChange(scroller, (w) => {
    viewportWidth = w;
    scheduler.schedule();
  });
  watch(initial.data);
  draw(true);

  return {
    update(next) {
      if (next.data !== props.data) watch(next.data);
      if (next.mode && next.mode !== props.mode) {
        mode = next.mode;
        modeSelect.value = mode;
      }
      props = next;
      scheduler.schedule();
    },
    redraw: () => draw(true),
    scrollToRow(row) {
      scroller.scrollTop = Math.max(0, row) * geom.rowHeight;
    },
    pin,
    geometry: () => ({ ...geom, ...last }),
    destroy() {
      scheduler.cancel();
      unsubscribe?.();
      listeners.removeAll();
      root.remove();
    },
  };
}
