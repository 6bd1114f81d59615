/**
 * Files served by the HTTP boot server on 127.0.0.1 (port 0): whole bodies and ranges across
 * read-chunk boundaries, HEAD, empty files, many concurrent downloads of different files
 * (read buffers are reused between responses: a buffer given back too early would mix
 * bodies), a client that goes away, and a file that shrinks while it is being sent.
 *
 * Every case runs twice: with the sendfile addon (bodies sent zero-copy by its thread) and
 * without it (reused read buffers). Then what only the zero-copy path can get wrong: the
 * connection kept alive after a body sent by another thread, and the fallback when the
 * addon does not load.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { loadSendfileAddon, type SendfileAddon } from '../../board/sendfile-addon.ts';
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

type Mode = 'sendfile' | 'buffered';
const MODES: Mode[] = ['sendfile', 'buffered'];

interface Harness {
  root: string;
  base: string;
  server: HttpBootServer;
  requests: HttpBootEventMap['http.request'][];
  logs: string[];
  /** Bodies handed to the sendfile addon. */
  zeroCopy: number;
}

/** The real addon, counting the transfers it is given. */
function countingAddon(h: { zeroCopy: number }): SendfileAddon {
  const addon = loadSendfileAddon();
  return {
    sendfile(...args) {
      h.zeroCopy++;
      return addon.sendfile(...args);
    },
  };
}

async function start(t: ExecutionContext, mode: Mode, loadSendfile?: () => SendfileAddon): Promise<Harness> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bb-http-files-'));
  const files = new FileResolver(root);
  const requests: HttpBootEventMap['http.request'][] = [];
  const logs: string[] = [];
  const counts = { zeroCopy: 0 };
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
    log: createLogger('test', { level: 'info', write: (l) => logs.push(l) }),
    loadSendfile: loadSendfile ?? (mode === 'sendfile' ? () => countingAddon(counts) : undefined),
  });
  await server.start();
  t.teardown(async () => {
    await server.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });
  return {
    root,
    base: `http://127.0.0.1:${server.port}`,
    server,
    requests,
    logs,
    get zeroCopy() {
      return counts.zeroCopy;
    },
  };
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

for (const mode of MODES) {
  test(`${mode}: a file larger than several read chunks arrives whole, with Content-Length and the request event`, async (t) => {
    const h = await start(t, mode);
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
    t.is(h.zeroCopy, mode === 'sendfile' ? 1 : 0, 'the body went through the path under test');
  });

  test(`${mode}: ranges across chunk boundaries, suffix and open-ended ranges`, async (t) => {
    const h = await start(t, mode);
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

  test(`${mode}: HEAD and an empty file send headers only`, async (t) => {
    const h = await start(t, mode);
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

  test(`${mode}: many concurrent downloads of different files each get their own bytes`, async (t) => {
    const h = await start(t, mode);
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

  test(`${mode}: a client that goes away mid-transfer: the file is closed and the event shows a short count`, async (t) => {
    const h = await start(t, mode);
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

  test(`${mode}: a file that shrinks while it is sent cuts the connection (never a short body that looks complete)`, async (t) => {
    const h = await start(t, mode);
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
}

/** Downloads over one kept-alive connection (an agent with a single socket), in order. */
async function overOneConnection(
  base: string,
  reqs: { path: string; method?: string; headers?: Record<string, string> }[],
): Promise<(Got & { reused: boolean })[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const out: (Got & { reused: boolean })[] = [];
  try {
    for (const r of reqs) {
      out.push(
        await new Promise((resolve, reject) => {
          const req = http.request(
            `${base}${r.path}`,
            { method: r.method ?? 'GET', headers: r.headers ?? {}, agent },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('error', reject);
              res.on('end', () =>
                resolve({
                  status: res.statusCode ?? 0,
                  headers: res.headers,
                  body: Buffer.concat(chunks),
                  cut: false,
                  reused: req.reusedSocket,
                }),
              );
            },
          );
          req.on('error', reject);
          req.end();
        }),
      );
    }
  } finally {
    agent.destroy();
  }
  return out;
}

test('sendfile: the connection stays usable after a zero-copy body (whole, Range, HEAD, then a body again)', async (t) => {
  const h = await start(t, 'sendfile');
  const data = pattern(3 * 1024 * 1024 + 99, 20);
  const small = pattern(1000, 21);
  fs.writeFileSync(path.join(h.root, 'kernel'), data);
  fs.writeFileSync(path.join(h.root, 'small'), small);
  const got = await overOneConnection(h.base, [
    { path: '/boot/kernel' },
    { path: '/boot/kernel', headers: { Range: 'bytes=1048570-2097160' } },
    { path: '/boot/kernel', method: 'HEAD' },
    { path: '/boot/small' },
    { path: '/boot/kernel', headers: { Range: 'bytes=-5' } },
    { path: '/boot/kernel' },
  ]);
  t.deepEqual(
    got.map((g) => g.reused),
    [false, true, true, true, true, true],
    'every request after the first on the same connection',
  );
  t.deepEqual(
    got.map((g) => g.status),
    [200, 206, 200, 200, 206, 200],
  );
  t.true(got[0]!.body.equals(data));
  t.true(got[1]!.body.equals(data.subarray(1048570, 2097161)));
  t.is(got[1]!.headers['content-range'], `bytes 1048570-2097160/${data.length}`);
  t.is(got[2]!.body.length, 0);
  t.is(got[2]!.headers['content-length'], String(data.length));
  t.true(got[3]!.body.equals(small));
  t.true(got[4]!.body.equals(data.subarray(data.length - 5)));
  t.true(got[5]!.body.equals(data));
  t.is(h.zeroCopy, 5, 'every body went through sendfile');
  await until(() => h.requests.length === 6, 'the request events');
  t.deepEqual(
    h.requests.map((r) => r.bytes),
    [data.length, 2097161 - 1048570, 0, small.length, 5, data.length],
  );
});

test('sendfile: a pipelined second request is answered after the zero-copy body, never inside it', async (t) => {
  const h = await start(t, 'sendfile');
  const a = pattern(2 * 1024 * 1024 + 3, 22);
  const b = pattern(70_000, 23);
  fs.writeFileSync(path.join(h.root, 'a'), a);
  fs.writeFileSync(path.join(h.root, 'b'), b);
  const { port } = new URL(h.base);
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const sock = net.connect(Number(port), '127.0.0.1', () => {
      // Both requests in one write: the server reads the second while it sends the first.
      sock.write(
        'GET /boot/a HTTP/1.1\r\nHost: box\r\n\r\nGET /boot/b HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n',
      );
    });
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    sock.on('end', () => resolve(Buffer.concat(chunks)));
  });
  const first = raw.indexOf('\r\n\r\n');
  t.regex(raw.subarray(0, first).toString('latin1'), /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Length: 2097155/i);
  const bodyA = raw.subarray(first + 4, first + 4 + a.length);
  t.true(bodyA.equals(a), 'the first body is whole and unmixed');
  const rest = raw.subarray(first + 4 + a.length);
  const second = rest.indexOf('\r\n\r\n');
  t.regex(rest.subarray(0, second).toString('latin1'), /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Length: 70000/i);
  t.true(rest.subarray(second + 4).equals(b));
  t.is(h.zeroCopy, 2);
});

test('sendfile: 30 concurrent downloads each arrive intact (sha256)', async (t) => {
  const h = await start(t, 'sendfile');
  const files = Array.from({ length: 3 }, (_, i) => {
    const data = pattern(4 * 1024 * 1024 + 4096 * i + 1, 30 + i);
    fs.writeFileSync(path.join(h.root, `img${i}`), data);
    return createHash('sha256').update(data).digest('hex');
  });
  const before = openFds();
  const sums = await Promise.all(
    Array.from(
      { length: 30 },
      (_, k) =>
        new Promise<{ k: number; status: number; sha: string }>((resolve, reject) => {
          http
            .get(`${h.base}/boot/img${k % files.length}`, { agent: false }, (res) => {
              const hash = createHash('sha256');
              res.on('data', (c: Buffer) => hash.update(c));
              res.on('error', reject);
              res.on('end', () => resolve({ k, status: res.statusCode ?? 0, sha: hash.digest('hex') }));
            })
            .on('error', reject);
        }),
    ),
  );
  for (const { k, status, sha } of sums) {
    t.is(status, 200);
    t.is(sha, files[k % files.length], `download ${k}`);
  }
  t.is(h.zeroCopy, 30);
  await until(() => openFds() <= before, 'every file and descriptor copy to be closed');
});

test('without a loadable addon the server starts, says so once, and serves through read buffers', async (t) => {
  const h = await start(t, 'sendfile', () => {
    throw new Error('no such addon here');
  });
  const data = pattern(1024 * 1024 + 5, 40);
  fs.writeFileSync(path.join(h.root, 'f'), data);
  const r = await get(`${h.base}/boot/f`);
  t.is(r.status, 200);
  t.true(r.body.equals(data));
  t.is(h.zeroCopy, 0);
  const said = h.logs.filter((l) => l.includes('sendfile addon is not available'));
  t.is(said.length, 1, h.logs.join('\n'));
  t.true(said[0]!.includes('no such addon here'));
});
