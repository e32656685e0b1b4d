// The server push channel: GET /api/stream (Server-Sent Events) read with fetch() so the API key goes in the
// Authorization header. Reconnects after a drop with a growing delay; stops when asked.

import { authHeaders } from './api';
import { SseParser, type SseEvent } from './sse';

/** Options of a subscription. */
export interface StreamOptions {
  /** Called with each event. */
  onEvent: (e: SseEvent) => void;
  /** Called with the connection state ("live", "reconnecting: …", "stopped"). */
  onState?: (state: string) => void;
}

/** Reads `path` as an event stream until the returned function is called. */
export function subscribe(path: string, options: StreamOptions): () => void {
  const abort = new AbortController();
  let delayMs = 500;
  const run = async (): Promise<void> => {
    while (!abort.signal.aborted) {
      try {
        const r = await fetch(path, { headers: authHeaders({ Accept: 'text/event-stream' }), signal: abort.signal });
        if (!r.ok || r.body === null) throw new Error(`HTTP ${r.status}`);
        options.onState?.('live');
        delayMs = 500;
        const parser = new SseParser();
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const e of parser.push(value)) options.onEvent(e);
        }
        throw new Error('the stream ended');
      } catch (e) {
        if (abort.signal.aborted) break;
        options.onState?.(`reconnecting: ${e instanceof Error ? e.message : String(e)}`);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        delayMs = Math.min(delayMs * 2, 10_000);
      }
    }
    options.onState?.('stopped');
  };
  void run();
  return () => abort.abort();
}
