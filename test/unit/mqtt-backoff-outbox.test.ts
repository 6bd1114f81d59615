import test from 'ava';
import { ManualClock } from '../../firmware/core/clock.ts';
import { Backoff } from '../../firmware/telemetry/mqtt/backoff.ts';
import { Outbox, type OutMessage } from '../../firmware/telemetry/mqtt/outbox.ts';

test('backoff doubles from the initial delay up to the cap, with equal jitter', (t) => {
  const clock = new ManualClock();
  const lo = new Backoff(clock, { initialMs: 1000, maxMs: 15000, stableMs: 10000, random: () => 0 });
  const hi = new Backoff(clock, { initialMs: 1000, maxMs: 15000, stableMs: 10000, random: () => 0.999999 });
  const lows = Array.from({ length: 7 }, () => lo.next());
  const highs = Array.from({ length: 7 }, () => hi.next());
  t.deepEqual(lows, [500, 1000, 2000, 4000, 7500, 7500, 7500], 'half of min(cap, initial·2^n)');
  t.deepEqual(highs, [1000, 2000, 4000, 8000, 15000, 15000, 15000], 'up to the full exponential, capped');
  t.is(lo.attempts, 7);
});

test('jitter spreads a fleet: different random draws give different delays in the band', (t) => {
  const draws = [0.1, 0.5, 0.9];
  const delays = draws.map((r) => new Backoff(new ManualClock(), { initialMs: 4000, random: () => r }).next());
  t.deepEqual(delays, [2200, 3000, 3800]);
});

test('a stable connection resets the backoff; one dropped at once does not', (t) => {
  const clock = new ManualClock();
  const b = new Backoff(clock, { initialMs: 1000, maxMs: 60000, stableMs: 10000, random: () => 0 });
  b.next();
  b.next();
  b.next();
  t.is(b.attempts, 3);
  b.connected();
  clock.advance(2000);
  b.disconnected();
  t.is(b.attempts, 3, 'dropped after 2 s: keeps backing off (duplicate client id, refused session)');
  t.is(b.next(), 4000);
  b.connected();
  clock.advance(10000);
  b.disconnected();
  t.is(b.attempts, 0, 'up for the stable time: start again from the initial delay');
  t.is(b.next(), 500);
});

let seq = 0;
const msg = (topic: string, retain = false): OutMessage => ({
  seq: ++seq,
  topic,
  payload: Buffer.from(topic),
  opts: { retain },
});

test('the event buffer is bounded: the oldest are dropped and counted', (t) => {
  const o = new Outbox(3);
  const ms = ['e1', 'e2', 'e3', 'e4', 'e5'].map((x) => msg(x));
  for (const m of ms) o.enqueue(m);
  t.is(o.size, 3);
  t.is(o.counters.dropped, 2);
  t.deepEqual(
    o.drain().map((m) => m.topic),
    ['e3', 'e4', 'e5'],
  );
  t.is(o.size, 0);
  t.deepEqual(o.drain(), []);
});

test('a zero-size buffer keeps nothing and counts every event', (t) => {
  const o = new Outbox(0);
  o.enqueue(msg('x'));
  o.enqueue(msg('y'));
  t.is(o.size, 0);
  t.is(o.counters.dropped, 2);
});

test('unacknowledged events come back in publishing order, before newer ones', (t) => {
  const o = new Outbox(10);
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((x) => msg(x)) as [OutMessage, OutMessage, OutMessage, OutMessage];
  // a and b were in flight when the connection dropped; c and d were published while away.
  o.enqueue(c);
  o.enqueue(d);
  o.requeue([b]);
  o.requeue([a]);
  t.deepEqual(
    o.drain().map((m) => m.topic),
    ['a', 'b', 'c', 'd'],
  );
});

test('requeue respects the bound too', (t) => {
  const o = new Outbox(2);
  const [a, b, c] = ['a', 'b', 'c'].map((x) => msg(x)) as [OutMessage, OutMessage, OutMessage];
  o.enqueue(c);
  o.requeue([a, b]);
  t.deepEqual(
    o.drain().map((m) => m.topic),
    ['b', 'c'],
  );
  t.is(o.counters.dropped, 1);
});

test('retained topics keep the latest payload per topic, least recently updated first', (t) => {
  const o = new Outbox(10);
  o.remember({ ...msg('m/1', true), payload: Buffer.from('deploying') });
  o.remember({ ...msg('m/2', true), payload: Buffer.from('pending') });
  o.remember({ ...msg('m/1', true), payload: Buffer.from('deployed') });
  t.is(o.retainedCount, 2);
  t.deepEqual(
    o.retained().map((m) => `${m.topic}=${m.payload}`),
    ['m/2=pending', 'm/1=deployed'],
  );
  t.is(o.size, 0, 'retained messages are not events');
  t.is(o.retained().length, 2, 'kept after a replay: needed again after the next outage');
});

test('the retained map is bounded as well', (t) => {
  const o = new Outbox(10, 2);
  o.remember(msg('a', true));
  o.remember(msg('b', true));
  o.remember(msg('c', true));
  t.deepEqual(
    o.retained().map((m) => m.topic),
    ['b', 'c'],
  );
  t.is(o.counters.retainedDropped, 1);
});
