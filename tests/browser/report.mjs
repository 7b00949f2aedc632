// The report's chart, read as a person reads the mail: rendered in headless
// Chromium from the message's own HTML (the inline image given as a data: URL),
// it has a caption saying what a bar is and the time zone, counts on its left
// beside the gridlines they name, and labels under the bars they name.
//
// Usage: node report.mjs HTML_FILE OUT_DIR
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';
import { BAR_RGB, CAPTION, barColour, roundTop, same } from './chart.mjs';

const [file, out] = process.argv.slice(2);
if (!file || !out) {
  console.error('usage: node report.mjs HTML_FILE OUT_DIR');
  process.exit(2);
}
const failures = [];
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 700, height: 900 } })).newPage();
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  const title = await page.textContent('#chart-title');
  check(CAPTION.test(title.trim()), `the caption says what a bar is and the zone ("${title.trim()}")`);
  const geometry = await page.evaluate(() => {
    const img = document.querySelector('#chart img');
    const box = (e) => e.getBoundingClientRect();
    const i = box(img);
    return {
      loaded: img.complete && img.naturalWidth > 0,
      img: { left: i.left, right: i.right, top: i.top, bottom: i.bottom },
      y: [...document.querySelectorAll('#chart [data-y]')].map((e) => ({ value: Number(e.textContent), mid: (box(e).top + box(e).bottom) / 2, right: box(e).right })),
      x: [...document.querySelectorAll('#chart [data-x]')].map((e) => ({ text: e.textContent, left: box(e).left, top: box(e).top })),
    };
  });
  const { img, y, x } = geometry;
  // The same scale and colour as the dashboard's chart (check.mjs).
  const pixels = await page.evaluate(() => {
    const img = document.querySelector('#chart img');
    const c = document.createElement('canvas');
    [c.width, c.height] = [img.naturalWidth, img.naturalHeight];
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    return { rgba: [...ctx.getImageData(0, 0, c.width, c.height).data], alt: img.alt };
  });
  const colour = barColour(pixels.rgba);
  check(same(colour, BAR_RGB), `bars are the dashboard's colour (${colour})`);
  const peak = Number((pixels.alt.match(/the most: (\d+)/) || [])[1]) || 0;
  check(y.length === 3 && y[0].value === roundTop(peak) && y[1].value === y[0].value / 2, `the scale tops at the round number over the peak ${peak}, as the dashboard's`);
  check(geometry.loaded, 'the chart image shows');
  check(y.length === 3 && y[0].value > y[1].value && y[2].value === 0, `counts top to bottom: ${y.map((l) => l.value).join(', ')}`);
  check(y.length === 3 && Math.abs(y[0].mid - img.top) <= 8 && Math.abs(y[2].mid - img.bottom) <= 8
    && Math.abs(y[1].mid - (img.top + img.bottom) / 2) <= 8, 'each count sits beside its gridline');
  check(y.every((l) => l.right <= img.left), 'the counts are left of the bars');
  check(x.length >= 4, `labels under the bars (${x.map((l) => l.text).join(' ')})`);
  check(x.every((l) => l.top >= img.bottom && l.left >= img.left - 1 && l.left < img.right), 'every label is under the chart');
  check(x.length > 0 && Math.abs(x[0].left - img.left) <= 1, 'the first label starts at the first bar');
  check(x.every((l, n) => n === 0 || l.left > x[n - 1].left), 'labels run left to right');
  await page.screenshot({ path: `${out}/report.png`, fullPage: true });
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(`${failures.length} check(s) failed`);
  process.exit(1);
}
