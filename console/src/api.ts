// The API, called with the signed-in key. The key lives in sessionStorage (gone when the tab closes) and is sent only
// to this server, in the Authorization header; errors are the API's problem+json, shown as they came.

const KEY = 'computegrid.apiKey';

/** An answer that was not 2xx: its status and the problem's detail. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
  ) {
    super(`${status} ${title}: ${detail}`);
  }
}

/** The signed-in key, or null. */
export function apiKey(): string | null {
  return sessionStorage.getItem(KEY);
}

/** Keeps the key for this tab. */
export function signIn(key: string): void {
  sessionStorage.setItem(KEY, key.trim());
}

/** Forgets the key. */
export function signOut(): void {
  sessionStorage.removeItem(KEY);
}

/** Headers with the key, when signed in. */
export function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const key = apiKey();
  return key === null ? extra : { ...extra, Authorization: `Bearer ${key}` };
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: authHeaders(body === undefined ? {} : { 'Content-Type': 'application/json' }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  const text = await r.text();
  if (!r.ok) {
    let title = r.statusText;
    let detail = text;
    try {
      const p = JSON.parse(text) as { title?: string; detail?: string };
      title = p.title ?? title;
      detail = p.detail ?? detail;
    } catch {
      // not problem+json: show the body as it is
    }
    throw new ApiError(r.status, title, detail);
  }
  return (text === '' ? undefined : JSON.parse(text)) as T;
}

/** GET a JSON resource. */
export const get = <T>(path: string): Promise<T> => call<T>('GET', path);
/** POST a JSON body. */
export const post = <T>(path: string, body: unknown): Promise<T> => call<T>('POST', path, body);
/** DELETE a resource. */
export const del = <T>(path: string): Promise<T> => call<T>('DELETE', path);
