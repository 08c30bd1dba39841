/** Virtualization, hit-testing and cell geometry of the canvas views, with hand-computed cases. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { visibleToken } from '../../../components/viz/format.ts';
import {
  deviceSpan,
  fitColumnWidth,
  gridHitTest,
  gridRowAt,
  matrixGeometry,
  matrixHitTest,
  maxScrollTop,
  proportionalSlices,
  scrollToReveal,
  visibleRows,
  type GridGeometry,
} from '../../../components/viz/layout.ts';

describe('visible rows of the virtualized grid', () => {
  it('covers exactly the rows in view without overscan', () => {
    // rows of 10 px, 100 px viewport at the top: rows 0…9
    assert.deepEqual(visibleRows(0, 100, 10, 1000, 0), { first: 0, end: 10 });
    // scrolled to 95: rows 9 (half hidden) … 19 (half shown)
    assert.deepEqual(visibleRows(95, 100, 10, 1000, 0), { first: 9, end: 20 });
  });

  it('adds overscan on both sides, clamped at the first row', () => {
    assert.deepEqual(visibleRows(0, 100, 10, 1000, 2), { first: 0, end: 12 });
    assert.deepEqual(visibleRows(500, 100, 10, 1000, 3), { first: 47, end: 63 });
  });

  it('clamps at the last row when scrolled to the end', () => {
    const top = maxScrollTop(100, 10, 1000);
    assert.equal(top, 9900);
    assert.deepEqual(visibleRows(top, 100, 10, 1000, 4), { first: 986, end: 1000 });
  });

  it('draws every row when the content is shorter than the viewport', () => {
    assert.deepEqual(visibleRows(0, 500, 10, 20, 4), { first: 0, end: 20 });
    assert.equal(maxScrollTop(500, 10, 20), 0);
  });

  it('draws nothing for an empty run or a collapsed viewport', () => {
    assert.deepEqual(visibleRows(0, 100, 10, 0), { first: 0, end: 0 });
    assert.deepEqual(visibleRows(0, 0, 10, 50), { first: 0, end: 0 });
  });

  it('treats elastic overscroll above the top as the top', () => {
    assert.deepEqual(visibleRows(-40, 100, 10, 1000, 0), { first: 0, end: 10 });
  });

  it('stays consistent when the scroll position is past the end (rows removed under it)', () => {
    assert.deepEqual(visibleRows(5000, 100, 10, 100, 2), { first: 100, end: 100 });
  });

  it('rejects a non-positive row height', () => {
    assert.throws(() => visibleRows(0, 100, 0, 10), RangeError);
  });

  it('scrolls just enough to reveal a row', () => {
    assert.equal(scrollToReveal(5, 100, 100, 10), 50); // above the view: align to the top
    assert.equal(scrollToReveal(25, 100, 100, 10), 160); // below: align to the bottom (260 − 100)
    assert.equal(scrollToReveal(15, 100, 100, 10), 100); // in view: stay
  });
});

describe('grid hit-testing', () => {
  const g: GridGeometry = { labelWidth: 100, columnWidth: 20, rowHeight: 10, columns: 4, rows: 50 };

  it('finds the cell under a point, edges belonging to the next cell', () => {
    assert.deepEqual(gridHitTest(g, 100, 0, 0), { row: 0, col: 0 });
    assert.deepEqual(gridHitTest(g, 179.9, 9.99, 0), { row: 0, col: 3 });
    assert.deepEqual(gridHitTest(g, 120, 10, 0), { row: 1, col: 1 });
  });

  it('adds the scroll offset to the pointer position', () => {
    // y 5 + scrollTop 95 = 100 px into the content: row 10
    assert.deepEqual(gridHitTest(g, 125, 5, 95), { row: 10, col: 1 });
    assert.equal(gridRowAt(g, 5, 95), 10);
  });

  it('misses over the label column, right of the last column and below the last row', () => {
    assert.equal(gridHitTest(g, 99.9, 5, 0), null);
    assert.equal(gridHitTest(g, 180, 5, 0), null);
    assert.equal(gridHitTest(g, 110, 5, 495), null); // 500 px = row 50, one past the last
    assert.equal(gridRowAt(g, 5, 495), -1);
    assert.equal(gridHitTest(g, 110, -1, 0), null);
  });

  it('fits column widths between the bounds', () => {
    assert.equal(fitColumnWidth(900, 100, 16), 48); // (900 − 100) / 16 = 50, capped at 48
    assert.equal(fitColumnWidth(500, 100, 16), 25);
    assert.equal(fitColumnWidth(150, 100, 16), 6); // 3 would be too thin: floor at 6
  });
});

describe('device-pixel spans', () => {
  it('tiles bands without gaps or overlaps at a fractional device pixel ratio', () => {
    // 7 CSS px at 1.5: edges at 0, 10.5→11, 21, 31.5→32, 42
    assert.deepEqual(deviceSpan(0, 7, 1.5), [0, 11]);
    assert.deepEqual(deviceSpan(1, 7, 1.5), [11, 21]);
    assert.deepEqual(deviceSpan(2, 7, 1.5), [21, 32]);
    for (let i = 0; i < 100; i++) assert.equal(deviceSpan(i, 7, 1.5)[1], deviceSpan(i + 1, 7, 1.5)[0]);
  });

  it('offsets by an origin in CSS pixels (the label column, or minus the scroll position)', () => {
    assert.deepEqual(deviceSpan(0, 10, 2, 100), [200, 220]);
    assert.deepEqual(deviceSpan(3, 10, 1, -25), [5, 15]);
  });
});

describe('matrix geometry', () => {
  it('uses whole-pixel cells that fit the width', () => {
    const g = matrixGeometry(16, 64, 700);
    assert.equal(g.cellWidth, 10); // floor(700 / 64)
    assert.equal(g.width, 640);
    assert.equal(g.height, 160);
  });

  it('clamps cells between the minimum and maximum and honours a fixed row height', () => {
    assert.equal(matrixGeometry(16, 64, 10000, { maxCell: 20 }).cellWidth, 20);
    assert.equal(matrixGeometry(16, 512, 300, { minCell: 2 }).cellWidth, 2);
    const g = matrixGeometry(16, 64, 700, { cellHeight: 16 });
    assert.equal(g.cellHeight, 16);
    assert.equal(g.height, 256);
  });

  it('hit-tests matrix cells', () => {
    const g = matrixGeometry(4, 8, 80); // 10 px cells
    assert.deepEqual(matrixHitTest(g, 0, 0), { row: 0, col: 0 });
    assert.deepEqual(matrixHitTest(g, 79, 39), { row: 3, col: 7 });
    assert.equal(matrixHitTest(g, 80, 5), null);
    assert.equal(matrixHitTest(g, 5, 40), null);
    assert.equal(matrixHitTest(g, -1, 5), null);
  });
});

describe('top-k slices', () => {
  it('splits a cell in proportion to the gate weights, ending exactly at its width', () => {
    assert.deepEqual(proportionalSlices([0.5, 0.3, 0.2], 10), [0, 5, 8, 10]);
    assert.deepEqual(proportionalSlices([2, 1, 1], 8), [0, 4, 6, 8]); // weights need not sum to 1
  });

  it('splits evenly when every weight is zero', () => {
    assert.deepEqual(proportionalSlices([0, 0], 9), [0, 5, 9]);
  });
});

describe('token labels', () => {
  it('makes whitespace visible so every token has a box', () => {
    assert.equal(visibleToken(' the'), '·the');
    assert.equal(visibleToken('\n'), '↵');
    assert.equal(visibleToken('a\tb'), 'a→b');
    assert.equal(visibleToken(''), '∅');
  });
});
