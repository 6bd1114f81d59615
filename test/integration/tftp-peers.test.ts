/**
 * Real TFTP clients against the server on 127.0.0.1:0: tftp-hpa, atftp, curl and
 * busybox. 100 MiB files are compared by sha256 (the 512-byte case wraps the
 * block number three times). Throughput is logged (`npx ava --verbose`).
 * Serial, so the figures are not disturbed by the other tests of this file.
 */
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { TftpRefusalReason } from '../../firmware/protocols/tftp/events.ts';
import {
  type Harness,
  mibPerSecond,
  PEERS,
  pattern,
  run,
  sha256File,
  startServer,
  tempDir,
  writeBigFile,
} from './tftp-support.ts';

const BIG = 100 * 1024 * 1024;

// One server and one 100 MiB file for the whole file of tests, removed at the end.
let shared: { h: Harness; sum: string; out: string } | undefined;
const cleanups: (() => void | Promise<void>)[] = [];
const fileScope = { teardown: (fn: () => void | Promise<void>) => cleanups.push(fn) };
test.after.always('remove the shared server and files', async () => {
  for (const fn of cleanups.reverse()) await fn();
});

test.before('the peers are installed (a missing peer is a failed install step, not a skip)', (t) => {
  for (const [name, bin] of Object.entries(PEERS)) t.true(fs.existsSync(bin), `${name}: ${bin} is missing`);
});

async function big(t: ExecutionContext) {
  if (!shared) {
    const h = await startServer(fileScope);
    const sum = writeBigFile(path.join(h.root, 'big.img'), BIG);
    const out = tempDir(fileScope, 'tftp-peer-out-');
    shared = { h, sum, out };
  }
  t.teardown(() => {
    for (const f of fs.readdirSync(shared!.out)) fs.rmSync(path.join(shared!.out, f), { force: true });
  });
  return shared;
}

function report(t: { log(...a: unknown[]): void }, what: string, bytes: number, wallMs: number, serverMs?: number) {
  const server = serverMs === undefined ? '' : `, server-side ${mibPerSecond(bytes, serverMs)} MiB/s`;
  t.log(`${what}: ${mibPerSecond(bytes, wallMs)} MiB/s (${(wallMs / 1000).toFixed(2)} s wall${server})`);
}

test.serial(
  'tftp-hpa, no options, 512-byte lock-step: 100 MiB with block-number wrap-around, sha256 equal',
  async (t) => {
    const { h, sum, out } = await big(t);
    const dest = path.join(out, 'hpa.img');
    const before = h.of('tftp.complete').length;
    const r = await run(PEERS.tftpHpa, ['127.0.0.1', String(h.port), '-m', 'binary', '-c', 'get', 'big.img', dest], {
      timeoutMs: 110_000,
    });
    t.is(r.code, 0, r.stderr);
    t.is(sha256File(dest), sum);
    const done = await h.waitFor('tftp.complete', () => h.of('tftp.complete').length > before);
    const ev = h.of('tftp.complete').at(-1)!;
    t.is(ev.blksize, 512);
    t.is(ev.windowsize, 1);
    t.is(ev.bytes, BIG);
    t.truthy(done);
    report(t, 'tftp-hpa 512 lock-step', BIG, r.ms, ev.durationMs);
  },
);

test.serial('atftp blksize 1468 windowsize 16 tsize: 100 MiB, sha256 equal', async (t) => {
  const { h, sum, out } = await big(t);
  const dest = path.join(out, 'atftp.img');
  const before = h.of('tftp.complete').length;
  const r = await run(
    PEERS.atftp,
    [
      '--option',
      'blksize 1468',
      '--option',
      'windowsize 16',
      '--option',
      'tsize 0',
      '-g',
      '-r',
      'big.img',
      '-l',
      dest,
      '127.0.0.1',
      String(h.port),
    ],
    { timeoutMs: 110_000 },
  );
  t.is(r.code, 0, r.stderr);
  t.is(sha256File(dest), sum);
  await h.waitFor('tftp.complete', () => h.of('tftp.complete').length > before);
  const ev = h.of('tftp.complete').at(-1)!;
  const opts = h.of('tftp.options').at(-1)!;
  t.is(opts.blksize, 1468);
  t.is(opts.windowsize, 16);
  t.is(opts.tsize, BIG);
  t.false(opts.cached, '100 MiB is read from disk, not cached');
  report(t, 'atftp blksize 1468 windowsize 16', BIG, r.ms, ev.durationMs);
});

test.serial('lock-step at blksize 1468 (atftp, curl, busybox): 100 MiB each, sha256 equal', async (t) => {
  const { h, sum, out } = await big(t);
  const port = String(h.port);
  const clients: [string, string, string[]][] = [
    [
      'atftp blksize 1468',
      PEERS.atftp,
      ['--option', 'blksize 1468', '-g', '-r', 'big.img', '-l', '@', '127.0.0.1', port],
    ],
    [
      'curl --tftp-blksize 1468',
      PEERS.curl,
      ['-sS', '-m', '100', '--tftp-blksize', '1468', `tftp://127.0.0.1:${port}/big.img`, '-o', '@'],
    ],
    [
      'busybox tftp -b 1468',
      PEERS.busybox,
      ['tftp', '-g', '-r', 'big.img', '-l', '@', '-b', '1468', '127.0.0.1', port],
    ],
  ];
  for (const [name, bin, args] of clients) {
    const dest = path.join(out, name.split(' ')[0]! + '.img');
    const before = h.of('tftp.complete').length;
    const r = await run(
      bin,
      args.map((a) => (a === '@' ? dest : a)),
      { timeoutMs: 110_000 },
    );
    t.is(r.code, 0, `${name}: ${r.stderr}`);
    t.is(sha256File(dest), sum, name);
    await h.waitFor('tftp.complete', () => h.of('tftp.complete').length > before);
    const ev = h.of('tftp.complete').at(-1)!;
    t.is(ev.blksize, 1468, name);
    report(t, `${name} lock-step`, BIG, r.ms, ev.durationMs);
    fs.rmSync(dest);
  }
});

test.serial('curl and busybox fetch a small cached file', async (t) => {
  const { h, out } = await big(t);
  const file = pattern(2_345_678, 21);
  fs.writeFileSync(path.join(h.root, 'ipxe.efi'), file);
  const c = path.join(out, 'curl.efi');
  const rc = await run(PEERS.curl, [
    '-sS',
    '-m',
    '30',
    '--tftp-blksize',
    '1468',
    `tftp://127.0.0.1:${h.port}/ipxe.efi`,
    '-o',
    c,
  ]);
  t.is(rc.code, 0, rc.stderr);
  t.true(fs.readFileSync(c).equals(file));
  const b = path.join(out, 'bb.efi');
  const rb = await run(PEERS.busybox, [
    'tftp',
    '-g',
    '-r',
    'ipxe.efi',
    '-l',
    b,
    '-b',
    '1468',
    '127.0.0.1',
    String(h.port),
  ]);
  t.is(rb.code, 0, rb.stderr);
  t.true(fs.readFileSync(b).equals(file));
});

test.serial('tftp-hpa in its default netascii mode gets the text file back unchanged', async (t) => {
  const { h, out } = await big(t);
  const text = 'DEFAULT menu.c32\nLABEL local\r\n  LOCALBOOT 0\n';
  fs.writeFileSync(path.join(h.root, 'default'), text);
  const dest = path.join(out, 'default');
  const r = await run(PEERS.tftpHpa, ['127.0.0.1', String(h.port), '-c', 'get', 'default', dest]);
  t.is(r.code, 0, r.stderr);
  t.is(fs.readFileSync(dest, 'latin1'), text);
  t.is(h.of('tftp.request').at(-1)!.mode, 'netascii');
});

test.serial('traversal with tftp-hpa: ERROR to the client and a refused event for each attempt', async (t) => {
  const base = tempDir(t);
  const root = path.join(base, 'boot');
  fs.mkdirSync(root);
  fs.writeFileSync(path.join(base, 'secret'), 'SECRET');
  fs.symlinkSync('../secret', path.join(root, 'escape'));
  const h = await startServer(t, { root });
  const cases: [string, TftpRefusalReason, string][] = [
    ['../../etc/passwd', 'traversal', 'Error code 2'],
    ['..\\..\\etc\\passwd', 'traversal', 'Error code 2'],
    ['/etc/passwd', 'not-found', 'Error code 1'],
    ['escape', 'symlink-escape', 'Error code 2'],
  ];
  for (const [name, reason, message] of cases) {
    const dest = path.join(base, 'got');
    const r = await run(PEERS.tftpHpa, ['127.0.0.1', String(h.port), '-m', 'binary', '-c', 'get', name, dest]);
    t.regex(r.stderr + r.stdout, new RegExp(message), name);
    const ev = await h.waitFor('tftp.refused', (e) => e.filename === name);
    t.is(ev.reason, reason, name);
    const got = fs.existsSync(dest) ? fs.readFileSync(dest, 'latin1') : '';
    t.false(got.includes('SECRET') || got.includes('root:'), `${name} leaked`);
    fs.rmSync(dest, { force: true });
  }
});
