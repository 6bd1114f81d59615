/**
 * BusyPollChooser, driven with synthetic ACK times: it measures a batch of ACK-to-ACK cycles
 * without polling and, when they are short, one with polling, keeps the faster way for a
 * while, then measures again.
 */
import test from 'ava';
import { BusyPollChooser } from '../../firmware/protocols/tftp/busy-poll.ts';

const BUDGET_MS = 0.05;
const BATCH = 64;

/** Feeds ACKs whose cycle depends on whether the chooser polls; returns its answers. */
function drive(c: BusyPollChooser, acks: number, cycle: (polling: boolean) => number, at = { now: 0, poll: false }) {
  const answers: boolean[] = [];
  for (let i = 0; i < acks; i++) {
    at.now += cycle(at.poll);
    at.poll = c.onAck(at.now);
    answers.push(at.poll);
  }
  return answers;
}

const fastWhenPolling = (p: boolean) => (p ? 0.024 : 0.032);

test('measures without, then with polling, and keeps polling when it shortens the cycle', (t) => {
  const c = new BusyPollChooser(BUDGET_MS, 0);
  const at = { now: 0, poll: false };
  const a = drive(c, 2 * BATCH, fastWhenPolling, at);
  t.true(
    a.slice(0, BATCH - 1).every((x) => !x),
    'first batch: sleeping',
  );
  t.true(a.slice(BATCH - 1, 2 * BATCH - 1).every(Boolean), 'second batch: polling');
  t.true(a[2 * BATCH - 1], 'polling was faster: chosen');
  t.true(drive(c, 16 * BATCH - 1, fastWhenPolling, at).every(Boolean), 'kept for the run');
  // Then it measures again, the same way.
  const again = drive(c, 2 * BATCH + 1, fastWhenPolling, at);
  t.true(again.slice(0, BATCH).every((x) => !x));
  t.true(again.slice(BATCH).every(Boolean));
});

test('sleeps when polling does not pay: a CPU shared with the client', (t) => {
  const c = new BusyPollChooser(BUDGET_MS, 0);
  const a = drive(c, 3 * BATCH, (p) => (p ? 0.038 : 0.03));
  t.false(a[2 * BATCH - 1], 'polling was slower: not chosen');
  t.true(a.slice(2 * BATCH).every((x) => !x));
});

test('sleeps when the gain is marginal (polling costs CPU)', (t) => {
  const c = new BusyPollChooser(BUDGET_MS, 0);
  const a = drive(c, 2 * BATCH, (p) => (p ? 0.0295 : 0.03));
  t.false(a[2 * BATCH - 1]);
});

test('never polls for a slow client or a busy server: no polling probe at all', (t) => {
  const c = new BusyPollChooser(BUDGET_MS, 0);
  const a = drive(c, 20 * BATCH, (p) => (p ? 0.09 : 0.25));
  t.true(a.every((x) => !x));
});

test('one long pause (a retransmission timeout) does not decide a batch on its own', (t) => {
  const c = new BusyPollChooser(BUDGET_MS, 0);
  let i = 0;
  // A 1 s stall in the first batch; otherwise the client is fast and polling faster still.
  const a = drive(c, 2 * BATCH, (p) => (i++ === 10 ? 1000 : p ? 0.02 : 0.03));
  t.true(a[2 * BATCH - 1]);
});
