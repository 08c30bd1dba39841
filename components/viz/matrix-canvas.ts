/**
 * A rows × cols matrix of flat colours on a canvas, drawn through one reused ImageData: the shared
 * drawing path of the heatmap, the co-activation matrix and the A/B difference.
 */
import { PixelBuffer, sizeCanvas, type Listeners } from './dom';
import { deviceSpan, matrixHitTest, type Cell, type MatrixGeometry } from './layout';

export class MatrixCanvas {
  readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D | null;
  private readonly buffer: PixelBuffer | null;
  private geom: MatrixGeometry | null = null;

  constructor(parent: Element, testId: string, private readonly background: number) {
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'viz-matrix';
    this.canvas.dataset.testid = testId;
    this.canvas.tabIndex = 0;
    this.canvas.setAttribute('aria-label', 'matrix: arrow keys move between cells, Esc leaves');
    parent.appendChild(this.canvas);
    this.ctx = this.canvas.getContext('2d', { alpha: false });
    this.buffer = this.ctx ? new PixelBuffer(this.ctx) : null;
  }

  /**
   * Paints every cell with `colorAt(row, col)` (a packed pixel). Cells of 4+ device pixels get a
   * one-pixel gap so neighbours with close colours stay separable.
   */
  paint(g: MatrixGeometry, colorAt: (row: number, col: number) => number): void {
    this.geom = g;
    const dpr = sizeCanvas(this.canvas, g.width, g.height);
    if (!this.ctx || !this.buffer) return;
    const { image, pixels } = this.buffer.get(this.canvas.width, this.canvas.height);
    const stride = image.width;
    pixels.fill(this.background);
    const gapX = g.cellWidth * dpr >= 4 ? 1 : 0;
    const gapY = g.cellHeight * dpr >= 4 ? 1 : 0;
    const height = image.height;
    for (let r = 0; r < g.rows; r++) {
      const [y0, y1] = deviceSpan(r, g.cellHeight, dpr);
      const yb = Math.min(height, y1 - gapY);
      if (y0 >= yb) continue;
      // Paint the row's first device line, then copy it down the row.
      const line = y0 * stride;
      for (let c = 0; c < g.cols; c++) {
        const [x0, x1] = deviceSpan(c, g.cellWidth, dpr);
        const xb = Math.min(stride, x1 - gapX);
        if (x0 < xb) pixels.fill(colorAt(r, c), line + x0, line + xb);
      }
      for (let y = y0 + 1; y < yb; y++) pixels.copyWithin(y * stride, line, line + stride);
    }
    this.ctx.putImageData(image, 0, 0);
  }

  /** Outlines one cell on top of the last paint (hover/selection feedback). */
  outline(cell: Cell | null, color: string): void {
    const g = this.geom;
    if (!cell || !g || !this.ctx) return;
    const dpr = this.canvas.width / Math.max(1, g.width);
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.ctx.strokeStyle = color;
    this.ctx.lineWidth = 1;
    this.ctx.strokeRect(cell.col * g.cellWidth + 0.5, cell.row * g.cellHeight + 0.5, g.cellWidth - 1, g.cellHeight - 1);
    this.ctx.setTransform(1, 0, 0, 1, 0, 0);
  }

  /** The cell under a mouse event, from the last paint's geometry. */
  cellAt(ev: MouseEvent): Cell | null {
    if (!this.geom) return null;
    const r = this.canvas.getBoundingClientRect();
    return matrixHitTest(this.geom, ev.clientX - r.left, ev.clientY - r.top);
  }

  /**
   * The cell a key moves to from `from`, so the keyboard reaches every cell as the mouse does:
   * arrows move (from the first cell when none is shown), Escape shows none (null); undefined for
   * a key that is not a move.
   */
  cellAfterKey(from: Cell | null, key: string): Cell | null | undefined {
    const g = this.geom;
    if (key === 'Escape') return from ? null : undefined;
    const move: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const m = move[key];
    if (!m || !g || g.rows === 0 || g.cols === 0) return undefined;
    if (!from) return { row: 0, col: 0 };
    return { row: Math.max(0, Math.min(g.rows - 1, from.row + m[0])), col: Math.max(0, Math.min(g.cols - 1, from.col + m[1])) };
  }

  /** Keys move the shown cell (cellAfterKey) from `current()`; `show` gets the new one, as a hover would. */
  onKeys(listeners: Listeners, current: () => Cell | null, show: (cell: Cell | null) => void): void {
    listeners.on(this.canvas, 'keydown', (ev) => {
      const next = this.cellAfterKey(current(), ev.key);
      if (next === undefined) return;
      ev.preventDefault();
      show(next);
    });
  }
}
