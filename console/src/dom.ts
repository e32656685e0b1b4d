// A few helpers to build the pages without a framework: elements with attributes and children, text only through
// textContent (never innerHTML), so nothing the API returns can become markup.

type Child = Node | string | null | undefined | false;

/** Creates an element with attributes (aria-*, data-*, class…) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** Sets an element's text (and a data-value with the raw figure, for tests and copy-paste). */
export function setFigure(el: HTMLElement, text: string, raw: string | number | bigint | null): void {
  el.textContent = text;
  if (raw === null) el.removeAttribute('data-value');
  else el.dataset.value = String(raw);
}

/** A figure card: a label and a value element (returned to be updated). */
export function card(label: string, id: string): { root: HTMLElement; value: HTMLElement; note: HTMLElement } {
  const value = h('div', { class: 'value', id, 'aria-live': 'polite' }, '—');
  const note = h('div', { class: 'note' });
  return { root: h('section', { class: 'card', 'aria-labelledby': `${id}-label` }, h('h3', { id: `${id}-label` }, label), value, note), value, note };
}

/** A table head of column headers. */
export function tableHead(cols: string[]): HTMLElement {
  return h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { scope: 'col' }, c))));
}

/**
 * Runs `load` now and again `periodMs` after each round ends, until the returned function is called. A failed round
 * shows its error in `message` (through `describe`, by default the error's message) and the next round tries again; a
 * round that succeeds clears it.
 */
export function refreshEvery(load: () => Promise<void>, message: HTMLElement, periodMs: number, describe: (e: unknown) => string = (e) => (e instanceof Error ? e.message : String(e))): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const round = async (): Promise<void> => {
    try {
      await load();
      message.textContent = '';
    } catch (e) {
      message.textContent = describe(e);
    }
    if (!stopped) timer = setTimeout(() => void round(), periodMs);
  };
  void round();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
