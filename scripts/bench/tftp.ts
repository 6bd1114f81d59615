/**
 * TFTP benchmark: the same 100 MiB file, the same client, the same namespaces, served by
 * bootbox, tftpd-hpa, dnsmasq and atftpd in turn. Throughput at several block and
 * window sizes, 200 concurrent 1 MiB transfers, and bootbox's CPU time and peak RSS.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Netns, uniqueId, vethPair, waitForLine } from '../../test/helpers/netns.ts';
import { NODE, procStats, ROOT, startBootbox, stop, tmpDir } from './lab.ts';
import { tftpdHpa } from './peers.ts';
import type { Section } from './report.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const BIG = (QUICK ? 20 : 100) * 1024 * 1024;
const SMALL = 1024 * 1024;
const CONCURRENT = 200;

interface Case {
  client: 'atftp' | 'tftp-hpa' | 'curl';
  blksize: number;
  windowsize: number;
}

const CASES: Case[] = [
  { client: 'tftp-hpa', blksize: 512, windowsize: 1 },
  { client: 'atftp', blksize: 1468, windowsize: 1 },
  { client: 'curl', blksize: 1468, windowsize: 1 },
  { client: 'atftp', blksize: 1468, windowsize: 8 },
  { client: 'atftp', blksize: 1468, windowsize: 16 },
  { client: 'atftp', blksize: 1468, windowsize: 32 },
  { client: 'curl', blksize: 65464, windowsize: 1 },
];

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

type Launch = (ns: Netns, root: string, dataDir: string) => Promise<ChildProcess>;

const SERVERS: Record<string, Launch> = {
  bootbox: (ns, root, dataDir) =>
    startBootbox(
      ns,
      {
        privateInterface: 'priv',
        bootDir: root,
        dhcp: { mode: 'off' },
        tftp: { blksizeMax: 65464, windowsizeMax: 64 },
        ui: { port: 18080 },
        http: { port: 18081 },
        log: { level: 'warn' },
      },
      dataDir,
    ),
  'tftpd-hpa': async (ns, root) => {
    const c = ns.spawn(tftpdHpa(), ['-L', '-s', root, '-a', '10.77.0.1:69', '-u', 'root']);
    await new Promise((r) => setTimeout(r, 500));
    return c;
  },
  dnsmasq: async (ns, root, dataDir) => {
    const c = ns.spawn('dnsmasq', [
      '--no-daemon',
      '--port=0',
      '--enable-tftp',
      `--tftp-root=${root}`,
      '--listen-address=10.77.0.1',
      '--bind-interfaces',
      '--log-facility=-',
      `--pid-file=${path.join(dataDir, 'pid')}`,
      '--user=root',
    ]);
    await waitForLine(c, /TFTP root/, 10_000).catch(() => undefined);
    return c;
  },
  atftpd: async (ns, root) => {
    const c = ns.spawn('atftpd', [
      '--daemon',
      '--no-fork',
      '--port',
      '69',
      '--bind-address',
      '10.77.0.1',
      '--logfile',
      '/dev/null',
      '--user',
      'root.root',
      root,
    ]);
    await new Promise((r) => setTimeout(r, 500));
    return c;
  },
};

function clientArgs(c: Case, out: string): [string, string[]] {
  switch (c.client) {
    case 'tftp-hpa':
      return ['tftp', ['-m', 'binary', '10.77.0.1', '69', '-c', 'get', 'big.bin', out]];
    case 'curl':
      return [
        'curl',
        ['-sS', '-m', '300', '--tftp-blksize', String(c.blksize), '-o', out, 'tftp://10.77.0.1:69/big.bin'],
      ];
    case 'atftp': {
      const opts = ['--option', `blksize ${c.blksize}`, '--option', 'tsize 0'];
      if (c.windowsize > 1) opts.push('--option', `windowsize ${c.windowsize}`);
      return ['atftp', [...opts, '-g', '-r', 'big.bin', '-l', out, '10.77.0.1', '69']];
    }
  }
}

export async function run(): Promise<Section[]> {
  const files = tmpDir('bench-tftp-files-');
  const big = path.join(files.dir, 'big.bin');
  const buf = Buffer.allocUnsafe(BIG);
  for (let i = 0; i < BIG; i += 4) buf.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(big, buf);
  writeFileSync(path.join(files.dir, 'small.bin'), buf.subarray(0, SMALL));
  const want = await sha256(big);
  const rows: Section['rows'] = [];
  const many: Section['rows'] = [];
  const resources: Section['rows'] = [];
  try {
    for (const [server, launch] of Object.entries(SERVERS)) {
      const id = uniqueId();
      const srv = new Netns(`bbb-${id}-s`);
      const cli = new Netns(`bbb-${id}-c`);
      vethPair(srv, 'priv', '10.77.0.1/16', cli, 'eth0', '10.77.0.2/16');
      // 200 distinct client addresses for the concurrency case (200 nodes, not 200 sockets of one node).
      const batch = Array.from({ length: CONCURRENT }, (_, i) => `addr add 10.77.1.${i + 10}/16 dev eth0`).join('\n');
      writeFileSync(path.join(files.dir, 'addrs.batch'), `${batch}\n`);
      cli.ip('-batch', path.join(files.dir, 'addrs.batch'));
      const data = tmpDir('bench-tftp-data-');
      let child: ChildProcess | undefined;
      try {
        child = await launch(srv, files.dir, data.dir);
        for (const c of CASES) {
          const out = path.join(data.dir, 'out.bin');
          const [cmd, args] = clientArgs(c, out);
          const t0 = performance.now();
          let ok = true;
          await cli.exec('timeout', ['300', cmd, ...args], { timeoutMs: 320_000 }).catch(() => {
            ok = false;
          });
          const s = (performance.now() - t0) / 1000;
          const intact = ok && (await sha256(out).catch(() => '')) === want;
          const mibps = intact ? BIG / 2 ** 20 / s : null;
          rows.push({
            server,
            client: c.client,
            blksize: c.blksize,
            windowsize: c.windowsize,
            seconds: Number(s.toFixed(2)),
            MiBps: mibps && Number(mibps.toFixed(1)),
            sha256ok: intact,
          });
          console.log(JSON.stringify(rows.at(-1)));
        }
        const { stdout } = await cli.exec(
          NODE,
          [
            path.join(ROOT, 'scripts/bench/tftp-many.ts'),
            '10.77.0.1',
            '69',
            'small.bin',
            String(CONCURRENT),
            String(SMALL),
            '1468',
            '10.77.1.10',
          ],
          { timeoutMs: 120_000 },
        );
        many.push({ server, ...JSON.parse(stdout.trim()) });
        console.log(JSON.stringify(many.at(-1)));
        if (server === 'bootbox' && child.pid) {
          const st = procStats(child.pid);
          if (st) resources.push({ server, cpuSeconds: st.cpuSeconds, peakRssMiB: st.peakRssMiB });
        }
      } finally {
        if (child) await stop(child);
        await Promise.all([srv.destroy(), cli.destroy()]);
        data.remove();
      }
    }
  } finally {
    files.remove();
  }
  const fig = (server: string, client: string, bs: number, ws: number) =>
    (rows.find((r) => r.server === server && r.client === client && r.blksize === bs && r.windowsize === ws)?.MiBps as
      | number
      | null) ?? 0;
  const hpaLock = fig('tftpd-hpa', 'atftp', 1468, 1);
  const bbLock = fig('bootbox', 'atftp', 1468, 1);
  const bbW16 = fig('bootbox', 'atftp', 1468, 16);
  const atW16 = fig('atftpd', 'atftp', 1468, 16);
  const bbMany = many.find((m) => m.server === 'bootbox') as { failed?: number } | undefined;
  return [
    {
      id: 'tftp-throughput',
      title: `TFTP: ${BIG / 2 ** 20} MiB file over veth, same client per row`,
      columns: ['server', 'client', 'blksize', 'windowsize', 'seconds', 'MiBps', 'sha256ok'],
      rows,
      goals: [
        {
          name: 'lock-step (ws 1, blksize 1468) vs tftpd-hpa',
          target: '>= 1x',
          value: `${bbLock.toFixed(1)} vs ${hpaLock.toFixed(1)} MiB/s`,
          met: bbLock >= hpaLock && bbLock > 0,
        },
        {
          name: 'ws 16 / blksize 1468 vs 3x tftpd-hpa lock-step',
          target: `>= ${(3 * hpaLock).toFixed(1)} MiB/s`,
          value: `${bbW16.toFixed(1)} MiB/s`,
          met: bbW16 >= 3 * hpaLock && bbW16 > 0,
        },
        {
          name: 'ws 16 / blksize 1468 vs atftpd windowed',
          target: `>= ${atW16.toFixed(1)} MiB/s`,
          value: `${bbW16.toFixed(1)} MiB/s`,
          met: bbW16 >= atW16 && bbW16 > 0,
        },
      ],
      notes: [
        'tftpd-hpa and dnsmasq ignore windowsize: their windowed rows are lock-step transfers.',
        'The blksize 65464 row fragments at the IP layer (veth MTU 1500); bootbox allows it here via tftp.blksizeMax (by default it clamps to the MTU).',
      ],
    },
    {
      id: 'tftp-concurrent',
      title: `TFTP: ${CONCURRENT} concurrent 1 MiB transfers (blksize 1468, lock-step)`,
      columns: ['server', 'clients', 'completed', 'failed', 'totalMs'],
      rows: many,
      goals: [
        { name: 'bootbox failures', target: '0', value: String(bbMany?.failed ?? 'n/a'), met: bbMany?.failed === 0 },
      ],
      notes: [],
    },
    {
      id: 'tftp-resources',
      title: 'TFTP: bootbox CPU time and peak RSS over the whole TFTP run',
      columns: ['server', 'cpuSeconds', 'peakRssMiB'],
      rows: resources,
      goals: [],
      notes: [],
    },
  ];
}
