/** A colour ramp as a legend strip with labelled ticks (positions in [0, 1] along the ramp). */
import { el, sizeCanvas } from './dom';
import type { Ramp } from './ramps';

export interface Tick {
  readonly at: number;
  readonly label: string;
  /** Marks a reference value (the uniform share) more strongly than the ends. */
  readonly strong?: boolean;
}

const WIDTH = 180;
const HEIGHT = 10;

export class RampLegend {
  readonly root: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly ticks: HTMLElement;
  private ramp: Ramp | null = null;
  private key = '';

  constructor(parent: Element, testId: string) {
    this.root = el('div', { className: 'viz-ramp-legend', testId }, parent);
    this.canvas = el('canvas', {}, this.root);
    this.ticks = el('div', { className: 'viz-ramp-ticks' }, this.root);
    this.ticks.style.width = `${WIDTH}px`;
  }

  set(ramp: Ramp, ticks: readonly Tick[], caption: string): void {
    const key = caption + ticks.map((t) => `${t.at}:${t.label}`).join('|');
    if (ramp !== this.ramp) {
      this.ramp = ramp;
      const dpr = sizeCanvas(this.canvas, WIDTH, HEIGHT);
      const ctx = this.canvas.getContext('2d');
      if (ctx) {
        ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
        const n = ramp.css.length;
        for (let x = 0; x < WIDTH; x++) {
          ctx.fillStyle = ramp.css[Math.round((x / (WIDTH - 1)) * (n - 1))]!;
          ctx.fillRect(x, 0, 1, HEIGHT);
        }
      }
    }
    if (key === this.key) return;
    this.key = key;
    const nodes: HTMLElement[] = [];
    for (const t of ticks) {
      const n = el('span', { className: t.strong ? 'viz-ramp-tick viz-ramp-tick-strong' : 'viz-ramp-tick', text: t.label });
      n.style.left = `${Math.max(0, Math.min(1, t.at)) * 100}%`;
      nodes.push(n);
    }
    this.ticks.replaceChildren(...nodes);
    this.root.title = caption;
    this.root.setAttribute('aria-label', caption);
  }
}
