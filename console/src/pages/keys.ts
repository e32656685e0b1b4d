// Keys: the signed-in principal's API keys (GET /api/keys), a new named key (POST /api/keys: its secret is shown once,
// here, and never again) and revocation (DELETE /api/keys/{id}). Any operator, customer or provider key may manage its
// own principal's keys; nobody else's.

import { ApiError, del, get, post } from '../api';
import { h, tableHead } from '../dom';

interface KeyView { key_id: string; name: string; scopes: string[]; created: string; revoked: string | null; last_used: string | null }

/** Renders the page. */
export function keysPage(root: HTMLElement): () => void {
  const body = h('tbody');
  const message = h('p', { id: 'keys-message', role: 'status' });
  const secret = h('output', { id: 'new-key', class: 'secret', 'aria-label': 'The new key (shown once)' });
  const name = h('input', { id: 'key-name', 'aria-label': 'Name of the new key', placeholder: 'name, e.g. laptop', required: true, pattern: '[A-Za-z0-9._@\\-]{1,64}' });
  const form = h('form', { class: 'order-form', 'aria-label': 'Create a key' }, name, h('button', { type: 'submit' }, 'Create key'));
  root.replaceChildren(h('h1', {}, 'API keys'),
    h('p', { class: 'muted' }, 'Keys of the signed-in principal. A new key is shown once: copy it now.'),
    form, secret, message,
    h('div', { class: 'scroll' }, h('table', { id: 'keys' }, tableHead(['Name', 'Id', 'Scopes', 'Created', 'Last used', '']), body)));

  const refresh = async (): Promise<void> => {
    const list = await get<{ keys: KeyView[] }>('/api/keys');
    body.replaceChildren(...list.keys.map((k) => {
      const revoke = h('button', { type: 'button', 'aria-label': `Revoke key ${k.name}`, disabled: k.revoked !== null }, k.revoked === null ? 'Revoke' : 'revoked');
      revoke.addEventListener('click', () => void (async () => {
        try {
          await del(`/api/keys/${encodeURIComponent(k.key_id)}`);
          message.textContent = `Key ${k.name} revoked.`;
        } catch (e) {
          message.textContent = e instanceof ApiError ? e.message : String(e);
        }
        await refresh();
      })());
      return h('tr', { 'data-key': k.key_id }, h('th', { scope: 'row' }, k.name), h('td', { class: 'mono' }, k.key_id), h('td', {}, k.scopes.join(', ')),
        h('td', {}, k.created.slice(0, 19).replace('T', ' ')), h('td', {}, k.last_used?.slice(0, 19).replace('T', ' ') ?? '—'), h('td', {}, revoke));
    }));
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void (async () => {
      try {
        const r = await post<{ api_key: string; key: KeyView }>('/api/keys', { name: name.value });
        secret.textContent = r.api_key;
        message.textContent = `Key ${r.key.name} created (${r.key.scopes.join(', ')}).`;
        name.value = '';
      } catch (e) {
        message.textContent = e instanceof ApiError ? e.message : String(e);
      }
      await refresh();
    })();
  });
  void refresh().then(() => {
    root.dataset.ready = 'true';
  });
  return () => undefined;
}
