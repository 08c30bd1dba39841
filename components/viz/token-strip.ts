/**
 * Token strip: the run's text as one span per token, coloured by the top-1 expert at a chosen MoE
 * layer, with a legend, and every layer's routing of the hovered (or clicked, to pin) token below.
 * Spans rather than canvas: a strip holds at most a few thousand tokens, and real text selects,
 * wraps and reads like text. Token text is set through textContent only.
 */
import { showHint, showTokenDetails } from './details';
import { el, layerSelect, Listeners, setText, swatch, syncOptions } from './dom';
import { expertCss, expertRgb, textColorOn } from './palette';
import { frameScheduler, type Renderer } from './renderer';
import type { RunData } from './run-data';

export interface TokenStripProps {
  readonly data: RunData;
  /** MoE layer (routing order) that colours the tokens; defaults to the last. */
  readonly layer?: number;
  readonly onLayerChange?: (layer: number) => void;
  /** Legend entries shown before "+N more". */
  readonly legendLimit?: number;
}

export interface TokenStripRenderer extends Renderer<TokenStripProps> {
  /** Draws now (tests and benchmarks); normally drawing waits for an animation frame. */
  redraw(): void;
  /** Shows (and pins) a token's details, or unpins with null. */
  pin(index: number | null): void;
}

const HINT = 'Hover a token to see its routing at every layer; click to pin (or focus the text: arrow keys move, Esc unpins).';

/** Strip text: an empty token still needs a visible box, and a newline token shows its mark. */
function stripText(text: string): string {
  return text === '' ? '∅' : text.replace(/\n/g, '↵\n');
}

export function createTokenStrip(container: HTMLElement, initial: TokenStripProps): TokenStripRenderer {
  let props = initial;
  let layer = -1;
  let lastPropLayer = initial.layer;
  let drawnVersion = -1;
  let drawnData: RunData | null = null;
  let drawnLayer = -1;
  let hovered = -1;
  let pinned = -1;
  let focusExpert = -1;
  let unsubscribe: (() => void) | null = null;
  const listeners = new Listeners();

  const root = el('div', { className: 'viz viz-token-strip', testId: 'token-strip' }, container);
  const toolbar = el('div', { className: 'viz-toolbar' }, root);
  const select = layerSelect(toolbar, 'token-strip-layer', 'colour by layer');
  const info = el('span', { className: 'viz-muted' }, toolbar);
  const legend = el('div', { className: 'viz-legend', testId: 'token-strip-legend' }, root);
  const strip = el('div', { className: 'viz-tokens', attrs: { role: 'list', tabindex: '0', 'aria-label': 'tokens: arrow keys move between them, Esc unpins' } }, root);
  const details = el('div', { className: 'viz-details', testId: 'token-details', attrs: { 'aria-live': 'polite' } }, root);
  showHint(details, HINT);

  const spans: HTMLSpanElement[] = [];
  let keys = new Int32Array(0); // expert drawn per span, -2 = never drawn
  const texts: string[] = [];
  let legendKey = '';
  let detailsKey = '';
  let detailsHeight = 0;

  const scheduler = frameScheduler(() => draw(false));

  function watch(data: RunData): void {
    unsubscribe?.();
    unsubscribe = data.subscribe(() => scheduler.schedule());
  }

  function currentLayer(data: RunData): number {
    if (data.numLayers === 0) return 0;
    if (layer < 0 || layer >= data.numLayers) layer = Math.min(data.numLayers - 1, Math.max(0, props.layer ?? data.numLayers - 1));
    return layer;
  }

  function draw(force: boolean): void {
    const data = props.data;
    const L = currentLayer(data);
    if (!force && data === drawnData && data.version === drawnVersion && L === drawnLayer) return;
    if (data !== drawnData) {
      for (const s of spans.splice(0)) s.remove();
      texts.length = 0;
      hovered = pinned = -1;
      detailsHeight = 0;
      details.style.removeProperty('min-height');
      show(-1);
    }
    syncOptions(select, Array.from({ length: data.numLayers }, (_, l) => data.layerLabel(l)), L);

    const n = data.length;
    if (keys.length < n) {
      const next = new Int32Array(Math.max(n, keys.length * 2)).fill(-2);
      next.set(keys.subarray(0, Math.min(keys.length, spans.length)));
      keys = next;
    }
    // Follow a streaming run while the reader is at the end; leave them where they scrolled to otherwise.
    const following = strip.scrollHeight - strip.scrollTop - strip.clientHeight < 8;
    const fragment = document.createDocumentFragment();
    for (let i = spans.length; i < n; i++) {
      const s = document.createElement('span');
      s.className = 'viz-tok';
      s.dataset.index = String(i);
      s.setAttribute('role', 'listitem');
      spans.push(s);
      texts.push('\u0000'); // never a token's text: the first draw always sets it
      keys[i] = -2;
      fragment.appendChild(s);
    }
    strip.appendChild(fragment);
    while (spans.length > n) spans.pop()!.remove();

    const top1 = new Uint32Array(data.numExperts);
    for (let i = 0; i < n; i++) {
      const s = spans[i]!;
      // A token that only starts a character reads as part of the next one: an empty dotted box, so
      // the strip reads as the text ("Москва", not "�Москва").
      const partial = data.hasToken(i) && data.isPartial(i);
      const text = !data.hasToken(i) ? '…' : partial ? '' : stripText(data.tokenLabel(i));
      if (texts[i] !== text) {
        s.textContent = text;
        texts[i] = text;
        s.classList.toggle('viz-tok-partial', partial);
        if (partial) s.title = 'part of a character: the next token completes it';
        else s.removeAttribute('title');
      }
      const e = data.topExpert(i, L);
      if (e >= 0 && e < top1.length) top1[e]++;
      if (keys[i] === e) continue;
      keys[i] = e;
      if (e < 0) {
        s.style.removeProperty('background');
        s.style.removeProperty('color');
        s.classList.add('viz-tok-pending');
        delete s.dataset.expert;
      } else {
        s.style.background = expertCss(e);
        s.style.color = textColorOn(expertRgb(e));
        s.classList.remove('viz-tok-pending');
        s.dataset.expert = String(e);
      }
      s.classList.toggle('viz-tok-focus', focusExpert >= 0 && e === focusExpert);
    }
    if (following && n > 0) strip.scrollTop = strip.scrollHeight;
    drawLegend(top1, data);
    setText(info, `${data.tokenCount} tokens · ${data.routedCount} routed`);
    // While a run streams, rebuild the details only when the shown token itself changed.
    const shown = pinned >= 0 ? pinned : hovered;
    if (shown >= 0 && shown < n && detailsKey !== keyOf(data, shown, L)) show(shown);
    root.dataset.version = String(data.version);
    drawnData = data;
    drawnVersion = data.version;
    drawnLayer = L;
  }

  function drawLegend(top1: Uint32Array, data: RunData): void {
    const order = Array.from(top1.keys()).filter((e) => top1[e]! > 0).sort((a, b) => top1[b]! - top1[a]! || a - b);
    const limit = props.legendLimit ?? 24;
    const key = `${data.layerLabel(currentLayer(data))}|${order.length}|` + order.slice(0, limit).map((e) => `${e}:${top1[e]}`).join(',');
    if (key === legendKey) return;
    legendKey = key;
    const items: HTMLElement[] = [el('span', { className: 'viz-muted', text: `top-1 at ${data.layerLabel(currentLayer(data))}:` })];
    for (const e of order.slice(0, limit)) {
      const item = el('span', { className: 'viz-legend-item', attrs: { 'data-expert': String(e) } });
      swatch(item, expertCss(e));
      item.append(`e${e} ${top1[e]}`);
      items.push(item);
    }
    if (order.length > limit) items.push(el('span', { className: 'viz-muted', text: `+${order.length - limit} more` }));
    legend.replaceChildren(...items);
  }

  function indexOf(target: EventTarget | null): number {
    const s = target instanceof Element ? target.closest<HTMLElement>('[data-index]') : null;
    return s && strip.contains(s) ? Number(s.dataset.index) : -1;
  }

  function setActive(i: number, cls: string, prev: number): void {
    if (prev >= 0) spans[prev]?.classList.remove(cls);
    if (i >= 0) spans[i]?.classList.add(cls);
  }

  function keyOf(data: RunData, i: number, l: number): string {
    return `${i}:${l}:${data.hasToken(i)}:${data.hasRouting(i)}`;
  }

  function show(i: number): void {
    const data = props.data;
    if (i >= 0 && i < data.length) {
      const l = currentLayer(data);
      showTokenDetails(details, data, i, { highlightLayer: l });
      detailsKey = keyOf(data, i, l);
    } else {
      showHint(details, HINT);
      detailsKey = '';
    }
    // The panel keeps the tallest height it has had, so the views below do not jump each time the
    // pointer enters or leaves a token.
    const h = details.getBoundingClientRect().height;
    if (h > detailsHeight) {
      detailsHeight = h;
      details.style.minHeight = `${h}px`;
    }
  }

  function pin(i: number | null): void {
    const next = i === null || i === pinned ? -1 : i;
    setActive(next, 'viz-tok-pinned', pinned);
    pinned = next;
    show(pinned >= 0 ? pinned : hovered);
  }

  function focus(e: number): void {
    if (e === focusExpert) return;
    focusExpert = e;
    root.classList.toggle('viz-focusing', e >= 0);
    for (let i = 0; i < spans.length; i++) spans[i]!.classList.toggle('viz-tok-focus', e >= 0 && keys[i] === e);
  }

  listeners.on(strip, 'mouseover', (ev) => {
    const i = indexOf(ev.target);
    if (i < 0 || i === hovered) return;
    setActive(i, 'viz-tok-active', hovered);
    hovered = i;
    if (pinned < 0) show(i);
  });
  listeners.on(strip, 'mouseleave', () => {
    setActive(-1, 'viz-tok-active', hovered);
    hovered = -1;
    if (pinned < 0) show(-1);
  });
  listeners.on(strip, 'click', (ev) => {
    const i = indexOf(ev.target);
    if (i >= 0) pin(i);
  });
  // The keyboard reaches every token: arrows move the pinned one (from the last, when none is).
  listeners.on(strip, 'keydown', (ev) => {
    const n = props.data.length;
    if (ev.key === 'Escape' && pinned >= 0) return pin(null);
    const step: Record<string, number> = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    let next = ev.key === 'Home' ? 0 : ev.key === 'End' ? n - 1 : step[ev.key] === undefined ? -1 : pinned < 0 ? (step[ev.key]! > 0 ? 0 : n - 1) : pinned + step[ev.key]!;
    if (n === 0 || next === -1 && !(ev.key in step)) return;
    ev.preventDefault();
    next = Math.max(0, Math.min(n - 1, next));
    if (next !== pinned) pin(next);
    spans[next]?.scrollIntoView({ block: 'nearest' });
  });
  listeners.on(legend, 'mouseover', (ev) => {
    const item = ev.target instanceof Element ? ev.target.closest<HTMLElement>('[data-expert]') : null;
    focus(item ? Number(item.dataset.expert) : -1);
  });
  listeners.on(legend, 'mouseleave', () => focus(-1));
  listeners.on(select, 'change', () => {
    layer = Number(select.value);
    props.onLayerChange?.(layer);
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
    pin,
    destroy() {
      scheduler.cancel();
      unsubscribe?.();
      listeners.removeAll();
      root.remove();
    },
  };
}
