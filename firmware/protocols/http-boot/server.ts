/**
 * HTTP boot server on the private interface: per-machine boot scripts, files from the
 * boot tree (Content-Length always, single Range requests, streamed, never buffered
 * whole), and the deploy environment's report endpoint. Anything else is refused.
 * Peers outside the private network are cut off before any byte is answered.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type SendfileAddon, type SendfileError, type SendfileJob, socketFd } from '../../../board/sendfile-addon.ts';
import type { Clock } from '../../core/clock.ts';
import { BootboxError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { normalizeMac } from '../../core/net.ts';
import { parseRange } from './range.ts';

export interface BootFile {
  kind: 'ok';
  fd: number;
  size: number;
  mtimeMs: number;
  relative: string;
}
export interface FileRefusal {
  kind: 'refused';
  reason: string;
}

export interface ScriptAnswer {
  status: number;
  body: string;
  contentType?: string;
}

export interface HttpBootHandlers {
  /** Opens a file of the boot tree, or says why not. */
  resolveFile(rawPath: string): Promise<BootFile | FileRefusal>;
  /** The iPXE script for a machine; `attempt` comes from `?attempt=` (wait polls). */
  ipxeScript(mac: string, attempt: number, selfUrl: string, peer: string): ScriptAnswer;
  /** grub.cfg for a machine (ARM64 UEFI through GRUB). */
  grubCfg(mac: string, attempt: number, selfUrl: string, peer: string): ScriptAnswer;
  /** The static grub.cfg GRUB loads first; it chains to the per-machine one. */
  grubBootstrap(): ScriptAnswer;
  /** A node reports progress (the deploy environment's POST). */
  report(mac: string, body: unknown, peer: string): { status: number; body: unknown };
  /** Opens a file of the image store that the catalog names (`/images/<path>`), or says why not. */
  resolveImageFile?(rel: string): Promise<BootFile | FileRefusal>;
  /** A machine's rendered unattend file (`/unattend/<mac>/<file>`). */
  unattend?(mac: string, file: string, peer: string): ScriptAnswer | Promise<ScriptAnswer>;
  /** A script for admins who run their own node agent (`/actions/<machine>/<file>`). */
  nodeAction?(machine: string, file: string, peer: string): ScriptAnswer;
}

export interface HttpBootEventMap {
  'http.request': {
    ts: string;
    mac?: string;
    path: string;
    status: number;
    bytes: number;
    range?: string;
    peer: string;
    ms: number;
  };
  'http.refused': { ts: string; path: string; reason: string; peer: string; status: number };
}

export interface HttpBootEventSink {
  emit<K extends keyof HttpBootEventMap>(type: K, event: HttpBootEventMap[K]): void;
}

export interface HttpBootOptions {
  host: string;
  port: number;
  isPeerAllowed(addr: string): boolean;
  handlers: HttpBootHandlers;
  events: HttpBootEventSink;
  clock: Clock;
  log: Logger;
  /** Largest report body accepted (bytes). */
  maxBodyBytes?: number;
  /**
   * Loads the zero-copy sender (board/sendfile-addon.ts), once, at start. Without it, or
   * when it throws, file bodies go through reused read buffers (said in the log at start).
   */
  loadSendfile?: () => SendfileAddon;
}

export interface HttpBootCounters {
  requests: number;
  bytesSent: number;
  refusedPeers: number;
  notFound: number;
  badRequests: number;
  scripts: number;
  reports: number;
}

/** Read size for file bodies (see sendBody). */
const FILE_CHUNK = 512 * 1024;
/** Read buffers kept for reuse between responses (16 MiB). */
const CHUNK_POOL_MAX = 32;
/** A zero-copy body whose client takes no byte for this long is cut. */
const SENDFILE_IDLE_MS = 60_000;
/**
 * How a zero-copy body ends when the client, not the file, is the cause: it went away, took
 * nothing for SENDFILE_IDLE_MS, or the response was closed first (board/sendfile-addon.ts).
 */
const CLIENT_GONE = new Set(['EPIPE', 'ECONNRESET', 'ECONNABORTED', 'ENOTCONN', 'ETIMEDOUT', 'ECANCELED']);

const MAC_SCRIPT = /^\/boot\/([0-9a-fA-F:-]{12,17})\.(ipxe|grub\.cfg)$/;
const UNATTEND = /^\/unattend\/([0-9a-fA-F:-]{12,17})\/([A-Za-z0-9._-]{1,64})$/;
const ACTION = /^\/actions\/([A-Za-z0-9._-]{1,64})\/([A-Za-z0-9._-]{1,64})$/;
const REPORT = /^\/api\/v1\/nodes\/([0-9a-fA-F:-]{12,17})\/report$/;

export class HttpBootServer {
  readonly name = 'http-boot';
  readonly counters: HttpBootCounters = {
    requests: 0,
    bytesSent: 0,
    refusedPeers: 0,
    notFound: 0,
    badRequests: 0,
    scripts: 0,
    reports: 0,
  };
  private readonly o: HttpBootOptions;
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly chunkPool: Buffer[] = [];
  private sendfile: SendfileAddon | undefined;

  constructor(o: HttpBootOptions) {
    this.o = o;
  }

  async start(): Promise<void> {
    this.sendfile = undefined;
    if (this.o.loadSendfile) {
      try {
        this.sendfile = this.o.loadSendfile();
        this.o.log.info('file bodies are sent with sendfile(2) (zero-copy)');
      } catch (e) {
        this.o.log.warn('the sendfile addon is not available: file bodies go through read buffers', {
          error: (e as Error).message,
        });
      }
    } else {
      this.o.log.info('file bodies go through read buffers (no sendfile addon given)');
    }
    const srv = http.createServer((req, res) => {
      this.handle(req, res).catch((e) => {
        this.o.log.error('HTTP boot handler failed', { error: (e as Error).stack });
        if (!res.headersSent) send(res, 500, 'internal error\n');
        else res.destroy();
      });
    });
    srv.on('connection', (sock) => {
      // Linux accepts connections to the private address from any interface: refuse peers
      // that are not on the private network before reading a byte.
      const peer = stripV4Mapped(sock.remoteAddress ?? '');
      if (!this.o.isPeerAllowed(peer)) {
        this.counters.refusedPeers++;
        sock.destroy();
        return;
      }
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
    });
    srv.headersTimeout = 10_000;
    srv.requestTimeout = 0; // large images stream for a long time
    srv.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          e.code === 'EADDRINUSE'
            ? new BootboxError('ADDRESS_IN_USE', `http.port ${this.o.port} on ${this.o.host} is already in use`)
            : e.code === 'EACCES'
              ? new BootboxError('NO_PRIVILEGE', `http.port ${this.o.port} needs root or CAP_NET_BIND_SERVICE`)
              : e,
        ),
      );
      srv.listen(this.o.port, this.o.host, () => resolve());
    });
    this.server = srv;
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async stop(): Promise<void> {
    const srv = this.server;
    this.server = undefined;
    if (!srv) return;
    await new Promise<void>((resolve) => {
      srv.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  status(): Record<string, unknown> {
    return { listen: `${this.o.host}:${this.port}`, counters: this.counters };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = this.o.clock.now();
    const peer = stripV4Mapped(req.socket.remoteAddress ?? '');
    this.counters.requests++;
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://box');
    } catch {
      return this.refuse(req, res, 400, 'bad-url', peer);
    }
    // iPXE percent-encodes the colons of a MAC (52%3A54%3A…): match on the decoded path.
    let p: string;
    try {
      p = decodeURIComponent(url.pathname);
    } catch {
      return this.refuse(req, res, 400, 'bad-url', peer);
    }
    const done = (status: number, bytes: number, mac?: string, range?: string) => {
      this.counters.bytesSent += bytes;
      this.o.events.emit('http.request', {
        ts: this.o.clock.date().toISOString(),
        mac,
        path: p,
        status,
        bytes,
        range,
        peer,
        ms: Math.round(this.o.clock.now() - t0),
      });
    };

    const report = REPORT.exec(p);
    if (report) {
      if (req.method !== 'POST') return this.refuse(req, res, 405, 'method', peer);
      const mac = normalizeMac(report[1]!);
      if (!mac) return this.refuse(req, res, 400, 'bad-mac', peer);
      const body = await readJson(req, this.o.maxBodyBytes ?? 16 * 1024);
      if (body.kind === 'error') return this.refuse(req, res, body.status, body.reason, peer);
      this.counters.reports++;
      const r = this.o.handlers.report(mac, body.value, peer);
      const text = `${JSON.stringify(r.body)}\n`;
      res.writeHead(r.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
      done(r.status, Buffer.byteLength(text), mac);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.refuse(req, res, 405, 'method', peer);

    const script = MAC_SCRIPT.exec(p);
    if (script) {
      const mac = normalizeMac(script[1]!);
      if (!mac) return this.refuse(req, res, 400, 'bad-mac', peer);
      const attempt = Math.min(10_000, Math.max(1, Number.parseInt(url.searchParams.get('attempt') ?? '1', 10) || 1));
      const self = `http://${req.headers.host ?? this.o.host}${p}`;
      const answer =
        script[2] === 'ipxe'
          ? this.o.handlers.ipxeScript(mac, attempt, self, peer)
          : this.o.handlers.grubCfg(mac, attempt, self, peer);
      this.counters.scripts++;
      sendText(req, res, answer);
      done(answer.status, Buffer.byteLength(answer.body), mac);
      return;
    }
    if (p === '/boot/grub/grub.cfg') {
      const answer = this.o.handlers.grubBootstrap();
      sendText(req, res, answer);
      done(answer.status, Buffer.byteLength(answer.body));
      return;
    }
    const unattend = UNATTEND.exec(p);
    if (unattend && this.o.handlers.unattend) {
      const mac = normalizeMac(unattend[1]!);
      if (!mac) return this.refuse(req, res, 400, 'bad-mac', peer);
      const answer = await this.o.handlers.unattend(mac, unattend[2]!, peer);
      sendText(req, res, answer);
      done(answer.status, Buffer.byteLength(answer.body), mac);
      return;
    }
    const action = ACTION.exec(p);
    if (action && this.o.handlers.nodeAction) {
      const answer = this.o.handlers.nodeAction(action[1]!, action[2]!, peer);
      sendText(req, res, answer);
      done(answer.status, Buffer.byteLength(answer.body));
      return;
    }
    const isImage = p.startsWith('/images/') && this.o.handlers.resolveImageFile;
    if (!p.startsWith('/boot/') && !isImage) return this.refuse(req, res, 404, 'not-found', peer);
    const f = isImage
      ? await this.o.handlers.resolveImageFile!(p.slice('/images/'.length))
      : await this.o.handlers.resolveFile(p.slice('/boot/'.length));
    if (f.kind === 'refused') {
      const status =
        f.reason === 'not-found'
          ? 404
          : f.reason === 'io-error'
            ? 500
            : f.reason === 'traversal' || f.reason === 'bad-name'
              ? 400
              : 403;
      return this.refuse(req, res, status, f.reason, peer);
    }
    this.serveFile(req, res, f, (status, bytes, range) => done(status, bytes, undefined, range));
  }

  private serveFile(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    f: BootFile,
    done: (status: number, bytes: number, range?: string) => void,
  ): void {
    const range = parseRange(req.headers.range, f.size);
    const close = () => fs.close(f.fd, () => {});
    const common = {
      'Accept-Ranges': 'bytes',
      'Last-Modified': new Date(f.mtimeMs).toUTCString(),
      'Content-Type': 'application/octet-stream',
    };
    if (range.kind === 'malformed') {
      close();
      this.counters.badRequests++;
      send(res, 400, 'malformed Range header\n');
      done(400, 0);
      return;
    }
    if (range.kind === 'unsatisfiable') {
      close();
      res.writeHead(416, { ...common, 'Content-Range': `bytes */${f.size}`, 'Content-Length': 0 });
      res.end();
      done(416, 0, req.headers.range);
      return;
    }
    const start = range.kind === 'range' ? range.start : 0;
    const end = range.kind === 'range' ? range.end : f.size - 1;
    const length = f.size === 0 ? 0 : end - start + 1;
    const status = range.kind === 'range' ? 206 : 200;
    res.writeHead(status, {
      ...common,
      'Content-Length': length,
      ...(range.kind === 'range' ? { 'Content-Range': `bytes ${start}-${end}/${f.size}` } : {}),
    });
    if (req.method === 'HEAD' || length === 0) {
      close();
      res.end();
      done(status, 0);
      return;
    }
    const rangeTag = range.kind === 'range' ? `${start}-${end}` : undefined;
    if (this.sendfile) {
      this.sendZeroCopy(this.sendfile, res, f, start, length, (n) => done(status, n, rangeTag));
      return;
    }
    let sent = 0;
    res.on('close', () => done(status, sent, rangeTag));
    this.sendBuffered(res, f, start, length, (n) => {
      sent += n;
    });
  }

  /** sendBody, then the file is closed; a failed read cuts the response. */
  private sendBuffered(
    res: http.ServerResponse,
    f: BootFile,
    start: number,
    length: number,
    onSent: (n: number) => void,
  ): void {
    this.sendBody(res, f.fd, start, length, onSent)
      .catch((e: Error) => {
        // The file vanished, shrank or the volume went away mid-transfer: cut the response so
        // the client sees a short read (Content-Length was promised), never silent garbage.
        this.o.log.warn('boot file read failed mid-transfer', { file: f.relative, error: e.message });
        res.destroy(e);
      })
      .finally(() => fs.close(f.fd, () => {}));
  }

  /**
   * Sends the body with sendfile(2) from the event loop (the addon's own socket watcher): page
   * cache to socket, no copy through the heap. The headers go first, through Node, and the addon starts only
   * once Node has handed them to the kernel and holds nothing else for this socket (it
   * writes to the socket directly: anything Node still had queued would interleave). Node
   * writes nothing more to the socket until res.end(): a pipelined next response waits
   * for this one (it gets the socket only then). res.end() then finishes the response the usual way, so keep-alive works.
   * `finish(bytes)` runs once, when both the transfer and the response are over.
   */
  private sendZeroCopy(
    addon: SendfileAddon,
    res: http.ServerResponse,
    f: BootFile,
    start: number,
    length: number,
    finish: (bytes: number) => void,
  ): void {
    let job: SendfileJob | undefined;
    let closed = false;
    /** Bytes of the body that went out, known once the body is over. */
    let sent: number | undefined;
    const settle = () => {
      if (closed && sent !== undefined) finish(sent);
    };
    res.on('close', () => {
      closed = true;
      job?.abort();
      settle();
    });
    const buffered = () => {
      let n = 0;
      this.sendBuffered(res, f, start, length, (k) => {
        n += k;
      });
      res.on('close', () => {
        sent = n;
        settle();
      });
    };
    // An empty write: its callback runs once everything before it (the headers) is in the
    // kernel. A pipelined response gets its socket only when the one before it is done.
    res.write('', (err) => {
      const sock = res.socket;
      if (err || res.destroyed || !sock || sock.destroyed) {
        fs.close(f.fd, () => {});
        sent = 0;
        settle();
        return;
      }
      const fd = socketFd(sock);
      // Not a plain TCP socket, or something else is queued on it (the addon must never
      // write past it): this body goes through read buffers.
      if (fd === undefined || sock.writableLength > 0) return buffered();
      try {
        job = addon.sendfile(
          fd,
          f.fd,
          start,
          length,
          (e, n) => {
            this.endZeroCopy(res, f, e);
            sent = n;
            settle();
          },
          SENDFILE_IDLE_MS,
        );
      } catch (e) {
        // No descriptor left to start it: this body goes through read buffers.
        this.o.log.warn('sendfile could not start: this body goes through read buffers', {
          file: f.relative,
          error: (e as Error).message,
        });
        buffered();
      }
    });
  }

  /** The native transfer is over: closes the file, then finishes the response or cuts it. */
  private endZeroCopy(res: http.ServerResponse, f: BootFile, err: SendfileError | null): void {
    fs.close(f.fd, () => {});
    if (!err) {
      res.end();
      return;
    }
    if (CLIENT_GONE.has(err.code)) {
      if (!res.destroyed) this.o.log.info('file transfer cut', { file: f.relative, error: err.message });
      res.destroy();
      return;
    }
    // The file shrank (EOF) or the volume went away (EIO) mid-transfer: cut the response so the
    // client sees a short read (Content-Length was promised), never silent garbage.
    this.o.log.warn('boot file read failed mid-transfer', { file: f.relative, error: err.message });
    res.destroy(err);
  }

  /**
   * Sends `length` bytes of `fd` from `start`: one FILE_CHUNK read at a time into a reused
   * buffer, the next read only once the previous chunk is in the socket (the kernel's send
   * buffer keeps the link busy meanwhile). Reusing buffers instead of a fresh one per read
   * (fs.createReadStream) takes less than half the CPU per byte: no allocation, no page
   * faults, no garbage collection of large buffers (scripts/bench/http-images.ts). Memory per
   * response stays at one chunk; the pool keeps at most CHUNK_POOL_MAX of them between responses.
   */
  private async sendBody(
    res: http.ServerResponse,
    fd: number,
    start: number,
    length: number,
    onSent: (n: number) => void,
  ): Promise<void> {
    let pos = start;
    const end = start + length;
    let writing = false;
    let wake: (() => void) | undefined;
    const signal = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    res.on('close', signal);
    res.on('drain', signal);
    try {
      while (pos < end) {
        while ((writing || res.writableNeedDrain) && !res.destroyed) {
          await new Promise<void>((r) => {
            wake = r;
          });
        }
        if (res.destroyed) return;
        const buf = this.chunkPool.pop() ?? Buffer.allocUnsafeSlow(FILE_CHUNK);
        let n: number;
        try {
          n = await readAt(fd, buf, Math.min(FILE_CHUNK, end - pos), pos);
        } catch (e) {
          this.giveChunk(buf);
          throw e;
        }
        if (n === 0) {
          this.giveChunk(buf);
          throw new Error(`the file ended at byte ${pos} of ${end}: it shrank while being sent`);
        }
        if (res.destroyed) {
          this.giveChunk(buf);
          return;
        }
        writing = true;
        // The buffer is reused only once the socket is done with it (the write callback).
        res.write(n === buf.length ? buf : buf.subarray(0, n), (err) => {
          writing = false;
          if (!err) this.giveChunk(buf);
          signal();
        });
        pos += n;
        onSent(n);
      }
      res.end();
    } finally {
      res.off('close', signal);
      res.off('drain', signal);
    }
  }

  private giveChunk(buf: Buffer): void {
    if (this.chunkPool.length < CHUNK_POOL_MAX) this.chunkPool.push(buf);
  }

  private refuse(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    status: number,
    reason: string,
    peer: string,
  ): void {
    if (status === 404) this.counters.notFound++;
    else this.counters.badRequests++;
    this.o.events.emit('http.refused', {
      ts: this.o.clock.date().toISOString(),
      path: (req.url ?? '').slice(0, 200),
      reason,
      peer,
      status,
    });
    send(res, status, `${reason}\n`);
  }
}

function readAt(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.read(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

function stripV4Mapped(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

function send(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendText(req: http.IncomingMessage, res: http.ServerResponse, a: ScriptAnswer): void {
  res.writeHead(a.status, {
    'Content-Type': a.contentType ?? 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(a.body),
    'Cache-Control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : a.body);
}

async function readJson(
  req: http.IncomingMessage,
  max: number,
): Promise<{ kind: 'ok'; value: unknown } | { kind: 'error'; status: number; reason: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) return { kind: 'error', status: 413, reason: 'body-too-large' };
    chunks.push(c as Buffer);
  }
  try {
    return { kind: 'ok', value: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') };
  } catch {
    return { kind: 'error', status: 400, reason: 'malformed-json' };
  }
}
