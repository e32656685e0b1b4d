// The official x402 v2 client, unchanged (@x402/fetch's wrapFetchWithPayment + @x402/evm's exact scheme + a viem
// account), asked to pay for a PAYMENT-REQUIRED header that our C# produced. No server and no chain: a fetch stand-in
// answers the first request with 402 and that header, and captures the PAYMENT-SIGNATURE of the paid retry, which is
// printed on stdout for the C# verifier.
// Usage: node official-client.cjs NODE_MODULES_DIR PAYMENT_REQUIRED_HEADER PRIVATE_KEY_HEX
'use strict';
const path = require('node:path');
const { createRequire } = require('node:module');

const [nodeModules, paymentRequired, privateKey] = process.argv.slice(2);
if (!nodeModules || !paymentRequired || !privateKey) {
  console.error('usage: node official-client.cjs NODE_MODULES_DIR PAYMENT_REQUIRED_HEADER PRIVATE_KEY_HEX');
  process.exit(2);
}
// Resolve packages from the repository's pinned tools/chain/node_modules, not from this folder.
const load = createRequire(path.join(path.resolve(nodeModules), '..', 'package.json'));
const { wrapFetchWithPayment, x402Client } = load('@x402/fetch');
const { ExactEvmScheme } = load('@x402/evm/exact/client');
const { privateKeyToAccount } = load('viem/accounts');

async function main() {
  const client = new x402Client();
  client.register('eip155:*', new ExactEvmScheme(privateKeyToAccount(privateKey)));
  // The client pays only tokens it knows (its default table: USDC on public chains) unless told otherwise: a user of
  // ComputeGrid's token names it, with a cap per payment in atomic units, as here.
  const offered = JSON.parse(Buffer.from(paymentRequired, 'base64').toString('utf8'));
  client.setSpendControls({
    allowedAssets: offered.accepts.map((a) => ({ network: a.network, asset: a.asset, maxAmountPerPayment: '1000000' })),
  });
  let paymentSignature;
  const standIn = async (input, init) => {
    const request = new Request(input, init);
    paymentSignature = request.headers.get('PAYMENT-SIGNATURE') ?? undefined;
    if (!paymentSignature) {
      return new Response('{}', { status: 402, headers: { 'PAYMENT-REQUIRED': paymentRequired, 'Content-Type': 'application/json' } });
    }
    return new Response('{"ok":true}', { status: 200, headers: { 'Content-Type': 'application/json' } });
  };
  const response = await wrapFetchWithPayment(standIn, client)('http://127.0.0.1/v1/embeddings', { method: 'POST', body: '{"input":"hi"}' });
  if (response.status !== 200 || !paymentSignature) throw new Error(`the client did not pay: status ${response.status}`);
  process.stdout.write(paymentSignature + '\n');
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e).split('\n')[0]);
  process.exit(1);
});
