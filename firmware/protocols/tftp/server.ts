/**
 * The TFTP server: read requests only, over board endpoints. It owns sockets,
 * timers and files; the protocol itself lives in codec.ts, options.ts and
 * transfer.ts. It emits typed events and keeps counters; it never calls
 * telemetry.
 *
 * Two socket layouts:
 * - per-transfer ports (default, RFC 1350 §4): requests arrive on the listen
 *   port; each transfer gets its own endpoint on an ephemeral port (its TID).
 * - single port (`singlePort`): every transfer shares the listen endpoint and
 *   is found by the client's address:port. For NAT and firewalls that only
 *   pass port 69.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Datagram, EndpointFactory, UdpEndpoint } from '../../../board/udp-endpoint.ts';
import type { Clock } from '../../core/clock.ts';
import { systemClock } from '../../core/clock.ts';
import { DecodeError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { silentLogger } from '../../core/logger.ts';
import { BusyPollChooser } from './busy-poll.ts';
import type { RequestPacket, TftpPacket } from './codec.ts';
import { decode, encodeError, peekOpcode, TftpErrorCode, TftpOpcode } from './codec.ts';
import type { TftpCounters, TftpErrorReason, TftpEventSink, TftpRefusalReason } from './events.ts';
import { newCounters } from './events.ts';
import { FdSource } from './fd-source.ts';
import { FileCache } from './file-cache.ts';
import type { ResolvedFile } from './file-resolver.ts';
import { FileResolver } from './file-resolver.ts';
import type { FileSource } from './file-source.ts';
import { MemorySource } from './file-source.ts';
import { toNetascii } from './netascii.ts';
import type { OptionLimits } from './options.ts';
import { blksizeMaxForMtu, negotiate } from './options.ts';
import type { TransferAction } from './transfer.ts';
import { ReadTransfer } from './transfer.ts';

export interface TftpServerOptions {
  /** Endpoints on the private interface. */
  factory: EndpointFactory;
  events: TftpEventSink;
  /** The boot tree; nothing outside it is served. */
  bootDir: string;
  clock?: Clock;
  log?: Logger;
  /** Listen port (RFC 1350: 69). 0 picks an ephemeral one (tests). */
  port?: number;
  /** All transfers on the listen port, demultiplexed by client address:port. */
  singlePort?: boolean;
  /** MTU of the private link; the default blksize ceiling is MTU - 32. */
  mtu?: number;
  /** blksize ceiling; above MTU - 32 only when configured (IP fragmentation). */
  blksizeMax?: number;
  windowsizeMax?: number;
  /** Bound on windowsize × blksize per transfer (default 1 MiB). */
  windowBytesMax?: number;
  maxTransfers?: number;
  maxPerClient?: number;
  /** Memory cache budget for hot files (default 64 MiB). */
  cacheBytes?: number;
  /** Largest file the cache holds (default 16 MiB); larger ones are read from disk. */
  cacheFileMaxBytes?: number;
  /** Read-ahead chunk for files read from disk (default 128 KiB, two per transfer). */
  readAheadBytes?: number;
  /**
   * Retransmission timeout, ms (default 1000). Without the client's RFC 2349 `timeout`, the
   * timeout is measured per transfer (RFC 6298) and this is where it starts and its ceiling.
   */
  rtoMs?: number;
  /** Floor of the measured timeout, ms (default 50). */
  rtoMinMs?: number;
  rtoMaxMs?: number;
  maxRetries?: number;
  maxDurationMs?: number;
  /** How often deadlines are checked (default 50 ms). */
  tickMs?: number;
  /**
   * Receive buffer of the listening socket, bytes (default 4 MiB; the kernel clamps it to
   * net.core.rmem_max). In single-port mode every transfer's ACKs arrive there, and a boot
   * storm's burst must fit while the event loop is busy: a final ACK lost to a full buffer
   * leaves a transfer the client finished, but the server cannot call complete.
   */
  listenBufferBytes?: number;
  /**
   * Busy-poll budget in microseconds (default 50; 0 disables; never on a single CPU). After
   * answering an ACK, the event loop may keep polling the sockets for up to this long
   * instead of sleeping, so a fast client's next ACK is read without the wake-up of a
   * sleeping process. Each transfer measures whether that shortens its exchanges
   * (busy-poll.ts); slow clients, and clients that compete with the server for a CPU, do
   * not get it. The price is CPU: while it pays, one core spins between ACKs.
   */
  busyPollUs?: number;
  /**
   * Files the box makes per request instead of reading them from the boot tree (GRUB's
   * grub.cfg): the content for this name and client address, or undefined to look in the
   * boot tree. Called before the boot tree; must be quick and must not throw.
   */
  generated?(filename: string, address: string): Buffer | undefined;
}

interface Pending {
  kind: 'pending';
  key: string;
  address: string;
  port: number;
  filename: string;
  cancelled: boolean;
  released: boolean;
}

interface Session {
  kind: 'active';
  key: string;
  address: string;
  port: number;
  filename: string;
  transfer: ReadTransfer;
  endpoint: UdpEndpoint;
  ownsEndpoint: boolean;
  source: FileSource;
  ended: boolean;
  released: boolean;
  /** Whether polling for this client's ACKs pays; undefined when busy-polling is off. */
  poll: BusyPollChooser | undefined;
}

type Slot = Pending | Session;

/** A file ready to send: in memory already (`source`), or open on disk (`file`). */
interface Opened {
  size: number;
  /** For the tftp.options event: the real path, or `generated:<name>`. */
  path: string;
  cached: boolean;
  source?: FileSource;
  file?: ResolvedFile;
}

/** RFC 1350 §4: a datagram from a port that is not the transfer's gets ERROR 5, the transfer goes on. */
const UNKNOWN_TID = encodeError(TftpErrorCode.UnknownTransferId, 'Unknown transfer ID');

export class TftpServer {
  private readonly opts: TftpServerOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly events: TftpEventSink;
  private readonly resolver: FileResolver;
  private readonly cache: FileCache;
  private readonly limits: OptionLimits;
  private readonly singlePort: boolean;
  private readonly maxTransfers: number;
  private readonly maxPerClient: number;
  private readonly tickMs: number;
  private readonly base: TftpCounters = newCounters();
  private readonly sessions = new Map<string, Slot>();
  private readonly perClient = new Map<string, number>();
  private listen: UdpEndpoint | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Busy-poll budget, ms (0: off). */
  private readonly pollMs: number;
  /** The event loop is kept polling until this performance.now() time. */
  private pollEnd = 0;
  private polling = false;

  /** Besides keeping its options, the constructor does nothing: `start()` opens the socket. */
  constructor(opts: TftpServerOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
    this.events = opts.events;
    this.resolver = new FileResolver(opts.bootDir);
    this.cache = new FileCache({ budgetBytes: opts.cacheBytes, maxFileBytes: opts.cacheFileMaxBytes });
    this.limits = {
      blksizeMax: opts.blksizeMax ?? blksizeMaxForMtu(opts.mtu ?? 1500),
      windowsizeMax: opts.windowsizeMax ?? 64,
      windowBytesMax: opts.windowBytesMax ?? 1024 * 1024,
    };
    this.singlePort = opts.singlePort ?? false;
    this.maxTransfers = opts.maxTransfers ?? 512;
    this.maxPerClient = opts.maxPerClient ?? 8;
    this.tickMs = opts.tickMs ?? 50;
    this.pollMs = os.availableParallelism() > 1 ? Math.max(0, opts.busyPollUs ?? 50) / 1000 : 0;
  }

  async start(): Promise<void> {
    if (this.listen) return;
    this.stopped = false;
    const asked = this.opts.listenBufferBytes ?? 4 * 1024 * 1024;
    const ep = await this.opts.factory.open({ port: this.opts.port ?? 69, recvBufferSize: asked });
    const granted = ep.bufferSizes?.().recv;
    if (this.singlePort && granted !== undefined && granted / 2 < asked) {
      this.log.warn(
        `single-port TFTP: the kernel gave the shared socket ${Math.round(granted / 2048)} KiB of receive buffer, ` +
          `not ${Math.round(asked / 1024)} KiB; a boot storm may lose ACKs (raise net.core.rmem_max to ${asked} or more)`,
      );
    }
    ep.onMessage((d) => {
      try {
        this.onListen(d);
      } catch (e) {
        this.handlerFailed(e);
      }
    });
    this.listen = ep;
  }

  /** The bound listen port (useful with port 0). */
  get port(): number {
    return this.listen?.port ?? 0;
  }

  get activeTransfers(): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.kind === 'active') n++;
    return n;
  }

  /** A snapshot: totals of ended transfers plus the live ones. */
  get counters(): TftpCounters {
    const c = { ...this.base };
    for (const s of this.sessions.values()) {
      if (s.kind !== 'active') continue;
      c.active++;
      const st = s.transfer.stats;
      c.packetsSent += st.packetsSent;
      c.retransmits += st.retransmits;
      c.timeouts += st.timeouts;
      c.bytesSent += st.bytes;
    }
    const cs = this.cache.stats;
    c.cacheHits = cs.hits;
    c.cacheMisses = cs.misses;
    return c;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
    const closing: Promise<void>[] = [];
    for (const s of [...this.sessions.values()]) {
      if (s.kind === 'pending') {
        s.cancelled = true;
        this.release(s);
        continue;
      }
      s.endpoint.send(encodeError(TftpErrorCode.NotDefined, 'Server shutting down'), s.address, s.port);
      s.transfer.abandon();
      this.endFailed(s, 'shutdown', 'server stopped', false);
      if (s.ownsEndpoint) closing.push(nextTurn().then(() => s.endpoint.close()));
    }
    await Promise.all(closing);
    // Let the last ERRORs leave before the listen socket (which sends them in single-port mode) closes.
    await nextTurn();
    const ep = this.listen;
    this.listen = undefined;
    if (ep) await ep.close();
    this.cache.clear();
  }

  // ---- datagrams -------------------------------------------------------------------------------

  /** A bad datagram or a bug never takes the socket down (no closure per datagram on the hot path). */
  private handlerFailed(e: unknown): void {
    this.log.error('tftp handler failed', { error: (e as Error).stack ?? String(e) });
  }

  private onListen(d: Datagram): void {
    const key = d.srcAddr + ':' + d.srcPort;
    if (this.singlePort) {
      const s = this.sessions.get(key);
      if (s !== undefined && s.kind === 'active') {
        const op = peekOpcode(d.data);
        if (op !== TftpOpcode.Rrq && op !== TftpOpcode.Wrq) {
          this.onSessionPacket(s, d);
          return;
        }
      }
    }
    this.onRequest(d, key);
  }

  private onRequest(d: Datagram, key: string): void {
    let pkt: TftpPacket;
    try {
      pkt = decode(d.data);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.base.malformed++;
      const op = peekOpcode(d.data);
      if (op === TftpOpcode.Rrq || op === TftpOpcode.Wrq) {
        // RFC 1350: a request we cannot parse is an illegal TFTP operation.
        this.refuse(
          d.srcAddr,
          d.srcPort,
          undefined,
          'malformed',
          TftpErrorCode.IllegalOperation,
          `Malformed request (${e.reason})`,
        );
      }
      return;
    }
    if (pkt.opcode !== TftpOpcode.Rrq && pkt.opcode !== TftpOpcode.Wrq) {
      if (this.singlePort && pkt.opcode !== TftpOpcode.Error) {
        // On the shared port, a transfer packet from an unknown address:port is a wrong TID (RFC 1350 §4).
        this.base.unknownTid++;
        this.listen?.send(UNKNOWN_TID, d.srcAddr, d.srcPort);
      } else {
        this.base.stray++;
      }
      return;
    }
    this.onReadOrWrite(pkt, d.srcAddr, d.srcPort, key);
  }

  private onReadOrWrite(pkt: RequestPacket, address: string, port: number, key: string): void {
    const existing = this.sessions.get(key);
    if (existing !== undefined && (existing.kind === 'pending' || existing.transfer.acknowledged === 0)) {
      // The client repeated its request before our first answer got through: our timer resends that answer.
      this.base.duplicateRequests++;
      return;
    }
    this.base.requests++;
    this.events.emit('tftp.request', {
      ts: this.ts(),
      client: key,
      address,
      port,
      opcode: pkt.opcode === TftpOpcode.Rrq ? 'rrq' : 'wrq',
      filename: pkt.filename,
      mode: pkt.mode,
      options: pkt.options,
    });
    if (pkt.opcode === TftpOpcode.Wrq) {
      this.refuse(
        address,
        port,
        pkt.filename,
        'upload-disabled',
        TftpErrorCode.AccessViolation,
        'Uploads are disabled',
      );
      return;
    }
    if (pkt.mode === 'mail') {
      // RFC 1350: mail mode is for WRQ only (and obsolete).
      this.refuse(
        address,
        port,
        pkt.filename,
        'mode-unsupported',
        TftpErrorCode.IllegalOperation,
        'Mail mode not supported',
      );
      return;
    }
    if (existing !== undefined && existing.kind === 'active') {
      // A client that had progressed and asks again has restarted: the old transfer is dead.
      existing.transfer.abandon();
      this.endAborted(existing, 'data', TftpErrorCode.NotDefined, 'superseded by a new request');
    }
    if ((this.perClient.get(address) ?? 0) >= this.maxPerClient) {
      // Dropped, not answered: the client retries later instead of failing its boot.
      this.refuse(address, port, pkt.filename, 'busy-client', undefined, `more than ${this.maxPerClient} transfers`);
      return;
    }
    if (this.sessions.size >= this.maxTransfers) {
      this.refuse(address, port, pkt.filename, 'busy-server', undefined, `more than ${this.maxTransfers} transfers`);
      return;
    }
    const p: Pending = {
      kind: 'pending',
      key,
      address,
      port,
      filename: pkt.filename,
      cancelled: false,
      released: false,
    };
    this.sessions.set(key, p);
    this.perClient.set(address, (this.perClient.get(address) ?? 0) + 1);
    this.setup(p, pkt).catch((e) => {
      this.log.error('tftp setup failed', { client: key, error: (e as Error).stack ?? String(e) });
      if (this.sessions.get(key) === p) this.release(p);
    });
  }

  private async setup(p: Pending, pkt: RequestPacket): Promise<void> {
    let made: Buffer | undefined;
    try {
      made = this.opts.generated?.(pkt.filename, p.address);
    } catch (e) {
      this.release(p);
      this.refuse(p.address, p.port, pkt.filename, 'io-error', TftpErrorCode.NotDefined, 'Read error');
      this.log.warn('tftp generated file failed', { filename: pkt.filename, error: (e as Error).message });
      return;
    }
    if (made !== undefined) {
      const bytes = pkt.mode === 'netascii' ? toNetascii(made) : made;
      await this.begin(p, pkt, {
        size: bytes.length,
        path: `generated:${pkt.filename}`,
        cached: true,
        source: new MemorySource(bytes),
      });
      return;
    }
    const file = await this.resolver.resolve(pkt.filename);
    if (p.cancelled) {
      if (file.kind === 'ok') closeFd(file.fd);
      return;
    }
    if (file.kind !== 'ok') {
      this.release(p);
      this.refuse(p.address, p.port, pkt.filename, file.reason, file.errorCode, file.message);
      return;
    }
    let source: FileSource | undefined;
    let cached = false;
    try {
      if (pkt.mode === 'netascii') {
        if (!this.cache.admits(file.size)) {
          closeFd(file.fd);
          this.release(p);
          this.refuse(
            p.address,
            p.port,
            pkt.filename,
            'mode-unsupported',
            TftpErrorCode.NotDefined,
            'File too large for netascii, use octet',
          );
          return;
        }
        source = new MemorySource(await this.cache.get(file, file.fd, { name: 'netascii', derive: toNetascii }));
        cached = true;
        closeFd(file.fd);
      } else if (this.cache.admits(file.size)) {
        source = new MemorySource(await this.cache.get(file, file.fd));
        cached = true;
        closeFd(file.fd);
      }
    } catch (e) {
      closeFd(file.fd);
      this.release(p);
      this.refuse(p.address, p.port, pkt.filename, 'io-error', TftpErrorCode.NotDefined, 'Read error');
      this.log.warn('tftp read failed', { path: file.path, error: (e as Error).message });
      return;
    }
    await this.begin(p, pkt, { size: source?.size ?? file.size, path: file.path, cached, source, file });
  }

  /** Negotiates the options and starts the transfer of an opened (or generated) file. */
  private async begin(p: Pending, pkt: RequestPacket, o: Opened): Promise<void> {
    // Memory sources hold nothing; a file not yet read from owns its descriptor.
    const drop = () => {
      if (o.source) o.source.close();
      else if (o.file) closeFd(o.file.fd);
    };
    if (p.cancelled) {
      drop();
      return;
    }
    const neg = negotiate(pkt.options, { fileSize: o.size, limits: this.limits });
    if (neg.kind === 'refuse') {
      drop();
      this.release(p);
      // RFC 2347: ERROR 8 ends a request whose options the server refuses.
      this.refuse(p.address, p.port, pkt.filename, 'bad-option', TftpErrorCode.OptionNegotiation, neg.message);
      return;
    }
    const n = neg.negotiated;
    const source = o.source ?? this.diskSource(o.file!, n.blksize * n.windowsize);
    let endpoint: UdpEndpoint;
    if (this.singlePort) {
      endpoint = this.listen!;
    } else {
      try {
        // The client is the transfer's only peer: the endpoint may connect a socket to it
        // (faster sends), strays still reach onSessionPacket on the same port.
        endpoint = await this.opts.factory.open({ port: 0, peer: { address: p.address, port: p.port } });
      } catch (e) {
        source.close();
        this.release(p);
        this.base.failed++;
        this.listen?.send(encodeError(TftpErrorCode.NotDefined, 'Server out of ports'), p.address, p.port);
        this.emitError(p, 'endpoint-failed', (e as Error).message, 0, 0, 0);
        return;
      }
      if (p.cancelled || this.stopped) {
        source.close();
        void endpoint.close();
        return;
      }
    }
    const transfer = new ReadTransfer({
      source,
      clock: this.clock,
      blksize: n.blksize,
      windowsize: n.windowsize,
      msftWindow: n.msftWindow,
      oack: n.oack,
      // RFC 2349: the client's timeout is the retransmission interval.
      rtoMs: n.timeoutS !== undefined ? n.timeoutS * 1000 : this.opts.rtoMs,
      // Without it, the timeout follows the measured round trips.
      rtoAdaptive: n.timeoutS === undefined,
      rtoMinMs: this.opts.rtoMinMs,
      rtoMaxMs: this.opts.rtoMaxMs,
      maxRetries: this.opts.maxRetries,
      maxDurationMs: this.opts.maxDurationMs,
    });
    const s: Session = {
      kind: 'active',
      key: p.key,
      address: p.address,
      port: p.port,
      filename: p.filename,
      transfer,
      endpoint,
      ownsEndpoint: !this.singlePort,
      source,
      ended: false,
      released: false,
      // Lock-step only: a windowed transfer already keeps the link busy between its ACKs.
      poll: this.pollMs > 0 && n.windowsize === 1 ? new BusyPollChooser(this.pollMs, performance.now()) : undefined,
    };
    this.sessions.set(p.key, s);
    if (!this.singlePort) {
      endpoint.onMessage((d) => {
        try {
          this.onSessionPacket(s, d);
        } catch (e) {
          this.handlerFailed(e);
        }
      });
    }
    this.events.emit('tftp.options', {
      ts: this.ts(),
      client: s.key,
      address: s.address,
      port: s.port,
      filename: s.filename,
      path: o.path,
      size: source.size,
      blksize: n.blksize,
      windowsize: n.windowsize,
      timeoutS: n.timeoutS,
      tsize: n.tsize,
      msftWindow: n.msftWindow,
      oack: n.oack,
      ignored: n.ignored,
      cached: o.cached,
    });
    this.run(s, transfer.start());
    this.ensureTicker();
  }

  private diskSource(file: ResolvedFile, windowBytes: number): FileSource {
    const readAhead = this.opts.readAheadBytes ?? 128 * 1024;
    // Two windows fit in a chunk, so a window restart rarely misses it.
    return new FdSource(file.fd, file.size, { chunkBytes: Math.min(Math.max(readAhead, 2 * windowBytes), 8 << 20) });
  }

  private onSessionPacket(s: Session, d: Datagram): void {
    if (s.ended) return;
    if (d.srcPort !== s.port || d.srcAddr !== s.address) {
      // RFC 1350 §4: wrong TID; tell the sender (never answer an ERROR with an ERROR), keep going.
      this.base.unknownTid++;
      if (peekOpcode(d.data) !== TftpOpcode.Error) s.endpoint.send(UNKNOWN_TID, d.srcAddr, d.srcPort);
      return;
    }
    const buf = d.data;
    const op = peekOpcode(buf);
    if (op === TftpOpcode.Ack && buf.length >= 4) {
      // Hot path: no decode object per ACK.
      this.run(s, s.transfer.ack(buf.readUInt16BE(2), buf.length >= 5 ? buf[4] : undefined));
      if (s.poll !== undefined && !s.ended) {
        const now = performance.now();
        if (s.poll.onAck(now)) this.pollUntil(now + this.pollMs);
      }
      return;
    }
    if (op === TftpOpcode.Error && buf.length >= 4) {
      const pkt = decode(buf);
      if (pkt.opcode === TftpOpcode.Error) this.run(s, s.transfer.error(pkt.code, pkt.message));
      return;
    }
    this.base.stray++;
  }

  private run(s: Session, actions: readonly TransferAction[]): void {
    for (let i = 0; i < actions.length; i++) {
      const a = actions[i]!;
      if (a.kind === 'send') {
        s.endpoint.send(a.packet, s.address, s.port);
      } else if (a.kind === 'done') {
        if (a.outcome === 'complete') this.endComplete(s);
        else this.endAborted(s, a.phase ?? 'data', a.clientError?.code ?? 0, a.clientError?.message ?? '');
      } else {
        this.endFailed(s, a.reason, a.message, true);
      }
    }
  }

  // ---- ends ------------------------------------------------------------------------------------

  private endComplete(s: Session): void {
    const st = this.close(s);
    this.base.completed++;
    this.events.emit('tftp.complete', {
      ts: this.ts(),
      client: s.key,
      address: s.address,
      port: s.port,
      filename: s.filename,
      bytes: st.bytes,
      durationMs: st.durationMs,
      retransmits: st.retransmits,
      timeouts: st.timeouts,
      blksize: st.blksize,
      windowsize: st.windowsize,
      rate: st.durationMs > 0 ? Math.round((st.bytes * 1000) / st.durationMs) : st.bytes * 1000,
    });
  }

  private endAborted(s: Session, phase: 'negotiation' | 'data', code: number, message: string): void {
    const st = this.close(s);
    // Wireshark packet-tftp.c: ERROR 0 or 8 right after the OACK is a transfer-size probe.
    const probe =
      phase === 'negotiation' && (code === TftpErrorCode.OptionNegotiation || code === TftpErrorCode.NotDefined);
    this.base.aborted++;
    if (probe) this.base.probes++;
    this.events.emit('tftp.aborted', {
      ts: this.ts(),
      client: s.key,
      address: s.address,
      port: s.port,
      filename: s.filename,
      phase,
      probe,
      code,
      message,
      bytes: st.bytes,
      durationMs: st.durationMs,
    });
  }

  private endFailed(s: Session, reason: TftpErrorReason, message: string, log: boolean): void {
    const st = this.close(s);
    this.base.failed++;
    if (log) this.log.warn('tftp transfer failed', { client: s.key, filename: s.filename, reason, message });
    this.emitError(s, reason, message, st.bytes, st.durationMs, st.retransmits);
  }

  private emitError(
    who: { key: string; address: string; port: number; filename: string },
    reason: TftpErrorReason,
    message: string,
    bytes: number,
    durationMs: number,
    retransmits: number,
  ): void {
    this.events.emit('tftp.error', {
      ts: this.ts(),
      client: who.key,
      address: who.address,
      port: who.port,
      filename: who.filename,
      reason,
      message,
      bytes,
      durationMs,
      retransmits,
    });
  }

  /** Removes a finished session, folds its stats into the totals and frees its resources. */
  private close(s: Session) {
    const st = s.transfer.stats;
    if (s.ended) return st;
    s.ended = true;
    this.release(s);
    this.base.packetsSent += st.packetsSent;
    this.base.retransmits += st.retransmits;
    this.base.timeouts += st.timeouts;
    this.base.bytesSent += st.bytes;
    s.source.close();
    // After this turn: a final ERROR is still waiting for its send to happen.
    if (s.ownsEndpoint && !this.stopped) nextTurn().then(() => s.endpoint.close());
    return st;
  }

  private release(s: Slot): void {
    if (s.released) return;
    s.released = true;
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    const n = (this.perClient.get(s.address) ?? 1) - 1;
    if (n <= 0) this.perClient.delete(s.address);
    else this.perClient.set(s.address, n);
  }

  private refuse(
    address: string,
    port: number,
    filename: string | undefined,
    reason: TftpRefusalReason,
    errorCode: number | undefined,
    message: string,
  ): void {
    this.base.refused++;
    if (errorCode !== undefined) this.listen?.send(encodeError(errorCode, message), address, port);
    this.events.emit('tftp.refused', {
      ts: this.ts(),
      client: address + ':' + port,
      address,
      port,
      filename,
      reason,
      errorCode,
      message,
    });
  }

  // ---- busy poll -------------------------------------------------------------------------------

  /**
   * Keeps the event loop polling until `end` (performance.now() time): setImmediate turns
   * make libuv poll with a zero timeout instead of sleeping, so an ACK is picked up as it
   * lands. One deadline for the whole server, extended by each transfer whose chooser
   * (busy-poll.ts) says polling pays.
   */
  private pollUntil(end: number): void {
    if (end > this.pollEnd) this.pollEnd = end;
    if (!this.polling) {
      this.polling = true;
      setImmediate(this.pollTurn);
    }
  }

  private readonly pollTurn = (): void => {
    if (!this.stopped && performance.now() < this.pollEnd) setImmediate(this.pollTurn);
    else this.polling = false;
  };

  // ---- timers ----------------------------------------------------------------------------------

  private ensureTicker(): void {
    if (this.ticker || this.stopped) return;
    // One timer for all transfers: deadlines are checked every tickMs.
    this.ticker = setInterval(() => {
      try {
        this.onTick();
      } catch (e) {
        this.handlerFailed(e);
      }
    }, this.tickMs);
    this.ticker.unref();
  }

  private onTick(): void {
    const now = this.clock.now();
    let active = 0;
    for (const s of this.sessions.values()) {
      if (s.kind !== 'active') continue;
      if (now >= s.transfer.deadline) this.run(s, s.transfer.tick());
      if (!s.ended) active++;
    }
    if (active === 0 && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = undefined;
    }
  }

  private ts(): string {
    return this.clock.date().toISOString();
  }
}

function closeFd(fd: number): void {
  fs.close(fd, () => {});
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
