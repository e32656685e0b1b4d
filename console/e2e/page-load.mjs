// First page load on loopback: a fresh browser context (cold cache) opens the console six times; Navigation Timing's
// domContentLoaded and load (ms from navigation start) and the bytes transferred. One JSON array.
//   CG_URL=http://127.0.0.1:5080 node e2e/page-load.mjs
import { chromium } from 'playwright-core';
const base = process.env.CG_URL ?? 'http://127.0.0.1:5080';
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage'] });
const out = [];
for (let i = 0; i < 6; i++) {
  const ctx = await browser.newContext(); // cold cache each time
  const page = await ctx.newPage();
  const t0 = Date.now();
  await page.goto(base + '/', { waitUntil: 'load' });
  await page.getByLabel('API key').waitFor();
  const wall = Date.now() - t0;
  const nav = await page.evaluate(() => { const n = performance.getEntriesByType('navigation')[0]; return { dcl: Math.round(n.domContentLoadedEventEnd), load: Math.round(n.loadEventEnd), bytes: performance.getEntriesByType('resource').reduce((a, r) => a + r.transferSize, n.transferSize) }; });
  out.push({ wall_ms: wall, ...nav });
  await ctx.close();
}
console.log(JSON.stringify(out));
await browser.close();
