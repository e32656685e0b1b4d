// The console's browser test: Debian's chromium driven by playwright-core (executablePath /usr/bin/chromium, nothing
// downloaded) against a running `computegrid serve`. Signs in, opens every page, checks that a live figure changes over
// a few seconds and equals the API's figure at the same sample, places and cancels an order as a trader, manages a key,
// renders the API reference, and saves screenshots of every page at a desktop and a phone viewport.
//
//   CG_URL=http://127.0.0.1:5080 CG_OPERATOR_KEY=cg_… CG_E2E_OUT=e2e-out node e2e/console.e2e.mjs
//
// Each check prints one line; the last line is one JSON object (the summary). Exit 0 when every check passed, 1 otherwise.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { sitesAndNodesDesktop, sitesAndNodesPhone } from './sites-nodes.mjs';
import { expectedConsoleError, prepareTokensUsage, tokensUsageDesktop, tokensUsagePhone } from './tokens-usage.mjs';

const base = required('CG_URL').replace(/\/$/, '');
const operatorKey = required('CG_OPERATOR_KEY');
const out = path.resolve(process.env.CG_E2E_OUT ?? 'e2e-out');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
fs.mkdirSync(out, { recursive: true });

const checks = [];
const screenshots = [];
const pageErrors = [];

function required(name) {
  const v = process.env[name];
  if (!v) {
    process.stderr.write(`console.e2e: set ${name}\n`);
    process.exit(2);
  }
  return v;
}

function check(name, ok, detail = '') {
  checks.push({ name, ok, detail });
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`);
  return ok;
}

async function api(method, p, key, body) {
  const r = await fetch(base + p, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}

// The Market page's leases panel shows the API's leases: its count equals the API's (everyone's for an operator, read
// page by page) at some moment within 20 s (new leases trade every few seconds, the panel reads every 5 s), and its
// newest row's GPUs, delivered GPU-hours and payment equal GET /api/exchange/leases/{id} (delivery is metered once a
// minute, so those are compared until they agree at one moment too).
async function leasesAgreeWithApi(page, key) {
  const count = async () => {
    let n = 0;
    for (let after = 0; ;) {
      const p = await api('GET', `/api/exchange/leases?limit=1000&after=${after}`, key);
      n += p.leases.length;
      if (p.next === null || p.leases.length === 0) return n;
      after = p.next;
    }
  };
  let shown = null;
  let counted = null;
  for (const until = Date.now() + 20000; Date.now() < until;) {
    shown = await page.evaluate(() => document.querySelector('[aria-labelledby="leases-h"]')?.dataset.count ?? null);
    counted = await count();
    if (shown === String(counted)) break;
    await page.waitForTimeout(500);
  }
  check('the leases panel counts the API\'s leases', shown === String(counted), `panel ${shown}, API ${counted}`);
  if (counted === 0) return;
  let row = null;
  let lease = null;
  for (const until = Date.now() + 20000; Date.now() < until;) {
    row = await page.evaluate(() => {
      const tr = document.querySelector('#leases tbody tr');
      if (!tr) return null;
      const v = [...tr.querySelectorAll('td')].map((td) => td.dataset.value ?? td.textContent);
      return { id: tr.getAttribute('data-lease'), gpus: v[2], delivered: v[5], paid: v[6] };
    });
    if (row === null) break;
    lease = await api('GET', `/api/exchange/leases/${row.id}`, key);
    if (row.gpus === String(lease.gpus) && row.delivered === String(lease.delivered_gpu_hours) && row.paid === String(lease.paid)) break;
    await page.waitForTimeout(500);
  }
  check('a lease in the panel shows the API\'s GPUs, delivery and payment', row !== null && lease !== null && row.gpus === String(lease.gpus)
    && row.delivered === String(lease.delivered_gpu_hours) && row.paid === String(lease.paid), `${JSON.stringify(row)} vs ${lease === null ? null : JSON.stringify({ id: lease.id, gpus: lease.gpus, delivered: lease.delivered_gpu_hours, paid: lease.paid })}`);
}

async function shot(page, name) {
  const file = path.join(out, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
}

async function signIn(page, key) {
  await page.goto(base + '/#/overview');
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector('#principal');
}

// Set while the test signs in with a wrong key on purpose: the browser logs that 401 as an error.
let expectRefusal = false;

function watchErrors(page, label) {
  page.on('pageerror', (e) => pageErrors.push(`${label}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expectRefusal && m.text().includes('status of 401')) return;
    if (expectedConsoleError(m)) return;
    pageErrors.push(`${label} console: ${m.text()}`);
  });
}

// The page's figures at one sample: its seq and the data-value of each figure shown.
async function pageFigures(page) {
  return page.evaluate(() => {
    const value = (id) => document.getElementById(id)?.dataset.value ?? null;
    return {
      seq: Number(document.getElementById('view')?.dataset.seq ?? -1),
      op: value('fig-ledger'),
      trades: value('fig-trades'),
      facility: value('fig-power'),
      root: value('fig-checkpoint'),
      invariants: value('fig-invariants'),
      site: document.querySelector('#sites-table tbody tr td')?.textContent ?? null,
    };
  });
}

// Reads the page and the API until both are at the same sample (the stream pushes each sample as it is taken), then
// compares every figure: the page must show exactly what the API answers.
async function agreeWithApi(page, key, label) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const before = await pageFigures(page);
    const o = await api('GET', '/api/console/overview', key);
    const after = await pageFigures(page);
    if (o.seq !== before.seq || after.seq !== before.seq) {
      await page.waitForTimeout(150);
      continue;
    }
    const expected = {
      seq: o.seq,
      op: o.ledger.op === null ? null : String(o.ledger.op), // a customer's view has no ledger op (the operator's figure)
      trades: String(o.trades.count),
      facility: o.power === null ? null : String(o.power.facility_kw),
      root: o.ledger.checkpoint === null ? null : o.ledger.checkpoint.root,
      invariants: o.ledger.invariants === null ? null : o.ledger.invariants.ok ? 'ok' : 'broken',
    };
    const shown = { seq: before.seq, op: before.op, trades: before.trades, facility: before.facility, root: before.root, invariants: before.invariants };
    const same = JSON.stringify(shown) === JSON.stringify(expected);
    return check(`${label}: the page shows the API's figures at sample ${o.seq}`, same, same ? `op ${o.ledger.op}, facility ${expected.facility} kW` : `page ${JSON.stringify(shown)} api ${JSON.stringify(expected)}`);
  }
  return check(`${label}: the page and the API met at one sample`, false, 'never at the same seq in 20 tries');
}

const started = Date.now();
const browser = await chromium.launch({
  executablePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
let failed = false;
try {
  // ---- a trader made through the API, as an operator would: funded, with money in its trading account
  const name = `e2e-${Date.now().toString(36)}`;
  const created = await api('POST', '/api/customers', operatorKey, { name, region: 'frankfurt' });
  const traderKey = created.api_key;
  await api('POST', `/api/customers/${created.principal.id}/fund`, operatorKey, { amount: 50_000_000, funding_id: `${name}-fund` });
  await api('POST', '/api/exchange/deposits', traderKey, { amount: 20_000_000 });
  const ctx = { base, operatorKey, api, check, shot, signIn };
  const tu = await prepareTokensUsage(ctx); // a customer with shares and paid requests (tokens-usage.mjs)

  // ---- desktop, as the operator
  const desktop = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await desktop.newPage();
  watchErrors(page, 'desktop');
  const t0 = Date.now();
  await page.goto(base + '/');
  await page.waitForSelector('#api-key');
  check('the sign-in page loads', true, `${Date.now() - t0} ms to the sign-in form`);
  await shot(page, 'desktop-signin');
  expectRefusal = true;
  await page.getByLabel('API key').fill('cg_wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForFunction(() => (document.getElementById('signin-message')?.textContent ?? '').includes('refused'));
  expectRefusal = false;
  check('a wrong key is refused on the sign-in page', true);
  await signIn(page, operatorKey);
  await page.waitForFunction(() => Number(document.getElementById('view')?.dataset.seq ?? 0) > 0);
  check('the overview receives the stream', true);

  const first = await pageFigures(page);
  await page.waitForTimeout(5000);
  const later = await pageFigures(page);
  check('the overview is live: the sample advances', later.seq > first.seq, `seq ${first.seq} → ${later.seq}`);
  check('a live figure changes over five seconds (the site\'s replayed time or the ledger op)', later.site !== first.site || later.op !== first.op,
    `site time ${first.site} → ${later.site}, op ${first.op} → ${later.op}`);
  await agreeWithApi(page, operatorKey, 'operator overview');
  await shot(page, 'desktop-overview');

  await page.getByRole('link', { name: 'Market' }).click();
  await page.waitForSelector('#view[data-ready="true"]', { timeout: 20000 });
  const market = await page.evaluate(() => ({ symbol: document.getElementById('view')?.dataset.symbol, depth: !!document.querySelector('#depth-chart canvas'), candles: !!document.querySelector('#candle-chart canvas'), index: document.querySelectorAll('#index tbody tr').length }));
  check('the market page draws depth and candles for an instrument', !!market.symbol && market.depth && market.candles, JSON.stringify(market));
  await leasesAgreeWithApi(page, operatorKey);
  await shot(page, 'desktop-market');

  await page.getByRole('link', { name: 'Keys' }).click();
  await page.waitForSelector('#view[data-ready="true"]');
  await page.getByLabel('Name of the new key').fill(`${name}-laptop`);
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.waitForFunction(() => (document.getElementById('new-key')?.textContent ?? '').startsWith('cg_'));
  const newKey = await page.textContent('#new-key');
  const me = await fetch(base + '/api/me', { headers: { Authorization: `Bearer ${newKey}` } });
  check('a key created in the page works', me.status === 200, `GET /api/me → ${me.status}`);
  await page.getByRole('button', { name: `Revoke key ${name}-laptop` }).click();
  await page.waitForFunction((n) => (document.getElementById('keys-message')?.textContent ?? '').includes(`${n}-laptop revoked`), name);
  const after = await fetch(base + '/api/me', { headers: { Authorization: `Bearer ${newKey}` } });
  check('a key revoked in the page stops working', after.status === 401, `GET /api/me → ${after.status}`);
  await shot(page, 'desktop-keys');
  const pageCtx = { base, key: operatorKey, api, check, shot };
  const opened = await sitesAndNodesDesktop(page, pageCtx);

  await page.goto(base + '/reference.html');
  await page.waitForSelector('body[data-ready="true"]');
  const reference = await page.waitForFunction(() => document.body.innerText.includes('/api/console/overview') || document.body.innerText.includes('console'), undefined, { timeout: 30000 }).then(() => true, () => false);
  check('the API reference renders the server\'s OpenAPI document (Scalar, served locally)', reference);
  await shot(page, 'desktop-reference');

  // ---- the trader places and cancels an order in the page
  await page.goto(base + '/#/overview');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(page, traderKey);
  await page.waitForFunction(() => Number(document.getElementById('view')?.dataset.seq ?? 0) > 0);
  await agreeWithApi(page, traderKey, 'customer overview');
  await page.getByRole('link', { name: 'Market' }).click();
  await page.waitForSelector('#view[data-ready="true"]', { timeout: 20000 });
  const symbol = await page.evaluate(() => document.getElementById('view')?.dataset.symbol ?? '');
  const instrument = await (await fetch(`${base}/api/exchange/instruments/${encodeURIComponent(symbol)}`)).json();
  const price = instrument.min_price; // the band's floor: it rests on the book, no seller is that cheap
  await page.getByLabel('Side').selectOption('buy');
  await page.getByLabel('Limit price (USD per unit)').fill((price / 1e6).toFixed(6));
  await page.getByLabel('Quantity (GPU-hours or shares)').fill(String(instrument.hours));
  await page.getByRole('button', { name: 'Place order' }).click();
  await page.waitForFunction(() => document.getElementById('order-message')?.dataset.order !== undefined, undefined, { timeout: 10000 });
  const orderId = await page.evaluate(() => document.getElementById('order-message')?.dataset.order);
  await page.waitForSelector(`#open-orders tr[data-order="${orderId}"]`);
  const open = await api('GET', '/api/exchange/orders', traderKey);
  check('an order placed in the page rests on the book (the API lists it)', open.orders.some((o) => String(o.order_id) === orderId && o.price === price), `order ${orderId} at ${price} micro-USD`);
  const account = await api('GET', '/api/exchange/account', traderKey);
  const shownAvailable = await page.evaluate(() => document.getElementById('trading-account')?.dataset.available);
  check('the trading account shown is the API\'s', shownAvailable === String(account.available), `${shownAvailable} vs ${account.available}`);
  await shot(page, 'desktop-market-order');
  await page.getByRole('button', { name: `Cancel order ${orderId}` }).click();
  await page.waitForSelector(`#open-orders tr[data-order="${orderId}"]`, { state: 'detached' });
  const afterCancel = await api('GET', '/api/exchange/orders', traderKey);
  check('an order cancelled in the page is gone (the API lists none)', !afterCancel.orders.some((o) => String(o.order_id) === orderId));
  await tokensUsageDesktop(page, ctx, tu);
  await desktop.close();

  // ---- a phone
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const mobile = await phone.newPage();
  watchErrors(mobile, 'phone');
  await signIn(mobile, operatorKey);
  await mobile.waitForFunction(() => Number(document.getElementById('view')?.dataset.seq ?? 0) > 0);
  const overflow = async () => mobile.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check('the overview fits a phone\'s width', (await overflow()) <= 1, `${await overflow()} px wider than the screen`);
  await shot(mobile, 'phone-overview');
  await mobile.getByRole('link', { name: 'Market' }).click();
  await mobile.waitForSelector('#view[data-ready="true"]', { timeout: 20000 });
  check('the market fits a phone\'s width', (await overflow()) <= 1, `${await overflow()} px wider than the screen`);
  await shot(mobile, 'phone-market');
  await mobile.getByRole('link', { name: 'Keys' }).click();
  await mobile.waitForSelector('#view[data-ready="true"]');
  await shot(mobile, 'phone-keys');
  await sitesAndNodesPhone(mobile, pageCtx, opened);
  await tokensUsagePhone(mobile, ctx, tu);
  await phone.close();

  check('no script error and no refused resource in any page', pageErrors.length === 0, pageErrors.slice(0, 5).join(' | '));
} catch (e) {
  check('the run completed', false, e instanceof Error ? e.stack ?? e.message : String(e));
} finally {
  await browser.close();
}
failed = checks.some((c) => !c.ok);
console.log(JSON.stringify({ ok: !failed, checks: checks.length, failed: checks.filter((c) => !c.ok).map((c) => c.name), screenshots, seconds: Math.round((Date.now() - started) / 1000) }));
process.exit(failed ? 1 : 0);
