// The Sites and Nodes pages in the browser test (called by console.e2e.mjs with its page and a context of helpers).
// Robust to the world that runs: the first site the API lists and the first node that publishes reports; a world with no
// site or no node says so in a SKIP line and checks what there is.
//
// ctx: { base, key, api(method, path, key, body), check(name, ok, detail), shot(page, name) }

// Polls `read` until it returns a value that is not undefined (or the time is up: undefined).
async function until(read, ms, step = 500) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (v !== undefined || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, step));
  }
}

/** Desktop, signed in as an operator: Sites, one site, Nodes, one node and its reports verified. Returns what it opened. */
export async function sitesAndNodesDesktop(page, ctx) {
  const { api, check, shot, key } = ctx;
  const opened = { site: null, node: null };

  // ---- Sites
  await page.getByRole('link', { name: 'Sites', exact: true }).click();
  await page.waitForSelector('#view[data-page="sites"][data-ready="true"]', { timeout: 20000 });
  const sites = await api('GET', '/api/energy/sites', key);
  const listed = await page.evaluate(() => [...document.querySelectorAll('#site-list tbody tr')].map((tr) => tr.dataset.site));
  check('the sites page lists the API\'s sites', JSON.stringify(listed) === JSON.stringify(sites.map((s) => s.name)), listed.join(', '));
  await shot(page, 'desktop-sites');
  const site = sites[0];
  if (site === undefined) console.log('SKIP one site: this world runs no live site');
  else {
    opened.site = site.name;
    await page.getByRole('link', { name: site.name, exact: true }).first().click();
    await page.waitForSelector('#site-latest[data-interval]', { timeout: 30000 });
    // The latest decided interval on the page equals the API's at the same interval (the page refreshes every 3 s).
    const base = `/api/energy/sites/${encodeURIComponent(site.name)}`;
    const agreed = await until(async () => {
      const shown = await page.evaluate(() => ({
        interval: document.getElementById('site-latest')?.dataset.interval ?? null,
        ai: document.getElementById('site-ai')?.dataset.value ?? null,
        miners: document.getElementById('site-miners')?.dataset.value ?? null,
        curtailed: document.getElementById('site-curtailed')?.dataset.value ?? null,
        price: document.getElementById('site-price')?.dataset.value ?? null,
      }));
      const h = await api('GET', `${base}/history?limit=1`, key);
      const p = h.points[0];
      if (p === undefined || String(p.interval) !== shown.interval) return undefined;
      return { shown, api: { interval: String(p.interval), ai: String(p.ai_kw), miners: String(p.miner_kw), curtailed: String(p.curtailed_kw), price: p.price_usd_per_mwh === null ? null : String(p.price_usd_per_mwh) } };
    }, 15000, 300);
    check('one site: the page\'s latest interval shows the API\'s figures', agreed !== undefined && JSON.stringify(agreed.shown) === JSON.stringify(agreed.api),
      agreed === undefined ? 'never at the same interval in 15 s' : `interval ${agreed.api.interval}: GPUs ${agreed.api.ai} kW, miners ${agreed.api.miners} kW, curtailed ${agreed.api.curtailed} kW`);
    const racks = await api('GET', `${base}/miners`, key);
    const drawn = await page.evaluate(() => ({ chart: !!document.querySelector('#power-chart canvas'), racks: document.querySelectorAll('#racks .rack').length, economics: document.querySelectorAll('#economics tbody tr').length }));
    check('one site: the power chart, every rack and the baselines are drawn', drawn.chart && drawn.racks === racks.length && drawn.economics >= 3, JSON.stringify(drawn));
    // The GPU nodes panel: a row per node the API lists, each with the API's GPUs and inference pool (fixed by the site
    // file; the leased figures move with the exchange, so they are compared by the unit test of their formatting).
    const state = await api('GET', base, key);
    const rows = await page.evaluate(() => [...document.querySelectorAll('#gpu-nodes tbody tr[data-node]')].map((r) => ({
      id: r.getAttribute('data-node'), gpus: r.children[1]?.textContent, pool: r.children[2]?.textContent })));
    const expected = state.nodes.map((n) => ({ id: n.node_id, gpus: n.gpus.toLocaleString('en-US'), pool: n.inference_gpus.toLocaleString('en-US') }));
    check('one site: the GPU nodes panel lists the API\'s nodes with their GPUs and inference pool', JSON.stringify(rows) === JSON.stringify(expected), JSON.stringify(rows));
    await shot(page, 'desktop-site');
  }

  // ---- Nodes
  await page.getByRole('link', { name: 'Nodes', exact: true }).click();
  await page.waitForSelector('#view[data-page="nodes"][data-ready="true"]', { timeout: 20000 });
  const nodes = (await api('GET', '/api/inference/nodes', key)).nodes;
  const latency = await api('GET', '/api/inference/latency', key);
  const table = await page.evaluate(() => ({
    nodes: [...document.querySelectorAll('#node-list tbody tr')].map((tr) => tr.dataset.node),
    rows: document.querySelectorAll('#latency-matrix tbody tr').length,
  }));
  check('the nodes page lists the routing table and a row per region of the latency data',
    JSON.stringify(table.nodes.sort()) === JSON.stringify(nodes.map((n) => n.id).sort()) && table.rows === latency.regions.length, JSON.stringify(table));
  await shot(page, 'desktop-nodes');
  if (nodes.length === 0) {
    console.log('SKIP one node: this world runs no inference node');
    return opened;
  }
  // A node's first report covers the last ended epoch; it is published shortly after the node registers.
  const withReports = await until(async () => {
    for (const n of nodes) {
      const r = await fetch(`${ctx.base}/api/nodes/${encodeURIComponent(n.id)}/reports`);
      if (r.ok && (await r.json()).reports.length > 0) return n.id;
    }
    return undefined;
  }, 90000, 2000);
  if (!check('a node publishes signed reports', withReports !== undefined, withReports ?? 'none within 90 s')) return opened;
  opened.node = withReports;
  await page.getByRole('link', { name: withReports, exact: true }).first().click();
  await page.waitForSelector('#report-totals[data-reports]', { timeout: 20000 });
  await page.getByRole('button', { name: "Verify the node's signed reports in this browser" }).click();
  await page.waitForSelector('#verify-result[data-verdict]', { timeout: 20000 });
  const verdict = await page.evaluate(() => ({ verdict: document.getElementById('verify-result')?.dataset.verdict, text: document.getElementById('verify-result')?.textContent }));
  check('Verify passes on the node\'s reports, checked in the browser (Ed25519, SHA-256 chain, totals)', verdict.verdict === 'ok', verdict.text ?? '');
  await shot(page, 'desktop-node');
  await page.getByLabel('tamper with a copy first', { exact: false }).check();
  await page.getByRole('button', { name: "Verify the node's signed reports in this browser" }).click();
  await page.waitForSelector('#verify-result[data-tampered="true"]', { timeout: 20000 });
  const tampered = await page.evaluate(() => ({ verdict: document.getElementById('verify-result')?.dataset.verdict, check: document.getElementById('verify-result')?.dataset.check, text: document.getElementById('verify-result')?.textContent }));
  check('Verify fails a tampered copy on its signature', tampered.verdict === 'failed' && tampered.check === 'signature', tampered.text ?? '');
  await shot(page, 'desktop-node-tampered');
  return opened;
}

/** Phone: the Sites and Nodes pages (and the ones opened on the desktop) fit the screen's width. */
export async function sitesAndNodesPhone(page, ctx, opened) {
  const { check, shot } = ctx;
  const overflow = async () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  const visit = async (hash, name, ready) => {
    await page.goto(`${ctx.base}/${hash}`);
    await page.waitForSelector(ready, { timeout: 30000 });
    const o = await overflow();
    check(`${name} fits a phone's width`, o <= 1, `${o} px wider than the screen`);
    await shot(page, `phone-${name.replace(/ /g, '-')}`);
  };
  await visit('#/sites', 'sites', '#view[data-page="sites"][data-ready="true"]');
  if (opened.site !== null) await visit(`#/sites/${encodeURIComponent(opened.site)}`, 'site', '#site-latest[data-interval]');
  await visit('#/nodes', 'nodes', '#view[data-page="nodes"][data-ready="true"]');
  if (opened.node !== null) await visit(`#/nodes/${encodeURIComponent(opened.node)}`, 'node', '#report-totals[data-reports]');
}
