import { describe, expect, it } from 'vitest';
import { SseParser } from './sse';

describe('SseParser', () => {
  it('parses a named event with an id', () => {
    const p = new SseParser();
    expect(p.push('event: overview\nid: 7\ndata: {"seq":7}\n\n')).toEqual([{ event: 'overview', data: '{"seq":7}', id: '7' }]);
    expect(p.id).toBe('7');
  });

  it('waits for the blank line that ends an event, across chunks', () => {
    const p = new SseParser();
    expect(p.push('event: trade\nda')).toEqual([]);
    expect(p.push('ta: {"price":1}\n')).toEqual([]);
    expect(p.push('\n')).toEqual([{ event: 'trade', data: '{"price":1}', id: null }]);
  });

  it('skips comments (the server heartbeat)', () => {
    const p = new SseParser();
    expect(p.push(': subscribed\n\n: heartbeat 2026-12-06T14:00:00Z\n\ndata: x\n\n')).toEqual([{ event: 'message', data: 'x', id: null }]);
  });

  it('joins data lines with LF', () => {
    expect(new SseParser().push('data: a\ndata: b\n\n')).toEqual([{ event: 'message', data: 'a\nb', id: null }]);
  });

  it('takes CRLF and lone CR line ends, a CRLF split between chunks included', () => {
    const p = new SseParser();
    expect(p.push('data: one\r')).toEqual([]);
    expect(p.push('\n\r\ndata: two\r\r')).toEqual([
      { event: 'message', data: 'one', id: null },
      { event: 'message', data: 'two', id: null },
    ]);
  });

  it('drops an event without data and forgets its name', () => {
    const p = new SseParser();
    expect(p.push('event: book\n\ndata: y\n\n')).toEqual([{ event: 'message', data: 'y', id: null }]);
  });

  it('keeps the last id for later events, and removes one space only after the colon', () => {
    const p = new SseParser();
    expect(p.push('id: 3\ndata:  two spaces\n\ndata:none\n\n')).toEqual([
      { event: 'message', data: ' two spaces', id: '3' },
      { event: 'message', data: 'none', id: '3' },
    ]);
  });

  it('parses many events of one chunk in order', () => {
    const text = Array.from({ length: 50 }, (_, i) => `event: overview\nid: ${i}\ndata: ${i}\n\n`).join('');
    const events = new SseParser().push(text);
    expect(events.map((e) => e.data)).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
  });
});
