// What the dashboard's chart and the report's chart must share: the bar colour
// (the dashboard's light --accent), the scale's rule, the caption's form.

export const BAR_RGB = [0xb9, 0x1c, 0x1c];

// "Bans per day (Europe/Berlin)": what a bar is and the time zone.
export const CAPTION = /^Bans per (hour|day) \(([A-Za-z_]+(\/[A-Za-z_+-]+)*)\)$/;

// The smallest of 2, 4, 6, 8, 10 times a power of ten at least `peak`.
export function roundTop(peak) {
  for (let scale = 1; ; scale *= 10) {
    for (const step of [2, 4, 6, 8, 10]) if (step * scale >= peak) return step * scale;
  }
}

// The most common strongly coloured pixel of RGBA data: the bars' colour
// (gridlines, text and background are grey or white).
export function barColour(rgba) {
  const seen = new Map();
  for (let i = 0; i < rgba.length; i += 4) {
    const [r, g, b, a] = [rgba[i], rgba[i + 1], rgba[i + 2], rgba[i + 3]];
    if (a < 255 || Math.max(r, g, b) - Math.min(r, g, b) < 60) continue;
    const key = `${r},${g},${b}`;
    seen.set(key, (seen.get(key) || 0) + 1);
  }
  const [best] = [...seen.entries()].sort((x, y) => y[1] - x[1]);
  return best ? best[0].split(',').map(Number) : null;
}

export const same = (a, b) => Array.isArray(a) && a.length === b.length && a.every((v, i) => v === b[i]);
