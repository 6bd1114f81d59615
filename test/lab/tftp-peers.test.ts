/**
 * TFTP with the real clients, across a link between namespaces, served by `bootbox serve`:
 * tftp-hpa (no options, 512-byte blocks: block numbers roll over), atftp (blksize,
 * tsize, timeout, windowsize 1/4/16/32), curl --tftp-blksize and busybox tftp -b.
 * Every transfer is a 100 MiB file whose sha256 must match; the server's counters must
 * agree with what the clients saw.
 */

import path from 'node:path';
import test from 'ava';
import { boxLab } from '../helpers/box.ts';
import { sha256File, writeBigFile } from '../integration/tftp-support.ts';

const SIZE = 100 * 1024 * 1024;

const CLIENTS: { name: string; cmd: string; args: (out: string) => string[] }[] = [
  {
    name: 'tftp-hpa (512-byte lock-step, rollover)',
    cmd: 'tftp',
    args: (o) => ['-m', 'binary', '10.77.0.1', '-c', 'get', 'big.bin', o],
  },
  {
    name: 'atftp blksize 1468 tsize timeout',
    cmd: 'atftp',
    args: (o) => [
      '--option',
      'blksize 1468',
      '--option',
      'tsize 0',
      '--option',
      'timeout 2',
      '-g',
      '-r',
      'big.bin',
      '-l',
      o,
      '10.77.0.1',
    ],
  },
  ...[4, 16, 32].map((w) => ({
    name: `atftp windowsize ${w}`,
    cmd: 'atftp',
    args: (o: string) => [
      '--option',
      'blksize 1468',
      '--option',
      `windowsize ${w}`,
      '-g',
      '-r',
      'big.bin',
      '-l',
      o,
      '10.77.0.1',
    ],
  })),
  {
    name: 'curl --tftp-blksize 1468',
    cmd: 'curl',
    args: (o) => ['-sS', '-m', '120', '--tftp-blksize', '1468', '-o', o, 'tftp://10.77.0.1/big.bin'],
  },
  {
    name: 'busybox tftp -b 1468',
    cmd: 'busybox',
    args: (o) => ['tftp', '-b', '1468', '-g', '-r', 'big.bin', '-l', o, '10.77.0.1'],
  },
];

test('each real client gets a 100 MiB file intact', async (t) => {
  t.timeout(600_000);
  const lab = await boxLab();
  t.teardown(() => lab.destroy());
  const bootDir = path.join(lab.dataDir, 'boot');
  await lab.start({ bootDir, dhcp: { mode: 'off' } });
  const want = writeBigFile(path.join(bootDir, 'big.bin'), SIZE);
  lab.cli.ip('addr', 'add', '10.77.0.50/24', 'dev', 'eth0');
  for (const c of CLIENTS) {
    const out = path.join(lab.dataDir, 'out.bin');
    const t0 = Date.now();
    await lab.cli.exec(c.cmd, c.args(out), { timeoutMs: 180_000 });
    const secs = (Date.now() - t0) / 1000;
    t.is(sha256File(out), want, c.name);
    t.log(`${c.name}: ${(SIZE / 2 ** 20 / secs).toFixed(1)} MiB/s`);
  }
  const h = await lab.health();
  const c = h.services.tftp.counters;
  t.is(c.completed, CLIENTS.length, JSON.stringify(c));
  t.true(c.bytesSent >= CLIENTS.length * SIZE);
});
