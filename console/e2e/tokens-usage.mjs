// The browser checks of the Tokens and Usage pages, called by console.e2e.mjs with (page, ctx), ctx = { base,
// operatorKey, api, check, shot, signIn }. They make what they need through the API, so they pass in any world
// (`serve --site-speed 600`, `serve --demo`, with or without shares issued or a chain):
//   - a new customer, funded, that sends a few paid requests (its usage);
//   - shares of the node its requests go to: when that node has none, the operator approves the node's provider as an
//     issuer and, with a key it issues the provider, lists the node and issues a supply; the customer gets a part of it
//     (moved by the provider) before it sends the requests, so it is owed revenue to claim.
// Then, as that customer: the Tokens page and a node's token page show the API's figures, Claim pays what is owed, a
// balance proof verifies in the page (against the on-chain anchor when there is a chain) and a tampered copy fails on
// its path; the Usage page shows exactly the API's totals and requests. Screenshots at a desktop and a phone viewport.

import { generateKeyPairSync } from 'node:crypto';

/** Console errors these pages cause on purpose: the page asks GET /api/chain, and a server without a chain answers 404. */
export function expectedConsoleError(message) {
  const url = message.location()?.url ?? '';
  return message.text().includes('status of 404') && url.endsWith('/api/chain');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function raw(ctx, method, path, key, body) {
  return fetch(ctx.base + path, {
    method,
    headers: { ...(key === null ? {} : { Authorization: `Bearer ${key}` }), ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function embed(ctx, key, input, region) {
  const r = await raw(ctx, 'POST', '/v1/embeddings', key, { model: 'all-MiniLM-L6-v2', input, provider: { only: [region], allow_fallbacks: false } });
  if (r.status !== 200) throw new Error(`POST /v1/embeddings: ${r.status} ${await r.text()}`);
  await r.arrayBuffer();
  return { node: r.headers.get('x-cg-node'), transfer: r.headers.get('x-cg-transfer-id') };
}

// The node principal of a routing-table node: its revenue account's low 64 bits (the chart of accounts' principal account).
const principalOf = (node) => Number(BigInt(node.revenue_account) & ((1n << 64n) - 1n));

// Shares of a node for the customer: issued when the node has none (the operator approves its provider and, unless the
// provider's key is given, issues the provider a key; the provider lists the node and issues 1,000), then a quarter of
// the provider's free shares moved to the customer. Returns the customer's holding (0 where the provider has none left).
async function giveShares(ctx, name, node, customer, providerKey = null) {
  const { principal, id: nodeId, region } = node;
  const provider = (await ctx.api('GET', `/api/principals/${principal}`, ctx.operatorKey)).principal.provider;
  const key = providerKey ?? (await ctx.api('POST', `/api/principals/${provider}/keys`, ctx.operatorKey, { name: `${name}-issuer-${principal}`, scopes: ['trade', 'read'] })).api_key;
  const shares = await ctx.api('GET', '/api/shares', ctx.operatorKey);
  if (!shares.nodes.some((n) => n.node === principal)) {
    await ctx.api('POST', `/api/shares/issuers/${provider}`, ctx.operatorKey, {});
    const listed = await raw(ctx, 'GET', `/api/exchange/nodes/${principal}`, key);
    if (listed.status === 404) await ctx.api('POST', '/api/exchange/nodes', key, { node_id: nodeId, gpu: 'H100', region, gpus: 8 });
    await ctx.api('POST', '/api/shares', key, { node_id: principal, supply: 1_000 });
  }
  const mine = await ctx.api('GET', '/api/shares/holdings', key);
  const free = mine.holdings.find((x) => x.node === principal)?.free ?? 0;
  if (free < 4) return 0;
  await ctx.api('POST', `/api/shares/${principal}/transfers`, key, { to: customer, shares: Math.floor(free / 4) });
  return Math.floor(free / 4);
}

// A world without inference nodes (`serve --site-speed 600`): a new provider with an admitted node (a fresh Ed25519
// key; the node never runs, so it earns nothing), listed on the exchange, so there are shares to show and prove.
async function admittedNode(ctx, name) {
  const provider = await ctx.api('POST', '/api/providers', ctx.operatorKey, { name: `${name}-provider` });
  const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
  const nodeId = `${name}-node`;
  await ctx.api('POST', `/api/providers/${provider.principal.id}/nodes`, ctx.operatorKey,
    { node_id: nodeId, public_key: Buffer.from(jwk.x, 'base64url').toString('base64'), price_ceiling_micro_usd_per_1k_tokens: 1_000 });
  const listed = await ctx.api('POST', '/api/exchange/nodes', provider.api_key, { node_id: nodeId, gpu: 'H100', region: 'dallas', gpus: 8 });
  return { node: { principal: listed.id, id: nodeId, region: 'dallas' }, providerKey: provider.api_key };
}

/** Makes the customer, its shares and its requests; returns what the checks need. */
export async function prepareTokensUsage(ctx) {
  const name = `e2e-tu-${Date.now().toString(36)}`;
  const created = await ctx.api('POST', '/api/customers', ctx.operatorKey, { name, region: 'dallas' });
  const key = created.api_key;
  const id = created.principal.id;
  await ctx.api('POST', `/api/customers/${id}/fund`, ctx.operatorKey, { amount: 5_000_000, funding_id: `${name}-fund` });
  const routing = await ctx.api('GET', '/api/inference/nodes', ctx.operatorKey);
  const healthy = routing.nodes.filter((n) => n.healthy && n.revenue_account !== null).sort((a, b) => a.id.localeCompare(b.id))
    .map((n) => ({ principal: principalOf(n), id: n.id, region: n.region }));
  let node;
  let holding;
  const receipts = [];
  if (healthy.length === 0) {
    const made = await admittedNode(ctx, name);
    node = { ...made.node, name: String(made.node.principal) }; // not in the routing table: the page names it by its id
    holding = await giveShares(ctx, name, made.node, id, made.providerKey);
  } else {
    // The requests stay in one region (routing preferences, no fallback), and every node there has shares the customer
    // holds part of, so whichever node serves a request pays the customer's pool.
    const region = healthy[0].region;
    const holdings = new Map();
    for (const n of healthy.filter((x) => x.region === region)) holdings.set(n.id, await giveShares(ctx, name, n, id));
    // Four inputs of about 220 tokens each (the model takes 256 per input): a request costs enough to pay the holders something.
    const text = Array.from({ length: 4 }, (_, i) => `${i}: ${'How much revenue does a share of this node earn? '.repeat(20)}`);
    for (let i = 0; i < 5; i++) receipts.push(await embed(ctx, key, text.map((t) => `${t} (${i})`), region));
    // The node's page is checked for the node that served most of them.
    const served = new Map();
    for (const r of receipts) served.set(r.node, (served.get(r.node) ?? 0) + 1);
    const top = [...served.entries()].sort((a, b) => b[1] - a[1])[0][0];
    node = { ...healthy.find((n) => n.id === top), name: top };
    holding = holdings.get(top) ?? 0;
  }
  // The customer's balance must be in a checkpoint (every 30 s) before its proof can be served: wait here, so the page
  // never meets a 404 that the browser would log.
  const account = (await ctx.api('GET', '/api/me', key)).accounts.find((a) => a.code === 'customer_balance').id;
  for (let i = 0; i < 50; i++) {
    if ((await raw(ctx, 'GET', `/api/ledger/accounts/${account}/proof`, key)).status === 200) break;
    await sleep(2000);
  }
  return { key, id, node: node.principal, nodeName: node.name, holding, transfers: receipts.map((r) => r.transfer), account, earning: healthy.length > 0 };
}

async function signInAs(page, ctx, key) {
  await page.goto(ctx.base + '/#/overview');
  const out = page.getByRole('button', { name: 'Sign out' });
  if (await out.count() > 0) await out.click();
  await ctx.signIn(page, key);
}

async function open(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(`#view[data-page="${hash.split('/')[1]}"][data-ready="true"]`, { timeout: 30000 });
}

/** The desktop checks, signed in as the prepared customer. */
export async function tokensUsageDesktop(page, ctx, tu) {
  const { check, shot } = ctx;
  await signInAs(page, ctx, tu.key);

  // ---- Tokens: the list, then the node's page
  await open(page, '#/tokens');
  const listed = await ctx.api('GET', `/api/shares/${tu.node}`, ctx.operatorKey);
  const row = await page.evaluate((n) => {
    const tr = document.querySelector(`#share-nodes tr[data-node="${n}"]`);
    return tr === null ? null : Array.from(tr.querySelectorAll('td[data-value]'), (td) => td.dataset.value);
  }, tu.node);
  check('the Tokens page lists the node with the API\'s supply and holders', row !== null && row[0] === String(listed.supply) && row[1] === String(listed.holders),
    `page ${JSON.stringify(row)}, API supply ${listed.supply} holders ${listed.holders}`);
  await shot(page, 'desktop-tokens');

  await page.getByRole('link', { name: `Shares of node ${tu.nodeName}` }).click();
  await page.waitForSelector('#view[data-page="tokens"][data-ready="true"] #share-supply', { timeout: 30000 });
  const revenue = await ctx.api('GET', `/api/shares/${tu.node}/revenue`, ctx.operatorKey);
  const ent = await ctx.api('GET', `/api/shares/${tu.node}/entitlement`, tu.key);
  const shown = await page.evaluate(() => ({
    supply: document.getElementById('share-supply')?.dataset.value,
    shares: document.getElementById('ent-shares')?.dataset.value,
    owed: document.getElementById('ent-owed')?.dataset.value,
    points: document.getElementById('revenue-chart')?.dataset.points,
    canvas: !!document.querySelector('#revenue-chart canvas'),
  }));
  check('a node\'s token page shows the API\'s supply, the holder\'s shares and a revenue-per-share chart',
    shown.supply === String(listed.supply) && shown.shares === String(ent.shares) && shown.points === String(revenue.points.length) && (shown.canvas || revenue.points.length === 0),
    `${JSON.stringify(shown)}; API supply ${listed.supply}, shares ${ent.shares}, ${revenue.points.length} hours`);
  check('the page shows what the API says the holder is owed', shown.owed === String(ent.owed_micro_usd) || Number(shown.owed) <= ent.owed_micro_usd,
    `page ${shown.owed}, API ${ent.owed_micro_usd} micro-USD (it only grows)`);
  if (tu.holding > 0 && ent.owed_micro_usd > 0) {
    await page.getByRole('button', { name: `Claim the revenue node ${tu.node} owes you` }).click();
    await page.waitForFunction(() => document.getElementById('claim-message')?.dataset.claimed !== undefined, undefined, { timeout: 15000 });
    const claimed = Number(await page.evaluate(() => document.getElementById('claim-message')?.dataset.claimed));
    const after = await ctx.api('GET', `/api/shares/${tu.node}/entitlement`, tu.key);
    check('Claim in the page pays what was owed (the API counts it claimed)', claimed > 0 && after.claimed_micro_usd === ent.claimed_micro_usd + claimed,
      `claimed ${claimed}; API claimed ${ent.claimed_micro_usd} → ${after.claimed_micro_usd}`);
  } else if (tu.earning) {
    check('the customer holds shares and is owed revenue to claim', false, `holding ${tu.holding}, owed ${ent.owed_micro_usd}`);
  } else {
    console.log('SKIP Claim: this world has no inference nodes, so no node earns revenue to claim');
  }
  await shot(page, 'desktop-token-node');

  // ---- the balance proof, in the browser
  await open(page, '#/tokens');
  await page.getByLabel('Account to prove').selectOption(String(tu.account));
  await page.getByRole('button', { name: 'Verify the balance proof in this browser' }).click();
  await page.waitForFunction(() => ['ok', 'failed', 'error', 'unavailable'].includes(document.getElementById('proof-panel')?.dataset.verdict ?? ''), undefined, { timeout: 90000 });
  const verdict = await page.evaluate(() => ({
    verdict: document.getElementById('proof-panel')?.dataset.verdict,
    checks: Array.from(document.querySelectorAll('#proof-checks li'), (li) => `${li.dataset.check}:${li.dataset.ok}`),
    source: document.getElementById('proof-source')?.textContent ?? '',
    status: document.getElementById('proof-status')?.textContent ?? '',
  }));
  const chain = await raw(ctx, 'GET', '/api/chain', null);
  const fromChain = chain.status === 200;
  check(`a balance proof verifies in the page against ${fromChain ? 'the root anchored on chain (read by the browser)' : 'the latest checkpoint (no chain)'}`,
    verdict.verdict === 'ok' && verdict.checks.length === 6 && verdict.checks.every((c) => c.endsWith(':true')) && verdict.source.includes(fromChain ? 'StateRootAnchor' : 'No chain'),
    `${verdict.verdict}: ${verdict.status} ${verdict.source}`);
  await shot(page, 'desktop-tokens-proof');
  await page.getByRole('button', { name: 'Change one micro-dollar of the proof and verify it again' }).click();
  await page.waitForSelector('#proof-panel[data-tampered="true"]');
  const tampered = await page.evaluate(() => ({ verdict: document.getElementById('proof-panel')?.dataset.verdict, failed: document.getElementById('proof-panel')?.dataset.failedCheck }));
  check('a tampered proof fails in the page, on its Merkle path', tampered.verdict === 'failed' && tampered.failed === 'path', JSON.stringify(tampered));
  await shot(page, 'desktop-tokens-proof-tampered');

  // ---- Usage: the page's figures are the API's for the same range
  await open(page, '#/usage');
  const range = await page.evaluate(() => ({ from: document.getElementById('view')?.dataset.from, to: document.getElementById('view')?.dataset.to }));
  const usage = await ctx.api('GET', `/api/inference/usage?limit=50&from=${encodeURIComponent(range.from)}&to=${encodeURIComponent(range.to)}`, tu.key);
  const page1 = await page.evaluate(() => ({
    requests: document.getElementById('usage-requests')?.dataset.value,
    tokens: document.getElementById('usage-tokens')?.dataset.value,
    spend: document.getElementById('usage-spend')?.dataset.value,
    rows: Array.from(document.querySelectorAll('#usage-table tbody tr[data-transfer]'), (tr) => `${tr.dataset.transfer}:${tr.querySelectorAll('td')[4]?.dataset.value}`),
    days: document.getElementById('usage-chart')?.dataset.days,
    canvas: !!document.querySelector('#usage-chart canvas'),
  }));
  const expected = {
    requests: String(usage.totals.requests), tokens: String(usage.totals.tokens), spend: String(usage.totals.spend_micro_usd),
    rows: usage.requests.map((r) => `${r.transfer_id}:${r.cost_micro_usd}`), days: String(usage.days.length), canvas: true,
  };
  check('the Usage page shows exactly the API\'s totals, days and requests', JSON.stringify(page1) === JSON.stringify(expected),
    `page ${JSON.stringify({ ...page1, rows: page1.rows.length })} API ${JSON.stringify({ ...expected, rows: expected.rows.length })}`);
  check(`Usage lists every request the customer made (${tu.transfers.length}), with the receipts' transfer ids`, tu.transfers.every((t) => usage.requests.some((r) => r.transfer_id === t)) && usage.totals.requests === tu.transfers.length,
    `${usage.totals.requests} requests`);
  check('Usage links to the Keys page', await page.getByRole('link', { name: 'manage your keys' }).count() === 1);
  await shot(page, 'desktop-usage');
}

/** The phone checks: the pages fit a phone's width. */
export async function tokensUsagePhone(mobile, ctx, tu) {
  await signInAs(mobile, ctx, tu.key);
  const overflow = async () => mobile.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  for (const [hash, name] of [['#/tokens', 'phone-tokens'], [`#/tokens/${tu.node}`, 'phone-token-node'], ['#/usage', 'phone-usage']]) {
    await open(mobile, hash);
    const px = await overflow();
    ctx.check(`${hash} fits a phone's width`, px <= 1, `${px} px wider than the screen`);
    await ctx.shot(mobile, name);
  }
}
