/**
 * DHCP benchmark: perfdhcp (a relay agent, like a real boot network behind a router)
 * against bootbox and against dnsmasq, same namespaces, same rates; then a boot storm of
 * 1,000 distinct PXE clients within one second.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { waitForLine } from '../../test/helpers/netns.ts';
import { NODE, ROOT, relayTopology, startBootbox, stop, tmpDir } from './lab.ts';
import type { Section } from './report.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const RATES = QUICK ? [500, 2500] : [500, 1000, 2000, 2500, 3000, 4000];
const SECONDS = QUICK ? 5 : 20;

interface PerfResult {
  server: string;
  rate: number;
  achieved: number;
  discoverDropPct: number;
  requestDropPct: number;
  offerAvgMs: number;
  offerMaxMs: number;
  ackAvgMs: number;
}

export function parsePerfdhcp(out: string): Omit<PerfResult, 'server' | 'rate'> {
  const num = (re: RegExp, s = out) => Number(re.exec(s)?.[1] ?? Number.NaN);
  const [, doPart = '', raPart = ''] = out.split(/\*\*\*Statistics for: (?:DISCOVER-OFFER|REQUEST-ACK)\*\*\*/);
  return {
    achieved: num(/Rate: ([\d.]+) 4-way exchanges\/second/),
    discoverDropPct: num(/drops ratio: ([\d.]+) %/, doPart),
    requestDropPct: num(/drops ratio: ([\d.]+) %/, raPart),
    offerAvgMs: num(/avg delay: ([\d.]+) ms/, doPart),
    offerMaxMs: num(/max delay: ([\d.]+) ms/, doPart),
    ackAvgMs: num(/avg delay: ([\d.]+) ms/, raPart),
  };
}

type Launch = (topo: ReturnType<typeof relayTopology>, dataDir: string) => Promise<ChildProcess>;

const servers: Record<string, Launch> = {
  bootbox: (topo, dataDir) =>
    startBootbox(
      topo.srv,
      {
        privateInterface: 'priv',
        dhcp: { mode: 'full', relayNetworks: ['10.88.0.0/16'], leaseTime: 3600 },
        ui: { port: 18080 },
        http: { port: 18081 },
        log: { level: 'warn' },
      },
      dataDir,
    ),
  dnsmasq: async (topo, dataDir) => {
    // dnsmasq at its fastest: no ping before offering, authoritative, no per-packet logging.
    const child = topo.srv.spawn('dnsmasq', [
      '--no-daemon',
      '--port=0',
      '--interface=priv',
      '--bind-interfaces',
      '--dhcp-authoritative',
      '--no-ping',
      '--quiet-dhcp',
      '--log-facility=-',
      '--dhcp-lease-max=200000',
      `--dhcp-leasefile=${path.join(dataDir, 'leases')}`,
      '--dhcp-range=10.88.0.10,10.88.255.254,255.255.0.0,1h',
      '--dhcp-range=10.77.0.100,10.77.0.200,1h',
      `--pid-file=${path.join(dataDir, 'pid')}`,
    ]);
    await waitForLine(child, /DHCP, IP range/, 10_000).catch(() => undefined);
    return child;
  },
};

export async function run(): Promise<Section[]> {
  const results: PerfResult[] = [];
  const storms: Record<string, unknown>[] = [];
  for (const [name, launch] of Object.entries(servers)) {
    for (const rate of RATES) {
      const topo = relayTopology();
      const tmp = tmpDir(`bench-dhcp-${name}-`);
      let child: ChildProcess | undefined;
      try {
        child = await launch(topo, tmp.dir);
        const { stdout } = await topo.cli
          .exec(
            'timeout',
            [
              String(SECONDS + 15),
              'perfdhcp',
              '-4',
              '-r',
              String(rate),
              '-p',
              String(SECONDS),
              '-R',
              '200000',
              '-l',
              '10.88.0.1',
              '10.77.0.1',
            ],
            { timeoutMs: (SECONDS + 20) * 1000 },
          )
          .catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' })); // exit 3 when any packet dropped
        const r = { server: name, rate, ...parsePerfdhcp(stdout) };
        results.push(r);
        console.log(JSON.stringify(r));
      } finally {
        if (child) await stop(child);
        await topo.destroy();
        tmp.remove();
      }
    }
    // Boot storm: 1,000 clients in 1 s.
    const topo = relayTopology();
    const tmp = tmpDir(`bench-storm-${name}-`);
    let child: ChildProcess | undefined;
    try {
      child = await launch(topo, tmp.dir);
      const { stdout } = await topo.cli.exec(NODE, [
        path.join(ROOT, 'scripts/bench/dhcp-storm.ts'),
        '10.88.0.1',
        '10.77.0.1',
        '1000',
        '1000',
        '5000',
      ]);
      const s = { server: name, ...JSON.parse(stdout.trim().split('\n').pop()!) };
      storms.push(s);
      console.log(JSON.stringify(s));
    } finally {
      if (child) await stop(child);
      await topo.destroy();
      tmp.remove();
    }
  }
  const best = (server: string) =>
    Math.max(
      0,
      ...results.filter((r) => r.server === server && r.discoverDropPct + r.requestDropPct < 1).map((r) => r.achieved),
    );
  const bb = best('bootbox');
  const dm = best('dnsmasq');
  const bbStorm = storms.find((s) => s.server === 'bootbox') as { offered?: number; lastOfferMs?: number } | undefined;
  return [
    {
      id: 'dhcp-perfdhcp',
      title: `DHCP: perfdhcp DORA exchanges (relayed), ${SECONDS} s per rate`,
      columns: [
        'server',
        'rate',
        'achieved',
        'discoverDropPct',
        'requestDropPct',
        'offerAvgMs',
        'offerMaxMs',
        'ackAvgMs',
      ],
      rows: results as unknown as Section['rows'],
      goals: [
        { name: 'bootbox DORA/s with < 1% drops', target: '>= 2500', value: bb.toFixed(0), met: bb >= 2500 },
        {
          name: 'bootbox / dnsmasq (best rate with < 1% drops)',
          target: '>= 5x',
          value: dm > 0 ? `${(bb / dm).toFixed(2)}x (dnsmasq ${dm.toFixed(0)}/s)` : 'dnsmasq had no clean rate',
          met: dm > 0 ? bb / dm >= 5 : bb > 0,
        },
      ],
      notes: ['perfdhcp reports mean and max latency; median and p99 come from the storm below.'],
    },
    {
      id: 'dhcp-storm',
      title: 'DHCP: boot storm, 1,000 distinct PXE clients within 1 s (relayed)',
      columns: ['server', 'clients', 'offered', 'sendSpanMs', 'medianMs', 'p99Ms', 'lastOfferMs'],
      rows: storms as Section['rows'],
      goals: [
        {
          name: 'every client gets an offer',
          target: '1000/1000',
          value: `${bbStorm?.offered ?? 0}/1000 (last at ${bbStorm?.lastOfferMs ?? '–'} ms)`,
          met: bbStorm?.offered === 1000,
        },
      ],
      notes: [],
    },
  ];
}
