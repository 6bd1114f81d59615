/** The web UI's text/event-stream parser and the box event it makes of each message. */
import test from 'ava';
import { SseParser, toBoxEvent } from '../../web-ui/src/sse.ts';

test('events split across chunks, comments skipped, multi-line data joined', (t) => {
  const p = new SseParser();
  const stream = ': bootbox events\n\nevent: machine.state\ndata: {"mac":"aa"\ndata: ,"to":"approved"}\n\n: ping\n\n';
  const out = [];
  // every possible split point, one character at a time
  for (const ch of stream) out.push(...p.push(ch));
  t.deepEqual(out, [{ event: 'machine.state', data: '{"mac":"aa"\n,"to":"approved"}' }]);
});

test('CRLF and CR line ends (a CR at a chunk end waits for its LF); no event name means "message"', (t) => {
  const p = new SseParser();
  t.deepEqual(p.push('data: one\r'), []);
  t.deepEqual(p.push('\n\r\n'), [{ event: 'message', data: 'one' }]);
  t.deepEqual(p.push('event: x\rdata:two\r\r'), [], 'the last CR may still be half of a CRLF');
  t.deepEqual(p.push(': next'), [{ event: 'x', data: 'two' }]);
});

test('a blank line without data dispatches nothing; the event name does not leak into the next event', (t) => {
  const p = new SseParser();
  t.deepEqual(p.push('event: lonely\n\ndata: {}\n\n'), [{ event: 'message', data: '{}' }]);
});

test("the SSE event name is the type; the event's own type (a DHCP message type) becomes messageType", (t) => {
  const e = toBoxEvent({
    event: 'dhcp.request',
    data: JSON.stringify({ type: 'DISCOVER', ts: '2025-01-01T00:00:00.000Z', mac: 'aa:bb:cc:dd:ee:ff' }),
  });
  t.deepEqual(e, {
    type: 'dhcp.request',
    messageType: 'DISCOVER',
    ts: '2025-01-01T00:00:00.000Z',
    mac: 'aa:bb:cc:dd:ee:ff',
  });
  const same = toBoxEvent({ event: 'machine.state', data: '{"type":"machine.state","ts":"t","to":"approved"}' });
  t.deepEqual(same, { type: 'machine.state', ts: 't', to: 'approved' });
});

test('data that is not a JSON object gives no event', (t) => {
  t.is(toBoxEvent({ event: 'x', data: 'not json' }), undefined);
  t.is(toBoxEvent({ event: 'x', data: '[1,2]' }), undefined);
  t.is(toBoxEvent({ event: 'x', data: 'null' }), undefined);
});
