/**
 * The TFTP server on real sockets (127.0.0.1, ephemeral ports), driven by the
 * node:dgram client of tftp-support.ts.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { createLogger } from '../../firmware/core/logger.ts';
import type { TftpRefusalReason } from '../../firmware/protocols/tftp/events.ts';
import { toNetascii } from '../../firmware/protocols/tftp/netascii.ts';
import { exchange, LOCALHOST, pattern, startServer, tempDir, tftpGet } from './tftp-support.ts';

const rrq = (name: string, mode = 'octet', ...opts: string[]) =>
  Buffer.from([0, 1, ...Buffer.from([name, mode, ...opts].join('\0') + '\0', 'latin1')]);

test('lock-step get: data, and the request -> options -> complete events', async (t) => {
  const h = await startServer(t);
  const file = pattern(100_000);
  fs.writeFileSync(path.join(h.root, 'pxelinux.0'), file);
  const r = await tftpGet({ port: h.port, filename: 'pxelinux.0' });
  t.true(r.data.equals(file));
  t.is(r.oack, undefined, 'no options, no OACK');
  t.not(r.serverPort, h.port, 'the transfer runs on its own port (RFC 1350 TID)');
  const done = await h.waitFor('tftp.complete');
  t.is(done.bytes, file.length);
  t.is(done.blksize, 512);
  t.deepEqual(
    h.events.map((e) => e.type),
    ['tftp.request', 'tftp.options', 'tftp.complete'],
  );
  const opts = h.of('tftp.options')[0]!;
  t.true(opts.cached, 'a small file comes from the memory cache');
  t.is(opts.path, fs.realpathSync(path.join(h.root, 'pxelinux.0')));
  t.is(h.server.counters.completed, 1);
  t.is(h.server.counters.bytesSent, file.length);
});

test('windowed get from disk: blksize 1468, windowsize 16, tsize', async (t) => {
  const h = await startServer(t, { cacheFileMaxBytes: 64 * 1024 });
  const file = pattern(3_000_017, 3);
  fs.writeFileSync(path.join(h.root, 'big.img'), file);
  const r = await tftpGet({
    port: h.port,
    filename: 'big.img',
    options: [
      ['blksize', '1468'],
      ['windowsize', '16'],
      ['tsize', '0'],
    ],
  });
  t.deepEqual(r.oack, { blksize: '1468', windowsize: '16', tsize: String(file.length) });
  t.true(r.data.equals(file));
  t.is(r.unexpected, 0);
  const opts = await h.waitFor('tftp.options');
  t.false(opts.cached, 'a file above the cache limit is read from disk');
  const done = await h.waitFor('tftp.complete');
  t.is(done.windowsize, 16);
  t.is(done.retransmits, 0);
});

test('blksize is clamped to MTU - 32 unless configured higher', async (t) => {
  const h = await startServer(t, { mtu: 1500 });
  fs.writeFileSync(path.join(h.root, 'f'), pattern(20_000));
  const r = await tftpGet({ port: h.port, filename: 'f', options: [['blksize', '65464']] });
  t.is(r.oack?.['blksize'], '1468');
  const big = await startServer(t, { root: h.root, blksizeMax: 65464 });
  const r2 = await tftpGet({ port: big.port, filename: 'f', options: [['blksize', '65464']] });
  t.is(r2.oack?.['blksize'], '65464');
  t.true(r2.data.equals(pattern(20_000)));
});

test('edk2: tsize probe answered, ERROR 8 ends it as a probe, then the real transfer', async (t) => {
  const h = await startServer(t);
  const file = pattern(777_777, 5);
  fs.mkdirSync(path.join(h.root, 'EFI', 'BOOT'), { recursive: true });
  fs.writeFileSync(path.join(h.root, 'EFI', 'BOOT', 'bootx64.efi'), file);
  const probeOpts: [string, string][] = [
    ['tsize', '0'],
    ['blksize', '1468'],
    ['windowsize', '4'],
  ];
  const probe = await tftpGet({
    port: h.port,
    filename: '\\EFI\\BOOT\\bootx64.efi',
    options: probeOpts,
    abortAfterOack: { code: 8, message: 'User aborted the transfer' },
  });
  t.is(probe.oack?.['tsize'], String(file.length));
  const aborted = await h.waitFor('tftp.aborted');
  t.true(aborted.probe);
  t.is(aborted.phase, 'negotiation');
  t.is(aborted.code, 8);
  const real = await tftpGet({ port: h.port, filename: '\\EFI\\BOOT\\bootx64.efi', options: probeOpts.slice(1) });
  t.true(real.data.equals(file));
  await h.waitFor('tftp.complete');
  t.deepEqual(h.of('tftp.error'), [], 'a probe is not an error');
  const c = h.server.counters;
  t.is(c.probes, 1);
  t.is(c.aborted, 1);
  t.is(c.completed, 1);
  t.is(c.failed, 0);
});

test('msftwindow: agreed with 27182, and the ACK byte drives the window', async (t) => {
  const h = await startServer(t);
  const file = pattern(500_000, 9);
  fs.mkdirSync(path.join(h.root, 'Boot', 'x64'), { recursive: true });
  fs.writeFileSync(path.join(h.root, 'Boot', 'x64', 'wdsmgfw.efi'), file);
  const hints = [2, 5, 8, 3, 1, 8];
  let i = 0;
  const r = await tftpGet({
    port: h.port,
    filename: '\\Boot\\x64\\wdsmgfw.efi',
    options: [
      ['blksize', '1456'],
      ['windowsize', '8'],
      ['msftwindow', '31416'],
    ],
    windowHint: () => hints[i++ % hints.length]!,
  });
  t.is(r.oack?.['msftwindow'], '27182');
  t.true(r.data.equals(file));
  // Had the server sent more than each hint, blocks would have arrived after the ACK and been resent.
  t.is(r.unexpected, 0);
  t.true((await h.waitFor('tftp.options')).msftWindow);
  t.is((await h.waitFor('tftp.complete')).retransmits, 0);
});

test('a datagram from a foreign port gets ERROR 5 and the transfer goes on (RFC 1350 §4)', async (t) => {
  const h = await startServer(t);
  const file = pattern(300_000);
  fs.writeFileSync(path.join(h.root, 'f'), file);
  let intruderGot: Buffer | undefined;
  const intruder = dgram.createSocket('udp4');
  await new Promise<void>((r) => intruder.bind(0, LOCALHOST, r));
  t.teardown(() => intruder.close());
  intruder.on('message', (m) => {
    intruderGot = m;
  });
  const r = await tftpGet({
    port: h.port,
    filename: 'f',
    onServerPort: (_sock, serverPort) => intruder.send(Buffer.from([0, 4, 0, 1]), serverPort, LOCALHOST),
  });
  t.true(r.data.equals(file));
  await h.waitFor('tftp.complete');
  t.deepEqual(intruderGot?.subarray(0, 4), Buffer.from([0, 5, 0, 5]));
  t.is(h.server.counters.unknownTid, 1);
});

test('single-port mode: transfers share the listen port, demultiplexed by client address:port', async (t) => {
  const h = await startServer(t, { singlePort: true });
  const a = pattern(200_000, 1);
  const b = pattern(150_000, 2);
  fs.writeFileSync(path.join(h.root, 'a'), a);
  fs.writeFileSync(path.join(h.root, 'b'), b);
  const [ra, rb] = await Promise.all([
    tftpGet({ port: h.port, filename: 'a', options: [['windowsize', '4']] }),
    tftpGet({ port: h.port, filename: 'b' }),
  ]);
  t.true(ra.data.equals(a));
  t.true(rb.data.equals(b));
  t.is(ra.serverPort, h.port);
  t.is(rb.serverPort, h.port);
  // an ACK from an address:port with no transfer is a wrong TID
  const got = await exchange(h.port, Buffer.from([0, 4, 0, 7]));
  t.deepEqual(got[0]?.msg.subarray(0, 4), Buffer.from([0, 5, 0, 5]));
  t.is(h.server.counters.unknownTid, 1);
});

test('per-client and total limits drop extra requests with a refused event', async (t) => {
  const h = await startServer(t, { maxPerClient: 2, rtoMs: 5000 });
  fs.writeFileSync(path.join(h.root, 'f'), pattern(10_000));
  // Three requests that never ACK: two become transfers, the third is dropped.
  const answers = await Promise.all([1, 2, 3].map(() => exchange(h.port, rrq('f'), 300)));
  const answered = answers.filter((a) => a.length > 0).length;
  t.is(answered, 2);
  const refused = h.of('tftp.refused');
  t.is(refused.length, 1);
  t.is(refused[0]!.reason, 'busy-client');
  t.is(refused[0]!.errorCode, undefined, 'dropped, not answered: the client retries');
  await h.server.stop();
  const total = await startServer(t, { root: h.root, maxTransfers: 1, rtoMs: 5000 });
  await Promise.all([1, 2].map(() => exchange(total.port, rrq('f'), 200)));
  t.is(total.of('tftp.refused')[0]?.reason, 'busy-server');
});

test('malformed and unwanted requests: ERROR 4, ERROR 2, or silence, with counters', async (t) => {
  const h = await startServer(t);
  const bad = await exchange(h.port, Buffer.from([0, 1, 0x61, 0, 0x62, 0x69, 0x6e, 0])); // mode "bin"
  t.deepEqual(bad[0]?.msg.subarray(0, 4), Buffer.from([0, 5, 0, 4]));
  t.regex(bad[0]!.msg.toString('latin1'), /unknown-mode/);
  const wrq = await exchange(h.port, Buffer.from([0, 2, ...Buffer.from('up\0octet\0')]));
  t.deepEqual(wrq[0]?.msg.subarray(0, 4), Buffer.from([0, 5, 0, 2]));
  const noise = await exchange(h.port, Buffer.from([0xde, 0xad, 0xbe, 0xef]));
  t.deepEqual(noise, [], 'garbage is dropped, not answered');
  const stray = await exchange(h.port, Buffer.from([0, 4, 0, 1]));
  t.deepEqual(stray, [], 'an ACK on the listen port is ignored (per-transfer ports)');
  const c = h.server.counters;
  t.is(c.malformed, 2);
  t.is(c.stray, 1);
  t.deepEqual(
    h.of('tftp.refused').map((e) => `${e.reason}:${e.errorCode}`),
    ['malformed:4', 'upload-disabled:2'],
  );
});

test('traversal attempts get ERROR and a refused event; nothing outside the root leaks', async (t) => {
  const base = tempDir(t);
  const root = path.join(base, 'boot');
  fs.mkdirSync(root);
  fs.writeFileSync(path.join(base, 'secret'), 'SECRET');
  fs.symlinkSync('../secret', path.join(root, 'link'));
  const h = await startServer(t, { root });
  const cases: [string, TftpRefusalReason, number][] = [
    ['../../etc/passwd', 'traversal', 2],
    ['..\\..\\etc\\passwd', 'traversal', 2],
    ['/etc/passwd', 'not-found', 1],
    ['link', 'symlink-escape', 2],
    ['../secret', 'traversal', 2],
  ];
  for (const [name, reason, code] of cases) {
    const r = await tftpGet({ port: h.port, filename: name });
    t.is(r.error?.code, code, name);
    t.is(r.data.length, 0);
    const ev = await h.waitFor('tftp.refused', (e) => e.filename === name);
    t.is(ev.reason, reason, name);
    t.is(ev.errorCode, code);
  }
});

test('a missing file is ERROR 1 within milliseconds (pxelinux probes)', async (t) => {
  const h = await startServer(t);
  for (const name of ['pxelinux.cfg/01-52-54-00-77-00-11', 'pxelinux.cfg/0A4D0001', 'pxelinux.cfg/default']) {
    const r = await tftpGet({ port: h.port, filename: name });
    t.is(r.error?.code, 1);
    t.true(r.ms < 250, `${name}: ${r.ms.toFixed(1)} ms`);
  }
});

test('lossy client: 5% of DATA dropped, recovered by timeouts and window restarts', async (t) => {
  const h = await startServer(t, { rtoMs: 60, tickMs: 10 });
  const file = pattern(400_000, 11);
  fs.writeFileSync(path.join(h.root, 'f'), file);
  let x = 12345;
  const drop = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % 100 < 5;
  };
  for (const window of ['1', '8']) {
    const r = await tftpGet({
      port: h.port,
      filename: 'f',
      options: [
        ['blksize', '1024'],
        ['windowsize', window],
      ],
      dropIn: (pkt) => pkt.readUInt16BE(0) === 3 && drop(),
      timeoutMs: 500,
    });
    t.true(r.data.equals(file), `window ${window}`);
  }
  await h.waitFor('tftp.complete', (e) => e.windowsize === 8);
  const done = h.of('tftp.complete');
  t.is(done.length, 2);
  t.true(done.every((d) => d.retransmits > 0));
  t.log(done.map((d) => `window ${d.windowsize}: ${d.retransmits} retransmits, ${d.timeouts} timeouts`).join('; '));
});

test('a client that stops answering is abandoned with ERROR after the retries', async (t) => {
  const h = await startServer(t, { rtoMs: 40, rtoMaxMs: 80, maxRetries: 2, tickMs: 10 });
  fs.writeFileSync(path.join(h.root, 'f'), pattern(10_000));
  const got = await exchange(h.port, rrq('f'), 600);
  const datas = got.filter((g) => g.msg.readUInt16BE(0) === 3);
  t.is(datas.length, 3, 'DATA 1 and two resends');
  const last = got.at(-1)!.msg;
  t.deepEqual(last.subarray(0, 4), Buffer.from([0, 5, 0, 0]));
  const err = await h.waitFor('tftp.error');
  t.is(err.reason, 'timeout');
  t.is(h.server.counters.failed, 1);
});

test('a repeated RRQ (retransmitted before the first answer) does not start a second transfer', async (t) => {
  const h = await startServer(t, { rtoMs: 5000 });
  fs.writeFileSync(path.join(h.root, 'f'), pattern(10_000));
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, LOCALHOST, r));
  t.teardown(() => sock.close());
  const ports = new Set<number>();
  sock.on('message', (_m, rinfo) => ports.add(rinfo.port));
  sock.send(rrq('f'), h.port, LOCALHOST);
  sock.send(rrq('f'), h.port, LOCALHOST);
  await new Promise((r) => setTimeout(r, 200));
  sock.send(rrq('f'), h.port, LOCALHOST);
  await new Promise((r) => setTimeout(r, 200));
  t.is(ports.size, 1, 'one transfer port answered');
  t.is(h.server.counters.duplicateRequests, 2);
  t.is(h.of('tftp.options').length, 1);
});

test('the cache notices a changed file', async (t) => {
  const h = await startServer(t);
  const f = path.join(h.root, 'menu.cfg');
  fs.writeFileSync(f, 'DEFAULT one\n');
  t.is((await tftpGet({ port: h.port, filename: 'menu.cfg' })).data.toString(), 'DEFAULT one\n');
  t.is((await tftpGet({ port: h.port, filename: 'menu.cfg' })).data.toString(), 'DEFAULT one\n');
  fs.writeFileSync(f, 'DEFAULT two\n');
  fs.utimesSync(f, new Date(), new Date(Date.now() + 10_000));
  t.is((await tftpGet({ port: h.port, filename: 'menu.cfg' })).data.toString(), 'DEFAULT two\n');
  const c = h.server.counters;
  t.is(c.cacheHits, 1);
  t.is(c.cacheMisses, 2);
});

test('a file truncated during a transfer: ERROR to the client, tftp.error', async (t) => {
  const h = await startServer(t, { cacheFileMaxBytes: 1024, readAheadBytes: 16 * 1024 });
  const f = path.join(h.root, 'initrd');
  fs.writeFileSync(f, pattern(2_000_000));
  const r = await tftpGet({
    port: h.port,
    filename: 'initrd',
    options: [['blksize', '1024']],
    dropIn: (_pkt, n) => {
      if (n === 50) fs.truncateSync(f, 100_000);
      return false;
    },
  });
  t.is(r.error?.code, 0);
  t.true(r.data.length >= 50 * 1024 && r.data.length <= 100_000);
  const err = await h.waitFor('tftp.error');
  t.is(err.reason, 'source-error');
});

test('netascii (tftp-hpa default mode) is sent with CR LF line ends', async (t) => {
  const h = await startServer(t);
  const text = Buffer.from('DEFAULT linux\nLABEL linux\r\n  KERNEL vmlinuz\n');
  fs.writeFileSync(path.join(h.root, 'default'), text);
  const r = await tftpGet({ port: h.port, filename: 'default', mode: 'netascii', options: [['tsize', '0']] });
  t.deepEqual(r.data, toNetascii(text));
  t.is(r.oack?.['tsize'], String(toNetascii(text).length), 'tsize is the size on the wire');
});

test('stop() ends running transfers with ERROR and closes the sockets', async (t) => {
  const h = await startServer(t, { rtoMs: 5000 });
  fs.writeFileSync(path.join(h.root, 'f'), pattern(100_000));
  const pending = exchange(h.port, rrq('f'), 400);
  await h.waitFor('tftp.options');
  await h.server.stop();
  const got = await pending;
  t.deepEqual(got.at(-1)?.msg.subarray(0, 4), Buffer.from([0, 5, 0, 0]));
  t.is((await h.waitFor('tftp.error')).reason, 'shutdown');
  t.is(h.server.activeTransfers, 0);
});

test('generated files: answered before the boot tree, with options, netascii and the client address', async (t) => {
  const asked: [string, string][] = [];
  // biome-ignore lint/suspicious/noTemplateCurlyInString: literal GRUB syntax
  const cfg = Buffer.from("configfile '(tftp,10.77.0.1)/'${net_default_mac}'.grub.cfg'\n");
  const h = await startServer(t, {
    generated: (name, address) => {
      asked.push([name, address]);
      if (name === 'boom') throw new Error('renderer failed');
      return name === 'grub/grub.cfg' ? cfg : undefined;
    },
  });
  fs.mkdirSync(path.join(h.root, 'grub'));
  fs.writeFileSync(path.join(h.root, 'grub/grub.cfg'), 'the file on disk is not served\n');
  fs.writeFileSync(path.join(h.root, 'grubx64.efi'), pattern(5000));

  const r = await tftpGet({
    port: h.port,
    filename: 'grub/grub.cfg',
    options: [
      ['tsize', '0'],
      ['blksize', '1024'],
    ],
  });
  t.true(r.data.equals(cfg));
  t.is(r.oack?.['tsize'], String(cfg.length));
  t.is(r.oack?.['blksize'], '1024');
  const opts = await h.waitFor('tftp.options');
  t.is(opts.path, 'generated:grub/grub.cfg');
  t.true(opts.cached);
  await h.waitFor('tftp.complete', (e) => e.filename === 'grub/grub.cfg');

  const ascii = await tftpGet({ port: h.port, filename: 'grub/grub.cfg', mode: 'netascii' });
  t.deepEqual(ascii.data, toNetascii(cfg));
  // Names the generator leaves alone come from the boot tree; a generator that throws is a read error.
  t.true((await tftpGet({ port: h.port, filename: 'grubx64.efi' })).data.equals(pattern(5000)));
  t.is((await tftpGet({ port: h.port, filename: 'boom' })).error?.code, 0);
  t.true(asked.every(([, address]) => address === LOCALHOST));
  t.deepEqual(
    asked.map(([n]) => n),
    ['grub/grub.cfg', 'grub/grub.cfg', 'grubx64.efi', 'boom'],
  );
});

test('single port: a receive buffer the kernel clamps below the ask is named in a warning', async (t) => {
  const max = Number(fs.readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
  const lines: string[] = [];
  const log = createLogger('tftp', { level: 'warn', write: (l) => lines.push(l) });
  await startServer(t, { singlePort: true, listenBufferBytes: max * 2, log });
  t.true(
    lines.some((l) => /single-port TFTP: .*raise net\.core\.rmem_max/.test(l)),
    lines.join('\n'),
  );
  lines.length = 0;
  await startServer(t, { singlePort: true, listenBufferBytes: Math.min(max, 1 << 20), log });
  await startServer(t, { singlePort: false, listenBufferBytes: max * 2, log });
  t.deepEqual(lines, [], 'granted in full, or not the shared socket of single-port mode');
});
