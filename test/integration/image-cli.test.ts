/**
 * `bootbox image import|list|scan` as an admin runs it on the box: child processes of
 * bin/bootbox.mjs over a real store. WIMs made by wimcapture (checked against wiminfo), raw
 * disk images and standard input becoming chunked images, and the errors (exit codes,
 * one-line messages, nothing left in the store). With a box running (its pid file and its
 * API, here an image service and API server in this process), import rescans through it.
 */
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { imageRoutes } from '../../firmware/api/images-routes.ts';
import type { ApiServerOptions } from '../../firmware/api/server.ts';
import { systemClock } from '../../firmware/core/clock.ts';
import { createLogger } from '../../firmware/core/logger.ts';
import { ImageService } from '../../firmware/services/image-service.ts';
import { startApi } from '../helpers/api-server.ts';
import { makePki } from '../helpers/pki.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const NODE = path.join(ROOT, 'node_modules/.bin/node');
const CLI = path.join(ROOT, 'bin/bootbox.mjs');
const TOKEN = 'image-cli-test-token-0123456789';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `bootbox image …` to completion, with `input` on its standard input. */
function bootbox(args: string[], input?: Buffer): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [CLI, 'image', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

interface Store {
  root: string;
  data: string;
  images: string;
  /** The flags that locate this store. */
  flags: string[];
  src: string;
}

function store(t: ExecutionContext): Store {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bb-image-cli-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const data = path.join(root, 'data');
  const images = path.join(root, 'images');
  const src = path.join(root, 'src');
  const files: Record<string, Buffer> = {
    'Windows/System32/a.dll': crypto.randomBytes(40_000),
    'Windows/notes.txt': Buffer.from('text '.repeat(4000)),
    'empty.bin': Buffer.alloc(0),
  };
  for (const [rel, b] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
    fs.writeFileSync(path.join(src, rel), b);
  }
  return { root, data, images, src, flags: ['--data', data, '--images', images] };
}

/** A WIM with one image per name (wimcapture, then wimappend). */
function makeWim(file: string, src: string, names: string[], compress = 'XPRESS'): string {
  for (const [i, n] of names.entries()) {
    execFileSync(i === 0 ? 'wimcapture' : 'wimappend', [src, file, n, `--compress=${compress}`, '--threads=1'], {
      stdio: 'ignore',
    });
  }
  return file;
}

function wiminfoImages(file: string): { index: number; name: string }[] {
  const out = execFileSync('wiminfo', [file], { encoding: 'utf8' });
  return [...out.matchAll(/^Index:\s+(\d+)\s*\nName:\s+(.*)$/gm)].map((m) => ({
    index: Number(m[1]),
    name: m[2]!.trim(),
  }));
}

/** A raw disk image: data, then a sparse (zero) tail. */
function makeDisk(file: string, data: number, total: number): Buffer {
  const b = Buffer.concat([crypto.randomBytes(data), Buffer.alloc(total - data)]);
  fs.writeFileSync(file, b);
  return b;
}

/** Every path under `dir` (relative), dot-names included. */
function everything(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).map((p) => p.split(path.sep).join('/')).sort();
}

// biome-ignore lint/suspicious/noExplicitAny: tests read deep into the list document
type Listed = { imagesDir: string; images: any[] };

async function listJson(s: Store): Promise<Listed> {
  const r = await bootbox(['list', '--json', ...s.flags]);
  if (r.code !== 0) throw new Error(`image list --json: ${r.code} ${r.stderr}`);
  return JSON.parse(r.stdout) as Listed;
}

/** Exit 1 or 2 with exactly one line on stderr, `bootbox: …`. */
function oneLineError(t: ExecutionContext, r: Run, code: number, re: RegExp): void {
  t.is(r.code, code, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  t.is(lines.length, 1, `one line: ${r.stderr}`);
  t.regex(lines[0]!, /^bootbox: /);
  t.regex(lines[0]!, re);
}

test('import of WIMs: placed in install-images/<group>/ and boot-images/, listed with their images as wiminfo names them', async (t) => {
  const s = store(t);
  const wim = makeWim(path.join(s.root, 'win.wim'), s.src, ['Windows Pro', 'Windows Home'], 'LZX');
  const r = await bootbox(['import', wim, '--group', 'Lab', ...s.flags]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t')[0]),
    ['install/Lab/Windows Home', 'install/Lab/Windows Pro'],
  );
  const placed = path.join(s.images, 'install-images/Lab/win.wim');
  t.deepEqual(fs.readFileSync(placed), fs.readFileSync(wim), 'the file is copied whole');
  t.deepEqual(everything(path.join(s.images, 'install-images/Lab')), ['win.wim'], 'no partial copy left');

  const boot = makeWim(path.join(s.root, 'boot.wim'), s.src, ['WinPE x64']);
  const rb = await bootbox(['import', boot, '--kind', 'boot', ...s.flags]);
  t.is(rb.code, 0, rb.stderr);
  t.regex(rb.stdout, /^boot\/boot\/WinPE x64\twim\t/m);
  t.true(fs.existsSync(path.join(s.images, 'boot-images/boot.wim')));

  const listed = await listJson(s);
  t.is(listed.imagesDir, s.images);
  const size = fs.statSync(placed).size;
  for (const w of wiminfoImages(wim)) {
    const i = listed.images.find((x) => x.id === `install/Lab/${w.name}`);
    t.like(i, {
      name: w.name,
      group: 'Lab',
      kind: 'install',
      format: 'wim',
      size,
      enabled: true,
      available: true,
      source: { file: 'install-images/Lab/win.wim', index: w.index },
      wim: { compression: 'lzx' },
    });
  }
  t.deepEqual(listed.images.map((i) => i.id).sort(), [
    'boot/boot/WinPE x64',
    'install/Lab/Windows Home',
    'install/Lab/Windows Pro',
  ]);

  // The plain listing: one line per image, tab-separated.
  const plain = await bootbox(['list', ...s.flags]);
  t.is(plain.code, 0);
  t.deepEqual(plain.stdout.trim().split('\n'), [
    `boot/boot/WinPE x64\twim\tunknown\t${(fs.statSync(boot).size / 2 ** 20).toFixed(1)} MiB\tenabled`,
    `install/Lab/Windows Home\twim\tunknown\t${(size / 2 ** 20).toFixed(1)} MiB\tenabled`,
    `install/Lab/Windows Pro\twim\tunknown\t${(size / 2 ** 20).toFixed(1)} MiB\tenabled`,
  ]);

  // A WIM copied in by hand is found by scan; one removed by hand becomes unavailable.
  fs.mkdirSync(path.join(s.images, 'install-images/Other'));
  makeWim(path.join(s.images, 'install-images/Other/hand.wim'), s.src, ['By Hand'], 'none');
  fs.rmSync(path.join(s.images, 'boot-images/boot.wim'));
  const scan = await bootbox(['scan', ...s.flags]);
  t.is(scan.code, 0, scan.stderr);
  t.regex(scan.stdout, /^install\/Other\/By Hand\twim\t/m);
  t.regex(scan.stdout, /^boot\/boot\/WinPE x64\twim\t.*\tunavailable: its file boot-images\/boot.wim is no longer/m);
  const after = await listJson(s);
  t.true(after.images.find((i) => i.id === 'install/Other/By Hand')?.available);
  t.false(after.images.find((i) => i.id === 'boot/boot/WinPE x64')?.available);
});

test('import of raw disk images: chunked bundles with --arch, --description, --os; from standard input with --name', async (t) => {
  const s = store(t);
  const disk = path.join(s.root, 'debian12.img');
  makeDisk(disk, 300_000, 4 << 20);
  const r = await bootbox([
    'import',
    disk,
    '--group',
    'Linux',
    '--arch',
    'arm64',
    '--description',
    'Debian 12 for the arm nodes',
    ...s.flags,
  ]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^imported 4194304 bytes into \d+ chunks \(\d+ sparse\), \d+ bytes stored$/m);
  t.regex(r.stdout, /^install\/Linux\/debian12\tchunked\tarm64\t4\.0 MiB\tenabled$/m);
  const bundle = path.join(s.images, 'install-images/Linux/debian12.bbimg');
  t.deepEqual(everything(bundle), ['chunks.bin', 'info.json', 'manifest.json']);

  const piped = makeDisk(path.join(s.root, 'ignored'), 1 << 20, 3 << 20);
  const rp = await bootbox(['import', '-', '--name', 'from-pipe', '--group', 'Linux', ...s.flags], piped);
  t.is(rp.code, 0, rp.stderr);
  t.regex(rp.stdout, /^install\/Linux\/from-pipe\tchunked\tany\t3\.0 MiB\tenabled$/m);

  const listed = await listJson(s);
  t.like(
    listed.images.find((i) => i.id === 'install/Linux/debian12'),
    {
      format: 'chunked',
      architecture: 'arm64',
      description: 'Debian 12 for the arm nodes',
      os: 'linux',
      size: 4 << 20,
      source: { file: 'install-images/Linux/debian12.bbimg' },
    },
  );
  const fromPipe = listed.images.find((i) => i.id === 'install/Linux/from-pipe');
  t.like(fromPipe, { format: 'chunked', architecture: 'any', size: 3 << 20, available: true });
  t.regex(fromPipe.hash, /^sha256:[0-9a-f]{64}$/);
  t.deepEqual(
    everything(path.join(s.images, 'install-images/Linux')).filter((p) => !p.includes('/')),
    ['debian12.bbimg', 'from-pipe.bbimg'],
  );

  // A bundle rebuilt from the volume alone (a fresh data directory) keeps what import was told.
  const fresh = { ...s, flags: ['--data', path.join(s.root, 'data2'), '--images', s.images] };
  t.is((await bootbox(['scan', ...fresh.flags])).code, 0);
  t.like(
    (await listJson(fresh)).images.find((i) => i.id === 'install/Linux/debian12'),
    {
      architecture: 'arm64',
      description: 'Debian 12 for the arm nodes',
    },
  );
});

test('refused imports: exit 1 with one clear line, nothing left in the store', async (t) => {
  const s = store(t);
  const wim = makeWim(path.join(s.root, 'first.wim'), s.src, ['Shared Name']);
  t.is((await bootbox(['import', wim, '--group', 'Lab', ...s.flags])).code, 0);
  const before = everything(s.images);

  oneLineError(
    t,
    await bootbox(['import', path.join(s.root, 'nope.wim'), ...s.flags]),
    1,
    /image import: .*nope\.wim does not exist/,
  );

  // Another WIM with an image name the group has: refused before anything is copied.
  const dup = makeWim(path.join(s.root, 'second.wim'), s.src, ['Other Name', 'shared name']);
  oneLineError(
    t,
    await bootbox(['import', dup, '--group', 'Lab', ...s.flags]),
    1,
    /group "Lab" already has an image named "shared name"/,
  );
  // The same names in another group are fine.
  t.is((await bootbox(['import', dup, '--group', 'Other', ...s.flags])).code, 0);
  const withOther = everything(s.images);
  t.deepEqual(withOther, [...before, 'install-images/Other', 'install-images/Other/second.wim'].sort());

  // A truncated WIM: refused as invalid; no file, no partial copy, no new group directory.
  const cut = path.join(s.root, 'cut.wim');
  fs.writeFileSync(cut, fs.readFileSync(makeWim(path.join(s.root, 'whole.wim'), s.src, ['Cut'])).subarray(0, 20_000));
  oneLineError(
    t,
    await bootbox(['import', cut, '--group', 'Broken', ...s.flags]),
    1,
    /cut\.wim: .*(outside|truncated|short)/,
  );
  // Not a WIM at all.
  const junk = path.join(s.root, 'junk.wim');
  fs.writeFileSync(junk, crypto.randomBytes(5000));
  oneLineError(t, await bootbox(['import', junk, '--group', 'Broken', ...s.flags]), 1, /junk\.wim/);
  t.deepEqual(everything(s.images), withOther, 'no trace of the refused WIMs');
  // A disk image whose name is taken; an empty standard input.
  makeDisk(path.join(s.root, 'disk.img'), 1000, 1 << 20);
  t.is((await bootbox(['import', path.join(s.root, 'disk.img'), '--group', 'Linux', ...s.flags])).code, 0);
  const withDisk = everything(s.images);
  oneLineError(
    t,
    await bootbox(['import', path.join(s.root, 'disk.img'), '--group', 'Linux', ...s.flags]),
    1,
    /group "Linux" already has an image named "disk"/,
  );
  oneLineError(
    t,
    await bootbox(['import', '-', '--name', 'nothing', '--group', 'Empty', ...s.flags], Buffer.alloc(0)),
    1,
    /the source of image nothing is empty/,
  );
  t.deepEqual(everything(s.images), withDisk, 'refused imports leave nothing in the store');
  t.deepEqual((await listJson(s)).images.map((i) => i.id).sort(), [
    'install/Lab/Shared Name',
    'install/Linux/disk',
    'install/Other/Other Name',
    'install/Other/shared name',
  ]);
});

test('bad command lines: exit 2 naming the flag or argument, nothing touched', async (t) => {
  const s = store(t);
  const wim = makeWim(path.join(s.root, 'a.wim'), s.src, ['A']);
  const cases: [string[], RegExp][] = [
    [['import', wim, '--bogus', ...s.flags], /unknown flag '--bogus'/],
    [['import', ...s.flags], /import needs a file/],
    [['import', wim, 'b.wim', ...s.flags], /import takes one file \(got also "b\.wim"\)/],
    [['import', '-', ...s.flags], /importing from standard input needs --name/],
    [
      ['import', wim, '--arch', 'sparc', ...s.flags],
      /--arch must be one of x86, x64, arm, arm64, ia64, any \(got "sparc"\)/,
    ],
    [['import', wim, '--kind', 'rescue', ...s.flags], /--kind must be boot or install/],
    [['import', wim, '--kind', 'boot', '--group', 'Lab', ...s.flags], /--group is for install images/],
    [['import', wim, '--group', '../etc', ...s.flags], /--group must be 1-64 letters/],
    [['import', wim, '--os', 'plan9', ...s.flags], /--os must be windows or linux/],
    [['import', wim, '--name', 'X', ...s.flags], /--name is for disk images/],
    [['list', '--name', 'x', ...s.flags], /--name is not a flag of "image list"/],
    [['list', 'extra', ...s.flags], /list takes no arguments/],
    [['scan', '--json', ...s.flags], /--json is not a flag of "image scan"/],
    [['frob', ...s.flags], /unknown action "frob" \(try: import, list, scan\)/],
  ];
  for (const [args, re] of cases) oneLineError(t, await bootbox(args), 2, re);
  t.deepEqual(everything(s.images), [], 'nothing was written');
  t.false(fs.existsSync(path.join(s.data, 'catalog.json')));
  // An empty store lists as such.
  const empty = await bootbox(['list', ...s.flags]);
  t.is(empty.code, 0);
  t.regex(empty.stdout, /^no images in the catalog \(.*\); add one with: bootbox image import FILE$/m);
});

/** What the CLI finds of a running box: its image service and API (and, for it, the pid file). */
async function runningBox(t: ExecutionContext, s: Store, extra: Partial<ApiServerOptions> = {}) {
  const svc = new ImageService({
    imagesDir: s.images,
    dataDir: s.data,
    clock: systemClock,
    log: createLogger('test', { level: 'error' }),
    events: { emit: () => {} },
  });
  await svc.start();
  t.teardown(() => svc.stop());
  const { api, port } = await startApi(t, { tokens: [TOKEN], routes: imageRoutes(svc.catalog, svc.uploads), ...extra });
  return { svc, api, port };
}

test('with a box running: import and scan go through its API, and its refusal is a clear error', async (t) => {
  const s = store(t);
  const { svc, port } = await runningBox(t, s);
  // What the CLI sees of a running box: its pid file, and its API on 127.0.0.1:ui.port.
  fs.writeFileSync(path.join(s.data, 'bootbox.pid'), `${process.pid}\n`);
  const config = (token: string) => {
    const file = path.join(s.root, `config-${token.slice(0, 4)}.json`);
    fs.writeFileSync(
      file,
      JSON.stringify({ dataDir: s.data, imagesDir: s.images, ui: { port }, api: { tokens: [token] } }),
    );
    return file;
  };
  const good = config(TOKEN);

  const wim = makeWim(path.join(s.root, 'live.wim'), s.src, ['Live One', 'Live Two']);
  const r = await bootbox(['import', wim, '--group', 'Lab', '--config', good]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^install\/Lab\/Live One\twim\t/m);
  // The running box rescanned (its catalog in memory knows the images) …
  t.true(svc.catalog.get('install/Lab/Live One')?.available);
  t.true(svc.catalog.get('install/Lab/Live Two')?.available);

  fs.mkdirSync(path.join(s.images, 'install-images/Lab'), { recursive: true });
  makeWim(path.join(s.images, 'install-images/Lab/copied.wim'), s.src, ['Copied']);
  const scan = await bootbox(['scan', '--config', good]);
  t.is(scan.code, 0, scan.stderr);
  t.regex(scan.stdout, /^install\/Lab\/Copied\twim\t/m);
  t.true(svc.catalog.get('Copied')?.available);

  // … and a box that refuses (another token) is named in a one-line error.
  const refused = await bootbox(['scan', '--config', config('wrong-token-wrong-token-0000')]);
  oneLineError(t, refused, 1, /the running box refused POST \/api\/v1\/images\/rescan/);
  // A stale pid file (no such process): the store is scanned directly.
  fs.writeFileSync(path.join(s.data, 'bootbox.pid'), '999999999\n');
  const direct = await bootbox(['scan', '--config', config('wrong-token-wrong-token-0000')]);
  t.is(direct.code, 0, direct.stderr);
  t.regex(direct.stdout, /^install\/Lab\/Copied\twim\t/m);
});

test('with a box running HTTPS (ui.tls): the command line talks to it over its local socket', async (t) => {
  const s = store(t);
  const pki = makePki(path.join(s.root, 'pki'));
  const socketPath = path.join(s.data, 'api.sock');
  const { svc, api, port } = await runningBox(t, s, {
    tls: { cert: fs.readFileSync(pki.serverCert), key: fs.readFileSync(pki.serverKey) },
    socketPath,
  });
  t.is(fs.statSync(socketPath).mode & 0o777, 0o600);
  fs.writeFileSync(path.join(s.data, 'bootbox.pid'), `${process.pid}\n`);
  const file = path.join(s.root, 'config-tls.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      dataDir: s.data,
      imagesDir: s.images,
      ui: { port, tls: { cert: pki.serverCert, key: pki.serverKey } },
      api: { tokens: [TOKEN] },
    }),
  );
  fs.mkdirSync(path.join(s.images, 'install-images/Lab'), { recursive: true });
  makeWim(path.join(s.images, 'install-images/Lab/tls.wim'), s.src, ['Over The Socket']);
  const scan = await bootbox(['scan', '--config', file]);
  t.is(scan.code, 0, scan.stderr);
  t.regex(scan.stdout, /^install\/Lab\/Over The Socket\twim\t/m);
  t.true(svc.catalog.get('Over The Socket')?.available, 'the running box rescanned');
  await api.stop();
  t.false(fs.existsSync(socketPath), 'the socket goes with the box');
});
