// Runs axe-core (the accessibility engine behind most browser audits) on
// pages of the dashboard served at BASE_URL, in headless Chromium, and lists
// every violation; exits 1 when one is serious or critical. axe is evaluated
// through the browser's debugging protocol, so the pages' own
// Content-Security-Policy stays exactly as real users get it.
//
// Usage: node axe.mjs BASE_URL PATH...
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [base, ...paths] = process.argv.slice(2);
if (!base || paths.length === 0) {
  console.error('usage: node axe.mjs BASE_URL PATH...');
  process.exit(2);
}
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
let serious = 0;
try {
  for (const scheme of ['light', 'dark']) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: scheme });
    for (const path of paths) {
      const page = await context.newPage();
      await page.goto(base + path, { waitUntil: 'networkidle' });
      await page.evaluate(axeSource);
      const result = await page.evaluate(() => window.axe.run(document, {
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
      }));
      const counts = {};
      for (const v of result.violations) counts[v.impact] = (counts[v.impact] || 0) + v.nodes.length;
      console.log(`${scheme} ${path}: ${JSON.stringify(counts)}`);
      for (const v of result.violations) {
        console.log(`  ${v.impact} ${v.id} (${v.nodes.length}): ${v.help}`);
        for (const n of v.nodes.slice(0, 3)) console.log(`    ${n.target.join(' ')}: ${n.failureSummary.split('\n').slice(1, 2).join(' ').trim()}`);
        if (v.impact === 'serious' || v.impact === 'critical') serious += v.nodes.length;
      }
      await page.close();
    }
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(`${serious} serious or critical violations`);
process.exit(serious > 0 ? 1 : 0);
