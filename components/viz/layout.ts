/**
 * Geometry of the canvas views in CSS pixels: which rows of a virtualized grid are on screen, which
 * cell a pointer is over, and where heatmap cells fall on the device-pixel grid.
 */

export interface RowRange {
  /** First row to draw. */
  readonly first: number;
  /** One past the last row to draw. */
  readonly end: number;
}

/**
 * Rows intersecting the viewport, widened by `overscan` rows on each side so a fast scroll does not
 * show blank rows before the next frame, and clamped to [0, totalRows).
 */
export function visibleRows(scrollTop: number, viewportHeight: number, rowHeight: number, totalRows: number, overscan = 4): RowRange {
  if (!(rowHeight > 0)) throw new RangeError('rowHeight must be positive');
  if (totalRows <= 0 || viewportHeight <= 0) return { first: 0, end: 0 };
  const top = Math.max(0, scrollTop);
  const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const end = Math.min(totalRows, Math.ceil((top + viewportHeight) / rowHeight) + overscan);
  return { first: Math.min(first, end), end };
}

/** Largest scrollTop that still fills the viewport. */
export function maxScrollTop(viewportHeight: number, rowHeight: number, totalRows: number): number {
  return Math.max(0, totalRows * rowHeight - viewportHeight);
}

/** scrollTop that brings `row` into view, moving as little as possible. */
export function scrollToReveal(row: number, scrollTop: number, viewportHeight: number, rowHeight: number): number {
  const top = row * rowHeight;
  if (top < scrollTop) return top;
  if (top + rowHeight > scrollTop + viewportHeight) return top + rowHeight - viewportHeight;
  return scrollTop;
}

export interface GridGeometry {
  /** Left column with the token labels. */
  readonly labelWidth: number;
  readonly columnWidth: number;
  readonly rowHeight: number;
  readonly columns: number;
  readonly rows: number;
}

/** Column width that fits `columns` into `width` after the label column, within [min, max]. */
export function fitColumnWidth(width: number, labelWidth: number, columns: number, min = 6, max = 48): number {
  if (columns <= 0) return max;
  return Math.max(min, Math.min(max, Math.floor((width - labelWidth) / columns)));
}

export interface Cell {
  readonly row: number;
  readonly col: number;
}

/**
 * The grid cell under viewport point (x, y) of a canvas scrolled to `scrollTop`; null over the label
 * column, right of the last column or below the last row. Cell edges belong to the cell after them.
 */
export function gridHitTest(g: GridGeometry, x: number, y: number, scrollTop: number): Cell | null {
  const cx = x - g.labelWidth;
  const cy = y + scrollTop;
  if (cx < 0 || cy < 0) return null;
  const col = Math.floor(cx / g.columnWidth);
  const row = Math.floor(cy / g.rowHeight);
  if (col >= g.columns || row >= g.rows) return null;
  return { row, col };
}

/** Row under viewport y (ignoring columns), or -1 outside the rows. */
export function gridRowAt(g: GridGeometry, y: number, scrollTop: number): number {
  const cy = y + scrollTop;
  if (cy < 0) return -1;
  const row = Math.floor(cy / g.rowHeight);
  return row < g.rows ? row : -1;
}

/**
 * [start, end) in device pixels of the i-th band of `size` CSS pixels. Rounding both edges of each
 * band (rather than the size) makes adjacent bands tile exactly at fractional devicePixelRatio.
 */
export function deviceSpan(i: number, size: number, dpr: number, origin = 0): [number, number] {
  return [Math.round((origin + i * size) * dpr), Math.round((origin + (i + 1) * size) * dpr)];
}

export interface MatrixGeometry {
  readonly rows: number;
  readonly cols: number;
  readonly cellWidth: number;
  readonly cellHeight: number;
  /** Drawing size in CSS pixels. */
  readonly width: number;
  readonly height: number;
}

/**
 * Cell size of a rows × cols matrix (heatmaps, co-activation) that fits `maxWidth`: whole CSS pixels
 * so every cell has the same size, between minCell and maxCell.
 */
export function matrixGeometry(rows: number, cols: number, maxWidth: number, opts: { minCell?: number; maxCell?: number; cellHeight?: number } = {}): MatrixGeometry {
  const minCell = opts.minCell ?? 2;
  const maxCell = opts.maxCell ?? 24;
  const cellWidth = cols > 0 ? Math.max(minCell, Math.min(maxCell, Math.floor(maxWidth / cols))) : minCell;
  const cellHeight = opts.cellHeight ?? cellWidth;
  return { rows, cols, cellWidth, cellHeight, width: cols * cellWidth, height: rows * cellHeight };
}

/** The matrix cell under (x, y), relative to the matrix's top-left corner, or null outside. */
export function matrixHitTest(g: MatrixGeometry, x: number, y: number): Cell | null {
  if (x < 0 || y < 0) return null;
  const col = Math.floor(x / g.cellWidth);
  const row = Math.floor(y / g.cellHeight);
  if (col >= g.cols || row >= g.rows) return null;
  return { row, col };
}

/**
 * Splits `width` pixels into slices proportional to `weights` (top-k gate weights): returns k+1
 * integer boundaries from 0 to width. Rounding the running sum keeps the slices summing to width.
 */
export function proportionalSlices(weights: ArrayLike<number>, width: number): number[] {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += Math.max(0, weights[i]!);
  const edges = [0];
  let acc = 0;
  for (let i = 0; i < weights.length; i++) {
    acc += Math.max(0, weights[i]!);
    edges.push(total > 0 ? Math.round((acc / total) * width) : Math.round(((i + 1) / weights.length) * width));
  }
  return edges;
}
