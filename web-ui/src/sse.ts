/**
 * Server-sent events (HTML Living Standard §9.2 "Server-sent events", the
 * text/event-stream format) parsed incrementally: feed text as it arrives, get whole
 * events back. Pure: the connection lives in live.ts.
 */

export interface SseMessage {
  /** The `event:` field; "message" when absent (§9.2.6). */
  event: string;
  data: string;
  id?: string;
}

export class SseParser {
  private buf = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;

  /** Feeds a piece of the stream; returns the events it completed. */
  push(text: string): SseMessage[] {
    this.buf += text;
    const out: SseMessage[] = [];
    for (;;) {
      // Lines end with CRLF, LF or CR (§9.2.5).
      const m = /\r\n|\n|\r/.exec(this.buf);
      if (!m) break;
      // A lone CR at the very end may be the first half of a CRLF: wait for more.
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    return out;
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') {
      // A blank line dispatches the event; one with no data is dropped (§9.2.6).
      const msg: SseMessage | undefined = this.data.length
        ? {
            event: this.event || 'message',
            data: this.data.join('\n'),
            ...(this.id !== undefined ? { id: this.id } : {}),
          }
        : undefined;
      this.event = '';
      this.data = [];
      return msg;
    }
    if (line.startsWith(':')) return undefined; // comment (the box's pings)
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    return undefined;
  }
}

/** A box event as the UI uses it: `type` is the SSE event name; a DHCP message type moves to `messageType`. */
export interface BoxEvent {
  type: string;
  ts: string;
  mac?: string;
  [k: string]: unknown;
}

/**
 * The box writes `{type, ...event}`, so an event with a `type` of its own (DHCP: DISCOVER…)
 * overwrites the name; the `event:` line keeps it. Returns undefined for data that is not a
 * JSON object.
 */
export function toBoxEvent(msg: SseMessage): BoxEvent | undefined {
  let data: unknown;
  try {
    data = JSON.parse(msg.data);
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  const d = data as Record<string, unknown>;
  const own = d.type;
  const ev: BoxEvent = { ...d, type: msg.event, ts: typeof d.ts === 'string' ? d.ts : new Date().toISOString() };
  if (typeof own === 'string' && own !== msg.event) ev.messageType = own;
  return ev;
}
