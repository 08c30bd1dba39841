/**
 * Latency trace: milliseconds per token in generation order, prefill and decode coloured apart (a
 * prefill step's time is shared by the prompt tokens it fed, so batching shows as short bars), a
 * summary line (TTFT, tokens/s, mean and median decode step), and, when the engine ran in diagnostic
 * mode, each layer's mean attention / MLP / other time. SVG: a few paths and at most a few hundred
 * rects, so hover state and text stay inspectable.
 */
import { axisBottom, axisLeft } from 'd3-axis';
import { scaleBand, scaleLinear } from 'd3-scale';
import { select } from 'd3-selection';
import type { Phase } from '../../server/protocol';
import { el, Listeners, setText, svg, swatch } from './dom';
import { formatMs, formatNum } from './format';
import { frameScheduler, type Renderer } from './renderer';
import type { RunData } from './run-data';
import { latencySummary, layerBreakdown, tokenTimes, type LatencyProfile } from './stats';

export interface LatencyProps {
  readonly data: RunData;
  /** Diagnostic-mode breakdown, when the run was profiled. */
  readonly profile?: LatencyProfile | null;
  /** Which steps the per-layer breakdown averages. */
  readonly profilePhase?: Phase;
  /** Height of the per-token chart in CSS pixels. */
  readonly height?: number;
}

export interface LatencyRenderer extends Renderer<LatencyProps> {
  redraw(): void;
}

const MARGIN = { top: 8, right: 12, bottom: 22, left: 52 } as const;
const PHASE_COLOR: Record<Phase, string> = { prefill: '#8a91a3', decode: '#6aa1ff' };
const PART_COLOR = { attentionMs: '#6aa1ff', mlpMs: '#f28e2c', otherMs: '#8a91a3' } as const;
const PART_LABEL = { attentionMs: 'attention', mlpMs: 'MoE / MLP', otherMs: 'norms + residual' } as const;

export function createLatency(container: HTMLElement, initial: LatencyProps): LatencyRenderer {
  let props = initial;
  let unsubscribe: (() => void) | null = null;
  let drawnKey = '';
  let drawnData: RunData | null = null;
  let width = 0;
  let times: ReturnType<typeof tokenTimes> = { ms: new Float64Array(0), phase: [] };
  let x = scaleLinear();
  let hovered = -1;
  let phase: Phase = initial.profilePhase ?? 'decode';
  const listeners = new Listeners();

  const root = el('div', { className: 'viz viz-latency', testId: 'latency' }, container);
  const summary = el('div', { className: 'viz-summary', testId: 'latency-summary' }, root);
  const legend = el('div', { className: 'viz-legend' }, root);
  for (const p of ['prefill', 'decode'] as const) {
    const item = el('span', { className: 'viz-legend-item' }, legend);
    swatch(item, PHASE_COLOR[p]);
    item.append(p === 'prefill' ? 'prefill (step time ÷ prompt tokens)' : 'decode step');
  }
  const chart = svg('svg', { class: 'viz-chart', role: 'img', 'aria-label': 'milliseconds per token' }, root);
  chart.dataset.testid = 'latency-chart';
  const yAxis = svg('g', { class: 'viz-axis-y' }, chart);
  const xAxis = svg('g', { class: 'viz-axis-x' }, chart);
  const bars = { prefill: svg('path', { fill: PHASE_COLOR.prefill }, chart), decode: svg('path', { fill: PHASE_COLOR.decode }, chart) };
  const cursor = svg('rect', { class: 'viz-cursor', visibility: 'hidden' }, chart);
  const details = el('div', { className: 'viz-details-line', testId: 'latency-details' }, root);
  setText(details, 'Hover the chart for a token’s time.');
  const breakdown = el('div', { className: 'viz-breakdown', testId: 'latency-breakdown' }, root);

  const scheduler = frameScheduler(() => draw(false));

  function watch(data: RunData): void {
    unsubscribe?.();
    unsubscribe = data.subscribe(() => scheduler.schedule());
  }

  function draw(force: boolean): void {
    const data = props.data;
    const w = width || root.clientWidth || 640;
    const h = props.height ?? 160;
    const key = `${data.version}|${w}|${h}|${phase}`;
    if (!force && data === drawnData && key === drawnKey && profileDrawn === props.profile) return;
    drawnKey = key;
    drawnData = data;

    const s = latencySummary(data.steps, data.ttftMs ?? data.done?.ttftMs ?? null);
    const parts = [`TTFT ${formatMs(s.ttftMs)}`];
    if (s.prefillMs !== null) parts.push(`prefill ${formatMs(s.prefillMs)} for ${s.prefillTokens} tokens (${formatNum(s.prefillTokensPerSecond, 0)} tok/s)`);
    parts.push(`decode ${formatNum(s.decodeTokensPerSecond, 1)} tok/s`, `mean ${formatMs(s.meanDecodeMs)}`, `median ${formatMs(s.medianDecodeMs)} per token`);
    setText(summary, parts.join(' · '));

    times = tokenTimes(data.steps);
    const n = times.ms.length;
    let max = 0;
    for (let i = 0; i < n; i++) if (times.ms[i]! > max) max = times.ms[i]!;
    chart.setAttribute('width', String(w));
    chart.setAttribute('height', String(h));
    x = scaleLinear().domain([0, Math.max(1, n)]).range([MARGIN.left, w - MARGIN.right]);
    const y = scaleLinear().domain([0, max > 0 ? max * 1.05 : 1]).nice().range([h - MARGIN.bottom, MARGIN.top]);
    const step = x(1) - x(0);
    const bw = Math.max(0.5, step > 3 ? step - 1 : step);
    const d: Record<Phase, string[]> = { prefill: [], decode: [] };
    const base = y(0);
    for (let i = 0; i < n; i++) {
      const top = y(times.ms[i]!);
      d[times.phase[i]!].push(`M${x(i).toFixed(2)} ${base.toFixed(2)}h${bw.toFixed(2)}V${top.toFixed(2)}h${(-bw).toFixed(2)}z`);
    }
    bars.prefill.setAttribute('d', d.prefill.join(''));
    bars.decode.setAttribute('d', d.decode.join(''));
    select(yAxis).attr('transform', `translate(${MARGIN.left},0)`).call(axisLeft(y).ticks(4).tickFormat((v) => `${v} ms`));
    select(xAxis).attr('transform', `translate(0,${h - MARGIN.bottom})`).call(axisBottom(x).ticks(Math.max(2, Math.floor(w / 90))).tickFormat((v) => String(v)));
    cursor.setAttribute('y', String(MARGIN.top));
    cursor.setAttribute('height', String(h - MARGIN.top - MARGIN.bottom));
    cursor.setAttribute('width', String(Math.max(1, step)));
    root.dataset.version = String(data.version);
    if (hovered >= 0) describe(hovered);
    drawBreakdown(w);
  }

  let profileDrawn: LatencyProfile | null | undefined;
  let breakdownKey = '';

  function drawBreakdown(w: number): void {
    const profile = props.profile;
    // The profile arrives once, at the end of a run: don't rebuild it on every streamed token.
    if (profileDrawn === profile && breakdownKey === `${w}|${phase}` && breakdown.childElementCount > 0) return;
    profileDrawn = profile;
    breakdownKey = `${w}|${phase}`;
    if (!profile || profile.steps.length === 0) {
      breakdown.replaceChildren(el('div', { className: 'viz-muted', text: 'Per-layer times appear when the engine runs in diagnostic mode.' }));
      return;
    }
    const rows = layerBreakdown(profile, phase);
    const head = el('div', { className: 'viz-toolbar' });
    const toggle = el('div', { className: 'viz-toggle', attrs: { role: 'group', 'aria-label': 'phase' } }, head);
    for (const p of ['prefill', 'decode'] as const) {
      const b = el('button', { text: p, testId: `latency-phase-${p}`, attrs: { type: 'button', 'aria-pressed': String(p === phase) } }, toggle);
      b.addEventListener('click', () => {
        phase = p;
        scheduler.schedule();
      });
    }
    const keys = Object.keys(PART_COLOR) as (keyof typeof PART_COLOR)[];
    for (const k of keys) {
      const item = el('span', { className: 'viz-legend-item' }, head);
      swatch(item, PART_COLOR[k]);
      item.append(PART_LABEL[k]);
    }
    el('span', { className: 'viz-muted', text: `mean per ${phase} step` }, head);
    if (rows.length === 0) {
      breakdown.replaceChildren(head, el('div', { className: 'viz-muted', text: `No ${phase} steps were profiled.` }));
      return;
    }
    const rowH = 14;
    const h = rows.length * rowH + 8;
    const total = (r: (typeof rows)[number]) => r.attentionMs + r.mlpMs + r.otherMs;
    const max = Math.max(...rows.map(total));
    const band = scaleBand<number>().domain(rows.map((r) => r.layer)).range([4, h - 4]).padding(0.2);
    const bx = scaleLinear().domain([0, max > 0 ? max : 1]).range([MARGIN.left, w - 90]);
    const chartEl = svg('svg', { width: w, height: h, class: 'viz-chart', role: 'img', 'aria-label': `per-layer ${phase} time` });
    for (const r of rows) {
      const yb = band(r.layer) ?? 0;
      const g = svg('g', { 'data-layer': r.layer }, chartEl);
      svg('text', { x: MARGIN.left - 6, y: yb + band.bandwidth() / 2, class: 'viz-bar-label', 'text-anchor': 'end', 'dominant-baseline': 'middle' }, g).textContent = `L${r.layer}`;
      let acc = 0;
      for (const k of keys) {
        const x0 = bx(acc);
        acc += r[k];
        svg('rect', { x: x0, y: yb, width: Math.max(0, bx(acc) - x0), height: band.bandwidth(), fill: PART_COLOR[k] }, g);
      }
      svg('text', { x: bx(acc) + 6, y: yb + band.bandwidth() / 2, class: 'viz-bar-label', 'dominant-baseline': 'middle' }, g).textContent = formatMs(total(r));
    }
    breakdown.replaceChildren(head, chartEl);
  }

  function describe(i: number): void {
    if (i < 0 || i >= times.ms.length) return;
    cursor.setAttribute('x', String(x(i)));
    cursor.setAttribute('visibility', 'visible');
    const text = props.data.tokenLabel(i);
    setText(details, `#${i}${text ? ` “${text}”` : ''} · ${times.phase[i]} · ${formatMs(times.ms[i]!)}${times.phase[i] === 'prefill' ? ' (share of the prefill step)' : ''}`);
  }

  listeners.on(chart, 'mousemove', (ev) => {
    const r = chart.getBoundingClientRect();
    const i = Math.floor(x.invert(ev.clientX - r.left));
    const next = i >= 0 && i < times.ms.length ? i : -1;
    if (next === hovered) return;
    hovered = next;
    if (next < 0) cursor.setAttribute('visibility', 'hidden');
    else describe(next);
  });
  listeners.on(chart, 'mouseleave', () => {
    hovered = -1;
    cursor.setAttribute('visibility', 'hidden');
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
      if (next.profilePhase && next.profilePhase !== props.profilePhase) phase = next.profilePhase;
      props = next;
      scheduler.schedule();
    },
    redraw: () => draw(true),
    destroy() {
      scheduler.cancel();
      unsubscribe?.();
      listeners.removeAll();
      root.remove();
    },
  };
}
