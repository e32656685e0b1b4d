// Server-Sent Events, parsed from a byte stream read with fetch(): EventSource cannot send the Authorization header the
// API needs. Follows the WHATWG event-stream rules the server relies on: lines end in LF, CR or CRLF (a CRLF may be
// split across chunks), "field: value" (one optional space after the colon), comments start with ':', data lines join
// with LF, an event is dispatched at a blank line, an event without data is dropped, and `id` persists as the last id.

/** One dispatched event. */
export interface SseEvent {
  /** The event's name ("message" when the stream gave none). */
  event: string;
  /** Its data lines joined with LF. */
  data: string;
  /** The last event id seen on the stream, or null. */
  id: string | null;
}

/** An incremental parser: feed it text as it arrives and take the complete events. */
export class SseParser {
  private buffer = '';
  private pendingCr = false;
  private name = '';
  private data: string[] = [];
  private hasData = false;
  private lastId: string | null = null;

  /** The last event id seen (to resume with Last-Event-ID). */
  get id(): string | null {
    return this.lastId;
  }

  /** Parses a chunk; returns the events it completed, in order. */
  push(chunk: string): SseEvent[] {
    const out: SseEvent[] = [];
    let text = chunk;
    // A CR ended the previous chunk: an LF starting this one belongs to it.
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer[i];
      if (c !== '\n' && c !== '\r') continue;
      const line = this.buffer.slice(start, i);
      if (c === '\r') {
        if (i + 1 < this.buffer.length) {
          if (this.buffer[i + 1] === '\n') i++;
        } else {
          this.pendingCr = true;
        }
      }
      start = i + 1;
      const event = this.line(line);
      if (event !== null) out.push(event);
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  private line(line: string): SseEvent | null {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.name = value;
        break;
      case 'data':
        this.data.push(value);
        this.hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      default:
        break; // "retry" and unknown fields are ignored
    }
    return null;
  }

  private dispatch(): SseEvent | null {
    const event: SseEvent | null = this.hasData ? { event: this.name === '' ? 'message' : this.name, data: this.data.join('\n'), id: this.lastId } : null;
    this.name = '';
    this.data = [];
    this.hasData = false;
    return event;
  }
}
