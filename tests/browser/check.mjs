// Drives headless Chromium through the dashboard served at BASE_URL and
// checks what a person would see: pages load without console errors (CSP
// violations included), the chart and the map really draw, filters work,
// stored attacker text stays text. Screenshots go to OUT_DIR.
//
// Usage: node check.mjs BASE_URL OUT_DIR XSS_IP
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { BAR_RGB, CAPTION, barColour, roundTop, same } from './chart.mjs';

const [base, out, xssIp] = process.argv.slice(2);
if (!base || !out || !xssIp) {
  console.error('usage: node check.mjs BASE_URL OUT_DIR XSS_IP');
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const failures = [];
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});

async function open(url, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.addInitScript(() => { window.__xss = 0; });
  const response = await page.goto(base + url, { waitUntil: 'networkidle' });
  return { page, errors, response, context };
}

try {
  // Overview: the chart and the map draw real pixels and shapes.
  let { page, errors, response } = await open('/');
  check(response.status() === 200, 'overview answers 200');
  await page.waitForSelector('#daily[data-rendered] canvas', { timeout: 15000 });
  const painted = await page.evaluate(() => {
    const c = document.querySelector('#daily canvas');
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
    return { n, total: px.length / 4 };
  });
  check(painted.n > painted.total * 0.02, `chart canvas is painted (${painted.n} of ${painted.total} pixels)`);
  // The same scale, colour and caption as the report's chart (report.mjs).
  const caption = (await page.textContent('#daily-title')).trim();
  check(CAPTION.test(caption) && caption === 'Bans per day (Europe/Berlin)', `the chart says what a bar is and the zone ("${caption}")`);
  const drawn = await page.evaluate(() => {
    const c = document.querySelector('#daily canvas');
    return { rgba: [...c.getContext('2d').getImageData(0, 0, c.width, c.height).data], top: Number(document.querySelector('#daily').dataset.top) };
  });
  const peak30 = Math.max(...(await (await page.request.get(base + '/api/v1/daily?days=30')).json()).days.map((d) => d.bans));
  check(drawn.top === roundTop(peak30), `the scale tops at ${drawn.top}, the round number over the peak ${peak30}`);
  const colour = barColour(drawn.rgba);
  check(same(colour, BAR_RGB), `bars are the report's colour (${colour})`);
  await page.waitForSelector('#map[data-rendered] svg', { timeout: 15000 });
  const map = await page.evaluate(() => {
    const regions = [...document.querySelectorAll('#map .jvm-region')];
    const fills = new Set(regions.map((r) => r.getAttribute('fill')));
    return { regions: regions.length, fills: fills.size, markers: document.querySelectorAll('#map .jvm-marker').length };
  });
  check(map.regions > 150, `map draws the world's countries (${map.regions})`);
  check(map.fills > 3, `countries are shaded by bans (${map.fills} shades)`);
  check(map.markers > 5, `cities of recent bans are marked (${map.markers})`);
  const days30 = await page.getAttribute('#daily', 'data-rendered');
  check(days30 === '30', `chart shows 30 days first (${days30})`);
  await page.click('button[data-days="90"]');
  const switched = await page.waitForFunction(() => document.querySelector('#daily').dataset.rendered === '90', null, { timeout: 10000 })
    .then(() => true, () => false);
  const pressed = await page.getAttribute('button[data-days="90"]', 'aria-pressed');
  check(switched && pressed === 'true', 'chart range switches to 90 days');
  await page.hover('#daily .u-over', { position: { x: 200, y: 100 } });
  const tip = await page.textContent('.chart-tip');
  check(/\d{4}-\d{2}-\d{2}: \d+ bans?/.test(tip || ''), `chart tooltip shows a day's bans (${tip})`);
  await page.screenshot({ path: `${out}/overview.png`, fullPage: true });
  check(errors.length === 0, `overview: no console errors ${JSON.stringify(errors)}`);
  check(await page.evaluate(() => window.__xss) === 0, 'overview: no injected script ran');

  // The most offending address leads to its page.
  const top = (await page.textContent('#offenders tbody a.ip')).trim();
  await Promise.all([page.waitForURL('**/ip/**'), page.click('#offenders tbody a.ip')]);
  await page.waitForLoadState('networkidle');
  check((await page.textContent('h1')).trim() === top, `IP page of the top offender ${top}`);
  const rows = await page.locator('table.events tbody tr').count();
  check(rows > 1, `IP page lists its events (${rows})`);
  const lanes = await page.$$eval('#timeline svg g.lane', (gs) => gs.map((g) => ({
    name: g.querySelector('text').firstChild.textContent,
    bans: [...g.querySelectorAll('rect[data-bans]')].reduce((n, r) => n + Number(r.dataset.bans), 0),
  })));
  const bans = Number(await page.textContent('[data-figure="bans"]'));
  check(lanes.length > 0 && lanes.every((l) => / on |other jails and hosts/.test(l.name)), `the timeline has a lane per jail and host (${lanes.map((l) => l.name)})`);
  check(lanes.reduce((n, l) => n + l.bans, 0) === bans, `the timeline holds every ban (${bans})`);
  const timelineTitle = (await page.textContent('#timeline-title')).trim();
  check(/^Bans per (day|week|month|year) \(Europe\/Berlin\), by jail and host$/.test(timelineTitle), `the timeline says what a cell is and the zone ("${timelineTitle}")`);
  const above = await page.evaluate(() => document.querySelector('#timeline').compareDocumentPosition(document.querySelector('#events')) & Node.DOCUMENT_POSITION_FOLLOWING);
  check(above > 0, 'the timeline is above the events');
  await page.screenshot({ path: `${out}/ip.png`, fullPage: true });
  await page.context().close();

  // Stored attacker text is shown as text on every page it reaches.
  ({ page, errors } = await open(`/ip/${xssIp}`));
  const shown = await page.textContent('pre.log');
  check(shown.includes('<script>'), 'matched lines with markup are shown literally');
  check(await page.evaluate(() => window.__xss) === 0, 'IP page: no injected script ran');
  check(errors.length === 0, `IP page: no console errors ${JSON.stringify(errors)}`);
  await page.context().close();

  // Search: filters submit, land in the URL, and narrow the table.
  ({ page, errors } = await open('/events'));
  await page.fill('input[name="jail"]', 'sshd');
  await page.selectOption('select[name="kind"]', 'ban');
  await Promise.all([page.waitForURL(/jail=sshd/), page.click('form.filters button[type="submit"]')]);
  const url = new URL(page.url());
  check(url.searchParams.get('jail') === 'sshd' && url.searchParams.get('kind') === 'ban', `filters are in the URL (${url.search})`);
  const jails = await page.$$eval('#results tbody tr td:nth-child(5)', (tds) => tds.map((t) => t.textContent.trim()));
  check(jails.length === 50 && jails.every((j) => j === 'sshd'), `every result is from sshd (${jails.length} rows)`);
  check(await page.inputValue('input[name="jail"]') === 'sshd', 'the form keeps the filter');
  await Promise.all([page.waitForURL(/page=2/), page.click('a[rel="next"]')]);
  check(new URL(page.url()).searchParams.get('jail') === 'sshd', 'the next page keeps the filter');
  await page.screenshot({ path: `${out}/events.png`, fullPage: true });
  check(errors.length === 0, `search: no console errors ${JSON.stringify(errors)}`);
  await page.context().close();

  // A phone: nothing wider than the screen.
  ({ page, errors } = await open('/', { width: 390, height: 844 }));
  await page.waitForSelector('#daily[data-rendered] canvas');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `phone: no sideways scrolling (${overflow}px too wide)`);
  await page.screenshot({ path: `${out}/overview-phone.png`, fullPage: true });
  check(errors.length === 0, `phone: no console errors ${JSON.stringify(errors)}`);
} finally {
  await browser.close();
}

if (failures.length) {
  console.error(`${failures.length} browser check(s) failed`);
  process.exit(1);
}
console.log('all browser checks passed');
