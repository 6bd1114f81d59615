/**
 * The web UI: the bundle's size (raw and gzip), the time Chromium takes to show the
 * machines page of a box that knows 1,000 machines (and to answer a search keystroke),
 * and the latency of GET /api/v1/machines with those 1,000 machines.
 *
 * The box runs `serve` in a namespace with <data>/machines.json seeded before start;
 * Chromium runs in the same namespace (http://127.0.0.1:8080) and signs in as a user
 * does; the API is called over the private link from a second namespace with the API
 * token, on one keep-alive connection, as the UI's own requests go.
 * BENCH_QUICK=1: fewer repetitions.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { buildUi } from '../../web-ui/build.ts';
import { NODE, relayTopology, startBootbox, stop, tmpDir } from './lab.ts';
import type { Goal, Section } from './report.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const MACHINES = 1000;
const API_REQUESTS = QUICK ? 50 : 200;
const RENDERS = QUICK ? 3 : 7;
const PASSWORD = 'bench password 1234';
const PAGE_ROWS = 100;

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const median = (xs: number[]) =>
  pct(
    [...xs].sort((a, b) => a - b),
    50,
  );
const round = (x: number) => Math.round(x * 10) / 10;

/** `<data>/machines.json` as services/machines.ts keeps it, with `n` machines in every state and a short timeline each. */
export function seedMachines(n: number): Record<string, unknown> {
  const states = [
    'deployed',
    'deployed',
    'deployed',
    'approved',
    'deploying',
    'pending',
    'reimage-requested',
    'rejected',
  ];
  const base = Date.now() - 86_400_000;
  const machines = [];
  const timelines: Record<string, unknown[]> = {};
  for (let i = 0; i < n; i++) {
    const mac = `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    const seen = new Date(base + i * 60_000).toISOString();
    const state = states[i % states.length]!;
    machines.push({
      mac,
      arch: i % 3 === 0 ? 'bios' : 'uefi-x64',
      firmware: i % 3 === 0 ? 'bios' : 'uefi',
      name: `NODE${String(i + 1).padStart(4, '0')}`,
      ip: `10.77.${Math.floor(i / 250) + 1}.${(i % 250) + 2}`,
      firstSeen: seen,
      lastSeen: seen,
      state,
      stateSince: seen,
      stateReason: state === 'pending' ? 'first netboot; waiting for an administrator to approve it' : `${state}`,
      ...(state === 'pending' ? {} : { image: 'install/default/win11' }),
      ...(state === 'reimage-requested' ? { reimage: { from: 'deployed', mode: 'next-boot', requestedAt: seen } } : {}),
      bootCount: 1 + (i % 5),
      lastBoot: { at: seen, action: 'local' },
    });
    timelines[mac] = [
      { ts: seen, type: 'dhcp.request', messageType: 'DISCOVER', mac, arch: 'bios', ipxe: false },
      { ts: seen, type: 'dhcp.reply', messageType: 'OFFER', mac, yiaddr: '10.77.0.5', bootFile: 'undionly.kpxe' },
      { ts: seen, type: 'tftp.complete', mac, filename: 'undionly.kpxe', bytes: 70_000, durationMs: 40 },
      {
        ts: seen,
        type: 'http.request',
        mac,
        path: `/boot/${mac}.ipxe`,
        status: 200,
        bytes: 300,
        peer: '10.77.0.5',
        ms: 2,
      },
      { ts: seen, type: 'boot.decision', mac, phase: 'script', action: 'local', reason: 'deployed' },
    ];
  }
  return { version: 1, counter: n + 1, machines, timelines };
}

/** Sequential GETs on one keep-alive connection from inside `ns`; returns each request's ms. */
function apiLatencies(
  ns: string,
  url: string,
  token: string,
  count: number,
  dir: string,
): { ms: number[]; bytes: number } {
  const script = path.join(dir, 'api-latency.mjs');
  writeFileSync(
    script,
    `import http from 'node:http';
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const get = () => new Promise((resolve, reject) => {
  const t0 = performance.now();
  http.get(${JSON.stringify(url)}, { agent, headers: { Authorization: 'Bearer ${token}' } }, (res) => {
    let n = 0;
    res.on('data', (c) => (n += c.length));
    res.on('end', () => (res.statusCode === 200 ? resolve([performance.now() - t0, n]) : reject(new Error('HTTP ' + res.statusCode))));
  }).on('error', reject);
});
for (let i = 0; i < 10; i++) await get();
const ms = [];
let bytes = 0;
for (let i = 0; i < ${count}; i++) { const [t, n] = await get(); ms.push(t); bytes = n; }
console.log(JSON.stringify({ ms, bytes }));
agent.destroy();
`,
  );
  const out = execFileSync('ip', ['netns', 'exec', ns, NODE, script], { encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(out) as { ms: number[]; bytes: number };
}

export async function run(): Promise<Section[]> {
  const files = await buildUi({ quiet: true });
  const total = files.reduce((a, f) => ({ bytes: a.bytes + f.bytes, gzip: a.gzip + f.gzip }), { bytes: 0, gzip: 0 });
  const sizeRows = [...files, { file: 'total', ...total }].map((f) => ({
    file: f.file,
    bytes: f.bytes,
    KiB: round(f.bytes / 1024),
    'gzip KiB': round(f.gzip / 1024),
  }));

  const topo = relayTopology();
  const tmp = tmpDir('bootbox-bench-ui-');
  const data = path.join(tmp.dir, 'data');
  mkdirSync(data, { recursive: true });
  writeFileSync(path.join(data, 'machines.json'), JSON.stringify(seedMachines(MACHINES)));
  const box = await startBootbox(
    topo.srv,
    {
      privateInterface: 'priv',
      imagesDir: path.join(data, 'images'),
      dhcp: { mode: 'off' },
      ui: { port: 8080, adminPassword: PASSWORD },
    },
    data,
  );
  const wrapper = path.join(tmp.dir, 'chromium-in-netns.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${topo.srv.name} /usr/bin/chromium "$@"\n`);
  chmodSync(wrapper, 0o755);
  const browser = await chromium.launch({ executablePath: wrapper, args: ['--no-sandbox'] });
  try {
    const token = readFileSync(path.join(data, 'api-token'), 'utf8').trim();
    const api = apiLatencies(topo.cli.name, 'http://10.77.0.1:8080/api/v1/machines', token, API_REQUESTS, tmp.dir);
    const sorted = [...api.ms].sort((a, b) => a - b);

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto('http://127.0.0.1:8080/');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
    // Playwright's own waits (its isolated world): page functions would need eval, which the CSP forbids.
    const rows = page.locator('table.machines tbody tr');
    const renders: number[] = [];
    const searches: number[] = [];
    for (let i = 0; i < RENDERS; i++) {
      // A fresh page load straight onto the machines page: bundle, session, list, first page of rows.
      await page.goto('about:blank');
      await page.goto('http://127.0.0.1:8080/#/machines');
      await rows.nth(PAGE_ROWS - 1).waitFor({ timeout: 30_000 });
      renders.push((await page.evaluate('performance.now()')) as number);
      // One keystroke in the search box until the table shows the one match (filter over 1,000 records).
      const needle = `NODE${String(500 + i).padStart(4, '0')}`;
      await page.getByLabel('Search').fill(needle.slice(0, -1));
      await rows.nth(9).waitFor();
      await rows.nth(10).waitFor({ state: 'detached' });
      const t0 = (await page.evaluate('performance.now()')) as number;
      await page.getByLabel('Search').press(needle.at(-1)!);
      await rows.nth(1).waitFor({ state: 'detached' });
      searches.push(((await page.evaluate('performance.now()')) as number) - t0);
      await page.getByLabel('Search').fill('');
    }
    const render = median(renders);
    const search = median(searches);
    const goals: Goal[] = [
      {
        name: 'bundle (all files, gzip)',
        target: '≤ 64 KiB',
        value: `${round(total.gzip / 1024)} KiB`,
        met: total.gzip <= 64 * 1024,
      },
      {
        name: `machines page shown, ${MACHINES} machines (median of ${RENDERS})`,
        target: '≤ 1000 ms',
        value: `${Math.round(render)} ms`,
        met: render <= 1000,
      },
      {
        name: `GET /api/v1/machines, ${MACHINES} machines, p99`,
        target: '≤ 100 ms',
        value: `${round(pct(sorted, 99))} ms`,
        met: pct(sorted, 99) <= 100,
      },
    ];
    return [
      {
        id: 'ui-bundle',
        title: 'Web UI: bundle size',
        columns: ['file', 'bytes', 'KiB', 'gzip KiB'],
        rows: sizeRows,
        goals: [goals[0]!],
        notes: [
          'esbuild, minified, one IIFE (Preact + htm + the app) and one CSS file; gzip -9 as a server or proxy would send it',
        ],
      },
      {
        id: 'ui-machines',
        title: `Web UI: ${MACHINES} machines`,
        columns: ['measure', 'median ms', 'min ms', 'max ms', 'p99 ms', 'runs'],
        rows: [
          {
            measure: 'page load to the first 100 rows shown (Chromium)',
            'median ms': round(render),
            'min ms': round(Math.min(...renders)),
            'max ms': round(Math.max(...renders)),
            'p99 ms': null,
            runs: RENDERS,
          },
          {
            measure: 'search keystroke to the table updated',
            'median ms': round(search),
            'min ms': round(Math.min(...searches)),
            'max ms': round(Math.max(...searches)),
            'p99 ms': null,
            runs: RENDERS,
          },
          {
            measure: `GET /api/v1/machines (${Math.round(api.bytes / 1024)} KiB JSON)`,
            'median ms': round(pct(sorted, 50)),
            'min ms': round(sorted[0]!),
            'max ms': round(sorted.at(-1)!),
            'p99 ms': round(pct(sorted, 99)),
            runs: API_REQUESTS,
          },
        ],
        goals: goals.slice(1),
        notes: [
          'page load: performance.now() (since navigation start) once the 100th row is visible, in a signed-in session; the search: from before the keystroke until the other rows are gone, Playwright round trips included',
          `GET /api/v1/machines answers all ${MACHINES} records uncompressed; the UI loads it once and then follows the event stream`,
          'the API is called over the veth from a second namespace, one keep-alive connection, 10 warm-up requests',
          `the table shows ${PAGE_ROWS} rows per page; rows re-render only when their own record changes`,
        ],
      },
    ];
  } finally {
    await browser.close();
    await stop(box);
    await topo.destroy();
    tmp.remove();
  }
}
