/// <reference types="vite/client" />
// The browser's verifier against proofs the C# code wrote: a real one from a running server's
// GET /api/ledger/accounts/{id}/proof (fixtures/balance-proof.json, with the checkpoint root it was taken at) and a
// tampered copy (fixtures/balance-proof-tampered.json: one more micro-dollar credited). The C# verifier reads the same
// files (tests/ComputeGrid.Ledger.Tests/BrowserProofFixtureTests.cs), so both verifiers agree on both.
import { describe, expect, it } from 'vitest';
import real from './fixtures/balance-proof.json?raw';
import tampered from './fixtures/balance-proof-tampered.json?raw';
import { checkpointRoot, fromHex, littleEndian, parseProof, readAnchoredRoot, rootAtCallData, rootFromWord, toHex, verifyProof, type BalanceProof } from './proof';

const proof = (): BalanceProof => parseProof(real);
const root = (): string => proof().root;
const failedCheck = async (p: BalanceProof, expected = root()): Promise<string | undefined> => (await verifyProof(p, expected)).checks.find((c) => !c.ok)?.name;

describe('verifyProof with a proof the server wrote', () => {
  it('passes every check against its checkpoint root', async () => {
    const v = await verifyProof(proof(), root());
    expect(v.checks.map((c) => [c.name, c.ok])).toEqual([['shape', true], ['path', true], ['totals', true], ['balanced', true], ['root', true], ['expected', true]]);
    expect(v.ok).toBe(true);
    expect(v.computedRoot).toBe(root());
  });
  it('takes the expected root with 0x and in capitals', async () => expect((await verifyProof(proof(), '0x' + root().toUpperCase())).ok).toBe(true));
  it('has a real path (more than one step)', () => expect(proof().path.length).toBeGreaterThan(1));
});

describe('verifyProof names the check a tampered proof fails', () => {
  it('the committed tampered copy fails the path', async () => {
    const v = await verifyProof(parseProof(tampered), root());
    expect(v.ok).toBe(false);
    expect(v.checks.at(-1)).toMatchObject({ name: 'path', ok: false });
  });
  it('a balance changed by one micro-dollar: path', async () => {
    const p = proof();
    p.debits_posted = (BigInt(p.debits_posted) + 1n).toString();
    expect(await failedCheck(p)).toBe('path');
  });
  it('another account id: path', async () => {
    const p = proof();
    p.account_id = (BigInt(p.account_id) + 1n).toString();
    expect(await failedCheck(p)).toBe('path');
  });
  it('a sibling swapped to the other side: path', async () => {
    const p = proof();
    const step = p.path[0];
    if (step === undefined) throw new Error('no path');
    step.sibling_on_left = !step.sibling_on_left;
    expect(await failedCheck(p)).toBe('path');
  });
  it('a sibling with a negative sum: shape', async () => {
    const p = proof();
    const step = p.path[0];
    if (step === undefined) throw new Error('no path');
    step.debits = '-1';
    expect(await failedCheck(p)).toBe('shape');
  });
  it('an asset root whose totals were raised along with its hash kept: totals', async () => {
    const p = proof();
    const a = p.assets.find((x) => x.asset === p.asset);
    if (a === undefined) throw new Error('no asset root');
    a.debits = (BigInt(a.debits) + 5n).toString();
    a.credits = (BigInt(a.credits) + 5n).toString();
    expect(await failedCheck(p)).toBe('totals');
  });
  it('another asset whose debits differ from its credits: balanced', async () => {
    const p = proof();
    p.assets.push({ asset: 4_000_000_000, hash: '00'.repeat(32), debits: '1', credits: '2', accounts: 1 });
    expect(await failedCheck(p)).toBe('balanced');
  });
  it('the checkpoint time moved by one nanosecond: root', async () => {
    const p = proof();
    p.timestamp = p.timestamp.replace(/(\d)Z$/, (_, d: string) => `${(Number(d) + 1) % 10}Z`);
    expect(await failedCheck(p)).toBe('root');
  });
  it('a root that is not its parts\' (its own claim replaced): root', async () => {
    const p = proof();
    p.root = 'ab'.repeat(32);
    expect(await failedCheck(p, 'ab'.repeat(32))).toBe('root');
  });
  it('a sound proof against another root (an old checkpoint, a forged anchor): expected', async () =>
    expect(await failedCheck(proof(), 'cd'.repeat(32))).toBe('expected'));
  it('a version it does not know: shape', async () => {
    const p = proof();
    p.version = 2;
    expect(await failedCheck(p)).toBe('shape');
  });
  it('a path hash that is not hex: shape', async () => {
    const p = proof();
    const step = p.path[0];
    if (step === undefined) throw new Error('no path');
    step.hash = 'zz';
    expect(await failedCheck(p)).toBe('shape');
  });
});

describe('parseProof', () => {
  it('keeps integers past 2^53 exact', () => {
    const p = parseProof(real.replace(/"credits_posted":\s*\d+/, '"credits_posted": 9223372036854775807'));
    expect(p.credits_posted).toBe('9223372036854775807');
  });
});

describe('the bytes', () => {
  it('writes little-endian two\'s complement', () => {
    expect(toHex(littleEndian(1n, 4, 0n, 0xffffffffn))).toBe('01000000');
    expect(toHex(littleEndian(-1n, 8, -(1n << 63n), (1n << 63n) - 1n))).toBe('ffffffffffffffff');
    expect(toHex(littleEndian(0x0102n, 16, 0n, (1n << 128n) - 1n))).toBe('0201' + '00'.repeat(14));
  });
  it('refuses a value that does not fit', () => expect(() => littleEndian(1n << 64n, 8, 0n, (1n << 64n) - 1n)).toThrow(RangeError));
  it('round-trips hex', () => expect(toHex(fromHex('00ff10'))).toBe('00ff10'));
  it('recomputes the checkpoint root from the proof\'s parts', async () => {
    const p = proof();
    expect(await checkpointRoot(BigInt(p.op), 0n, p.chain_head, p.assets)).not.toBe(p.root); // the time is part of it
  });
});

describe('the anchor', () => {
  it('calls rootAt(op) with the CLI\'s selector and a 32-byte argument', () =>
    expect(rootAtCallData(255n)).toBe('0xeaa38b41' + '0'.repeat(62) + 'ff'));
  it('reads a zero word as nothing anchored', () => expect(rootFromWord('0x' + '0'.repeat(64))).toBeNull());
  it('refuses an answer that is not one word', () => expect(() => rootFromWord('0x1234')).toThrow(RangeError));
  it('asks the chain by eth_call and returns the root', async () => {
    let sent: unknown = null;
    const fake = (async (_url: string | URL | Request, init?: RequestInit) => {
      sent = JSON.parse(String(init?.body));
      return new Response(JSON.stringify({ jsonrpc: '2.0', id: 1, result: '0x' + root() }), { status: 200 });
    }) as typeof fetch;
    expect(await readAnchoredRoot('http://127.0.0.1:8545', '0x' + '11'.repeat(20), 7n, fake)).toBe(root());
    expect(sent).toMatchObject({ method: 'eth_call', params: [{ to: '0x' + '11'.repeat(20), data: rootAtCallData(7n) }, 'latest'] });
  });
  it('reports the chain\'s error', async () => {
    const fake = (async () => new Response(JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32000, message: 'execution reverted' } }))) as typeof fetch;
    await expect(readAnchoredRoot('http://127.0.0.1:8545', '0x' + '11'.repeat(20), 7n, fake)).rejects.toThrow('execution reverted');
  });
});
