// The official x402 v2 packages, unchanged, against a real ComputeGrid server (run by X402ServerTests):
//   pay BASE_URL PRIVATE_KEY BODY_JSON         @x402/fetch's wrapFetchWithPayment + @x402/evm's exact scheme pays
//                                              POST BASE_URL/v1/embeddings; prints one JSON line: status, elapsed ms of
//                                              the paid retry, the PAYMENT-SIGNATURE it sent, the PAYMENT-RESPONSE it got.
//   facilitator BASE_URL PRIVATE_KEY API_KEY PAY_TO AMOUNT
//                                              @x402/core's HTTPFacilitatorClient against BASE_URL/x402: supported, verify
//                                              and settle (twice) a payment the official client signs for PAY_TO (another
//                                              resource server); prints one JSON line with each answer.
// The token is ComputeGrid's test stablecoin, which the client pays only once the user lists it in
// spendControls.allowedAssets (read here from GET /api/chain).
// NODE_MODULES (environment) names the pinned tools/chain/node_modules.
'use strict';
const path = require('node:path');
const { createRequire } = require('node:module');

const nodeModules = process.env.NODE_MODULES;
if (!nodeModules) { console.error('NODE_MODULES is not set'); process.exit(2); }
const load = createRequire(path.join(path.resolve(nodeModules), '..', 'package.json'));
const { wrapFetchWithPayment, x402Client } = load('@x402/fetch');
const { ExactEvmScheme } = load('@x402/evm/exact/client');
const { HTTPFacilitatorClient } = load('@x402/core/http');
const { privateKeyToAccount } = load('viem/accounts');

async function client(base, key) {
  const chain = await (await fetch(`${base}/api/chain`)).json();
  const c = new x402Client();
  c.register('eip155:*', new ExactEvmScheme(privateKeyToAccount(key)));
  c.setSpendControls({ allowedAssets: [{ network: `eip155:${chain.chainId}`, asset: chain.stablecoin, maxAmountPerPayment: '1000000' }] });
  return { c, chain };
}

async function pay(base, key, body) {
  const { c } = await client(base, key);
  let signature;
  let started = 0;
  const recording = async (input, init) => {
    const request = new Request(input, init);
    signature = request.headers.get('PAYMENT-SIGNATURE') ?? signature;
    if (request.headers.get('PAYMENT-SIGNATURE')) started = performance.now();
    return fetch(request);
  };
  const response = await wrapFetchWithPayment(recording, c)(`${base}/v1/embeddings`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
  });
  const elapsed = started ? performance.now() - started : 0;
  const text = await response.text();
  return { status: response.status, elapsedMs: elapsed, paymentSignature: signature ?? null, paymentResponse: response.headers.get('PAYMENT-RESPONSE'), body: response.status === 200 ? null : text };
}

async function facilitator(base, key, apiKey, payTo, amount) {
  const { c, chain } = await client(base, key);
  const requirements = {
    scheme: 'exact', network: `eip155:${chain.chainId}`, amount, asset: chain.stablecoin, payTo, maxTimeoutSeconds: 300,
    extra: { name: chain.tokenName, version: chain.tokenVersion },
  };
  const paymentRequired = { x402Version: 2, resource: { url: 'https://resource.example/thing', description: 'a thing' }, accepts: [requirements] };
  const payload = await c.createPaymentPayload(paymentRequired);
  const open = new HTTPFacilitatorClient({ url: `${base}/x402` });
  const keyed = new HTTPFacilitatorClient({ url: `${base}/x402`, createAuthHeaders: async () => ({ verify: {}, settle: { Authorization: `Bearer ${apiKey}` }, supported: {} }) });
  const out = { payer: payload.payload.authorization.from };
  out.supported = await open.getSupported();
  out.verify = await open.verify(payload, requirements);
  try { out.settleWithoutKey = await open.settle(payload, requirements); } catch (e) { out.settleWithoutKey = { error: String(e.message || e) }; }
  out.settle = await keyed.settle(payload, requirements);
  out.verifyAfter = await open.verify(payload, requirements);
  out.settleAgain = await keyed.settle(payload, requirements);
  return out;
}

async function main() {
  const [mode, ...args] = process.argv.slice(2);
  let result;
  if (mode === 'pay') result = await pay(args[0], args[1], args[2]);
  else if (mode === 'facilitator') result = await facilitator(...args);
  else { console.error('usage: x402-client.cjs pay|facilitator ...'); process.exit(2); }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e).split('\n').slice(0, 3).join(' | '));
  process.exit(1);
});
