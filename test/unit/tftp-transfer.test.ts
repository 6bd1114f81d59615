/**
 * The read-transfer state machine, driven by hand on a ManualClock: lock-step,
 * windows, duplicate ACKs, window restarts, backoff, abandonment, block-number
 * wrap-around, the edk2 probe, msftwindow, and a lossy link simulated by dropping
 * packets in both directions.
 */
import test from 'ava';
import { ManualClock } from '../../firmware/core/clock.ts';
import { decode, TftpErrorCode, TftpOpcode } from '../../firmware/protocols/tftp/codec.ts';
import type { FileSource } from '../../firmware/protocols/tftp/file-source.ts';
import { MemorySource, SourceError } from '../../firmware/protocols/tftp/file-source.ts';
import { negotiate } from '../../firmware/protocols/tftp/options.ts';
import type { TransferAction, TransferOptions } from '../../firmware/protocols/tftp/transfer.ts';
import { ReadTransfer } from '../../firmware/protocols/tftp/transfer.ts';

/** Deterministic bytes: a file whose every block differs. */
function pattern(size: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

interface Sent {
  /** 'data' with the wire block, 'oack', or 'error' with the code. */
  kind: 'data' | 'oack' | 'error';
  block: number;
  data: Buffer;
}

function sends(actions: readonly TransferAction[]): Sent[] {
  const out: Sent[] = [];
  for (const a of actions) {
    if (a.kind !== 'send') continue;
    const p = decode(a.packet);
    if (p.opcode === TftpOpcode.Data) out.push({ kind: 'data', block: p.block, data: Buffer.from(p.data) });
    else if (p.opcode === TftpOpcode.Oack) out.push({ kind: 'oack', block: -1, data: Buffer.alloc(0) });
    else if (p.opcode === TftpOpcode.Error) out.push({ kind: 'error', block: p.code, data: Buffer.from(p.message) });
  }
  return out;
}

const blocks = (actions: readonly TransferAction[]) => sends(actions).map((s) => s.block);
const final = (actions: readonly TransferAction[]) => actions.find((a) => a.kind === 'done' || a.kind === 'fail');

function make(size: number, opts: Partial<TransferOptions> = {}, file = pattern(size)) {
  const clock = new ManualClock(1000);
  const t = new ReadTransfer({ source: new MemorySource(file), clock, ...opts });
  return { t, clock, file };
}

test('lock-step without options: 512-byte blocks, ACK by ACK, last block short', (t) => {
  const { t: x, file } = make(1300);
  const first = sends(x.start());
  t.deepEqual(
    first.map((s) => [s.block, s.data.length]),
    [[1, 512]],
  );
  t.deepEqual(first[0]!.data, file.subarray(0, 512));
  t.deepEqual(blocks(x.ack(1)), [2]);
  const last = sends(x.ack(2));
  t.deepEqual(
    last.map((s) => [s.block, s.data.length]),
    [[3, 276]],
  );
  const end = x.ack(3);
  const done = final(end);
  t.is(done?.kind, 'done');
  if (done?.kind === 'done') {
    t.is(done.outcome, 'complete');
    t.is(done.stats.bytes, 1300);
    t.is(done.stats.retransmits, 0);
    t.is(done.stats.packetsSent, 3);
  }
  t.true(x.ended);
  t.is(x.deadline, Number.POSITIVE_INFINITY);
});

test('a size that is a multiple of blksize ends with an empty block (RFC 1350 §6)', (t) => {
  const { t: x } = make(1024);
  x.start();
  x.ack(1);
  const s = sends(x.ack(2));
  t.deepEqual(
    s.map((p) => [p.block, p.data.length]),
    [[3, 0]],
  );
  t.is(final(x.ack(3))?.kind, 'done');
});

test('an empty file is one empty DATA block', (t) => {
  const { t: x } = make(0);
  t.deepEqual(
    sends(x.start()).map((p) => [p.block, p.data.length]),
    [[1, 0]],
  );
  t.is(final(x.ack(1))?.kind, 'done');
});

test('OACK first, DATA only after ACK 0 (RFC 2347)', (t) => {
  const { t: x } = make(5000, { blksize: 1468, windowsize: 4, oack: [{ name: 'blksize', value: '1468' }] });
  t.deepEqual(
    sends(x.start()).map((s) => s.kind),
    ['oack'],
  );
  t.is(x.phase, 'negotiation');
  t.deepEqual(x.ack(1), [], 'an ACK other than 0 does not start the data');
  t.deepEqual(blocks(x.ack(0)), [1, 2, 3, 4]);
  t.is(x.phase, 'data');
  t.deepEqual(x.ack(0), [], 'a repeated ACK 0 is a duplicate');
});

test('windows: the next window follows the ACK of the last block', (t) => {
  const { t: x } = make(10 * 512 + 1, { windowsize: 4 });
  t.deepEqual(blocks(x.start()), [1, 2, 3, 4]);
  t.deepEqual(blocks(x.ack(4)), [5, 6, 7, 8]);
  t.deepEqual(blocks(x.ack(8)), [9, 10, 11]);
  t.is(final(x.ack(11))?.kind, 'done');
});

test('an ACK inside the window restarts the window after it (RFC 7440 §4)', (t) => {
  const { t: x } = make(20 * 512, { windowsize: 4 });
  x.start();
  // block 3 was lost: the client acknowledges 2, the last in order
  t.deepEqual(blocks(x.ack(2)), [3, 4, 5, 6]);
  t.is(x.stats.retransmits, 2, 'blocks 3 and 4 went out twice');
  t.deepEqual(blocks(x.ack(6)), [7, 8, 9, 10]);
});

test('duplicate and stale ACKs never cause a resend (Sorcerer’s Apprentice)', (t) => {
  const { t: x, clock } = make(20 * 512, { windowsize: 4 });
  x.start();
  x.ack(4);
  t.deepEqual(x.ack(4), [], 'duplicate of the last ACK');
  t.deepEqual(x.ack(2), [], 'older than the last ACK');
  t.deepEqual(x.ack(3), []);
  t.deepEqual(x.ack(9), [], 'a block never sent');
  t.deepEqual(x.ack(65535), []);
  t.is(x.stats.duplicateAcks, 1);
  t.is(x.stats.strayAcks, 4);
  t.is(x.stats.retransmits, 0);
  // only the timer resends
  clock.advance(1000);
  t.deepEqual(blocks(x.tick()), [5, 6, 7, 8]);
  t.is(x.stats.retransmits, 4);
});

test('lock-step apprentice scenario: a delayed DATA does not double the traffic', (t) => {
  // RFC 1123 §4.2.3.1: DATA n is delayed, the client times out and re-ACKs n-1,
  // then both copies of DATA n arrive and are both ACKed. A naive sender would
  // answer every ACK and send every later block twice.
  const { t: x, clock } = make(10 * 512);
  x.start();
  x.ack(1); // DATA 2 sent, delayed
  t.deepEqual(x.ack(1), [], "the client's re-ACK of 1 sends nothing");
  clock.advance(1000);
  t.deepEqual(blocks(x.tick()), [2], 'our timeout resends DATA 2');
  t.deepEqual(blocks(x.ack(2)), [3], 'ACK 2 (first copy) sends DATA 3 once');
  t.deepEqual(x.ack(2), [], 'ACK 2 (second copy) sends nothing');
  for (let b = 3; b <= 10; b++) x.ack(b);
  t.is(final(x.ack(11))?.kind, 'done');
  t.is(x.stats.packetsSent, 12, '11 blocks + 1 timeout resend');
});

test('timeouts resend the window with exponential backoff, then give up with ERROR', (t) => {
  const { t: x, clock } = make(100_000, { windowsize: 2, rtoMs: 1000, rtoMaxMs: 4000, maxRetries: 4 });
  x.start();
  const start = clock.now();
  t.is(x.deadline, start + 1000);
  clock.advance(999);
  t.deepEqual(x.tick(), [], 'not yet');
  const gaps: number[] = [];
  let prev = clock.now() + 1;
  for (let i = 0; i < 4; i++) {
    clock.advance(x.deadline - clock.now());
    t.deepEqual(blocks(x.tick()), [1, 2]);
    gaps.push(x.deadline - clock.now());
    prev = clock.now();
  }
  t.deepEqual(gaps, [2000, 4000, 4000, 4000], 'doubling, capped at rtoMaxMs');
  t.is(x.stats.timeouts, 4);
  t.is(x.stats.retransmits, 8);
  clock.advance(x.deadline - prev);
  const last = x.tick();
  const s = sends(last);
  t.is(s.length, 1);
  t.is(s[0]!.kind, 'error');
  t.is(s[0]!.block, TftpErrorCode.NotDefined);
  const f = final(last);
  t.is(f?.kind, 'fail');
  if (f?.kind === 'fail') t.is(f.reason, 'timeout');
  t.true(x.ended);
  t.deepEqual(x.ack(2), [], 'nothing after the end');
  t.deepEqual(x.tick(), []);
});

test('progress resets the backoff and the retry count', (t) => {
  const { t: x, clock } = make(100_000, { rtoMs: 500, maxRetries: 2 });
  x.start();
  clock.advance(500);
  x.tick();
  clock.advance(1000);
  x.tick();
  t.is(x.deadline - clock.now(), 2000);
  x.ack(1);
  t.is(x.deadline - clock.now(), 500, 'back to the base timeout');
  clock.advance(500);
  x.tick();
  clock.advance(1000);
  x.tick();
  t.false(x.ended, 'two more timeouts are allowed after progress');
});

test('the OACK is resent on timeout and the transfer fails if ACK 0 never comes', (t) => {
  const { t: x, clock } = make(100, { oack: [{ name: 'tsize', value: '100' }], maxRetries: 1, rtoMs: 100 });
  x.start();
  clock.advance(100);
  t.deepEqual(
    sends(x.tick()).map((s) => s.kind),
    ['oack'],
  );
  clock.advance(200);
  const last = x.tick();
  t.is(final(last)?.kind, 'fail');
  t.is(x.stats.retransmits, 1);
});

test('a transfer past its total time bound is abandoned even while progressing', (t) => {
  const { t: x, clock } = make(100 * 512, { maxDurationMs: 10_000 });
  x.start();
  for (let b = 1; b <= 10; b++) {
    clock.advance(1000);
    x.ack(b);
  }
  clock.advance(1);
  const a = x.ack(11);
  const f = final(a);
  t.is(f?.kind, 'fail');
  if (f?.kind === 'fail') t.is(f.reason, 'too-slow');
  t.is(sends(a)[0]?.kind, 'error');
});

test('a client ERROR ends the transfer as aborted-by-client', (t) => {
  const { t: x } = make(100 * 512);
  x.start();
  x.ack(1);
  const a = x.error(0, 'disk full');
  t.deepEqual(sends(a), [], 'no answer to an ERROR');
  const d = final(a);
  t.is(d?.kind, 'done');
  if (d?.kind === 'done') {
    t.is(d.outcome, 'aborted-by-client');
    t.is(d.phase, 'data');
    t.deepEqual(d.clientError, { code: 0, message: 'disk full' });
  }
});

test('edk2: tsize probe, OACK, ERROR 8, then the real request as a new transfer', (t) => {
  const file = pattern(50_000);
  const clock = new ManualClock();
  const limits = { blksizeMax: 1468, windowsizeMax: 64, windowBytesMax: 1 << 20 };
  const probeOpts = [
    { name: 'tsize', value: '0' },
    { name: 'blksize', value: '1468' },
    { name: 'windowsize', value: '4' },
  ];
  const n1 = negotiate(probeOpts, { fileSize: file.length, limits });
  if (n1.kind !== 'ok') return t.fail();
  const probe = new ReadTransfer({
    source: new MemorySource(file),
    clock,
    blksize: n1.negotiated.blksize,
    windowsize: n1.negotiated.windowsize,
    oack: n1.negotiated.oack,
  });
  const oack = probe.start();
  const p = decode((oack[0] as { packet: Buffer }).packet);
  t.deepEqual(p, {
    opcode: TftpOpcode.Oack,
    options: [
      { name: 'tsize', value: '50000' },
      { name: 'blksize', value: '1468' },
      { name: 'windowsize', value: '4' },
    ],
  });
  const end = final(probe.error(TftpErrorCode.OptionNegotiation, 'User aborted the transfer'));
  t.is(end?.kind, 'done');
  if (end?.kind === 'done') {
    t.is(end.outcome, 'aborted-by-client');
    t.is(end.phase, 'negotiation');
    t.is(end.stats.bytes, 0);
  }
  // the real request (blksize 1468, windowsize 4, no tsize) is a transfer of its own
  const n2 = negotiate(probeOpts.slice(1), { fileSize: file.length, limits });
  if (n2.kind !== 'ok') return t.fail();
  const real = new ReadTransfer({ source: new MemorySource(file), clock, ...n2.negotiated, oack: n2.negotiated.oack });
  const got = runToEnd(real, clock, 4);
  t.deepEqual(got.data, file);
  t.is(got.outcome, 'complete');
});

test('msftwindow: the ACK byte sets the next window, within the negotiated one', (t) => {
  const { t: x } = make(200 * 512, { windowsize: 8, msftWindow: true, oack: [{ name: 'windowsize', value: '8' }] });
  x.start();
  t.deepEqual(blocks(x.ack(0, 2)), [1, 2], 'ACK 0 asks for a window of 2');
  t.deepEqual(blocks(x.ack(2, 5)), [3, 4, 5, 6, 7]);
  t.deepEqual(blocks(x.ack(7, 200)), [8, 9, 10, 11, 12, 13, 14, 15], 'never above the negotiated 8');
  t.is(x.currentWindow, 8);
  t.deepEqual(blocks(x.ack(9, 1)), [10], 'shrinks, and restarts after the early ACK');
  t.deepEqual(blocks(x.ack(10, 0)), [11], 'a zero hint keeps the window');
});

test('without msftwindow, a fifth ACK byte is ignored', (t) => {
  const { t: x } = make(200 * 512, { windowsize: 4 });
  x.start();
  t.deepEqual(blocks(x.ack(4, 1)), [5, 6, 7, 8]);
});

test('a source that shrinks mid-transfer: ERROR to the client and a fail action', (t) => {
  const file = pattern(10 * 512);
  let reads = 0;
  const shrinking: FileSource = {
    size: file.length,
    read(offset, len) {
      if (++reads > 4) throw new SourceError('shrunk', 'file shrank');
      return file.subarray(offset, offset + len);
    },
    close() {},
  };
  const clock = new ManualClock();
  const x = new ReadTransfer({ source: shrinking, clock, windowsize: 3 });
  t.deepEqual(blocks(x.start()), [1, 2, 3]);
  const a = x.ack(3);
  const s = sends(a);
  t.deepEqual(
    s.map((p) => p.kind),
    ['data', 'error'],
    'block 4 went out, block 5 could not be read',
  );
  t.is(s[1]!.block, TftpErrorCode.NotDefined);
  const f = final(a);
  t.is(f?.kind, 'fail');
  if (f?.kind === 'fail') t.is(f.reason, 'source-error');
  t.true(x.ended);
});

test('a source returning fewer bytes than asked fails the same way', (t) => {
  const short: FileSource = { size: 2000, read: () => Buffer.alloc(10), close() {} };
  const x = new ReadTransfer({ source: short, clock: new ManualClock() });
  const f = final(x.start());
  t.is(f?.kind, 'fail');
});

test('block numbers wrap past 65535 to 0: 70,000 blocks of 8 bytes, lock-step', (t) => {
  const size = 70_000 * 8 + 3;
  const file = pattern(size, 7);
  const clock = new ManualClock();
  const x = new ReadTransfer({ source: new MemorySource(file), clock, blksize: 8 });
  t.is(x.lastBlock, 70_001);
  const out = Buffer.allocUnsafe(size);
  let got = 0;
  let expect = 1;
  let a = x.start();
  const seen: number[] = [];
  while (!x.ended) {
    const s = sends(a);
    t.is(s.length, 1);
    const wire = s[0]!.block;
    if (wire !== (expect & 0xffff)) return t.fail(`block ${expect} went out as ${wire}`);
    if (expect >= 65534 && expect <= 65538) seen.push(wire);
    s[0]!.data.copy(out, got);
    got += s[0]!.data.length;
    expect++;
    a = x.ack(wire);
  }
  t.deepEqual(seen, [65534, 65535, 0, 1, 2]);
  t.is(got, size);
  t.true(out.equals(file));
  const d = final(a);
  t.is(d?.kind, 'done');
  if (d?.kind === 'done') t.is(d.stats.blocksAcked, 70_001);
});

test('wrap-around with windows and a restart that straddles 65535 -> 0', (t) => {
  const clock = new ManualClock();
  const file = pattern(66_000 * 8, 3);
  const x = new ReadTransfer({ source: new MemorySource(file), clock, blksize: 8, windowsize: 7 });
  let a = x.start();
  // ACK whole windows (multiples of 7) up to just before the wrap
  while (x.stats.blocksAcked < 65527) a = x.ack((x.stats.blocksAcked + 7) & 0xffff);
  t.deepEqual(blocks(a), [65528, 65529, 65530, 65531, 65532, 65533, 65534]);
  a = x.ack(65534);
  t.deepEqual(blocks(a), [65535, 0, 1, 2, 3, 4, 5]);
  // block 0 (absolute 65536) was lost: the client acknowledges 65535
  a = x.ack(65535);
  t.deepEqual(blocks(a), [0, 1, 2, 3, 4, 5, 6]);
  const payload = sends(a)[0]!.data;
  t.deepEqual(payload, file.subarray(65535 * 8, 65536 * 8), 'absolute block 65536 carries the right bytes');
  t.deepEqual(x.ack(65535), [], 'the duplicate ACK before the wrap is still a duplicate');
  a = x.ack(6);
  t.deepEqual(blocks(a), [7, 8, 9, 10, 11, 12, 13]);
  t.is(x.stats.blocksAcked, 65536 + 6);
});

/** An RFC 7440 receiver: ACKs every `window` blocks, the last block, and the last in-order block on a gap. */
class Receiver {
  expected = 1;
  readonly parts: Buffer[] = [];
  done = false;
  private since = 0;
  private gapReported = false;
  window: number;
  readonly blksize: number;
  constructor(window: number, blksize: number) {
    this.window = window;
    this.blksize = blksize;
  }
  onPacket(pkt: Buffer): number | undefined {
    const p = decode(pkt);
    if (p.opcode === TftpOpcode.Oack) return this.expected === 1 ? 0 : undefined;
    if (p.opcode !== TftpOpcode.Data) return undefined;
    if (p.block === (this.expected & 0xffff)) {
      this.parts.push(Buffer.from(p.data));
      this.expected++;
      this.since++;
      this.gapReported = false;
      if (p.data.length < this.blksize) {
        this.done = true;
        return p.block;
      }
      if (this.since >= this.window) {
        this.since = 0;
        return p.block;
      }
      return undefined;
    }
    // Out of order: report the last block received in sequence, once per gap.
    if (this.gapReported) return undefined;
    this.gapReported = true;
    this.since = 0;
    return (this.expected - 1) & 0xffff;
  }
  /** The client's own timeout: repeat the last ACK. */
  lastAck(): number {
    return (this.expected - 1) & 0xffff;
  }
  get data(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function runToEnd(x: ReadTransfer, clock: ManualClock, window: number, loss = 0, seed = 1) {
  const rand = rng(seed);
  const r = new Receiver(window, x.blksize);
  let outcome: string | undefined;
  let actions = x.start();
  let dataSent = 0;
  let rounds = 0;
  // The invariant behind the Sorcerer's Apprentice fix: an ACK sends something
  // only when it moves the transfer forward (or accepts the OACK).
  let sendsWithoutProgress = 0;
  const ackChecked = (ack: number) => {
    const before = x.stats.blocksAcked;
    const phase = x.phase;
    const out = x.ack(ack);
    if (phase === 'data' && out.some((a) => a.kind === 'send') && x.stats.blocksAcked === before)
      sendsWithoutProgress++;
    return out;
  };
  while (!x.ended && rounds++ < 1_000_000) {
    const acks: number[] = [];
    for (const a of actions) {
      if (a.kind === 'send') {
        dataSent++;
        if (rand() < loss) continue; // lost on the way to the client
        const ack = r.onPacket(a.packet);
        if (ack !== undefined && rand() >= loss) acks.push(ack);
      } else if (a.kind === 'done') outcome = a.outcome;
      else outcome = `fail:${a.reason}`;
    }
    const next: TransferAction[] = [];
    for (const ack of acks) next.push(...ackChecked(ack));
    if (next.length === 0 && !x.ended) {
      // Nothing in flight: time passes until a timer fires (the client's at 3/4 of ours).
      clock.advance(Math.max(1, Math.floor((x.deadline - clock.now()) * 0.75)));
      const ack = r.lastAck();
      if (rand() >= loss) next.push(...ackChecked(ack));
      if (next.length === 0) {
        clock.advance(x.deadline - clock.now());
        next.push(...x.tick());
      }
    }
    actions = next;
  }
  for (const a of actions) {
    if (a.kind === 'done') outcome = a.outcome;
    else if (a.kind === 'fail') outcome = `fail:${a.reason}`;
  }
  return { data: r.data, outcome, dataSent, sendsWithoutProgress, stats: x.stats };
}

for (const [window, loss] of [
  [1, 0.05],
  [4, 0.05],
  [16, 0.1],
  [16, 0.3],
] as const) {
  test(`lossy link (${loss * 100}% each way), window ${window}: the file arrives intact`, (t) => {
    const clock = new ManualClock();
    const file = pattern(3000 * 64 + 17, window);
    const x = new ReadTransfer({
      source: new MemorySource(file),
      clock,
      blksize: 64,
      windowsize: window,
      maxRetries: 50,
      oack: [{ name: 'blksize', value: '64' }],
    });
    const r = runToEnd(x, clock, window, loss, 1000 + window);
    t.is(r.outcome, 'complete');
    t.true(r.data.equals(file));
    t.true(r.stats.retransmits > 0, 'losses were recovered by resending');
    t.is(r.sendsWithoutProgress, 0, 'no ACK without progress caused a send');
    // Go-back-N: a window that gets through (and its ACK) delivers at least one block.
    const blocksTotal = x.lastBlock;
    const bound = (blocksTotal * window) / (1 - loss) ** 2;
    t.true(r.dataSent < bound, `sent ${r.dataSent} for ${blocksTotal}, bound ${Math.round(bound)}`);
    t.log(
      `window ${window} loss ${loss}: ${r.dataSent} datagrams for ${blocksTotal} blocks, ${r.stats.timeouts} timeouts`,
    );
  });
}

test('a lossless windowed run sends each block exactly once', (t) => {
  const clock = new ManualClock();
  const file = pattern(1000 * 512 + 5);
  const x = new ReadTransfer({ source: new MemorySource(file), clock, windowsize: 16 });
  const r = runToEnd(x, clock, 16);
  t.is(r.outcome, 'complete');
  t.true(r.data.equals(file));
  t.is(r.dataSent, x.lastBlock);
  t.is(r.stats.retransmits, 0);
});

test('abandon() ends quietly', (t) => {
  const { t: x } = make(10_000);
  x.start();
  x.abandon();
  t.true(x.ended);
  t.deepEqual(x.ack(1), []);
  t.deepEqual(x.error(0, 'x'), []);
});

test('reused DATA buffers: a packet still queued stays whole and valid (lossy, reordered, delayed)', (t) => {
  // Packets are kept by reference in a network queue (as a send libuv had to queue keeps its
  // buffer), delivered late and out of order, sometimes twice. Each delivered packet must be a
  // whole, valid packet: its payload is the file's bytes for the block in its header.
  for (const window of [1, 4]) {
    const clock = new ManualClock();
    const blksize = 32;
    const file = pattern(blksize * 400 + 7, 7 + window);
    const x = new ReadTransfer({ source: new MemorySource(file), clock, blksize, windowsize: window, maxRetries: 100 });
    const rand = rng(99 + window);
    const r = new Receiver(window, blksize);
    const net: Buffer[] = [];
    let bad = 0;
    const push = (actions: readonly TransferAction[]) => {
      for (const a of actions) if (a.kind === 'send' && rand() > 0.1) net.push(a.packet);
    };
    push(x.start());
    for (let step = 0; step < 200_000 && !x.ended; step++) {
      if (net.length === 0 || rand() < 0.02) {
        // Time passes: the client's timer repeats its last ACK, or ours fires.
        if (rand() < 0.5) push(x.ack(r.lastAck()));
        else {
          clock.advance(x.deadline - clock.now());
          push(x.tick());
        }
        continue;
      }
      // Deliver a random queued packet (reordering), sometimes leaving a copy (duplication).
      const i = Math.floor(rand() * Math.min(net.length, 3));
      const pkt = net[i]!;
      if (rand() > 0.05) net.splice(i, 1);
      const p = decode(pkt);
      if (p.opcode !== TftpOpcode.Data) continue;
      const want = file.subarray((p.block - 1) * blksize, p.block * blksize);
      if (!p.data.equals(want)) bad++;
      const ack = r.onPacket(pkt);
      if (ack !== undefined && rand() > 0.1) push(x.ack(ack));
    }
    t.true(x.ended, `window ${window}: the transfer ended`);
    t.true(x.stats.retransmits > 0, `window ${window}: losses were recovered by resending`);
    t.is(bad, 0, `window ${window}: every delivered packet was whole and valid`);
    t.true(r.data.equals(file), `window ${window}: the file arrived intact`);
  }
});
