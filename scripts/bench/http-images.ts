/**
 * HTTP image serving: one large file of random bytes served by bootbox's HTTP boot server
 * and by nginx (sendfile on) from the same folder on loopback, fetched by curl with one
 * client and with 20 at once. Aggregate MiB/s and the CPU of each server process.
 *
 * bootbox's HttpBootServer runs in this process (its CPU is this process's, which
 * otherwise only waits for the curl children); nginx is a child with one worker.
 * BENCH_QUICK=1: 128 MiB instead of 1 GiB and fewer repetitions.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { loadSendfileAddon } from '../../board/sendfile-addon.ts';
import { systemClock } from '../../firmware/core/clock.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import { HttpBootServer } from '../../firmware/protocols/http-boot/server.ts';
import { FileResolver } from '../../firmware/protocols/tftp/file-resolver.ts';
import { procStats, stop, tmpDir } from './lab.ts';
import type { Section } from './report.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const MiB = 1024 * 1024;
const SIZE = (QUICK ? 128 : 1024) * MiB;
const CONCURRENT = 20;
const REPEATS = QUICK ? 3 : 7;
const FILE = 'image.bin';
const GOAL = 0.9;

interface Target {
  name: 'bootbox' | 'nginx';
  url: string;
  /** CPU seconds (user + system) used so far by the server process(es). */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

interface Run {
  server: string;
  clients: number;
  seconds: number;
  MiBps: number;
  cpuSeconds: number;
}

/** A random, incompressible file, written in 16 MiB pieces. */
function makeImage(file: string, size: number): void {
  const fd = openSync(file, 'w');
  const piece = Buffer.allocUnsafe(16 * MiB);
  try {
    for (let done = 0; done < size; done += piece.length) {
      randomFillSync(piece);
      writeSync(fd, piece, 0, Math.min(piece.length, size - done));
    }
  } finally {
    closeSync(fd);
  }
}

async function startBootbox(root: string): Promise<Target> {
  const files = new FileResolver(root);
  const none = { status: 404, body: 'not here\n' };
  const srv = new HttpBootServer({
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
    events: { emit() {} },
    clock: systemClock,
    log: silentLogger,
    loadSendfile: loadSendfileAddon,
  });
  await srv.start();
  return {
    name: 'bootbox',
    url: `http://127.0.0.1:${srv.port}/boot/${FILE}`,
    cpuSeconds: () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    },
    stop: () => srv.stop(),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The pids of a process and its children (nginx: master and worker). */
function processTree(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return [pid, ...kids.flatMap((k) => processTree(Number(k)))];
  } catch {
    return [pid];
  }
}

async function startNginx(root: string, work: string): Promise<Target> {
  const port = await freePort();
  const conf = path.join(work, 'nginx.conf');
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(work, d), { recursive: true });
  writeFileSync(
    conf,
    [
      'user root;',
      // One worker: the same one event loop as bootbox; the box has 2 cores and the curl
      // clients need the other one (the note in the report says so).
      'worker_processes 1;',
      'daemon off;',
      `pid ${path.join(work, 'nginx.pid')};`,
      `error_log ${path.join(work, 'error.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      `  access_log ${path.join(work, 'access.log')};`,
      '  sendfile on;',
      '  tcp_nopush on;',
      '  default_type application/octet-stream;',
      ...['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
        (d) => `  ${d === 'body' ? 'client_body' : d}_temp_path ${path.join(work, d)};`,
      ),
      `  server { listen 127.0.0.1:${port}; root ${root}; location / { } }`,
      '}',
      '',
    ].join('\n'),
  );
  const child = spawn('/usr/sbin/nginx', ['-p', work, '-e', path.join(work, 'error.log'), '-c', conf], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  await waitForPort(port, child);
  const pid = child.pid!;
  return {
    name: 'nginx',
    url: `http://127.0.0.1:${port}/${FILE}`,
    cpuSeconds: () => processTree(pid).reduce((s, p) => s + (procStats(p)?.cpuSeconds ?? 0), 0),
    stop: () => stop(child),
  };
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode} (see its error.log)`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not listen on 127.0.0.1:${port}`);
}

/** One curl download to /dev/null; resolves with what curl reports. */
function curl(url: string): Promise<{ code: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const c = spawn('curl', [
      '-sS',
      '--max-time',
      '600',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{size_download}',
      url,
    ]);
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.stderr.on('data', (d) => {
      err += d;
    });
    c.once('error', reject);
    c.once('close', (status) => {
      const [code = '0', bytes = '0'] = out.trim().split(' ');
      if (status !== 0) reject(new Error(`curl ${url} exited ${status}: ${err.trim()}`));
      else resolve({ code: Number(code), bytes: Number(bytes) });
    });
  });
}

/** sha256 of the body as curl receives it (checks that the server sends the file intact). */
function remoteSha256(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn('sh', ['-c', `curl -sS "$0" | sha256sum`, url]);
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.once('error', reject);
    c.once('close', () => resolve(out.split(' ')[0] ?? ''));
  });
}

function localSha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn('sha256sum', [file]);
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.once('error', reject);
    c.once('close', () => resolve(out.split(' ')[0] ?? ''));
  });
}

async function measure(target: Target, clients: number): Promise<Run> {
  const cpu0 = target.cpuSeconds();
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: clients }, () => curl(target.url)));
  const seconds = (performance.now() - t0) / 1000;
  const cpuSeconds = target.cpuSeconds() - cpu0;
  for (const r of results) {
    if (r.code !== 200 || r.bytes !== SIZE) {
      throw new Error(`${target.name}: a download answered ${r.code} with ${r.bytes} of ${SIZE} bytes`);
    }
  }
  return { server: target.name, clients, seconds, MiBps: (clients * SIZE) / MiB / seconds, cpuSeconds };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function run(): Promise<Section[]> {
  const files = tmpDir('bench-http-files-');
  const work = tmpDir('bench-http-nginx-');
  const targets: Target[] = [];
  const runs: Run[] = [];
  try {
    const image = path.join(files.dir, FILE);
    makeImage(image, SIZE);
    const want = await localSha256(image);
    targets.push(await startBootbox(files.dir), await startNginx(files.dir, work.dir));
    for (const t of targets) {
      const got = await remoteSha256(t.url);
      if (got !== want) throw new Error(`${t.name} sent a different body (sha256 ${got}, file ${want})`);
    }
    for (let rep = 0; rep < REPEATS; rep++) {
      for (const clients of [1, CONCURRENT]) {
        // Alternate which server goes first, so a change in the machine's load hits both.
        const order = rep % 2 === 0 ? targets : [...targets].reverse();
        for (const t of order) {
          const r = await measure(t, clients);
          runs.push(r);
          console.log(JSON.stringify({ rep, ...r, MiBps: Math.round(r.MiBps) }));
        }
      }
    }
  } finally {
    for (const t of targets) await t.stop().catch(() => {});
    files.remove();
    work.remove();
  }

  const rows: Section['rows'] = [];
  const fig: Record<string, number> = {};
  for (const clients of [1, CONCURRENT]) {
    for (const server of ['bootbox', 'nginx']) {
      const rs = runs.filter((r) => r.server === server && r.clients === clients);
      const mibps = median(rs.map((r) => r.MiBps));
      const cpuPerGiB = median(rs.map((r) => r.cpuSeconds / ((clients * SIZE) / 2 ** 30)));
      const cpuPct = median(rs.map((r) => (100 * r.cpuSeconds) / r.seconds));
      fig[`${server}/${clients}`] = mibps;
      rows.push({
        server,
        clients,
        runs: rs.length,
        MiBps: Math.round(mibps),
        minMiBps: Math.round(Math.min(...rs.map((r) => r.MiBps))),
        maxMiBps: Math.round(Math.max(...rs.map((r) => r.MiBps))),
        serverCpuPct: Math.round(cpuPct),
        cpuSecPerGiB: Number(cpuPerGiB.toFixed(3)),
      });
    }
  }
  const goal = (clients: number) => {
    const bb = fig[`bootbox/${clients}`] ?? 0;
    const ng = fig[`nginx/${clients}`] ?? 0;
    return {
      name: `${clients} client${clients > 1 ? 's' : ''}: bootbox vs nginx throughput`,
      target: `>= ${GOAL * 100}% of nginx (${Math.round(GOAL * ng)} MiB/s)`,
      value: `${Math.round(bb)} MiB/s = ${ng > 0 ? Math.round((100 * bb) / ng) : 0}%`,
      met: ng > 0 && bb >= GOAL * ng,
    };
  };
  return [
    {
      id: 'http-images',
      title: `HTTP image serving: ${SIZE / MiB} MiB file over loopback, bootbox vs nginx (sendfile)`,
      columns: ['server', 'clients', 'runs', 'MiBps', 'minMiBps', 'maxMiBps', 'serverCpuPct', 'cpuSecPerGiB'],
      rows,
      goals: [goal(1), goal(CONCURRENT)],
      notes: [
        `MiBps is the median over ${REPEATS} runs of the aggregate rate: clients x file size / wall time until the last client is done. The servers alternate which goes first.`,
        'Clients are curl processes writing to /dev/null. Each server sent the file intact first (sha256 of the received body).',
        'nginx runs worker_processes 1, sendfile on, tcp_nopush on: one event loop like bootbox. The machine has 2 cores and the curl clients need CPU too; with worker_processes auto nginx would take both cores and both servers would be client-bound.',
        "serverCpuPct is the server process's CPU time over the wall time (100 = one core); bootbox's is this bench process, which otherwise only waits for curl.",
      ],
    },
  ];
}
