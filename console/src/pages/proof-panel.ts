// The balance proof panel: one of the signed-in principal's accounts (GET /api/me), its proof from the latest checkpoint
// (GET /api/ledger/accounts/{id}/proof), checked here (../proof.ts) against a root this page reads for itself:
//   - with a chain (GET /api/chain: its RPC URL and StateRootAnchor address), the root anchored for the proof's op,
//     by an eth_call from this browser to the chain's RPC — the server is not asked what the root is;
//   - without one, the server's latest checkpoint root (GET /api/ledger/checkpoints/latest), and the page says so.
// Checkpoints are taken every 30 s while the ledger changes and anchored a few seconds later; a proof whose op is not
// anchored (yet, or covered by a later anchor) is fetched again. "Tamper and verify" changes one micro-dollar of the
// fetched proof and shows which check refuses it.

import { apiKey, authHeaders, ApiError, get } from '../api';
import { h } from '../dom';
import { shortHash } from '../format';
import { CHECK_LABELS, parseProof, readAnchoredRoot, verifyProof, type BalanceProof, type Verdict } from '../proof';

interface OwnedAccount { id: string | number; code: string; asset: string; available: number }
interface ChainInfo { rpcUrl: string; anchor: string; chainId: number }

/** Where the root a proof is compared with came from. */
interface Expected { root: string; source: string }

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The panel; `load()` fills the account list. */
export class ProofPanel {
  readonly root: HTMLElement;
  private readonly select = h('select', { id: 'proof-account', 'aria-label': 'Account to prove' });
  private readonly verify = h('button', { type: 'button', id: 'verify-proof', 'aria-label': 'Verify the balance proof in this browser' }, 'Verify balance proof');
  private readonly tamper = h('button', { type: 'button', id: 'tamper-proof', 'aria-label': 'Change one micro-dollar of the proof and verify it again', disabled: true }, 'Tamper and verify');
  private readonly status = h('p', { id: 'proof-status', role: 'status' });
  private readonly source = h('p', { id: 'proof-source', class: 'note' });
  private readonly list = h('ol', { id: 'proof-checks', class: 'checks', 'aria-label': 'The proof\'s checks' });
  private last: { text: string; expected: Expected } | null = null;

  constructor() {
    this.root = h('section', { class: 'panel wide', 'aria-labelledby': 'proof-h', id: 'proof-panel' },
      h('h2', { id: 'proof-h' }, 'Balance proof, checked in this browser'),
      h('p', { class: 'muted' }, 'Your account\'s balances are a leaf of the ledger\'s Merkle sum tree. This page recomputes the leaf and its path with SHA-256 (WebCrypto) and compares the root with the one anchored on chain, read from the chain itself.'),
      h('div', { class: 'toolbar' }, h('label', { for: 'proof-account' }, 'Account '), this.select, this.verify, this.tamper),
      this.status, this.source, this.list);
    this.verify.addEventListener('click', () => void this.run());
    this.tamper.addEventListener('click', () => void this.runTampered());
  }

  /** Lists the caller's accounts. */
  async load(): Promise<void> {
    const me = await get<{ accounts: OwnedAccount[] }>('/api/me');
    this.select.replaceChildren(...me.accounts.map((a) => h('option', { value: String(a.id) }, `${a.code.replace(/_/g, ' ')} (${a.asset}) ${shortHash(String(a.id), 6)}`)));
    if (me.accounts.length === 0) {
      this.verify.disabled = true;
      this.status.textContent = 'This principal owns no ledger accounts (operators own none): nothing to prove.';
    }
  }

  private async run(): Promise<void> {
    this.verify.disabled = true;
    this.tamper.disabled = true;
    this.list.replaceChildren();
    this.root.dataset.verdict = 'running';
    try {
      const chain = await this.chain();
      for (let attempt = 0; attempt < 30; attempt++) {
        const text = await this.proofText(this.select.value);
        if (text === null) {
          this.status.textContent = 'The account is not in the latest checkpoint yet (one is taken every 30 s while the ledger changes); waiting…';
          await sleep(2000);
          continue;
        }
        const proof = parseProof(text);
        const expected = await this.expectedRoot(proof, chain);
        if (expected === null) {
          this.status.textContent = chain === null ? 'A newer checkpoint was taken meanwhile; fetching the proof again…'
            : `Checkpoint op ${proof.op} is not anchored on chain yet; waiting for the anchor…`;
          await sleep(1500);
          continue;
        }
        this.last = { text, expected };
        this.show(proof, await verifyProof(proof, expected.root), expected);
        this.tamper.disabled = false;
        return;
      }
      this.root.dataset.verdict = 'unavailable';
      this.status.textContent = 'No proof could be matched with a root in a minute; try again.';
    } catch (e) {
      this.root.dataset.verdict = 'error';
      this.status.textContent = e instanceof ApiError ? e.message : e instanceof Error ? e.message : String(e);
    } finally {
      this.verify.disabled = false;
    }
  }

  private async runTampered(): Promise<void> {
    if (this.last === null) return;
    const proof = parseProof(this.last.text);
    proof.credits_posted = (BigInt(proof.credits_posted) + 1n).toString();
    this.show(proof, await verifyProof(proof, this.last.expected.root), this.last.expected, true);
  }

  private show(proof: BalanceProof, v: Verdict, expected: Expected, tampered = false): void {
    this.root.dataset.verdict = v.ok ? 'ok' : 'failed';
    this.root.dataset.tampered = String(tampered);
    this.root.dataset.op = proof.op;
    const failed = v.checks.find((c) => !c.ok);
    if (failed === undefined) delete this.root.dataset.failedCheck;
    else this.root.dataset.failedCheck = failed.name;
    this.status.textContent = (tampered ? 'Tampered copy (credits + 1 micro-dollar): ' : '') +
      (v.ok ? `Verified: account ${proof.account_id} (debits ${proof.debits_posted}, credits ${proof.credits_posted}) is in checkpoint op ${proof.op}.`
        : `Does not verify. Failed check: “${failed === undefined ? '' : CHECK_LABELS[failed.name]}”.`);
    this.source.textContent = expected.source;
    this.list.replaceChildren(...v.checks.map((c) => h('li', { class: c.ok ? 'good' : 'bad', 'data-check': c.name, 'data-ok': String(c.ok) },
      `${c.ok ? '✓' : '✗'} ${CHECK_LABELS[c.name]}`, h('span', { class: 'note' }, ` — ${c.detail}`))));
  }

  private async chain(): Promise<ChainInfo | null> {
    const r = await fetch('/api/chain');
    if (r.status === 404) return null;
    if (!r.ok) throw new Error(`GET /api/chain: HTTP ${r.status}`);
    return (await r.json()) as ChainInfo;
  }

  // The proof as text (its integers are read exactly by parseProof), or null when the account is not in the checkpoint.
  private async proofText(account: string): Promise<string | null> {
    if (apiKey() === null) throw new Error('signed out');
    const r = await fetch(`/api/ledger/accounts/${encodeURIComponent(account)}/proof`, { headers: authHeaders() });
    const text = await r.text();
    if (r.status === 404 && text.includes('latest checkpoint')) return null;
    if (!r.ok) throw new ApiError(r.status, r.statusText, text);
    return text;
  }

  // The root to compare with: from the chain when there is one (null: the proof's op is not anchored), else the server's.
  private async expectedRoot(proof: BalanceProof, chain: ChainInfo | null): Promise<Expected | null> {
    if (chain !== null) {
      const root = await readAnchoredRoot(chain.rpcUrl, chain.anchor, BigInt(proof.op));
      return root === null ? null : {
        root, source: `Root ${shortHash(root)} read by this browser from StateRootAnchor ${chain.anchor} (rootAt(${proof.op}), eth_call to ${chain.rpcUrl}, chain ${chain.chainId}).`,
      };
    }
    const cp = await get<{ op: number; root: string }>('/api/ledger/checkpoints/latest');
    if (String(cp.op) !== proof.op) return null;
    return { root: cp.root, source: `No chain is configured: the root is the server's latest checkpoint (GET /api/ledger/checkpoints/latest, op ${cp.op}). This shows the balance is in what the server publishes; with a chain the root would come from the chain instead.` };
  }
}
