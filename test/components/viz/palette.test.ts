/** Expert colours and colour arithmetic: distinctness, determinism, and the byte-level forms the canvases use. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deltaE76, labToRgb, packRgba, parseColor, rgbToLab, unpackRgba } from '../../../components/viz/color.ts';
import { BASE_PALETTE, expertCss, expertRgb, expertShadeBytes, expertShadeCss, expertShadeTable, shadeLevel, SHADE_LEVELS, textColorOn, THEME, weightIntensity } from '../../../components/viz/palette.ts';
import { divergingRamp, rampIndex, sequentialRamp, shareToDiverging, signedToDiverging } from '../../../components/viz/ramps.ts';

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe('colour arithmetic', () => {
  it('parses the colour strings d3 produces', () => {
    assert.deepEqual(parseColor('#4e79a7'), [78, 121, 167]);
    assert.deepEqual(parseColor('#fa0'), [255, 170, 0]);
    assert.deepEqual(parseColor('rgb(5, 48, 97)'), [5, 48, 97]);
    assert.throws(() => parseColor('teal'));
  });

  it('puts white at L* 100 and black at L* 0 with no chroma', () => {
    const w = rgbToLab([255, 255, 255]);
    close(w[0], 100, 1e-3);
    close(w[1], 0, 1e-3);
    close(w[2], 0, 1e-3);
    assert.deepEqual(rgbToLab([0, 0, 0]).map((v) => Math.round(v)), [0, 0, 0]);
  });

  it('round-trips sRGB through CIELAB to the same bytes', () => {
    for (const hex of [...BASE_PALETTE, '#0f1115', '#ffffff', '#000000']) {
      const c = parseColor(hex);
      assert.deepEqual(labToRgb(rgbToLab(c)), c, hex);
    }
  });

  it('measures CIE76 ΔE as the Euclidean distance in CIELAB (black to white is 100)', () => {
    close(deltaE76([0, 0, 0], [255, 255, 255]), 100, 1e-3);
    assert.equal(deltaE76([10, 20, 30], [10, 20, 30]), 0);
  });

  it('packs a pixel so its bytes in memory are R, G, B, A as ImageData expects', () => {
    const px = new Uint32Array(1);
    px[0] = packRgba([1, 2, 3], 4);
    assert.deepEqual([...new Uint8ClampedArray(px.buffer)], [1, 2, 3, 4]);
    assert.deepEqual(unpackRgba(px[0]), [1, 2, 3, 4]);
  });
});

describe('expert palette', () => {
  it('has at least 16 colours whose pairwise CIE76 ΔE is at least 25', () => {
    assert.ok(BASE_PALETTE.length >= 16);
    let min = Infinity;
    for (let i = 0; i < 16; i++) for (let j = i + 1; j < 16; j++) min = Math.min(min, deltaE76(expertRgb(i), expertRgb(j)));
    assert.ok(min >= 25, `closest pair ΔE ${min.toFixed(2)}`);
  });

  it('keeps every base colour readable on the dark panel (ΔE ≥ 40 from it)', () => {
    for (let e = 0; e < 16; e++) assert.ok(deltaE76(expertRgb(e), THEME.panel) >= 40, `e${e}`);
  });

  it('is deterministic: the same expert always gets the same colour', () => {
    const first = Array.from({ length: 128 }, (_, e) => expertCss(e));
    const again = Array.from({ length: 128 }, (_, e) => expertCss(e));
    assert.deepEqual(again, first);
    assert.equal(expertCss(0), '#4e79a7');
    assert.equal(expertCss(15), BASE_PALETTE[15]);
  });

  it('beyond 16 experts cycles the hues at another lightness, never repeating a colour', () => {
    for (let e = 16; e < 80; e++) {
      const base = rgbToLab(expertRgb(e % 16));
      const shifted = rgbToLab(expertRgb(e));
      assert.ok(Math.abs(base[0] - shifted[0]) >= 8, `e${e} lightness ${shifted[0].toFixed(1)} vs base ${base[0].toFixed(1)}`);
    }
    // Cycles of one hue stay apart from each other, not only from the base.
    for (let h = 0; h < 16; h++) {
      for (let c = 0; c < 5; c++) for (let d = c + 1; d < 5; d++) assert.ok(deltaE76(expertRgb(h + 16 * c), expertRgb(h + 16 * d)) >= 8, `hue ${h} cycles ${c}/${d}`);
    }
    let min = Infinity;
    for (let i = 0; i < 64; i++) for (let j = i + 1; j < 64; j++) min = Math.min(min, deltaE76(expertRgb(i), expertRgb(j)));
    assert.ok(min >= 5, `closest pair among 64 ΔE ${min.toFixed(2)}`);
  });

  it('shows an invalid expert id as the muted grey instead of failing', () => {
    assert.deepEqual(expertRgb(-1), THEME.muted);
  });
});

describe('gate weight intensity', () => {
  it('maps weight through 0.2 + 0.8·√w', () => {
    close(weightIntensity(0), 0.2);
    close(weightIntensity(0.25), 0.6);
    close(weightIntensity(1), 1);
    close(weightIntensity(4), 1);
    close(weightIntensity(NaN), 0.2);
  });

  it('blends toward the panel as RGBA bytes: weight 1 is the expert colour, weight 0 a fifth of it', () => {
    assert.deepEqual(expertShadeBytes(0, 1), [78, 121, 167, 255]);
    // panel (23, 26, 33) + 0.2 · ((78, 121, 167) − panel) = (34, 45, 59.8)
    assert.deepEqual(expertShadeBytes(0, 0), [34, 45, 60, 255]);
  });

  it('gives SVG/DOM the expert colour with the intensity as alpha', () => {
    assert.equal(expertShadeCss(0, 1), '#4e79a7');
    assert.equal(expertShadeCss(0, 0.25), 'rgba(78, 121, 167, 0.6)');
  });

  it('quantises weights into a per-expert table of packed pixels', () => {
    assert.equal(shadeLevel(0), 0);
    assert.equal(shadeLevel(1), SHADE_LEVELS - 1);
    assert.equal(shadeLevel(0.5), Math.round(0.5 * (SHADE_LEVELS - 1)));
    const t = expertShadeTable(3);
    assert.equal(t.length, SHADE_LEVELS);
    assert.deepEqual(unpackRgba(t[SHADE_LEVELS - 1]!), [...expertRgb(3), 255]);
    assert.equal(expertShadeTable(3), t);
  });

  it('picks dark text on light colours and light text on dark ones', () => {
    assert.equal(textColorOn(parseColor('#edc949')), '#0f1115');
    assert.equal(textColorOn(parseColor('#4e79a7')), '#e6e8ee');
  });
});

describe('ramps', () => {
  it('puts the uniform share 1/E in the middle of the diverging scale, 8× off at the ends', () => {
    assert.equal(shareToDiverging(1 / 64, 64), 0.5);
    assert.equal(shareToDiverging(0, 64), 0);
    assert.equal(shareToDiverging(8 / 64, 64), 1);
    assert.equal(shareToDiverging(1 / 512, 64), 0);
    // log2(2) / 3 octaves = 1/3 of the half-range above the middle.
    close(shareToDiverging(2 / 64, 64), 0.5 + 1 / 6);
    close(shareToDiverging(0.5 / 64, 64), 0.5 - 1 / 6);
  });

  it('maps signed differences symmetrically around zero', () => {
    assert.equal(signedToDiverging(0, 0.2), 0.5);
    assert.equal(signedToDiverging(-0.2, 0.2), 0);
    assert.equal(signedToDiverging(0.1, 0.2), 0.75);
    assert.equal(signedToDiverging(0.1, 0), 0.5);
  });

  it('indexes 256-entry tables, clamping out-of-range and NaN', () => {
    assert.equal(rampIndex(0), 0);
    assert.equal(rampIndex(1), 255);
    assert.equal(rampIndex(0.5), 128);
    assert.equal(rampIndex(-3), 0);
    assert.equal(rampIndex(NaN), 0);
    assert.equal(rampIndex(7), 255);
    assert.equal(sequentialRamp().pixels.length, 256);
    // The diverging middle is the border grey, so "as expected" recedes on the dark theme.
    assert.ok(deltaE76(parseColor(divergingRamp().css[128]!), THEME.border) < 2);
  });
});
