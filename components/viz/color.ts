/**
 * Colour arithmetic shared by the palettes and the canvas renderers: parsing the strings d3 hands
 * out, sRGB ↔ CIELAB (D65), CIE76 ΔE, and packing a colour into one 32-bit ImageData pixel.
 */

/** sRGB bytes, 0–255 each. */
export type Rgb = readonly [number, number, number];
/** CIELAB: L* 0–100, a*, b*. */
export type Lab = readonly [number, number, number];

/** Accepts what d3-scale-chromatic returns: `#rgb`, `#rrggbb` and `rgb(r, g, b)`. */
export function parseColor(text: string): Rgb {
  const s = text.trim();
  if (s.startsWith('#')) {
    const h = s.slice(1);
    const byte = (i: number, n: number) => parseInt(n === 1 ? h[i]! + h[i]! : h.slice(i, i + 2), 16);
    if (h.length === 3) return [byte(0, 1), byte(1, 1), byte(2, 1)];
    if (h.length === 6) return [byte(0, 2), byte(2, 2), byte(4, 2)];
  }
  const m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/.exec(s);
  if (m) return [Number(m[1]), Number(m[2]), Number(m[3])];
  throw new Error(`unsupported colour: ${text}`);
}

const clampByte = (v: number) => Math.max(0, Math.min(255, Math.round(v)));

export function toHex(c: Rgb): string {
  return '#' + c.map((v) => clampByte(v).toString(16).padStart(2, '0')).join('');
}

export function toCss(c: Rgb, alpha = 1): string {
  return alpha >= 1 ? toHex(c) : `rgba(${clampByte(c[0])}, ${clampByte(c[1])}, ${clampByte(c[2])}, ${Number(alpha.toFixed(3))})`;
}

/** Linear blend from `from` (t = 0) to `to` (t = 1) in sRGB bytes, rounded. */
export function mixRgb(from: Rgb, to: Rgb, t: number): Rgb {
  const u = Math.max(0, Math.min(1, t));
  return [clampByte(from[0] + (to[0] - from[0]) * u), clampByte(from[1] + (to[1] - from[1]) * u), clampByte(from[2] + (to[2] - from[2]) * u)];
}

const D65 = [0.95047, 1, 1.08883] as const;
const EPS = 216 / 24389;
const KAPPA = 24389 / 27;

const toLinear = (v: number) => {
  const c = v / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
};
const fromLinear = (c: number) => 255 * (c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055);

export function rgbToLab(c: Rgb): Lab {
  const r = toLinear(c[0]);
  const g = toLinear(c[1]);
  const b = toLinear(c[2]);
  const x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / D65[0];
  const y = (0.2126729 * r + 0.7151522 * g + 0.072175 * b) / D65[1];
  const z = (0.0193339 * r + 0.119192 * g + 0.9503041 * b) / D65[2];
  const f = (t: number) => (t > EPS ? Math.cbrt(t) : (KAPPA * t + 16) / 116);
  const fx = f(x);
  const fy = f(y);
  const fz = f(z);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

/** Out-of-gamut results are clipped per channel, which is enough for small lightness shifts. */
export function labToRgb(c: Lab): Rgb {
  const fy = (c[0] + 16) / 116;
  const fx = fy + c[1] / 500;
  const fz = fy - c[2] / 200;
  const inv = (f: number) => (f ** 3 > EPS ? f ** 3 : (116 * f - 16) / KAPPA);
  const x = inv(fx) * D65[0];
  const y = (c[0] > KAPPA * EPS ? fy ** 3 : c[0] / KAPPA) * D65[1];
  const z = inv(fz) * D65[2];
  const r = 3.2404542 * x - 1.5371385 * y - 0.4985314 * z;
  const g = -0.969266 * x + 1.8760108 * y + 0.041556 * z;
  const b = 0.0556434 * x - 0.2040259 * y + 1.0572252 * z;
  return [clampByte(fromLinear(Math.max(0, r))), clampByte(fromLinear(Math.max(0, g))), clampByte(fromLinear(Math.max(0, b)))];
}

/** CIE76 colour difference: Euclidean distance in CIELAB. About 2.3 is a just-noticeable difference. */
export function deltaE76(a: Rgb, b: Rgb): number {
  const p = rgbToLab(a);
  const q = rgbToLab(b);
  return Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
}

// ImageData is RGBA in memory order; a Uint32Array view reads those bytes in the platform's order.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** One pixel for a Uint32Array view over ImageData.data, so a run of pixels is one `fill` call. */
export function packRgba(c: Rgb, alpha = 255): number {
  const r = clampByte(c[0]);
  const g = clampByte(c[1]);
  const b = clampByte(c[2]);
  const a = clampByte(alpha);
  return (LITTLE_ENDIAN ? ((a << 24) | (b << 16) | (g << 8) | r) : ((r << 24) | (g << 16) | (b << 8) | a)) >>> 0;
}

/** The inverse of packRgba, for tests and for reading pixels back. */
export function unpackRgba(px: number): [number, number, number, number] {
  return LITTLE_ENDIAN
    ? [px & 255, (px >>> 8) & 255, (px >>> 16) & 255, px >>> 24]
    : [px >>> 24, (px >>> 16) & 255, (px >>> 8) & 255, px & 255];
}
