/**
 * The image store on a real image volume, through a real `bootbox serve`: NTFS and exFAT
 * filesystems made here on loop devices (a label unique to each test, so no real disk is
 * touched), filled with WIMs made by wimcapture, found and mounted by the box (through FUSE:
 * this kernel has neither exfat nor ntfs3). The catalog is checked against wiminfo, served
 * WIMs are downloaded by a client on the private side and applied with wimapply, the
 * volume is pulled in the middle of a download and plugged in again, and a write-protected
 * volume refuses uploads.
 * Runs as root, serially: `ava --serial test/lab/image-volume.test.ts`.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { parseMountinfo, type VolumeFsType } from '../../board/storage/detect.ts';
import { type BoxLab, boxLab } from '../helpers/box.ts';
import { sleep } from '../helpers/netns.ts';

const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

const BOX = '10.77.0.1';
const CLIENT = '10.77.0.50/24';

// ---------------------------------------------------------------------------------------
// Source trees and WIMs, made once for every test

interface WimSpec {
  /** Where it goes on the volume. */
  rel: string;
  compress: string;
  solid?: boolean;
  boot?: boolean;
  /** One image per entry: name and source tree. */
  images: { name: string; src: string }[];
}

let work = '';
const SRC: Record<string, string> = {};
let SPECS: WimSpec[] = [];
/** Built WIM files, by their path on the volume. */
const BUILT = new Map<string, string>();

function writeTree(dir: string, files: Record<string, Buffer>): string {
  for (const [rel, data] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), data);
  }
  return dir;
}

const text = (n: number) => Buffer.from('bootbox image volume test line\n'.repeat(Math.ceil(n / 31)).slice(0, n));

test.before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'bbiv-'));
  SRC.a = writeTree(path.join(work, 'src-a'), {
    'Windows/System32/kernel.dll': randomBytes(300_000),
    'Windows/System32/drivers/etc/hosts': text(900),
    'Windows/inf/setup.inf': text(120_000),
    'Program Files/App/app.exe': randomBytes(200_000),
    'Program Files/App/readme.txt': text(5_000),
    'Users/Default/empty.dat': Buffer.alloc(0),
    'Users/Default/zeros.bin': Buffer.alloc(400_000),
  });
  fs.mkdirSync(path.join(SRC.a, 'Users/Public/Empty Folder'), { recursive: true });
  SRC.b = writeTree(path.join(work, 'src-b'), {
    'sources/boot.sdi': randomBytes(150_000),
    'sources/setup.txt': text(40_000),
    'Windows/System32/winpeshl.ini': text(64),
  });
  // The large image of the mid-transfer removal: incompressible, stored uncompressed.
  SRC.big = writeTree(path.join(work, 'src-big'), {
    'payload.bin': randomBytes(24 << 20),
    'note.txt': text(1000),
  });
  SPECS = [
    {
      rel: 'install-images/Lab/multi.wim',
      compress: 'LZX',
      images: [
        { name: 'Win A', src: SRC.a },
        { name: 'Win B', src: SRC.b },
        { name: 'Win C', src: SRC.a },
      ],
    },
    { rel: 'install-images/Lab/fast.wim', compress: 'XPRESS', images: [{ name: 'Win Fast', src: SRC.b }] },
    {
      rel: 'install-images/Other/solid.wim',
      compress: 'LZMS',
      solid: true,
      images: [
        { name: 'Solid A', src: SRC.a },
        { name: 'Solid B', src: SRC.b },
      ],
    },
    { rel: 'install-images/Other/big.wim', compress: 'none', images: [{ name: 'Big', src: SRC.big }] },
    { rel: 'boot-images/boot.wim', compress: 'LZX', boot: true, images: [{ name: 'WinPE', src: SRC.b }] },
  ];
  for (const s of SPECS) {
    const file = path.join(work, 'wims', s.rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    for (const [i, img] of s.images.entries()) {
      run(i === 0 ? 'wimcapture' : 'wimappend', [
        img.src,
        file,
        img.name,
        `--compress=${s.compress}`,
        '--threads=1',
        ...(s.solid ? ['--solid'] : []),
        ...(s.boot ? ['--boot'] : []),
      ]);
    }
    BUILT.set(s.rel, file);
  }
});

test.after.always(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

interface WiminfoImage {
  index: number;
  name: string;
  directoryCount: number;
  fileCount: number;
  totalBytes: number;
}

function wiminfo(file: string): { count: number; compression: string; images: WiminfoImage[] } {
  const out = run('wiminfo', [file]);
  const field = (block: string, k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(block)?.[1]?.trim() ?? '';
  const [head, ...blocks] = out.split(/^Index:/m);
  return {
    count: Number(field(head!, 'Image Count')),
    compression: field(head!, 'Compression').toLowerCase(),
    images: blocks.map((b) => {
      const block = `Index:${b}`;
      return {
        index: Number(field(block, 'Index')),
        name: field(block, 'Name'),
        directoryCount: Number(field(block, 'Directory Count')),
        fileCount: Number(field(block, 'File Count')),
        totalBytes: Number(field(block, 'Total Bytes')),
      };
    }),
  };
}

/** Every file and directory under `dir`, with the SHA-256 of each file. */
function treeOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const d of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) {
        out[`${r}/`] = 'dir';
        walk(r);
      } else {
        out[r] = createHash('sha256')
          .update(fs.readFileSync(path.join(dir, r)))
          .digest('hex');
      }
    }
  };
  walk('');
  return out;
}

/** The offset of the first byte of `a` that differs from `b` (-1: `a` is a prefix of `b`). */
function firstDifference(a: Buffer, b: Buffer): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

// ---------------------------------------------------------------------------------------
// The volume: a filesystem image on a loop device

const mounts = () => parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'));

/** FUSE processes serving a device (their command line names it). */
function fusePids(device: string): number[] {
  const out: number[] = [];
  for (const ent of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${ent}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (/(ntfs-3g|exfat-fuse)$/.test(argv[0] ?? '') && argv.includes(device)) out.push(Number(ent));
  }
  return out;
}

/**
 * Ends a FUSE driver left serving `device` (a box that died without unmounting). Its mount
 * is in the box's mount namespace, which the driver may be the last to hold: killed there,
 * it would wait forever for its own answer to the unmount (D state). So the mount is
 * unmounted from inside that namespace first; a driver stuck anyway has its connection
 * aborted through fusectl.
 */
async function releaseFuse(pid: number, device: string): Promise<void> {
  const alive = () => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readOr(`/proc/${pid}/status`));
  for (const m of parseMountinfo(readOr(`/proc/${pid}/mountinfo`))) {
    if (m.source !== device) continue;
    try {
      run('nsenter', ['-t', String(pid), '-m', 'umount', '-l', m.mountpoint]);
    } catch {}
  }
  await waitUntil('the FUSE driver exits', () => !alive(), 5000).catch(() => {});
  if (!alive()) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {}
  await waitUntil('the FUSE driver exits', () => !alive(), 2000).catch(() => {});
  if (!alive()) return;
  const [major, minor] = readOr(`/sys/class/block/${path.basename(device)}/dev`)
    .trim()
    .split(':')
    .map(Number);
  const conns = '/sys/fs/fuse/connections';
  try {
    if (!fs.existsSync(`${conns}/${(major! << 20) | minor!}`)) run('mount', ['-t', 'fusectl', 'none', conns]);
    fs.writeFileSync(`${conns}/${(major! << 20) | minor!}/abort`, '1');
  } catch {}
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

interface Volume {
  fsType: VolumeFsType;
  label: string;
  /** images.volumeRoot of the box. */
  root: string;
  image: string;
  /** Loop devices backed by the image now. */
  loops(): string[];
  attach(readOnly?: boolean): string;
}

/**
 * A 96 MiB NTFS or exFAT image labelled BBI<random>, attached as a loop device and filled
 * with the built WIMs through a temporary FUSE mount (unmounted again before the box
 * starts). Teardown kills FUSE processes still serving it (the box's mounts live in its
 * own mount namespace), unmounts anything left under the temp dir, and detaches the loops.
 */
async function volume(t: ExecutionContext, fsType: VolumeFsType): Promise<Volume> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bbiv-vol-'));
  const root = path.join(dir, 'media');
  fs.mkdirSync(root);
  // exFAT labels hold at most 11 characters.
  const label = `BBI${randomBytes(3).toString('hex').toUpperCase()}`;
  const image = path.join(dir, `${fsType}.img`);
  run('truncate', ['-s', '96M', image]);
  if (fsType === 'ntfs') run('mkntfs', ['-F', '-Q', '-L', label, image]);
  else run('mkfs.exfat', ['-L', label, image]);
  const loops = () =>
    run('losetup', ['-j', image])
      .split('\n')
      .map((l) => l.split(':')[0]!)
      .filter((d) => d.startsWith('/dev/'));
  t.teardown(async () => {
    for (const d of loops()) for (const pid of fusePids(d)) await releaseFuse(pid, d);
    const left = mounts()
      .filter((m) => m.mountpoint.startsWith(dir + path.sep))
      .sort((a, b) => b.mountpoint.length - a.mountpoint.length);
    for (const m of left) {
      try {
        run('umount', ['-l', m.mountpoint]);
      } catch {}
    }
    await sleep(100);
    for (const d of loops()) {
      try {
        run('losetup', ['-d', d]);
      } catch {}
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const attach = (readOnly = false) => run('losetup', [...(readOnly ? ['-r'] : []), '--find', '--show', image]);

  // Fill it through a FUSE mount of our own.
  const dev = attach();
  const mnt = path.join(dir, 'fill');
  fs.mkdirSync(mnt);
  run(fsType === 'ntfs' ? 'ntfs-3g' : 'mount.exfat-fuse', [dev, mnt]);
  try {
    for (const [rel, file] of BUILT) {
      fs.mkdirSync(path.dirname(path.join(mnt, rel)), { recursive: true });
      fs.copyFileSync(file, path.join(mnt, rel));
    }
  } finally {
    run('umount', [mnt]);
  }
  await waitUntil('the filling FUSE process has exited', () => fusePids(dev).length === 0);
  run('losetup', ['-d', dev]);
  await waitUntil('the filling loop device is detached', () => loops().length === 0);
  return { fsType, label, root, image, loops, attach };
}

// ---------------------------------------------------------------------------------------
// The box

interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: tests read deep into API documents
  body: any;
}

interface Box {
  lab: BoxLab;
  token: string;
  api(method: string, p: string, body?: unknown): Promise<Reply>;
  /** Downloads /images/<rel> into `out` from the client namespace: curl's exit code and the HTTP status. */
  download(rel: string, out: string, extra?: string[]): Promise<{ code: number; status: number; stderr: string }>;
  downloadSpawn(rel: string, out: string, extra: string[]): ChildProcess;
  catalogFile(): { images: Array<{ id: string; enabled: boolean; description: string }> };
}

async function startBox(t: ExecutionContext, v: Volume): Promise<Box> {
  const lab = await boxLab();
  t.teardown(async () => {
    // The box unmounts the volume when it stops; SIGKILL (in destroy) only if it hangs.
    const p = lab.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
    }
    // destroy() kills what is left; its own stop() would wait for an exit that already happened.
    lab.proc = undefined;
    await lab.destroy();
    if (!t.passed) for (const l of lab.log.slice(-80)) t.log(l.trimEnd());
  });
  lab.cli.ip('addr', 'add', CLIENT, 'dev', 'eth0');
  await lab.start({
    dhcp: { mode: 'off' },
    images: { volumeLabel: v.label, volumeRoot: v.root },
    ipv6: { answerRouterSolicitations: false },
  });
  const token = fs.readFileSync(path.join(lab.dataDir, 'api-token'), 'utf8').trim();
  const curl = async (args: string[]) => {
    try {
      const { stdout, stderr } = await lab.cli.exec('curl', ['-sS', '-m', '60', '-w', '\n%{http_code}', ...args], {
        timeoutMs: 90_000,
      });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
    }
  };
  return {
    lab,
    token,
    async api(method, p, body) {
      const r = await curl([
        '-X',
        method,
        '-H',
        `Authorization: Bearer ${token}`,
        ...(body !== undefined ? ['-H', 'Content-Type: application/json', '--data', JSON.stringify(body)] : []),
        `http://${BOX}:${lab.uiPort}${p}`,
      ]);
      const i = r.stdout.lastIndexOf('\n');
      const raw = r.stdout.slice(0, i);
      return { status: Number(r.stdout.slice(i + 1)), body: raw ? JSON.parse(raw) : undefined };
    },
    async download(rel, out, extra = []) {
      const r = await curl([...extra, '-o', out, `http://${BOX}:8081/images/${encodeURI(rel)}`]);
      return { code: r.code, status: Number(r.stdout.trim().split('\n').pop()), stderr: r.stderr };
    },
    downloadSpawn(rel, out, extra) {
      return lab.cli.spawn('curl', ['-sS', ...extra, '-o', out, `http://${BOX}:8081/images/${encodeURI(rel)}`]);
    },
    catalogFile() {
      return JSON.parse(fs.readFileSync(path.join(lab.dataDir, 'catalog.json'), 'utf8'));
    },
  };
}

interface ListedImage {
  id: string;
  enabled: boolean;
  available: boolean;
  description: string;
  unavailableReason?: string;
  hash?: string;
  source: { file: string; index?: number };
}

/** What the box lists must be exactly what wiminfo says of each WIM on the volume. */
function checkAgainstWiminfo(t: ExecutionContext, listed: Reply) {
  t.is(listed.status, 200);
  const images = listed.body.images as ListedImage[];
  const expected: string[] = [];
  for (const s of SPECS) {
    const info = wiminfo(BUILT.get(s.rel)!);
    const fileSize = fs.statSync(BUILT.get(s.rel)!).size;
    t.is(info.count, s.images.length, `${s.rel}: wiminfo image count`);
    const mine = images.filter((i) => i.source.file === s.rel);
    t.is(mine.length, info.count, `${s.rel}: one catalog entry per WIM image`);
    for (const w of info.images) {
      const kind = s.boot ? 'boot' : 'install';
      const group = s.boot ? 'boot' : s.rel.split('/')[1]!;
      const id = `${kind}/${group}/${w.name}`;
      expected.push(id);
      const i = mine.find((x) => x.id === id);
      t.truthy(i, `${id} is listed`);
      if (!i) continue;
      t.like(
        i,
        {
          name: w.name,
          group,
          kind,
          format: 'wim',
          // what a node receives: the whole file (wiminfo's "Size" leaves out the XML data at its end)
          size: fileSize,
          fileSize,
          available: true,
          enabled: true,
          source: { file: s.rel, index: w.index },
          wim: {
            compression: info.compression,
            fileCount: w.fileCount,
            directoryCount: w.directoryCount,
            totalBytes: w.totalBytes,
          },
        },
        id,
      );
    }
  }
  t.deepEqual(images.map((i) => i.id).sort(), expected.sort(), 'exactly the WIM images, nothing else');
  t.is(listed.body.count, expected.length);
  t.deepEqual(listed.body.problems, []);
  t.deepEqual(listed.body.volume, { state: 'attached' });
}

for (const fsType of ['ntfs', 'exfat'] as const) {
  test(`${fsType}: the box mounts the volume, lists what wiminfo says, serves intact WIMs, and follows the volume out and back`, async (t) => {
    const v = await volume(t, fsType);
    const dev = v.attach();
    const box = await startBox(t, v);
    const mp = path.join(v.root, v.label);

    // Mounted by the box, through FUSE (the box's mount is in its own mount namespace).
    const health = await box.api('GET', '/api/v1/health');
    t.like(health.body.services?.volume, {
      state: 'attached',
      mountpoint: mp,
    });
    t.is(fusePids(dev).length, 1, 'one FUSE process serves the volume');

    checkAgainstWiminfo(t, await box.api('GET', '/api/v1/images'));

    // A client on the private side downloads each WIM; wimapply of the download gives back
    // the source trees, and wiminfo agrees with the original.
    const dl = fs.mkdtempSync(path.join(os.tmpdir(), 'bbiv-dl-'));
    t.teardown(() => fs.rmSync(dl, { recursive: true, force: true }));
    for (const s of SPECS) {
      const out = path.join(dl, path.basename(s.rel));
      const r = await box.download(s.rel, out);
      t.is(r.code, 0, `${s.rel}: ${r.stderr}`);
      t.is(r.status, 200);
      t.is(sha256(out), sha256(BUILT.get(s.rel)!), `${s.rel}: the bytes served are the file's`);
      t.deepEqual(wiminfo(out).images, wiminfo(BUILT.get(s.rel)!).images);
      for (const [i, img] of s.images.entries()) {
        const applied = path.join(dl, `${path.basename(s.rel)}-${i + 1}`);
        run('wimapply', [out, String(i + 1), applied]);
        t.deepEqual(treeOf(applied), treeOf(img.src), `${s.rel} image ${i + 1} (${img.name}) equals its source`);
        fs.rmSync(applied, { recursive: true });
      }
      fs.rmSync(out);
    }
    // Only catalog files are served.
    const neighbour = await box.download('install-images/Lab', path.join(dl, 'x'));
    t.is(neighbour.status, 404);

    // Admin settings, kept in <data>/catalog.json.
    t.is((await box.api('PUT', '/api/v1/images/Win%20B', { enabled: false })).status, 200);
    const described = await box.api('PUT', `/api/v1/images/${encodeURIComponent('install/Lab/Win A')}`, {
      description: 'Win A, as the lab uses it',
    });
    t.is(described.status, 200, JSON.stringify(described.body));
    await waitUntil('catalog.json holds the settings', () => {
      const f = box.catalogFile();
      return f.images.some((i) => i.id === 'install/Lab/Win B' && !i.enabled);
    });
    const before = box.catalogFile();

    // The volume is pulled in the middle of a slow download. The file's pages are first
    // dropped from the page cache (once the box has hashed it): what is cached is still
    // read after the FUSE driver is gone, so without this the download could complete.
    const big = 'install-images/Other/big.wim';
    await waitUntil('every WIM is hashed', async () =>
      (await box.api('GET', '/api/v1/images')).body.images.every((i: { hash?: string }) => i.hash),
    );
    const pid = String(box.lab.proc!.pid);
    run('nsenter', ['-t', pid, '-m', 'dd', `if=${path.join(mp, big)}`, 'iflag=nocache', 'count=0', 'status=none']);
    const bigSize = fs.statSync(BUILT.get(big)!).size;
    const partial = path.join(dl, 'big.partial');
    const slow = box.downloadSpawn(big, partial, ['--limit-rate', '2M', '-m', '120']);
    let curlErr = '';
    slow.stderr?.on('data', (d) => (curlErr += d));
    const curlExit = new Promise<number | null>((r) => slow.once('exit', r));
    await waitUntil(
      'the slow download is under way',
      () => (fs.statSync(partial, { throwIfNoEntry: false })?.size ?? 0) > 1 << 20,
    );
    // losetup -d on a busy device detaches it when its last user lets go; killing the
    // FUSE driver is what a pulled drive does to the mount (every read fails).
    run('losetup', ['-d', dev]);
    for (const pid of fusePids(dev)) process.kill(pid, 'SIGKILL');
    const code = await curlExit;
    t.not(code, 0, 'curl reports the cut transfer as an error');
    t.regex(curlErr, /transfer closed with \d+ bytes remaining|Recv failure|Connection reset|partial/i);
    const got = fs.readFileSync(partial);
    t.true(got.length > 0 && got.length < bigSize, `a short transfer: ${got.length} of ${bigSize} bytes`);
    const want = fs.readFileSync(BUILT.get(big)!);
    t.is(firstDifference(got, want), -1, 'what arrived is the start of the file, not garbage');

    await waitUntil('the loop device is gone', () => v.loops().length === 0);
    let gone: Reply | undefined;
    await waitUntil('the API shows the volume gone', async () => {
      gone = await box.api('GET', '/api/v1/images');
      return gone.body.volume.state !== 'attached';
    });
    t.true(['missing', 'unavailable'].includes(gone!.body.volume.state));
    t.regex(gone!.body.volume.reason, /removed|stopped answering|no NTFS or exFAT volume labelled/);
    await waitUntil('the volume is missing', async () => {
      gone = await box.api('GET', '/api/v1/images');
      return gone.body.volume.state === 'missing';
    });
    for (const i of gone!.body.images) {
      t.false(i.available, `${i.id} is unavailable`);
      t.regex(i.unavailableReason ?? '', /.{10,}/, `${i.id} says why`);
    }
    t.is(gone!.body.count, 8, 'the records stay');
    const cut = await box.download('install-images/Lab/fast.wim', path.join(dl, 'fast.gone'));
    t.is(cut.status, 404, 'nothing is served while the volume is away');
    // Nothing in catalog.json is lost.
    await sleep(700);
    const during = box.catalogFile();
    t.deepEqual(
      during.images.map((i) => [i.id, i.enabled, i.description]),
      before.images.map((i) => [i.id, i.enabled, i.description]),
    );

    // Plugged in again: mounted again, the images back with their settings.
    const dev2 = v.attach();
    let back: Reply | undefined;
    await waitUntil('the images are available again', async () => {
      back = await box.api('GET', '/api/v1/images');
      return (
        back.body.volume.state === 'attached' && back.body.images.every((i: { available: boolean }) => i.available)
      );
    });
    t.is(fusePids(dev2).length, 1);
    const byId = new Map<string, ListedImage>(back!.body.images.map((i: ListedImage) => [i.id, i]));
    t.false(byId.get('install/Lab/Win B')?.enabled);
    t.true(byId.get('install/Lab/Win C')?.enabled);
    t.is(byId.get('install/Lab/Win A')?.description, 'Win A, as the lab uses it');
    t.is(back!.body.count, 8);
    t.is(byId.get('install/Lab/Win A')?.unavailableReason, undefined);
    const again = path.join(dl, 'fast.again');
    t.is((await box.download('install-images/Lab/fast.wim', again)).status, 200);
    t.is(sha256(again), sha256(BUILT.get('install-images/Lab/fast.wim')!));
  });
}

test('a write-protected volume: the catalog lists its images, uploads are refused and leave nothing', async (t) => {
  const v = await volume(t, 'exfat');
  const dev = v.attach(true);
  const box = await startBox(t, v);
  const listed = await box.api('GET', '/api/v1/images');
  checkAgainstWiminfo(t, listed);
  t.is(fusePids(dev).length, 1);
  // The boot tree (on the volume by default) cannot be seeded: said, and the box runs anyway.
  t.true(
    box.lab.log.some((l) => /boot tree not seeded: cannot create .*\/boot \(EROFS\)/.test(l)),
    'the box says why the boot tree is not seeded',
  );

  const wim = BUILT.get('install-images/Lab/fast.wim')!;
  const size = fs.statSync(wim).size;
  for (const body of [
    { filename: 'new.wim', size, group: 'Lab' },
    { filename: 'disk.img', size: 1 << 20, group: 'Linux', name: 'disk' },
  ]) {
    const r = await box.api('POST', '/api/v1/uploads', body);
    t.is(r.status, 409, `${body.filename}: ${JSON.stringify(r.body)}`);
    t.is(r.body.error.code, 'VOLUME_READ_ONLY');
    t.regex(r.body.error.message, /^the image volume is read-only \(creating upload of /);
  }
  t.deepEqual((await box.api('GET', '/api/v1/uploads')).body.uploads, []);
  // Nothing on the volume changed: its files are exactly the ones put there.
  const mp = path.join(v.root, v.label);
  const pid = box.lab.proc!.pid!;
  const files = run('nsenter', ['-t', String(pid), '-m', 'find', mp, '-mindepth', '1'])
    .split('\n')
    .map((f) => path.relative(mp, f))
    .sort();
  const want = new Set<string>();
  for (const rel of BUILT.keys()) {
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) want.add(parts.slice(0, i).join('/'));
  }
  t.deepEqual(files, [...want].sort());
  const again = await box.api('GET', '/api/v1/images');
  t.is(again.body.count, 8);
  t.true(again.body.images.every((i: { available: boolean }) => i.available));
});
