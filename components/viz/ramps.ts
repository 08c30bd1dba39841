/**
 * Continuous colour ramps as lookup tables, so a canvas renderer maps a value to a packed pixel with
 * one multiply and one array read instead of formatting and parsing a colour string per cell.
 */
import { interpolateViridis } from 'd3-scale-chromatic';
import { labToRgb, packRgba, parseColor, rgbToLab, toCss, type Rgb } from './color';
import { THEME } from './palette';

export interface Ramp {
  /** Packed ImageData pixels, index 0 = t 0, last = t 1. */
  readonly pixels: Uint32Array;
  readonly css: readonly string[];
}

const SIZE = 256;

function buildRamp(colorAt: (t: number) => Rgb): Ramp {
  const pixels = new Uint32Array(SIZE);
  const css: string[] = [];
  for (let i = 0; i < SIZE; i++) {
    const c = colorAt(i / (SIZE - 1));
    pixels[i] = packRgba(c);
    css.push(toCss(c));
  }
  return { pixels, css };
}

/** Index into a ramp for t in [0, 1]; NaN and out-of-range values clamp. */
export function rampIndex(t: number): number {
  if (!(t > 0)) return 0;
  if (t >= 1) return SIZE - 1;
  return Math.round(t * (SIZE - 1));
}

function lerpLab(a: Rgb, b: Rgb): (t: number) => Rgb {
  const p = rgbToLab(a);
  const q = rgbToLab(b);
  return (t) => labToRgb([p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t, p[2] + (q[2] - p[2]) * t]);
}

let sequential: Ramp | null = null;
let diverging: Ramp | null = null;

/** Counts and probabilities: viridis, whose dark end sits naturally on a dark panel. */
export function sequentialRamp(): Ramp {
  sequential ??= buildRamp((t) => parseColor(interpolateViridis(t)));
  return sequential;
}

const NEGATIVE = parseColor('#5b9cff');
const POSITIVE = parseColor('#f28e2c');

/**
 * Deviations around a reference: t 0 = far below, 0.5 = at the reference, 1 = far above. The middle
 * is the border grey rather than white so "as expected" recedes on the dark theme and only
 * deviations draw the eye.
 */
export function divergingRamp(): Ramp {
  if (!diverging) {
    const down = lerpLab(THEME.border, NEGATIVE);
    const up = lerpLab(THEME.border, POSITIVE);
    diverging = buildRamp((t) => (t < 0.5 ? down((0.5 - t) * 2) : up((t - 0.5) * 2)));
  }
  return diverging;
}

/**
 * Position on the diverging ramp of a share relative to the uniform share 1/E: log2 of the ratio,
 * so half and double the fair load are equally far from the middle; ±`octaves` reach the ends.
 */
export function shareToDiverging(share: number, experts: number, octaves = 3): number {
  if (!(share > 0)) return 0;
  const r = Math.log2(share * experts) / octaves;
  return Math.max(0, Math.min(1, 0.5 + r / 2));
}

/** Position on the diverging ramp of a signed difference, symmetric around zero. */
export function signedToDiverging(delta: number, maxAbs: number): number {
  if (!(maxAbs > 0)) return 0.5;
  return Math.max(0, Math.min(1, 0.5 + delta / maxAbs / 2));
}
