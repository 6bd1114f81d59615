/**
 * Files served by the HTTP boot server on 127.0.0.1 (port 0): whole bodies and ranges across
 * read-chunk boundaries, HEAD, empty files, many concurrent downloads of different files
 * (read buffers are reused between responses: a buffer given back too early would mix
 * bodies), a client that goes away, and a file that shrinks while it is being sent.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { systemClock } from '../../firmware/core/clock.ts';
import { createLogger } from '../../firmware/core/logger.ts';
import { type HttpBootEventMap, HttpBootServer } from '../../firmware/protocols/http-boot/server.ts';
import { FileResolver } from '../../firmware/protocols/tftp/file-resolver.ts';

/** Bytes that differ per file and per position (a mixed-up body cannot pass for another). */
function pattern(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

interface Harness {
  root: string;
  base: string;
  server: HttpBootServer;
  requests: HttpBootEventMap['http.request'][];
  logs: string[];
}

async function start(t: ExecutionContext): Promise<Harness> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bb-http-files-'));
  const files = new FileResolver(root);
  const requests: HttpBootEventMap['http.request'][] = [];
  const logs: string[] = [];
  const none = { status: 404, body: 'no\n' };
  const server = new HttpBootServer({
    host: '127.0.0.1',
    port: 0,
    isPeerAllowed: () => true,
    handlers: {
      resolveFile: async (raw) => {
        const r = await files.resolve(raw);
        return r.kind === 'ok' ? r : { kind: 'refused', reason: r.reason };
      },
      ipxeScript: () => none,
      grubCfg: () => none,
      grubBootstrap: () => none,
      report: () => ({ status: 404, body: {} }),
    },
    events: {
      emit(type, e) {
        if (type === 'http.request') requests.push(e as HttpBootEventMap['http.request']);
      },
    },
    clock: systemClock,
    log: createLogger('test', { level: 'warn', write: (l) => logs.push(l) }),
  });
  await server.start();
  t.teardown(async () => {
    await server.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });
  return { root, base: `http://127.0.0.1:${server.port}`, server, requests, logs };
}

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body ended early (connection cut). */
  cut: boolean;
}

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let cut = false;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('aborted', () => {
        cut = true;
      });
      res.on('error', () => {
        cut = true;
      });
      res.on('close', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), cut }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

const openFds = () => fs.readdirSync('/proc/self/fd').length;

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a file larger than several read chunks arrives whole, with Content-Length and the request event', async (t) => {
  const h = await start(t);
  const data = pattern(5 * 1024 * 1024 + 12345, 1);
  fs.writeFileSync(path.join(h.root, 'vmlinuz'), data);
  const r = await get(`${h.base}/boot/vmlinuz`);
  t.is(r.status, 200);
  t.is(r.headers['content-length'], String(data.length));
  t.is(r.headers['accept-ranges'], 'bytes');
  t.false(r.cut);
  t.true(r.body.equals(data));
  await until(() => h.requests.length === 1, 'the request event');
  t.like(h.requests[0], { path: '/boot/vmlinuz', status: 200, bytes: data.length });
  t.is(h.server.counters.bytesSent, data.length);
});

test('ranges across chunk boundaries, suffix and open-ended ranges', async (t) => {
  const h = await start(t);
  const data = pattern(3 * 1024 * 1024 + 7, 2);
  fs.writeFileSync(path.join(h.root, 'initrd'), data);
  const cases: [string, number, number][] = [
    ['bytes=500000-1700000', 500_000, 1_700_000],
    ['bytes=0-0', 0, 0],
    ['bytes=-1000', data.length - 1000, data.length - 1],
    ['bytes=2097150-', 2_097_150, data.length - 1],
    [`bytes=${data.length - 1}-${data.length + 50}`, data.length - 1, data.length - 1],
  ];
  for (const [range, a, b] of cases) {
    const r = await get(`${h.base}/boot/initrd`, { Range: range });
    t.is(r.status, 206, range);
    t.is(r.headers['content-range'], `bytes ${a}-${b}/${data.length}`, range);
    t.is(r.headers['content-length'], String(b - a + 1), range);
    t.true(r.body.equals(data.subarray(a, b + 1)), range);
  }
  const bad = await get(`${h.base}/boot/initrd`, { Range: `bytes=${data.length}-` });
  t.is(bad.status, 416);
});

test('HEAD and an empty file send headers only', async (t) => {
  const h = await start(t);
  fs.writeFileSync(path.join(h.root, 'big'), pattern(2 * 1024 * 1024, 3));
  fs.writeFileSync(path.join(h.root, 'empty'), '');
  const before = openFds();
  const head = await get(`${h.base}/boot/big`, {}, 'HEAD');
  t.is(head.status, 200);
  t.is(head.headers['content-length'], String(2 * 1024 * 1024));
  t.is(head.body.length, 0);
  const empty = await get(`${h.base}/boot/empty`);
  t.is(empty.status, 200);
  t.is(empty.headers['content-length'], '0');
  t.is(empty.body.length, 0);
  await until(() => openFds() <= before, 'the files to be closed');
  t.pass();
});

test('many concurrent downloads of different files each get their own bytes', async (t) => {
  const h = await start(t);
  const files = Array.from({ length: 6 }, (_, i) => {
    const data = pattern(1024 * 1024 * (1 + i) + 333 * i, 10 + i);
    fs.writeFileSync(path.join(h.root, `f${i}`), data);
    return data;
  });
  const before = openFds();
  const got = await Promise.all(
    Array.from({ length: 30 }, (_, k) => get(`${h.base}/boot/f${k % files.length}`).then((r) => ({ k, r }))),
  );
  for (const { k, r } of got) {
    t.is(r.status, 200);
    t.true(r.body.equals(files[k % files.length]!), `download ${k} of f${k % files.length}`);
  }
  await until(() => openFds() <= before, 'every file to be closed');
  t.is(h.requests.length, 30);
});

test('a client that goes away mid-transfer: the file is closed and the event shows a short count', async (t) => {
  const h = await start(t);
  const size = 64 * 1024 * 1024;
  fs.writeFileSync(path.join(h.root, 'image.wim'), pattern(size, 4));
  const before = openFds();
  await new Promise<void>((resolve, reject) => {
    const req = http.get(`${h.base}/boot/image.wim`, { agent: false }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > 1024 * 1024) {
          req.destroy();
          resolve();
        }
      });
    });
    req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
  });
  await until(() => h.requests.length === 1, 'the request event');
  t.true(h.requests[0]!.bytes < size, `sent ${h.requests[0]!.bytes}`);
  await until(() => openFds() <= before, 'the file to be closed');
  t.pass();
});

test('a file that shrinks while it is sent cuts the connection (never a short body that looks complete)', async (t) => {
  const h = await start(t);
  const size = 64 * 1024 * 1024;
  const file = path.join(h.root, 'shrinks.wim');
  fs.writeFileSync(file, pattern(size, 5));
  const r = await new Promise<{ received: number; cut: boolean }>((resolve, reject) => {
    const req = http.get(`${h.base}/boot/shrinks.wim`, { agent: false }, (res) => {
      let received = 0;
      let cut = false;
      res.on('data', (c: Buffer) => {
        received += c.length;
      });
      res.on('aborted', () => {
        cut = true;
      });
      res.on('error', () => {
        cut = true;
      });
      res.on('close', () => resolve({ received, cut }));
      // Stop reading so the server is held by back-pressure, then cut the file short.
      res.pause();
      setTimeout(() => {
        fs.truncateSync(file, 1024 * 1024);
        res.resume();
      }, 200);
    });
    req.on('error', reject);
  });
  t.true(r.cut, 'the client sees the connection cut');
  t.true(r.received < size, `received ${r.received}`);
  await until(() => h.logs.some((l) => l.includes('read failed mid-transfer')), 'the warning');
  t.pass();
});
