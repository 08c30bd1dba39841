/**
 * The routing of one token, as DOM text and small SVG bars: shared by the token strip's hover panel
 * and the routing grid's pinned cell, so both read the same and tests can read either.
 */
import { el, svg, swatch } from './dom';
import { formatNum, formatWeight, visibleToken } from './format';
import { expertCss } from './palette';
import type { RunData } from './run-data';

export interface DetailsOptions {
  /** MoE layer (routing order) to mark as selected. */
  readonly highlightLayer?: number;
}

const DIST_HEIGHT = 22;
const DIST_WIDTH = 160;

/** Replaces the panel's content with a hint (no token selected). */
export function showHint(panel: HTMLElement, hint: string): void {
  panel.replaceChildren(el('div', { className: 'viz-muted viz-hint', text: hint }));
  delete panel.dataset.index;
  delete panel.dataset.layer;
}

export function showTokenDetails(panel: HTMLElement, data: RunData, index: number, opts: DetailsOptions = {}): void {
  panel.dataset.index = String(index);
  if (opts.highlightLayer !== undefined) panel.dataset.layer = String(opts.highlightLayer);
  else delete panel.dataset.layer;

  const head = el('div', { className: 'viz-details-head' });
  el('strong', { text: `#${index}` }, head);
  el('span', { className: 'viz-token-text', text: visibleToken(data.tokenLabel(index)), testId: 'details-token' }, head);
  const facts: string[] = [];
  const phase = data.phaseOf(index);
  if (phase) facts.push(phase);
  if (data.hasToken(index)) facts.push(`id ${data.tokenIds[index]}`);
  const lp = data.logprobs[index];
  if (lp !== undefined && Number.isFinite(lp)) facts.push(`logprob ${lp.toFixed(3)}`);
  el('span', { className: 'viz-muted', text: facts.join(' · ') }, head);

  if (!data.hasRouting(index)) {
    panel.replaceChildren(head, el('div', { className: 'viz-muted viz-hint', text: 'routing not received yet' }));
    return;
  }

  const table = el('table', { className: 'viz-details-table' });
  const hr = el('tr', {}, el('thead', {}, table));
  for (const h of ['layer', `top-${data.topK} (gate weight)`, 'H (nats)', 'router distribution']) el('th', { text: h }, hr);
  const body = el('tbody', {}, table);
  for (let l = 0; l < data.numLayers; l++) {
    const row = el('tr', { attrs: { 'data-layer': String(l) } }, body);
    if (l === opts.highlightLayer) row.className = 'viz-selected';
    el('th', { text: data.layerLabel(l) }, row);
    const chips = el('td', { className: 'viz-chips' }, row);
    const ids = data.layerIds(index, l);
    const w = data.layerWeights(index, l);
    const bias = data.biasChange(index, l);
    for (let j = 0; j < ids.length; j++) {
      // An expert the load-balancing bias brought in is marked: without the bias the router would not pick it.
      const biased = bias?.added.includes(ids[j]!) ?? false;
      const chip = el(
        'span',
        { className: biased ? 'viz-chip viz-chip-biased' : 'viz-chip', attrs: { 'data-expert': String(ids[j]), ...(biased ? { title: 'chosen because of the load-balancing bias' } : {}) } },
        chips,
      );
      swatch(chip, expertCss(ids[j]!));
      chip.append(`e${ids[j]} ${formatWeight(w[j]!)}`);
      if (biased) el('span', { className: 'viz-bias-mark', text: 'bias' }, chip);
    }
    if (bias && bias.dropped.length > 0) {
      el('span', { className: 'viz-muted viz-bias-note', testId: 'bias-note', text: `bias: without it ${bias.dropped.map((e) => `e${e}`).join(', ')}` }, chips);
    }
    // Weights that do not sum to 1 are the model's design, not an error; say so where it shows.
    let sum = 0;
    for (let j = 0; j < ids.length; j++) sum += w[j]!;
    if (ids.length > 0 && Math.abs(sum - 1) > 0.005) {
      el('span', {
        className: 'viz-muted viz-bias-note',
        testId: 'weight-sum',
        text: `Σ ${sum.toFixed(2)}`,
        attrs: { title: 'these gate weights do not sum to 1: DeepSeek-V3 scales them by routed_scaling_factor; Qwen2-MoE and OLMoE do not renormalise the top-k' },
      }, chips);
    }
    el('td', { className: 'viz-num', text: formatNum(data.entropy[index * data.numLayers + l]!, 3) }, row);
    distributionBars(el('td', {}, row), data.numExperts, ids, w, data.layerProbs(index, l));
  }
  panel.replaceChildren(head, table);
}

/**
 * Bars over all experts, scaled to the layer's largest probability so the shape shows even when
 * 64+ experts share the mass; the chosen experts in their colours. Without the full distribution
 * (compact detail) only the chosen experts' gate weights are drawn.
 */
function distributionBars(cell: HTMLElement, experts: number, ids: ArrayLike<number>, weights: ArrayLike<number>, probs: Float32Array | null): void {
  const bar = Math.max(1, Math.floor(DIST_WIDTH / Math.max(1, experts)));
  const width = bar * experts;
  const root = svg('svg', { width, height: DIST_HEIGHT, viewBox: `0 0 ${width} ${DIST_HEIGHT}`, class: 'viz-dist' }, cell);
  root.dataset.testid = 'router-dist';
  const values = probs ?? null;
  let max = 0;
  if (values) for (let e = 0; e < experts; e++) max = Math.max(max, values[e]!);
  else for (let j = 0; j < weights.length; j++) max = Math.max(max, weights[j]!);
  if (!(max > 0)) return;
  const h = (v: number) => Math.max(0.5, (v / max) * (DIST_HEIGHT - 1));
  const bw = Math.max(1, bar - (bar > 2 ? 1 : 0));
  if (values) {
    // One path for all bars: 64–256 rects per layer per hover would be needless DOM.
    let d = '';
    for (let e = 0; e < experts; e++) {
      const y = h(values[e]!);
      d += `M${e * bar} ${DIST_HEIGHT}h${bw}v${(-y).toFixed(2)}h${-bw}z`;
    }
    svg('path', { d, class: 'viz-dist-all' }, root);
  }
  for (let j = 0; j < ids.length; j++) {
    const e = ids[j]!;
    if (e < 0 || e >= experts) continue;
    const v = values ? values[e]! : weights[j]!;
    svg('rect', { x: e * bar, y: DIST_HEIGHT - h(v), width: bw, height: h(v), fill: expertCss(e) }, root);
  }
  const label = values ? `router distribution, max p ${formatWeight(max)}` : 'gate weights of the chosen experts (full distribution needs detail "full")';
  root.setAttribute('aria-label', label);
  svg('title', {}, root).textContent = label;
}
