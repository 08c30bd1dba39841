/** Small DOM helpers for the renderers: elements with classes and test ids, text without HTML parsing. */

export interface ElementOptions {
  readonly className?: string;
  readonly testId?: string;
  readonly text?: string;
  readonly attrs?: Readonly<Record<string, string>>;
}

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, opts: ElementOptions = {}, parent?: Element): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (opts.className) node.className = opts.className;
  if (opts.testId) node.dataset.testid = opts.testId;
  if (opts.text !== undefined) node.textContent = opts.text;
  if (opts.attrs) for (const [k, v] of Object.entries(opts.attrs)) node.setAttribute(k, v);
  parent?.appendChild(node);
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Readonly<Record<string, string | number>> = {}, parent?: Element): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  parent?.appendChild(node);
  return node;
}

/** Sets text only when it changed, so a per-frame redraw does not churn the DOM. */
export function setText(node: Node, text: string): void {
  if (node.textContent !== text) node.textContent = text;
}

/**
 * Sizes a canvas to `width` × `height` CSS pixels at the device pixel ratio, and returns that ratio.
 * Does nothing (and keeps the bitmap) when the size is unchanged.
 */
export function sizeCanvas(canvas: HTMLCanvasElement, width: number, height: number): number {
  const dpr = typeof window !== 'undefined' && window.devicePixelRatio > 0 ? window.devicePixelRatio : 1;
  const w = Math.max(1, Math.round(width * dpr));
  const h = Math.max(1, Math.round(height * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const cw = `${width}px`;
  const ch = `${height}px`;
  if (canvas.style.width !== cw) canvas.style.width = cw;
  if (canvas.style.height !== ch) canvas.style.height = ch;
  return dpr;
}

/**
 * An ImageData the size of the canvas bitmap with a Uint32 view over its pixels, reused while the
 * size holds: allocating a multi-megabyte buffer per frame would dominate the redraw.
 */
export class PixelBuffer {
  private image: ImageData | null = null;
  private view: Uint32Array | null = null;

  constructor(private readonly ctx: CanvasRenderingContext2D) {}

  /** The buffer for a width × height bitmap, and its pixels as packed RGBA. */
  get(width: number, height: number): { image: ImageData; pixels: Uint32Array } {
    if (!this.image || this.image.width !== width || this.image.height !== height) {
      this.image = this.ctx.createImageData(width, height);
      this.view = new Uint32Array(this.image.data.buffer);
    }
    return { image: this.image, pixels: this.view! };
  }
}

/** Keeps a subtree's listeners in one place so `destroy()` removes them all. */
export class Listeners {
  private off: (() => void)[] = [];

  on<K extends keyof GlobalEventHandlersEventMap>(target: HTMLElement | SVGElement, type: K, fn: (e: GlobalEventHandlersEventMap[K]) => void, opts?: AddEventListenerOptions): void {
    const listener = (e: Event) => fn(e as GlobalEventHandlersEventMap[K]);
    target.addEventListener(type, listener, opts);
    this.off.push(() => target.removeEventListener(type, listener, opts));
  }

  /** Calls `fn` when `target` changes size (where ResizeObserver exists). */
  onResize(target: Element, fn: () => void): void {
    if (typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(() => fn());
    ro.observe(target);
    this.off.push(() => ro.disconnect());
  }

  /**
   * Calls `fn(width)` when `target`'s width changes (heights are the renderer's own business), and
   * returns the width now, which the caller starts from.
   */
  onWidthChange(target: Element, fn: (width: number) => void): number {
    let last = target.clientWidth;
    this.onResize(target, () => {
      const w = target.clientWidth;
      if (w !== last) {
        last = w;
        fn(w);
      }
    });
    return last;
  }

  add(fn: () => void): void {
    this.off.push(fn);
  }

  removeAll(): void {
    for (const f of this.off.splice(0)) f();
  }
}

/** A select element listing the run's MoE layers by name. */
export function layerSelect(parent: Element, testId: string, label: string): HTMLSelectElement {
  const wrap = el('label', { className: 'viz-control' }, parent);
  el('span', { text: label }, wrap);
  return el('select', { testId, attrs: { 'aria-label': label } }, wrap);
}

/** Replaces a select's options when the list changed, keeping `value` selected. */
export function syncOptions(select: HTMLSelectElement, labels: readonly string[], value: number): void {
  const same = select.options.length === labels.length && labels.every((l, i) => select.options[i]!.text === l);
  if (!same) {
    select.replaceChildren(...labels.map((l, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.text = l;
      return o;
    }));
  }
  if (select.value !== String(value)) select.value = String(value);
}

/** A colour square; set through CSSOM rather than a style attribute. */
export function swatch(parent: Element, color: string): HTMLElement {
  const s = el('i', { className: 'viz-swatch' }, parent);
  s.style.background = color;
  return s;
}

/**
 * Expert ids along a matrix edge: across the top ('x') or down the left side ('y'), every few cells
 * so labels never collide (about 7 px a character across, 12 px a line down). Across, a label
 * that would run past the matrix is left out; the axis clips what an estimate misses.
 */
export function expertTicks(axis: HTMLElement, experts: number, cell: number, length: number, direction: 'x' | 'y'): void {
  const key = `${experts}:${cell}:${length}:${direction}`;
  if (axis.dataset.key === key) return;
  axis.dataset.key = key;
  const every = Math.max(1, Math.ceil((direction === 'x' ? 40 : 12) / cell));
  const ticks: HTMLElement[] = [];
  for (let e = 0; e < experts; e += every) {
    if (direction === 'x' && e > 0 && e * cell + 7 * (String(e).length + 1) > length) break;
    const t = el('span', { text: `e${e}` });
    if (direction === 'x') t.style.left = `${e * cell}px`;
    else {
      t.style.top = `${e * cell + cell / 2}px`;
      t.style.transform = 'translateY(-50%)';
    }
    ticks.push(t);
  }
  axis.replaceChildren(...ticks);
}
