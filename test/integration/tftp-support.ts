/**
 * Shared pieces of the TFTP integration tests: a server on 127.0.0.1:0 with
 * recorded events, a small node:dgram TFTP client written here (independent of
 * the codec under test), and a runner for the real peer programs.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DgramEndpoint } from '../../board/dgram-endpoint.ts';
import type { EndpointFactory } from '../../board/udp-endpoint.ts';
import { EventBus } from '../../firmware/core/event-bus.ts';
import type { TftpEvents } from '../../firmware/protocols/tftp/events.ts';
import type { TftpServerOptions } from '../../firmware/protocols/tftp/server.ts';
import { TftpServer } from '../../firmware/protocols/tftp/server.ts';

export const LOCALHOST = '127.0.0.1';

export interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function loopbackFactory(): EndpointFactory & { opened: number } {
  const f = {
    ifname: 'lo',
    localAddress: LOCALHOST,
    opened: 0,
    open: (o: { port: number }) => {
      f.opened++;
      return DgramEndpoint.open({ ...o, ifname: 'lo', address: LOCALHOST });
    },
  };
  return f;
}

export type Recorded = { [K in keyof TftpEvents]: { type: K; event: TftpEvents[K] } }[keyof TftpEvents];

export interface Harness {
  server: TftpServer;
  port: number;
  root: string;
  events: Recorded[];
  of<K extends keyof TftpEvents>(type: K): TftpEvents[K][];
  /** Resolves with the first event of `type` matching `pred` (already seen or to come). */
  waitFor<K extends keyof TftpEvents>(
    type: K,
    pred?: (e: TftpEvents[K]) => boolean,
    ms?: number,
  ): Promise<TftpEvents[K]>;
}

export function tempDir(t: Teardown, prefix = 'tftp-it-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function startServer(
  t: Teardown,
  opts: Partial<TftpServerOptions> & { root?: string } = {},
): Promise<Harness> {
  const root = opts.root ?? tempDir(t);
  const bus = new EventBus<TftpEvents>();
  const events: Recorded[] = [];
  const waiters: { type: string; pred: (e: never) => boolean; resolve: (e: never) => void }[] = [];
  bus.onAny((type, event) => {
    events.push({ type, event } as Recorded);
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      if (w.type === type && w.pred(event as never)) {
        waiters.splice(i, 1);
        w.resolve(event as never);
      }
    }
  });
  const server = new TftpServer({ factory: loopbackFactory(), events: bus, bootDir: root, port: 0, ...opts });
  await server.start();
  t.teardown(() => server.stop());
  const of = <K extends keyof TftpEvents>(type: K) =>
    events.filter((e) => e.type === type).map((e) => e.event as TftpEvents[K]);
  return {
    server,
    port: server.port,
    root,
    events,
    of,
    waitFor(type, pred = () => true, ms = 10_000) {
      const seen = of(type).find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${type} event within ${ms} ms`)), ms);
        waiters.push({
          type,
          pred: pred as (e: never) => boolean,
          resolve: (e: never) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
  };
}

/** Deterministic content (xorshift), so every block differs. */
export function pattern(size: number, seed = 1): Buffer {
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

/** Writes a large file of pseudo-random content in 1 MiB steps; returns its sha256. */
export function writeBigFile(file: string, size: number, seed = 42): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'w');
  const chunk = pattern(1 << 20, seed);
  let written = 0;
  let i = 0;
  while (written < size) {
    const n = Math.min(chunk.length, size - written);
    // vary each MiB so a misplaced block cannot go unnoticed
    chunk.writeUInt32BE(i++, 0);
    const part = chunk.subarray(0, n);
    fs.writeSync(fd, part);
    h.update(part);
    written += n;
  }
  fs.closeSync(fd);
  return h.digest('hex');
}

export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  let pos = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  fs.closeSync(fd);
  return h.digest('hex');
}

// ---- a node:dgram TFTP client ------------------------------------------------------------------

export interface GetOptions {
  port: number;
  filename: string;
  mode?: string;
  options?: [string, string][];
  /** The window the client ACKs by (defaults to the OACK's windowsize, else 1). */
  window?: number;
  /** Retransmit timeout of the client. */
  timeoutMs?: number;
  /** Give up after this long. */
  deadlineMs?: number;
  /** Drop this received datagram (loss simulation). `n` counts received datagrams from 0. */
  dropIn?: (pkt: Buffer, n: number) => boolean;
  /** Answer the OACK with this ERROR instead of ACK 0 (edk2 size probe). */
  abortAfterOack?: { code: number; message: string };
  /** msftwindow: the next-window byte appended to each ACK. */
  windowHint?: (block: number) => number;
  /** Raw datagram sent instead of a built request. */
  rawRequest?: Buffer;
  /** Called with the socket and the server's transfer port once known (to inject traffic). */
  onServerPort?: (sock: dgram.Socket, serverPort: number) => void;
  /**
   * After the final ACK, keep listening this long and ACK the final block again if it comes
   * back (RFC 1350 §6 "dallying"): a final ACK the network lost does not leave the server
   * waiting for it. Default 0: close at once, as iPXE and most clients do.
   */
  dallyMs?: number;
}

export interface GetResult {
  data: Buffer;
  oack?: Record<string, string>;
  error?: { code: number; message: string };
  serverPort?: number;
  received: number;
  /** DATA datagrams that were duplicates or out of order. */
  unexpected: number;
  ms: number;
}

function rrq(filename: string, mode: string, options: [string, string][]): Buffer {
  const parts = [Buffer.from([0, 1]), Buffer.from(filename + '\0' + mode + '\0', 'latin1')];
  for (const [k, v] of options) parts.push(Buffer.from(k + '\0' + v + '\0', 'latin1'));
  return Buffer.concat(parts);
}

function ack(block: number, hint?: number): Buffer {
  const b = Buffer.from([0, 4, (block >> 8) & 0xff, block & 0xff]);
  return hint === undefined ? b : Buffer.concat([b, Buffer.from([hint])]);
}

function errorPacket(code: number, message: string): Buffer {
  return Buffer.concat([Buffer.from([0, 5, 0, code]), Buffer.from(message + '\0', 'latin1')]);
}

function parseOack(buf: Buffer): Record<string, string> {
  const fields = buf.toString('latin1', 2).split('\0');
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!.toLowerCase()] = fields[i + 1]!;
  return out;
}

/**
 * Downloads one file as an RFC 1350/2347/7440 client: ACKs each window (or the
 * last in-order block on a gap), ignores datagrams from foreign ports, and
 * repeats its last packet on timeout.
 */
export function tftpGet(o: GetOptions): Promise<GetResult> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const started = performance.now();
    const parts: Buffer[] = [];
    let serverPort: number | undefined;
    let blksize = 512;
    let window = o.window ?? 1;
    let expected = 1;
    let since = 0;
    let gapReported = false;
    let received = 0;
    let unexpected = 0;
    let oack: Record<string, string> | undefined;
    let last = o.rawRequest ?? rrq(o.filename, o.mode ?? 'octet', o.options ?? []);
    let lastTo = o.port;
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    let lingering = false;
    let closed = false;
    let finalBlock: number | undefined;
    let inFlight = 0;
    const closeIfIdle = () => {
      if (finished && !lingering && inFlight === 0 && !closed) {
        closed = true;
        sock.close();
      }
    };
    const raw = (b: Buffer, port: number) => {
      inFlight++;
      sock.send(b, port, LOCALHOST, () => {
        inFlight--;
        closeIfIdle();
      });
    };
    const deadline = setTimeout(
      () => finish(new Error(`tftpGet ${o.filename}: no end after ${o.deadlineMs ?? 30_000} ms`)),
      o.deadlineMs ?? 30_000,
    );
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        send(last, lastTo);
      }, o.timeoutMs ?? 1000);
    };
    const send = (b: Buffer, port: number) => {
      last = b;
      lastTo = port;
      raw(b, port);
      arm();
    };
    const finish = (err?: Error, error?: { code: number; message: string }, dallyMs = 0) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(deadline);
      if (dallyMs > 0) {
        lingering = true;
        setTimeout(() => {
          lingering = false;
          closeIfIdle();
        }, dallyMs);
      }
      // A send still waiting for its turn would be lost if the socket closed now.
      closeIfIdle();
      if (err) reject(err);
      else
        resolve({
          data: Buffer.concat(parts),
          oack,
          error,
          serverPort,
          received,
          unexpected,
          ms: performance.now() - started,
        });
    };
    sock.on('message', (msg, rinfo) => {
      if (finished) {
        // dallying: the server did not see the final ACK and sent the final block again
        if (lingering && rinfo.port === serverPort && msg.length >= 4 && msg.readUInt16BE(0) === 3) {
          if (msg.readUInt16BE(2) === finalBlock) raw(ack(finalBlock), rinfo.port);
        }
        return;
      }
      const n = received++;
      if (o.dropIn?.(msg, n)) return;
      if (serverPort === undefined) {
        serverPort = rinfo.port;
        o.onServerPort?.(sock, serverPort);
      } else if (rinfo.port !== serverPort) {
        return; // not our transfer
      }
      const op = msg.readUInt16BE(0);
      if (op === 5) {
        finish(undefined, {
          code: msg.readUInt16BE(2),
          message: msg.toString('latin1', 4, Math.max(4, msg.indexOf(0, 4))),
        });
        return;
      }
      if (op === 6) {
        if (expected !== 1) return;
        oack = parseOack(msg);
        if (oack['blksize']) blksize = Number(oack['blksize']);
        if (oack['windowsize'] && o.window === undefined) window = Number(oack['windowsize']);
        if (o.abortAfterOack) {
          raw(errorPacket(o.abortAfterOack.code, o.abortAfterOack.message), serverPort);
          finish();
          return;
        }
        const hint = o.windowHint?.(0);
        if (hint !== undefined) window = hint;
        send(ack(0, hint), serverPort);
        return;
      }
      if (op !== 3) return;
      const block = msg.readUInt16BE(2);
      if (block !== (expected & 0xffff)) {
        unexpected++;
        // RFC 7440 §4: report the last block received in sequence, once per gap.
        if (!gapReported) {
          gapReported = true;
          since = 0;
          send(ack((expected - 1) & 0xffff, o.windowHint?.(expected - 1)), serverPort);
        }
        return;
      }
      gapReported = false;
      const data = msg.subarray(4);
      parts.push(Buffer.from(data));
      expected++;
      since++;
      if (data.length < blksize) {
        raw(ack(block, o.windowHint?.(block)), serverPort);
        finalBlock = block;
        finish(undefined, undefined, o.dallyMs);
        return;
      }
      if (since >= window) {
        since = 0;
        const hint = o.windowHint?.(block);
        // msftwindow: the client announces, and then uses, its next window.
        if (hint !== undefined) window = hint;
        send(ack(block, hint), serverPort);
      } else {
        arm();
      }
    });
    sock.bind(0, LOCALHOST, () => send(last, o.port));
  });
}

/** Sends one datagram and collects what comes back within `ms`. */
export function exchange(port: number, payload: Buffer, ms = 300): Promise<{ msg: Buffer; port: number }[]> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    const got: { msg: Buffer; port: number }[] = [];
    sock.on('message', (msg, rinfo) => got.push({ msg, port: rinfo.port }));
    sock.bind(0, LOCALHOST, () => sock.send(payload, port, LOCALHOST));
    setTimeout(() => {
      sock.close();
      resolve(got);
    }, ms);
  });
}

// ---- peers ---------------------------------------------------------------------------------------

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a program to its end (killed after `timeoutMs`), in `cwd`. */
export function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** Where each peer lives (the setup installs them; a missing one is a failed install, not a skip). */
export const PEERS = {
  tftpHpa: '/usr/bin/tftp',
  atftp: '/usr/bin/atftp',
  curl: '/usr/bin/curl',
  busybox: '/bin/busybox',
} as const;

export function mibPerSecond(bytes: number, ms: number): number {
  return Math.round((bytes / (1024 * 1024) / (ms / 1000)) * 10) / 10;
}
