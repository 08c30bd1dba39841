/**
 * Expert colours. Experts are categories, so the palette is categorical: 16 hues picked for
 * pairwise CIELAB distance (Tableau 10 plus six that sit far from it) and all light enough to read
 * on the dark panel. Larger models reuse the 16 hues with a lightness shift per cycle, so expert 17
 * is a darker expert 1 rather than a random colour that could collide with anything.
 */
import { labToRgb, mixRgb, packRgba, parseColor, rgbToLab, toCss, type Rgb } from './color';

export const BASE_PALETTE: readonly string[] = [
  '#4e79a7', '#f28e2c', '#e15759', '#76b7b2', '#59a14f', '#edc949', '#af7aa1', '#ff9da7',
  '#9c755f', '#bab0ab', '#7b66d2', '#e7298a', '#fdc086', '#e41a1c', '#a6d854', '#a65628',
];

/** The app's theme colours (see app/globals.css), as bytes for the canvas renderers. */
export const THEME = {
  bg: parseColor('#0f1115'),
  panel: parseColor('#171a21'),
  border: parseColor('#262b36'),
  text: parseColor('#e6e8ee'),
  muted: parseColor('#8a91a3'),
  accent: parseColor('#6aa1ff'),
} as const;

const BASE_RGB = BASE_PALETTE.map(parseColor);
const BASE_LAB = BASE_RGB.map(rgbToLab);

/**
 * Lightness offset (ΔL*) per cycle of 16. The offsets are distinct modulo the usable lightness range
 * (at least 10 apart), and a shifted lightness that leaves the range wraps around inside it, so
 * cycles of one hue never land on the same lightness. After five cycles the hue also turns a little.
 */
const CYCLE_SHIFT = [0, -16, 14, -28, 24] as const;
const L_MIN = 28; // darker would vanish on the panel
const L_MAX = 94; // lighter is white
const HUE_TURN_DEG = 20;

function wrapLightness(l: number): number {
  const span = L_MAX - L_MIN;
  return L_MIN + ((((l - L_MIN) % span) + span) % span);
}

const cache = new Map<number, Rgb>();

/** Deterministic colour of expert `e` (any non-negative integer; anything else is muted grey). */
export function expertRgb(e: number): Rgb {
  if (!(e >= 0) || !Number.isInteger(e)) return THEME.muted;
  const hit = cache.get(e);
  if (hit) return hit;
  const n = BASE_PALETTE.length;
  const cycle = Math.floor(e / n);
  let rgb: Rgb;
  if (cycle === 0) rgb = BASE_RGB[e]!;
  else {
    const [l, a, b] = BASE_LAB[e % n]!;
    const turn = (Math.floor(cycle / CYCLE_SHIFT.length) * HUE_TURN_DEG * Math.PI) / 180;
    const cos = Math.cos(turn);
    const sin = Math.sin(turn);
    rgb = labToRgb([wrapLightness(l + CYCLE_SHIFT[cycle % CYCLE_SHIFT.length]!), a * cos - b * sin, a * sin + b * cos]);
  }
  cache.set(e, rgb);
  return rgb;
}

export function expertCss(e: number): string {
  return toCss(expertRgb(e));
}

/**
 * Gate weight → colour strength in [0.2, 1]. With top-8 of 64 most weights sit around 0.05–0.3, so a
 * square root spreads that range out; the floor keeps even a weak choice identifiable by hue.
 */
export function weightIntensity(w: number): number {
  if (!(w > 0)) return 0.2;
  return 0.2 + 0.8 * Math.sqrt(Math.min(1, w));
}

/** Expert colour at a gate weight, blended toward the panel background (opaque, for ImageData). */
export function expertShadeRgb(e: number, w: number, bg: Rgb = THEME.panel): Rgb {
  return mixRgb(bg, expertRgb(e), weightIntensity(w));
}

/** The same shade as RGBA bytes. */
export function expertShadeBytes(e: number, w: number, bg: Rgb = THEME.panel): [number, number, number, number] {
  const c = expertShadeRgb(e, w, bg);
  return [c[0], c[1], c[2], 255];
}

/** The same shade for SVG/DOM: the expert colour with alpha, so it also works over any background. */
export function expertShadeCss(e: number, w: number): string {
  return toCss(expertRgb(e), weightIntensity(w));
}

/** Shades are quantised so a renderer can keep a small table of packed pixels per expert. */
export const SHADE_LEVELS = 32;

const shadeTables = new Map<number, Uint32Array>();

/** Packed pixels of expert `e` at SHADE_LEVELS weights from 0 to 1, over the panel colour. */
export function expertShadeTable(e: number): Uint32Array {
  let t = shadeTables.get(e);
  if (!t) {
    t = new Uint32Array(SHADE_LEVELS);
    for (let i = 0; i < SHADE_LEVELS; i++) t[i] = packRgba(expertShadeRgb(e, i / (SHADE_LEVELS - 1)));
    shadeTables.set(e, t);
  }
  return t;
}

export function shadeLevel(w: number): number {
  return Math.max(0, Math.min(SHADE_LEVELS - 1, Math.round(w * (SHADE_LEVELS - 1))));
}

/** Dark or light text, whichever reads on `background` (by CIELAB lightness). */
export function textColorOn(background: Rgb): string {
  return rgbToLab(background)[0] > 60 ? '#0f1115' : '#e6e8ee';
}
