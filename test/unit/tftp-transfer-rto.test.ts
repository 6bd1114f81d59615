/**
 * The adaptive retransmission timeout of the read transfer (RFC 6298 with Karn's rule),
 * driven on a ManualClock: it converges down on a fast link, backs off on timeouts, takes
 * no samples from resent blocks, stays fixed when the client set the RFC 2349 `timeout`,
 * and duplicate ACKs never cause a resend.
 */
import test from 'ava';
import { ManualClock } from '../../firmware/core/clock.ts';
import { decode, TftpOpcode } from '../../firmware/protocols/tftp/codec.ts';
import { MemorySource } from '../../firmware/protocols/tftp/file-source.ts';
import type { TransferAction, TransferOptions } from '../../firmware/protocols/tftp/transfer.ts';
import { ReadTransfer } from '../../firmware/protocols/tftp/transfer.ts';

function blocks(actions: readonly TransferAction[]): number[] {
  const out: number[] = [];
  for (const a of actions) {
    if (a.kind !== 'send') continue;
    const p = decode(a.packet);
    if (p.opcode === TftpOpcode.Data) out.push(p.block);
    else if (p.opcode === TftpOpcode.Oack) out.push(-1);
  }
  return out;
}

function make(size: number, opts: Partial<TransferOptions> = {}) {
  const clock = new ManualClock(1000);
  const x = new ReadTransfer({ source: new MemorySource(Buffer.alloc(size, 7)), clock, rtoAdaptive: true, ...opts });
  return { x, clock };
}

/** Lock-step: each block is ACKed `rtt` ms after it was sent. */
function lockStep(x: ReadTransfer, clock: ManualClock, from: number, to: number, rtt: number): void {
  for (let b = from; b <= to; b++) {
    clock.advance(rtt);
    x.ack(b);
  }
}

test('adaptive: the timeout starts at rtoMs and converges down to the floor on a fast link', (t) => {
  const { x, clock } = make(512 * 200);
  x.start();
  t.is(x.rtoMs, 1000, 'no sample yet: the configured timeout');
  t.is(x.deadline - clock.now(), 1000);
  clock.advance(2);
  x.ack(1);
  t.is(x.srttMs, 2, 'first sample: SRTT = R');
  t.is(x.rtoMs, 50, 'SRTT + 4 RTTVAR = 6 ms, clamped to the 50 ms floor');
  t.is(x.deadline - clock.now(), 50, 'the next block is timed out after 50 ms');
  lockStep(x, clock, 2, 50, 2);
  t.is(x.rtoMs, 50);
  t.true(Math.abs(x.srttMs! - 2) < 1e-9);
});

test('adaptive: a slower link gives SRTT + 4 RTTVAR, and it follows a change of RTT', (t) => {
  const { x, clock } = make(512 * 400);
  x.start();
  clock.advance(100);
  x.ack(1);
  t.is(x.rtoMs, 300, 'first sample 100 ms: 100 + 4 * 50');
  lockStep(x, clock, 2, 100, 100);
  t.true(x.rtoMs < 110 && x.rtoMs >= 100, `steady 100 ms RTT: RTO ${x.rtoMs}`);
  lockStep(x, clock, 101, 300, 10);
  t.is(x.rtoMs, 50, 'the RTT fell to 10 ms: the floor');
  lockStep(x, clock, 301, 390, 2000);
  t.is(x.rtoMs, 1000, 'never above rtoMs');
});

test('adaptive: the floor and ceiling can be configured', (t) => {
  const { x, clock } = make(512 * 100, { rtoMs: 400, rtoMinMs: 20 });
  x.start();
  t.is(x.rtoMs, 400);
  lockStep(x, clock, 1, 50, 1);
  t.is(x.rtoMs, 20);
  lockStep(x, clock, 51, 60, 1000);
  t.is(x.rtoMs, 400);
});

test('adaptive: timeouts back off from the measured timeout, progress returns to it', (t) => {
  const { x, clock } = make(512 * 100, { rtoMaxMs: 8000, maxRetries: 6 });
  x.start();
  lockStep(x, clock, 1, 20, 2);
  t.is(x.rtoMs, 50);
  // DATA 21 is lost: 50, then 100, 200, 400 ms.
  const gaps: number[] = [];
  for (let i = 0; i < 4; i++) {
    gaps.push(x.deadline - clock.now());
    clock.advance(x.deadline - clock.now());
    t.deepEqual(blocks(x.tick()), [21]);
  }
  gaps.push(x.deadline - clock.now());
  t.deepEqual(gaps, [50, 100, 200, 400, 800], 'exponential backoff from 50 ms');
  t.is(x.stats.timeouts, 4);
  clock.advance(2);
  t.deepEqual(blocks(x.ack(21)), [22]);
  t.is(x.rtoMs, 50, 'progress: back to the measured timeout');
  t.is(x.deadline - clock.now(), 50);
});

test('adaptive: the backoff is capped at rtoMaxMs, and giving up takes no less time than from rtoMs', (t) => {
  const { x, clock } = make(512 * 100, { rtoMs: 200, rtoMaxMs: 300, maxRetries: 5 });
  x.start();
  lockStep(x, clock, 1, 10, 2);
  const stalledAt = clock.now();
  const gaps: number[] = [];
  let last: readonly TransferAction[] = [];
  while (!x.ended) {
    gaps.push(x.deadline - clock.now());
    clock.advance(x.deadline - clock.now());
    last = x.tick();
  }
  // From rtoMs, 6 timeouts (maxRetries + 1) take 200 + 5 * 300 = 1700 ms; from the measured
  // 50 ms they come sooner, so more are allowed until as much time has passed.
  t.deepEqual(gaps, [50, 100, 200, 300, 300, 300, 300, 300]);
  t.is(clock.now() - stalledAt, 1850);
  const f = last.find((a) => a.kind === 'fail');
  t.is(f?.kind, 'fail');
  if (f?.kind === 'fail') t.is(f.reason, 'timeout');
  t.is(x.stats.timeouts, 8);
});

test('adaptive: a silent client is given up on no sooner than with the fixed timeout', (t) => {
  const giveUp = (rtoAdaptive: boolean) => {
    const { x, clock } = make(512 * 100, { rtoAdaptive });
    x.start();
    lockStep(x, clock, 1, 10, 2);
    const from = clock.now();
    while (!x.ended) {
      clock.advance(x.deadline - clock.now());
      x.tick();
    }
    return clock.now() - from;
  };
  const fixed = giveUp(false);
  t.is(fixed, 1000 + 2000 + 4000 + 8000 * 4, 'defaults: 6 retries, 1 s doubling to 8 s');
  const adaptive = giveUp(true);
  t.true(adaptive >= fixed, `adaptive ${adaptive} ms, fixed ${fixed} ms`);
  t.true(adaptive < fixed + 8000);
});

test("Karn's rule: the ACK of a resent block gives no sample", (t) => {
  const { x, clock } = make(512 * 100);
  x.start();
  lockStep(x, clock, 1, 30, 2);
  const srtt = x.srttMs;
  // DATA 31 times out and is resent; its (late) ACK comes 1 ms after the resend, or 51 ms
  // after the first send: neither is a round trip to trust.
  clock.advance(50);
  t.deepEqual(blocks(x.tick()), [31]);
  clock.advance(1);
  x.ack(31);
  t.is(x.srttMs, srtt, 'no sample from block 31');
  // Block 32 was sent once: its ACK is a sample.
  clock.advance(10);
  x.ack(32);
  t.not(x.srttMs, srtt);
  t.true(x.srttMs! > srtt!);
});

test("Karn's rule: a timed-out window is not timed; the next fresh one is", (t) => {
  const { x, clock } = make(1468 * 200, { blksize: 1468, windowsize: 8 });
  t.deepEqual(blocks(x.start()), [1, 2, 3, 4, 5, 6, 7, 8]);
  clock.advance(4);
  t.deepEqual(blocks(x.ack(8)), [9, 10, 11, 12, 13, 14, 15, 16]);
  t.is(x.srttMs, 4, 'window 1..8 timed by its last block');
  // The whole window is lost: resent after the timeout; the ACK comes 900 ms later.
  clock.advance(x.deadline - clock.now());
  t.deepEqual(blocks(x.tick()), [9, 10, 11, 12, 13, 14, 15, 16]);
  clock.advance(900);
  x.ack(16);
  t.is(x.srttMs, 4, 'no sample from the resent window');
  clock.advance(4);
  x.ack(24);
  t.is(x.srttMs, 4, 'the fresh window 17..24 is a sample of 4 ms');
  t.is(x.rtoMs, 50);
});

test("Karn's rule: an ACK inside the window (a gap) is no sample, and the restart's fresh tail is timed", (t) => {
  const { x, clock } = make(1468 * 200, { blksize: 1468, windowsize: 4 });
  x.start();
  clock.advance(300);
  t.deepEqual(blocks(x.ack(2)), [3, 4, 5, 6], 'gap after 2: restart at 3');
  t.is(x.srttMs, undefined, 'ACK 2 is not the timed block 4');
  clock.advance(20);
  x.ack(6);
  t.is(x.srttMs, 20, 'block 6 was sent once: a sample');
});

test('adaptive: the OACK round trip is the first sample, unless the OACK was resent', (t) => {
  const oack = [{ name: 'blksize', value: '1024' }];
  {
    const { x, clock } = make(10_000, { blksize: 1024, oack });
    t.deepEqual(blocks(x.start()), [-1]);
    clock.advance(3);
    t.deepEqual(blocks(x.ack(0)), [1]);
    t.is(x.srttMs, 3);
    t.is(x.deadline - clock.now(), 50);
  }
  {
    const { x, clock } = make(10_000, { blksize: 1024, oack });
    x.start();
    clock.advance(1000);
    t.deepEqual(blocks(x.tick()), [-1], 'OACK resent');
    clock.advance(3);
    x.ack(0);
    t.is(x.srttMs, undefined, 'no sample from a resent OACK');
    t.is(x.deadline - clock.now(), 1000, 'still the configured timeout');
  }
});

test('the client asked for a timeout (RFC 2349): it is used as is, whatever the round trips', (t) => {
  const clock = new ManualClock(1000);
  const x = new ReadTransfer({ source: new MemorySource(Buffer.alloc(512 * 100)), clock, rtoMs: 2000 });
  x.start();
  lockStep(x, clock, 1, 50, 2);
  t.is(x.srttMs, undefined, 'not measured');
  t.is(x.rtoMs, 2000);
  t.is(x.deadline - clock.now(), 2000);
  clock.advance(2000);
  t.deepEqual(blocks(x.tick()), [51]);
  t.is(x.deadline - clock.now(), 4000, 'backoff from the client value');
  clock.advance(1);
  x.ack(51);
  t.is(x.deadline - clock.now(), 2000, 'progress: back to the client value');
});

test("no Sorcerer's Apprentice: duplicate ACKs never resend, even with a short measured timeout", (t) => {
  const { x, clock } = make(512 * 100, { windowsize: 1 });
  x.start();
  lockStep(x, clock, 1, 20, 2);
  // A delayed DATA 21 makes the client's timer fire: it re-ACKs 20 several times.
  for (let i = 0; i < 5; i++) {
    clock.advance(5);
    t.deepEqual(x.ack(20), [], 'duplicate ACK 20 sends nothing');
  }
  t.is(x.stats.duplicateAcks, 5);
  // Only our timer resends DATA 21, once; both copies of ACK 21 then move on once.
  clock.advance(x.deadline - clock.now());
  t.deepEqual(blocks(x.tick()), [21]);
  t.deepEqual(blocks(x.ack(21)), [22]);
  t.deepEqual(x.ack(21), [], 'the second ACK 21 sends nothing');
  t.is(x.stats.retransmits, 1);
  t.is(x.stats.packetsSent, 23);
});

test('adaptive on a lossy simulated link: completes intact with far less waiting than a fixed 1 s', (t) => {
  const size = 512 * 2000;
  const run = (rtoAdaptive: boolean) => {
    const clock = new ManualClock(0);
    const x = new ReadTransfer({ source: new MemorySource(Buffer.alloc(size, 1)), clock, rtoAdaptive });
    let seed = 99;
    const lost = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % 100 < 5;
    };
    let out = x.start();
    let received = 0;
    while (!x.ended) {
      const data = blocks(out);
      out = [];
      for (const b of data) {
        if (lost()) continue;
        if (b === ((received + 1) & 0xffff)) received++;
        clock.advance(2); // one-way 1 ms each
        if (lost()) continue;
        out = x.ack(received & 0xffff);
      }
      if (out.length === 0 && !x.ended) {
        clock.advance(Math.max(0, x.deadline - clock.now()));
        out = x.tick();
      }
    }
    t.is(x.stats.bytes, size);
    return x.stats;
  };
  const fixed = run(false);
  const adaptive = run(true);
  t.log(`fixed: ${fixed.durationMs} ms, ${fixed.timeouts} timeouts; adaptive: ${adaptive.durationMs} ms`);
  t.true(adaptive.timeouts > 0);
  t.true(adaptive.durationMs * 5 < fixed.durationMs);
});
