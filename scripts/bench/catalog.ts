/**
 * Catalog scan of an image store holding 200 images: 100 WIM files (50 with two images,
 * 50 with one; copies of two wimcapture'd WIMs, each copy's images renamed with
 * `wiminfo --image-property NAME=…`) and 50 chunked images (importRawImage), spread over
 * groups. Timed: the first scan into an empty catalog (cold), rescans with nothing changed
 * (warm), and the background hashing of every WIM file, on a plain directory and on an
 * exFAT volume mounted by FUSE from a loop device (remounted before its cold scan, so
 * nothing of it is cached). Also GET /api/v1/images over a real socket with the 200 images.
 * BENCH_QUICK=1: smaller WIM files (the image count stays 200).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { imageRoutes } from '../../firmware/api/images-routes.ts';
import { ApiServer } from '../../firmware/api/server.ts';
import { systemClock } from '../../firmware/core/clock.ts';
import { createLogger } from '../../firmware/core/logger.ts';
import { importRawImage } from '../../firmware/images/chunked/importer.ts';
import { writeBundleInfo } from '../../firmware/images/readers.ts';
import { ImageService } from '../../firmware/services/image-service.ts';
import { tmpDir } from './lab.ts';
import type { Section } from './report.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const MiB = 1024 * 1024;
const WIM_FILES = 100;
const BUNDLES = 50;
const GROUPS = 10;
/** Random (incompressible) bytes in each WIM's tree: what the hashing has to read. */
const WIM_PAYLOAD = (QUICK ? 0.5 : 2) * MiB;
const TOKEN = 'bench-catalog-token-0123456789';

const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function tree(dir: string, extra: boolean): string {
  mkdirSync(path.join(dir, 'Windows/System32'), { recursive: true });
  writeFileSync(path.join(dir, 'Windows/System32/payload.bin'), randomBytes(WIM_PAYLOAD));
  writeFileSync(path.join(dir, 'Windows/setup.log'), 'bootbox catalog bench line\n'.repeat(4000));
  if (extra) writeFileSync(path.join(dir, 'Windows/extra.txt'), 'second image\n'.repeat(100));
  return dir;
}

interface Built {
  dir: string;
  images: number;
  wimFiles: number;
  wimBytes: number;
  bundles: number;
  seconds: number;
}

/** Builds the store under `dir`: install-images/G<n>/…wim and install-images/L<n>/….bbimg. */
async function buildStore(work: string): Promise<Built> {
  const t0 = performance.now();
  const dir = path.join(work, 'store');
  const base1 = path.join(work, 'base1.wim');
  const base2 = path.join(work, 'base2.wim');
  const a = tree(path.join(work, 'src-a'), false);
  const b = tree(path.join(work, 'src-b'), true);
  sh('wimcapture', [a, base1, 'Base', '--compress=LZX']);
  sh('wimcapture', [a, base2, 'Base 1', '--compress=LZX']);
  sh('wimappend', [b, base2, 'Base 2', '--compress=LZX']);
  let images = 0;
  let wimBytes = 0;
  for (let i = 0; i < WIM_FILES; i++) {
    const group = `G${i % GROUPS}`;
    const two = i % 2 === 0;
    const dest = path.join(dir, 'install-images', group, `win${i}.wim`);
    mkdirSync(path.dirname(dest), { recursive: true });
    copyFileSync(two ? base2 : base1, dest);
    for (let n = 1; n <= (two ? 2 : 1); n++) {
      sh('wiminfo', [dest, String(n), '--image-property', `NAME=Windows ${i}-${n}`]);
      images++;
    }
    wimBytes += statSync(dest).size;
  }
  const raw = path.join(work, 'disk.img');
  writeFileSync(raw, Buffer.concat([randomBytes(256 * 1024), Buffer.alloc(4 * MiB - 256 * 1024)]));
  for (let j = 0; j < BUNDLES; j++) {
    const destDir = path.join(dir, 'install-images', `L${j % 5}`);
    mkdirSync(destDir, { recursive: true });
    const r = await importRawImage(raw, destDir, { name: `disk${j}` });
    await writeBundleInfo(r.dir, { architecture: 'x64', os: 'linux', description: `disk image ${j}` });
    images++;
  }
  return {
    dir,
    images,
    wimFiles: WIM_FILES,
    wimBytes,
    bundles: BUNDLES,
    seconds: (performance.now() - t0) / 1000,
  };
}

interface Timing {
  cold: { ms: number; images: number };
  warm: { ms: number[] };
  hashing: { ms: number; bytes: number };
  api?: { ms: number[]; bytes: number };
}

const log = createLogger('bench', { level: 'error' });

/** Cold scan, hashing until settled, then warm rescans (and the API when asked). */
async function measure(imagesDir: string, dataDir: string, withApi: boolean): Promise<Timing> {
  const svc = new ImageService({ imagesDir, dataDir, clock: systemClock, log, events: { emit: () => {} } });
  await svc.catalog.load();
  try {
    const t0 = performance.now();
    const cold = await svc.catalog.scan();
    const coldMs = performance.now() - t0;
    if (cold.problems.length) throw new Error(`scan problems: ${JSON.stringify(cold.problems.slice(0, 3))}`);
    // The hashing the scan queued starts when the scan ends.
    const h0 = performance.now();
    await svc.catalog.hashesSettled();
    const hashMs = performance.now() - h0;
    const wims = new Set(svc.catalog.list().filter((i) => i.format === 'wim'));
    const unhashed = [...wims].filter((i) => !i.hash);
    if (unhashed.length) throw new Error(`${unhashed.length} WIM images without a hash after hashing settled`);
    const hashedBytes = [...new Set([...wims].map((i) => i.source.file))]
      .map((f) => statSync(path.join(imagesDir, f)).size)
      .reduce((x, y) => x + y, 0);
    const warm: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t1 = performance.now();
      const r = await svc.catalog.scan();
      warm.push(performance.now() - t1);
      if (r.added || r.removed || r.images !== cold.images)
        throw new Error(`a rescan changed the catalog: ${JSON.stringify(r)}`);
    }
    const out: Timing = {
      cold: { ms: coldMs, images: cold.images },
      warm: { ms: warm },
      hashing: { ms: hashMs, bytes: hashedBytes },
    };
    if (withApi) out.api = await timeApi(svc, cold.images);
    return out;
  } finally {
    await svc.stop();
  }
}

/** GET /api/v1/images over loopback, one request at a time (keep-alive), after 10 warm-up requests. */
async function timeApi(svc: ImageService, images: number): Promise<{ ms: number[]; bytes: number }> {
  const api = new ApiServer({
    port: 0,
    hosts: ['127.0.0.1'],
    tokens: [TOKEN],
    routes: imageRoutes(svc.catalog, svc.uploads),
    log,
  });
  await api.start();
  try {
    const port = Number(
      String((api.status().listen as string[])[0])
        .split(':')
        .pop(),
    );
    const url = `http://127.0.0.1:${port}/api/v1/images`;
    const ms: number[] = [];
    let bytes = 0;
    for (let k = 0; k < 110; k++) {
      const t0 = performance.now();
      const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
      const body = await res.text();
      const dt = performance.now() - t0;
      if (res.status !== 200) throw new Error(`GET /api/v1/images: ${res.status} ${body.slice(0, 200)}`);
      if (k === 0 && (JSON.parse(body) as { count: number }).count !== images) throw new Error('wrong image count');
      bytes = body.length;
      if (k >= 10) ms.push(dt);
    }
    return { ms, bytes };
  } finally {
    await api.stop();
  }
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const r1 = (x: number) => Number(x.toFixed(1));

/** An exFAT filesystem on a loop device holding a copy of the store, mounted by FUSE. */
function exfatVolume(work: string, store: string) {
  const image = path.join(work, 'exfat.img');
  const bytes = Number(sh('du', ['-sb', store]).split('\t')[0]);
  sh('truncate', ['-s', String(Math.ceil((bytes * 1.3 + 64 * MiB) / MiB) * MiB), image]);
  sh('mkfs.exfat', ['-L', `BBC${randomBytes(3).toString('hex').toUpperCase()}`, image]);
  const dev = sh('losetup', ['--find', '--show', image]).trim();
  const mp = path.join(work, 'exfat');
  mkdirSync(mp);
  const mount = () => sh('mount.exfat-fuse', ['-o', 'nosuid,nodev,noatime', dev, mp]);
  const umount = () => {
    try {
      sh('umount', [mp]);
    } catch {
      try {
        sh('umount', ['-l', mp]);
      } catch {}
    }
  };
  const t0 = performance.now();
  try {
    mount();
    sh('cp', ['-a', `${store}/.`, mp]);
  } catch (e) {
    umount();
    sh('losetup', ['-d', dev]);
    throw e;
  }
  const copySeconds = (performance.now() - t0) / 1000;
  return {
    mp,
    copySeconds,
    /** Unmounted and mounted again: nothing of the volume is left in the caches. */
    remount() {
      umount();
      mount();
    },
    destroy() {
      umount();
      try {
        sh('losetup', ['-d', dev]);
      } catch {}
    },
  };
}

export async function run(): Promise<Section[]> {
  const work = tmpDir('bench-catalog-');
  const rows: Section['rows'] = [];
  const notes: string[] = [];
  try {
    const built = await buildStore(work.dir);
    const count = readdirSync(path.join(built.dir, 'install-images')).length;
    console.log(
      `store: ${built.images} images (${built.wimFiles} WIM files, ${(built.wimBytes / MiB).toFixed(0)} MiB; ${built.bundles} chunked) in ${count} groups, built in ${built.seconds.toFixed(1)} s`,
    );
    notes.push(
      `Store: ${built.images} images = ${built.wimFiles} WIM files (50 with 2 images, 50 with 1; ${(built.wimBytes / MiB).toFixed(0)} MiB in all) + ${built.bundles} chunked images, in ${count} groups; built in ${built.seconds.toFixed(1)} s.`,
      'Cold = the first scan into an empty catalog (every WIM header and XML read, every manifest read and checked). Warm = a rescan with nothing changed (every file is read again; the hashes are kept). Hashing = from the end of the cold scan until every WIM file is hashed (SHA-256, one file at a time, in the background; it starts when the scan ends).',
      'Timings are wall-clock on a shared 2-vCPU VM; the exFAT loop device is backed by a file in the page cache, so what the exFAT rows add is the FUSE path, not disk I/O (a USB drive adds its own latency and read rate).',
    );
    const stores: { name: string; dir: string; prepare?: () => void }[] = [{ name: 'plain directory', dir: built.dir }];
    let vol: ReturnType<typeof exfatVolume> | undefined;
    if (process.getuid?.() === 0) {
      try {
        vol = exfatVolume(work.dir, built.dir);
        notes.push(
          `exFAT: a loop device mounted by mount.exfat-fuse; the store copied onto it in ${vol.copySeconds.toFixed(1)} s, remounted before the cold scan.`,
        );
        stores.push({ name: 'exFAT (FUSE, loop device)', dir: vol.mp, prepare: () => vol!.remount() });
      } catch (e) {
        notes.push(`exFAT volume skipped: ${(e as Error).message.split('\n')[0]}`);
      }
    } else {
      notes.push('exFAT volume skipped: needs root (loop device and FUSE mount).');
    }
    try {
      for (const [k, s] of stores.entries()) {
        s.prepare?.();
        const t = await measure(s.dir, path.join(work.dir, `data-${k}`), k === 0);
        const warmMed = pct(t.warm.ms, 50);
        rows.push(
          {
            store: s.name,
            phase: 'cold scan',
            images: t.cold.images,
            ms: r1(t.cold.ms),
            imagesPerS: Math.round((t.cold.images / t.cold.ms) * 1000),
            MBps: null,
          },
          {
            store: s.name,
            phase: 'warm rescan (median of 5)',
            images: t.cold.images,
            ms: r1(warmMed),
            imagesPerS: Math.round((t.cold.images / warmMed) * 1000),
            MBps: null,
          },
          {
            store: s.name,
            phase: `hashing of ${WIM_FILES} WIM files`,
            images: t.cold.images - BUNDLES,
            ms: r1(t.hashing.ms),
            imagesPerS: null,
            MBps: r1(t.hashing.bytes / 1e6 / (t.hashing.ms / 1000)),
          },
        );
        if (t.api) {
          rows.push({
            store: s.name,
            phase: `GET /api/v1/images, p50 (p95 ${r1(pct(t.api.ms, 95))} ms; ${(t.api.bytes / 1024).toFixed(0)} KiB)`,
            images: t.cold.images,
            ms: r1(pct(t.api.ms, 50)),
            imagesPerS: null,
            MBps: null,
          });
        }
        for (const r of rows.slice(-4)) if (r.store === s.name) console.log(JSON.stringify(r));
      }
    } finally {
      vol?.destroy();
    }
    return [
      {
        id: 'catalog',
        title: `Catalog scan: ${built.images} images (WIM and chunked)`,
        columns: ['store', 'phase', 'images', 'ms', 'imagesPerS', 'MBps'],
        rows,
        goals: [],
        notes,
      },
    ];
  } finally {
    work.remove();
  }
}
