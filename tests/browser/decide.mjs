// Decisions from the dashboard in headless Chromium: the address page's
// buttons make decisions as the logged-in user, and a form on another site
// (even one holding a valid form token) is refused.
//
// Usage: node decide.mjs BASE_URL USER PASSWORD IP
import { chromium } from 'playwright-core';

const [base, user, password, ip] = process.argv.slice(2);
if (!base || !user || !password || !ip) {
  console.error('usage: node decide.mjs BASE_URL USER PASSWORD IP');
  process.exit(2);
}
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

try {
  const context = await browser.newContext({ httpCredentials: { username: user, password } });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(`${base}/ip/${ip}`, { waitUntil: 'networkidle' });
  await page.fill('#decisions input[name="reason"]', 'seen on every host');
  await page.fill('#decisions input[name="for"]', '2h');
  await page.click('button[value="ban"]');
  await page.waitForSelector('#decisions td >> text=in force', { timeout: 10000 }).catch(async (e) => {
    console.log(`at ${page.url()}: ${(await page.textContent('body')).slice(0, 400)}`);
    throw e;
  });
  check(new URL(page.url()).pathname === `/ip/${ip}`, `the ban returns to the address page (${page.url()})`);
  const row = await page.textContent('#decisions table');
  check(row.includes('ban') && row.includes('in force') && row.includes(user) && row.includes('seen on every host'),
    'the address page shows the ban in force, by whom and why');
  const token = await page.getAttribute('#decisions input[name="csrf"]', 'value');

  // Another site's page posts a ban with the browser's credentials, and even
  // with a valid form token: refused.
  await context.route('http://evil.test/**', (route) => route.fulfill({
    contentType: 'text/html',
    body: `<form id="f" action="${base}/decisions" method="post">
      <input name="action" value="ban"><input name="target" value="45.155.205.99">
      <input name="csrf" value="${token}"></form>`,
  }));
  const evil = await context.newPage();
  await evil.goto('http://evil.test/');
  const [response] = await Promise.all([
    evil.waitForResponse((r) => r.url() === `${base}/decisions`),
    evil.evaluate(() => document.getElementById('f').submit()),
  ]);
  check(response.status() === 403, `another site's form is refused (${response.status()})`);
  check((await response.text()).includes('another site'), 'and told why');

  await page.click('button[value="unban"]');
  await page.waitForSelector('#decisions td >> text=unban', { timeout: 10000 });
  const rows = await page.textContent('#decisions table');
  check(rows.includes('unban'), 'the unban is listed on the address page');
  await page.goto(`${base}/decisions`, { waitUntil: 'networkidle' });
  check((await page.textContent('main')).includes('In force (0)'), 'the decisions page: nothing in force after the unban');
  check(errors.length === 0, `no console errors (${errors.join(' | ')})`);
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(`${failures.length} check(s) failed`);
  process.exit(1);
}
