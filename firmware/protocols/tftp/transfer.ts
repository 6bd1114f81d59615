/**
 * One read transfer (the server sends a file), as a pure state machine. It is
 * fed events (start, ack, error, tick) and returns actions (send, done, fail);
 * it never touches a socket or a timer, and reads time from the injected clock.
 *
 * Protocol decisions, each in one place below:
 * - OACK handshake: with options, the server sends OACK and waits for ACK 0 (RFC 2347).
 * - Windows: `windowsize` blocks are sent, then the server waits for an ACK (RFC 7440 §4).
 *   An ACK for a block inside the window restarts the window after that block.
 * - Duplicate ACKs are ignored and never cause a resend: only the timer resends
 *   (RFC 1123 §4.2.3.1, the Sorcerer's Apprentice fix of RFC 1350).
 * - Timeouts resend the whole window from the last in-order ACK, with
 *   exponential backoff; after `maxRetries` timeouts, or past `maxDurationMs`,
 *   the transfer is abandoned.
 * - Adaptive timeout (`rtoAdaptive`, used when the client did not ask for the RFC 2349
 *   `timeout`): round trips are measured from sending a window (or the OACK) to the ACK
 *   that covers its last block, and smoothed as in RFC 6298 §2:
 *   RTO = clamp(SRTT + 4·RTTVAR, rtoMinMs, rtoMs). Karn's rule (RFC 6298 §3): a block
 *   sent more than once gives no sample. Backoff on timeouts is unchanged; progress
 *   returns to the measured RTO (to `rtoMs` until there is a sample). A shorter timeout
 *   never means giving up sooner: the transfer is abandoned only after `maxRetries`
 *   timeouts AND as long without progress as `maxRetries` timeouts take from `rtoMs`
 *   (clients such as atftp re-ACK a resent window once, then wait for their own timer).
 * - Block numbers are 16 bits on the wire and wrap from 65535 to 0; the machine
 *   counts absolute blocks and maps each ACK into the window it can refer to.
 * - A client ERROR ends the transfer cleanly as 'aborted-by-client' (edk2's
 *   tsize probe answers the OACK with ERROR 8 "User aborted the transfer").
 * - Microsoft's variable window (msftwindow): the fifth byte of each ACK sets
 *   the size of the next window (Wireshark packet-tftp.c).
 */
import type { Clock } from '../../core/clock.ts';
import type { TftpOption } from './codec.ts';
import { DATA_HEADER_LENGTH, encodeError, encodeOack, TftpErrorCode, writeDataHeader } from './codec.ts';
import type { FileSource } from './file-source.ts';
import { SourceError } from './file-source.ts';
import { BLKSIZE_DEFAULT } from './options.ts';

export interface TransferOptions {
  source: FileSource;
  clock: Clock;
  /** Negotiated block size (RFC 2348); 512 without the option. */
  blksize?: number;
  /** Negotiated window size (RFC 7440); 1 (lock-step) without the option. */
  windowsize?: number;
  /** msftwindow agreed: ACKs may carry the next window size. */
  msftWindow?: boolean;
  /** Options to acknowledge. Non-empty: start with OACK and wait for ACK 0 (RFC 2347). */
  oack?: readonly TftpOption[];
  /**
   * First retransmission timeout, ms (the RFC 2349 `timeout` option when granted). Default
   * 1000. With `rtoAdaptive`, also the ceiling of the measured timeout.
   */
  rtoMs?: number;
  /** Measure round trips and adapt the timeout to them (RFC 6298). Default false: fixed `rtoMs`. */
  rtoAdaptive?: boolean;
  /** Floor of the measured timeout, ms. Default 50 (never above rtoMs). */
  rtoMinMs?: number;
  /** Backoff ceiling, ms. Default 8000 (never below rtoMs). */
  rtoMaxMs?: number;
  /**
   * Timeouts in a row without progress before giving up. Default 6. With a measured timeout
   * shorter than rtoMs, more are allowed: giving up still takes as long as from rtoMs.
   */
  maxRetries?: number;
  /** Longest a transfer may take, whatever its progress. Default one hour. */
  maxDurationMs?: number;
}

export interface TransferStats {
  /** File bytes the client acknowledged. */
  bytes: number;
  /** Size of the file being sent. */
  size: number;
  /** Highest block acknowledged (absolute, so past 65535 after wrap-around). */
  blocksAcked: number;
  /** DATA and OACK datagrams sent, first sends and resends. */
  packetsSent: number;
  /** Datagrams sent again (window restarts and timeouts). */
  retransmits: number;
  timeouts: number;
  /** ACKs ignored as duplicates of the last one. */
  duplicateAcks: number;
  /** ACKs ignored because they named a block not sent yet or long acknowledged. */
  strayAcks: number;
  durationMs: number;
  blksize: number;
  windowsize: number;
}

export type TransferOutcome = 'complete' | 'aborted-by-client';
export type TransferPhase = 'negotiation' | 'data';
export type TransferFailReason = 'timeout' | 'too-slow' | 'source-error';

export type TransferAction =
  | { kind: 'send'; packet: Buffer }
  | {
      kind: 'done';
      outcome: TransferOutcome;
      /** For 'aborted-by-client': where it happened and what the client said. */
      phase?: TransferPhase;
      clientError?: { code: number; message: string };
      stats: TransferStats;
    }
  | { kind: 'fail'; reason: TransferFailReason; message: string; stats: TransferStats };

type State = 'idle' | 'oack' | 'data' | 'ended';

const NO_ACTIONS: readonly TransferAction[] = Object.freeze([]) as readonly TransferAction[];

export class ReadTransfer {
  readonly blksize: number;
  /** The negotiated (largest) window; msftwindow may use less. */
  readonly windowsize: number;
  readonly size: number;
  /** Last absolute block: the one shorter than blksize (0 bytes when the size is a multiple). */
  readonly lastBlock: number;

  private readonly source: FileSource;
  private readonly clock: Clock;
  private readonly msftWindow: boolean;
  private readonly oackPacket: Buffer | undefined;
  private readonly rtoBase: number;
  private readonly rtoMax: number;
  private readonly rtoAdaptive: boolean;
  private readonly rtoMin: number;
  private readonly maxRetries: number;
  private readonly maxDurationMs: number;
  /** How long without progress before giving up: maxRetries + 1 timeouts from rtoBase, backoff included. */
  private readonly stallLimitMs: number;

  private state: State = 'idle';
  private window: number;
  private acked = 0;
  private sent = 0;
  private highestSent = 0;
  private rto: number;
  /** The timeout progress returns to: rtoBase, or the measured one (adaptive). */
  private rtoNominal: number;
  /** Smoothed round trip and its variation (RFC 6298); srtt < 0 before the first sample. */
  private srtt = -1;
  private rttvar = 0;
  /** The block whose ACK ends the pending round-trip measurement (0: the OACK); -1: none. */
  private timedBlock = -1;
  private timedAt = 0;
  private retries = 0;
  /** When the last progress (or the start) was. */
  private progressAt = 0;
  private deadlineAt = Number.POSITIVE_INFINITY;
  private startedAt = 0;
  private endedAt = 0;
  private packetsSent = 0;
  private retransmits = 0;
  private timeouts = 0;
  private duplicateAcks = 0;
  private strayAcks = 0;
  private oackSent = false;

  // One reusable DATA buffer per window slot: block b lives in slot b % slots.
  // A slot is refilled only for a block past the acknowledged ones, so a send
  // still queued in the kernel can only ever carry a whole, valid packet.
  private readonly slots: (Buffer | undefined)[];
  private readonly slotBlock: number[];
  private lastPacket: Buffer | undefined;

  constructor(opts: TransferOptions) {
    this.source = opts.source;
    this.clock = opts.clock;
    this.size = opts.source.size;
    this.blksize = opts.blksize ?? BLKSIZE_DEFAULT;
    this.windowsize = Math.max(1, opts.windowsize ?? 1);
    this.window = this.windowsize;
    this.msftWindow = opts.msftWindow ?? false;
    this.oackPacket = opts.oack && opts.oack.length > 0 ? encodeOack(opts.oack) : undefined;
    this.rtoBase = opts.rtoMs ?? 1000;
    this.rtoMax = Math.max(this.rtoBase, opts.rtoMaxMs ?? 8000);
    this.rto = this.rtoBase;
    this.rtoNominal = this.rtoBase;
    this.rtoAdaptive = opts.rtoAdaptive ?? false;
    this.rtoMin = Math.min(opts.rtoMinMs ?? 50, this.rtoBase);
    this.maxRetries = opts.maxRetries ?? 6;
    this.maxDurationMs = opts.maxDurationMs ?? 3_600_000;
    let stall = 0;
    for (let i = 0, r = this.rtoBase; i <= this.maxRetries; i++, r = Math.min(r * 2, this.rtoMax)) stall += r;
    this.stallLimitMs = stall;
    // RFC 1350 §6: a block shorter than blksize ends the transfer, so a size
    // that is a multiple of blksize ends with an empty block.
    this.lastBlock = Math.floor(this.size / this.blksize) + 1;
    this.slots = new Array(this.windowsize);
    this.slotBlock = new Array(this.windowsize).fill(-1);
  }

  /** When `tick()` has something to do (ms on the injected clock); Infinity once ended. */
  get deadline(): number {
    return this.deadlineAt;
  }

  get ended(): boolean {
    return this.state === 'ended';
  }

  get phase(): TransferPhase {
    return this.state === 'idle' || this.state === 'oack' ? 'negotiation' : 'data';
  }

  /** Highest block acknowledged so far (absolute). */
  get acknowledged(): number {
    return this.acked;
  }

  /** The current retransmission timeout, ms (backoff included). */
  get rtoMs(): number {
    return this.rto;
  }

  /** Smoothed round-trip time, ms (RFC 6298); undefined before the first sample or when not adaptive. */
  get srttMs(): number | undefined {
    return this.srtt < 0 ? undefined : this.srtt;
  }

  /** The window the next send will use (msftwindow may have changed it). */
  get currentWindow(): number {
    return this.window;
  }

  get stats(): TransferStats {
    const end = this.state === 'ended' ? this.endedAt : this.clock.now();
    return {
      bytes: Math.min(this.acked * this.blksize, this.size),
      size: this.size,
      blocksAcked: this.acked,
      packetsSent: this.packetsSent,
      retransmits: this.retransmits,
      timeouts: this.timeouts,
      duplicateAcks: this.duplicateAcks,
      strayAcks: this.strayAcks,
      durationMs: end - this.startedAt,
      blksize: this.blksize,
      windowsize: this.windowsize,
    };
  }

  start(): readonly TransferAction[] {
    if (this.state !== 'idle') return NO_ACTIONS;
    const now = this.clock.now();
    this.startedAt = now;
    this.progressAt = now;
    if (this.oackPacket) {
      // RFC 2347: options were granted, so the OACK goes first and DATA waits for ACK 0.
      this.state = 'oack';
      return this.sendOack(now);
    }
    this.state = 'data';
    return this.sendWindow(now);
  }

  /** An ACK from the client: `block` as on the wire (16 bits). */
  ack(block: number, windowHint?: number): readonly TransferAction[] {
    if (this.state === 'oack') {
      // RFC 2347: ACK 0 accepts the OACK. Anything else is not for this phase.
      if (block !== 0) {
        this.strayAcks++;
        return NO_ACTIONS;
      }
      this.applyWindowHint(windowHint);
      this.state = 'data';
      const now = this.clock.now();
      if (this.timedBlock === 0) this.sample(now);
      this.progress(now);
      return this.overdue(now) ?? this.sendWindow(now);
    }
    if (this.state !== 'data') return NO_ACTIONS;
    // Map the 16-bit number onto the blocks it can name: acked .. acked + 65535.
    // A window never exceeds 65535 blocks (RFC 7440), so this is unambiguous.
    const delta = (block - this.acked) & 0xffff;
    if (delta === 0) {
      // RFC 1123 §4.2.3.1: a duplicate ACK never triggers a resend (Sorcerer's Apprentice).
      this.duplicateAcks++;
      return NO_ACTIONS;
    }
    const abs = this.acked + delta;
    if (abs > this.sent) {
      // Names a block never sent, or an old one from before the last window.
      this.strayAcks++;
      return NO_ACTIONS;
    }
    this.acked = abs;
    if (abs === this.lastBlock) return this.finish();
    this.applyWindowHint(windowHint);
    const now = this.clock.now();
    // An ACK inside the window (a gap) ends no measurement: the window is resent.
    if (this.timedBlock > 0 && abs >= this.timedBlock) this.sample(now);
    this.progress(now);
    // RFC 7440 §4: the next window starts right after the acknowledged block,
    // whether it ended the window or reported a gap inside it.
    return this.overdue(now) ?? this.sendWindow(now);
  }

  /** An ERROR from the client ends the transfer; it is not a server failure. */
  error(code: number, message: string): readonly TransferAction[] {
    if (this.state === 'ended' || this.state === 'idle') return NO_ACTIONS;
    const phase = this.phase;
    this.end();
    return [{ kind: 'done', outcome: 'aborted-by-client', phase, clientError: { code, message }, stats: this.stats }];
  }

  /** Timer: resend or give up when the deadline has passed; nothing otherwise. */
  tick(): readonly TransferAction[] {
    if (this.state !== 'oack' && this.state !== 'data') return NO_ACTIONS;
    const now = this.clock.now();
    const over = this.overdue(now);
    if (over) return over;
    if (now < this.deadlineAt) return NO_ACTIONS;
    this.timeouts++;
    if (++this.retries > this.maxRetries && now - this.progressAt >= this.stallLimitMs) {
      return this.fail('timeout', `no ACK after ${this.maxRetries} retransmissions`, TftpErrorCode.NotDefined);
    }
    // Exponential backoff, bounded.
    this.rto = Math.min(this.rto * 2, this.rtoMax);
    if (this.state === 'oack') return this.sendOack(now);
    // RFC 7440 §4: on timeout the sender resends the window from the last ACK.
    return this.sendWindow(now);
  }

  /** The server drops the transfer (shutdown, replaced by a new request). */
  abandon(): void {
    if (this.state !== 'ended') this.end();
  }

  private applyWindowHint(hint: number | undefined): void {
    // msftwindow: the client names the next window; never beyond what was negotiated.
    if (!this.msftWindow || hint === undefined || hint < 1) return;
    this.window = Math.min(hint, this.windowsize);
  }

  private progress(now: number): void {
    this.retries = 0;
    this.progressAt = now;
    this.rto = this.rtoNominal;
  }

  /** One round-trip sample ending now (RFC 6298 §2.2, §2.3). */
  private sample(now: number): void {
    const r = now - this.timedAt;
    this.timedBlock = -1;
    if (this.srtt < 0) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.rtoNominal = Math.min(this.rtoBase, Math.max(this.rtoMin, this.srtt + 4 * this.rttvar));
  }

  /** `now`: the clock, read once per event (one read per ACK on the lock-step hot path). */
  private overdue(now: number): readonly TransferAction[] | undefined {
    if (now - this.startedAt <= this.maxDurationMs) return undefined;
    return this.fail('too-slow', `transfer exceeded ${this.maxDurationMs} ms`, TftpErrorCode.NotDefined);
  }

  private sendOack(now: number): TransferAction[] {
    if (this.oackSent) this.retransmits++;
    // Karn's rule: only a first OACK is timed.
    this.timedBlock = this.rtoAdaptive && !this.oackSent ? 0 : -1;
    if (this.timedBlock === 0) this.timedAt = now;
    this.oackSent = true;
    this.packetsSent++;
    this.deadlineAt = now + this.rto;
    return [{ kind: 'send', packet: this.oackPacket! }];
  }

  private sendWindow(now: number): TransferAction[] {
    const from = this.acked + 1;
    const to = Math.min(this.acked + this.window, this.lastBlock);
    const actions: TransferAction[] = [];
    for (let b = from; b <= to; b++) {
      let packet: Buffer;
      try {
        packet = this.dataPacket(b);
      } catch (e) {
        const msg = e instanceof SourceError ? e.message : `read failed: ${(e as Error).message}`;
        // The client gets an ERROR (RFC 1350 §7) instead of a silent stall.
        return [...actions, ...this.fail('source-error', msg, TftpErrorCode.NotDefined)];
      }
      if (b <= this.highestSent) this.retransmits++;
      this.packetsSent++;
      actions.push({ kind: 'send', packet });
    }
    this.sent = to;
    // Karn's rule: the window is timed by its last block, and only if that block is sent
    // for the first time; a resend of it cancels any measurement in progress.
    if (to > this.highestSent) {
      this.highestSent = to;
      if (this.rtoAdaptive) {
        this.timedBlock = to;
        this.timedAt = now;
      }
    } else {
      this.timedBlock = -1;
    }
    this.deadlineAt = now + this.rto;
    return actions;
  }

  private dataPacket(b: number): Buffer {
    // The last block, shorter than blksize, has a buffer of its own: written in a slot, it
    // would turn a queued send of an earlier (full) block into a full-length packet with
    // that block's number and a stale tail.
    if (b === this.lastBlock) return this.lastPacket ?? this.fillLastPacket(b);
    const i = b % this.windowsize;
    let slot = this.slots[i];
    if (slot === undefined) {
      slot = Buffer.allocUnsafe(DATA_HEADER_LENGTH + this.blksize);
      this.slots[i] = slot;
    }
    if (this.slotBlock[i] !== b) {
      this.fill(slot, b, this.blksize);
      this.slotBlock[i] = b;
    }
    return slot;
  }

  private fillLastPacket(b: number): Buffer {
    const len = this.size - (b - 1) * this.blksize;
    const packet = Buffer.allocUnsafe(DATA_HEADER_LENGTH + len);
    this.fill(packet, b, len);
    this.lastPacket = packet;
    return packet;
  }

  /** Writes DATA block `b` (`len` bytes of the file) into `packet`. */
  private fill(packet: Buffer, b: number, len: number): void {
    const offset = (b - 1) * this.blksize;
    const data = this.source.read(offset, len);
    if (data.length !== len) throw new SourceError('shrunk', `short read at ${offset}: ${data.length} of ${len}`);
    // Block numbers wrap from 65535 to 0 on the wire.
    writeDataHeader(packet, b & 0xffff);
    packet.set(data, DATA_HEADER_LENGTH);
  }

  private finish(): TransferAction[] {
    this.end();
    return [{ kind: 'done', outcome: 'complete', stats: this.stats }];
  }

  private fail(reason: TransferFailReason, message: string, code: number): TransferAction[] {
    this.end();
    return [
      { kind: 'send', packet: encodeError(code, errorText(reason)) },
      { kind: 'fail', reason, message, stats: this.stats },
    ];
  }

  private end(): void {
    this.state = 'ended';
    this.endedAt = this.clock.now();
    this.deadlineAt = Number.POSITIVE_INFINITY;
    this.slots.fill(undefined);
    this.lastPacket = undefined;
  }
}

function errorText(reason: TransferFailReason): string {
  switch (reason) {
    case 'timeout':
      return 'Transfer timed out';
    case 'too-slow':
      return 'Transfer took too long';
    case 'source-error':
      return 'File changed or became unreadable during the transfer';
  }
}
