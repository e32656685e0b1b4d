// The console's shell: sign-in with an API key (kept in sessionStorage for this tab), the navigation, and one page at a
// time by the URL's hash (#/overview, #/market, #/tokens, #/tokens/{node}, #/usage, #/keys). The API reference is its own page (/reference.html).

import './style.css';
import { ApiError, apiKey, get, signIn, signOut } from './api';
import { h } from './dom';
import { keysPage } from './pages/keys';
import { marketPage } from './pages/market';
import { nodesPage } from './pages/nodes';
import { overviewPage } from './pages/overview';
import { sitesPage } from './pages/sites';
import { tokensPage } from './pages/tokens';
import { usagePage } from './pages/usage';

interface Me { principal: { id: number; kind: string; name: string }; key: { name: string; scopes: string[] } | null }

const view = document.getElementById('view') as HTMLElement;
const nav = document.getElementById('nav') as HTMLElement;
const who = document.getElementById('who') as HTMLElement;
let stop: () => void = () => undefined;
let me: Me | null = null;

// A page may take what follows its id in the hash (#/sites/{name}, #/nodes/{id}) as `arg`.
const pages: Record<string, { title: string; render: (root: HTMLElement, scope: string, arg: string | null) => () => void }> = {
  overview: { title: 'Overview', render: (root) => overviewPage(root) },
  market: { title: 'Market', render: (root, scope) => marketPage(root, scope) },
  sites: { title: 'Sites', render: (root, _scope, arg) => sitesPage(root, arg) },
  nodes: { title: 'Nodes', render: (root, _scope, arg) => nodesPage(root, arg) },
  tokens: { title: 'Tokens', render: (root, scope, arg) => tokensPage(root, scope, arg) },
  usage: { title: 'Usage', render: (root, scope) => usagePage(root, scope) },
  keys: { title: 'Keys', render: (root) => keysPage(root) },
};

function renderNav(current: string): void {
  nav.replaceChildren(...Object.entries(pages).map(([id, p]) => h('a', { href: `#/${id}`, 'aria-current': id === current ? 'page' : undefined }, p.title)),
    h('a', { href: '/reference.html' }, 'API reference'));
  who.replaceChildren();
  if (me !== null) {
    const out = h('button', { type: 'button', 'aria-label': 'Sign out' }, 'Sign out');
    out.addEventListener('click', () => {
      signOut();
      me = null;
      location.hash = '#/signin';
    });
    who.append(h('span', { id: 'principal' }, `${me.principal.kind} ${me.principal.name}`), out);
  }
}

function signInPage(reason: string): void {
  nav.replaceChildren();
  who.replaceChildren();
  const key = h('input', { id: 'api-key', type: 'password', autocomplete: 'off', required: true, 'aria-label': 'API key', placeholder: 'cg_…' });
  const message = h('p', { id: 'signin-message', role: 'alert' }, reason);
  const form = h('form', { class: 'signin', 'aria-label': 'Sign in' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'With an API key: an operator sees everything, a customer or provider its own. The key stays in this tab (sessionStorage) and is sent only to this server.'),
    h('label', { for: 'api-key' }, 'API key'), key, h('button', { type: 'submit' }, 'Sign in'), message);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    signIn(key.value);
    void loadMe().then((ok) => {
      // Setting the hash it already has fires no hashchange: route at once then.
      if (ok && location.hash === '#/overview') void route();
      else if (ok) location.hash = '#/overview';
      else {
        signOut();
        message.textContent = 'That key was refused (401): check it, or ask an operator for one.';
      }
    });
  });
  view.replaceChildren(form);
  key.focus();
}

async function loadMe(): Promise<boolean> {
  try {
    me = await get<Me>('/api/me');
    return true;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return false;
    throw e;
  }
}

async function route(): Promise<void> {
  stop();
  stop = () => undefined;
  const [id = 'overview', ...rest] = (location.hash.replace(/^#\/?/, '') || 'overview').split('/');
  const arg = rest.length > 0 && rest.join('/') !== '' ? decodeURIComponent(rest.join('/')) : null;
  if (apiKey() === null) return signInPage('');
  if (me === null && !(await loadMe())) {
    signOut();
    return signInPage('The key was refused; sign in again.');
  }
  const page = pages[id];
  if (page === undefined || me === null) {
    location.hash = '#/overview';
    return;
  }
  renderNav(id);
  document.title = `${arg === null ? page.title : `${arg} · ${page.title}`} · ComputeGrid`;
  // A page's marks (data-ready, data-seq…) are its own: none outlives it, so a test waiting for one waits for this page.
  for (const k of Object.keys(view.dataset)) delete view.dataset[k];
  view.dataset.page = id;
  stop = page.render(view, me.principal.kind, arg);
  view.focus();
}

window.addEventListener('hashchange', () => void route());
void route();
