/**
 * The TEST deploy environment: a Debian kernel and a busybox initramfs that a netbooted
 * node runs to prove the boot path end to end (see init.sh for what it does).
 *
 *   node image-build/deploy-env/build.ts [--arch amd64|arm64] [--out DIR] [--force]
 *
 * writes DIR/vmlinuz, DIR/initrd.img and DIR/deploy-env.json (default DIR:
 * .cache/deploy-env, .cache/deploy-env-arm64 for arm64). ensureDeployEnv() does the same
 * for tests and for bootbox.
 *
 * The kernel is Debian's signed one (linux-image-<abi>-<arch>, built from linux-signed-*):
 * under Secure Boot, shim accepts it and the kernel accepts its own signed modules. arm64
 * packages are fetched on any host without adding the architecture: apt runs with its own
 * lists (ARM64_LISTS, which scripts/setup-system.sh fills too) and no package cache files.
 * The arm64 busybox lists its applets under qemu-aarch64-static (qemu-user-static).
 *
 *   apt-cache show linux-image-<arch> ─▶ its Depends: linux-image-<abi>-<arch> (= version)
 *   apt-get download ─▶ .cache/deploy-env/debs/*.deb ─▶ dpkg-deb -x (a scratch dir, removed)
 *   vmlinuz ──copy──▶ DIR/vmlinuz
 *   busybox + applet symlinks, NIC modules and their dependencies (from .modinfo),
 *   init.sh as /init, udhcpc.sh ──newc cpio (cpio.ts) + node:zlib gzip──▶ DIR/initrd.img
 *
 * Nothing outside Node and Debian's apt/dpkg is needed: the cpio writer is our own and
 * gzip is node:zlib. The build is skipped when DIR's outputs are newer than every file of
 * this directory and were built from the package versions apt offers now. The initramfs
 * is reproducible (fixed mtimes: SOURCE_DATE_EPOCH or 0).
 */
import {
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { BuildError, mib, requireTools, run, secondsSince, sha256File } from '../run.ts';
import { CpioWriter } from './cpio.ts';
import { moduleClosure, modulesDep } from './modules.ts';

const here = import.meta.dirname;
const root = path.resolve(here, '../..');
export const DEFAULT_CACHE_DIR = path.join(root, '.cache/deploy-env');

/** Debian architectures the deploy environment is built for. */
export type DeployArch = 'amd64' | 'arm64';

/** Where the outputs go unless told: one directory per architecture. */
export function defaultDir(arch: DeployArch): string {
  return arch === 'amd64' ? DEFAULT_CACHE_DIR : `${DEFAULT_CACHE_DIR}-${arch}`;
}

/**
 * NIC drivers for the lab's QEMU NICs: `-device e1000` and `-device virtio-net-pci` on x86;
 * virtio-net-pci on the arm64 `virt` machine.
 */
export const NIC_MODULES: Record<DeployArch, string[]> = {
  amd64: ['e1000', 'virtio_pci', 'virtio_net'],
  arm64: ['virtio_pci', 'virtio_net'],
};

/** apt's lists for arm64 packages on a host of another architecture (shared with scripts/setup-system.sh). */
export const ARM64_LISTS = '/var/cache/bootbox/arm64lists';
const LISTS_MAX_AGE_MS = 24 * 3600 * 1000;
/** Touched after each update of ARM64_LISTS (here and by scripts/setup-system.sh). */
const LISTS_STAMP = '.bootbox-updated';

export interface DebPackage {
  name: string;
  version: string;
}

export interface DeployEnv {
  arch: DeployArch;
  /** Absolute path of the kernel image. */
  kernel: string;
  /** Absolute path of the gzip'd newc initramfs. */
  initrd: string;
  /** Kernel release ("6.1.0-56-amd64", "6.1.0-56-arm64"). */
  version: string;
  packages: { kernel: DebPackage; busybox: DebPackage };
  /** Modules in the initramfs, in load order. */
  modules: string[];
  sha256: { kernel: string; initrd: string };
  size: { kernel: number; initrd: number };
  /** False when up-to-date outputs were reused. */
  built: boolean;
}

export interface EnsureOptions {
  /** Debian architecture of the kernel and busybox (default amd64). */
  arch?: DeployArch;
  /** Where vmlinuz, initrd.img and deploy-env.json go (default defaultDir(arch)). */
  outDir?: string;
  /** Where downloaded packages are kept (default defaultDir(arch)). */
  cacheDir?: string;
  /** Rebuild even when up to date. */
  force?: boolean;
  log?: (line: string) => void;
}

type Stamp = Omit<DeployEnv, 'kernel' | 'initrd' | 'built' | 'arch'> & { schema: 1; arch?: DeployArch };

const STAMP = 'deploy-env.json';
const pending = new Map<string, Promise<DeployEnv>>();

/** Builds the deploy environment unless it is up to date; concurrent calls for one outDir share the work. */
export function ensureDeployEnv(opts: EnsureOptions = {}): Promise<DeployEnv> {
  const outDir = path.resolve(opts.outDir ?? defaultDir(opts.arch ?? 'amd64'));
  let p = pending.get(outDir);
  if (!p) {
    p = ensure({ ...opts, outDir }).finally(() => pending.delete(outDir));
    pending.set(outDir, p);
  }
  return p;
}

async function ensure(opts: EnsureOptions & { outDir: string }): Promise<DeployEnv> {
  const log = opts.log ?? (() => {});
  const { outDir } = opts;
  const arch = opts.arch ?? 'amd64';
  const cacheDir = path.resolve(opts.cacheDir ?? defaultDir(arch));
  const kernel = path.join(outDir, 'vmlinuz');
  const initrd = path.join(outDir, 'initrd.img');
  const outputs = [kernel, initrd, path.join(outDir, STAMP)];
  const stamp = readStamp(path.join(outDir, STAMP), arch);
  let pkgs: Awaited<ReturnType<typeof resolvePackages>>;
  let apt: string[];
  try {
    requireTools('build the deploy environment', { 'apt-get': 'apt', 'apt-cache': 'apt', 'dpkg-deb': 'dpkg' });
    apt = await aptOptions(arch, log);
    pkgs = await resolvePackages(arch, apt);
  } catch (e) {
    // Without apt's lists an up-to-date build is still usable.
    if (opts.force || !stamp || !isFresh(stamp, stamp.packages.kernel, stamp.packages.busybox, outputs)) throw e;
    log(`deploy-env: ${(e as Error).message.split('\n')[0]}; using the existing build in ${rel(outDir)}`);
    return { ...stampFields(stamp), arch, kernel, initrd, built: false };
  }
  const { kernel: kernelPkg, busybox: busyboxPkg } = pkgs;
  const release = kernelPkg.name.replace(/^linux-image-/, '').replace(/-unsigned$/, '');

  if (!opts.force && stamp && isFresh(stamp, kernelPkg, busyboxPkg, outputs)) {
    log(`deploy-env: up to date (${release}, busybox ${busyboxPkg.version}) in ${rel(outDir)}`);
    return { ...stampFields(stamp), arch, kernel, initrd, built: false };
  }

  const t0 = performance.now();
  const debsDir = path.join(cacheDir, 'debs');
  mkdirSync(debsDir, { recursive: true });
  mkdirSync(outDir, { recursive: true });
  const kernelDeb = await debFile(kernelPkg, debsDir, apt, log);
  const busyboxDeb = await debFile(busyboxPkg, debsDir, apt, log);

  const work = path.join(cacheDir, `work-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const kroot = path.join(work, 'kernel');
    const broot = path.join(work, 'busybox');
    log(`deploy-env: unpacking ${path.basename(kernelDeb)}`);
    await run('dpkg-deb', ['-x', kernelDeb, kroot], { what: `unpack ${kernelPkg.name}` });
    await run('dpkg-deb', ['-x', busyboxDeb, broot], { what: 'unpack busybox-static' });

    const vmlinuz = path.join(kroot, 'boot', `vmlinuz-${release}`);
    const modDir = path.join(kroot, 'lib/modules', release);
    if (!exists(vmlinuz) || !exists(modDir)) {
      throw new BuildError(`${kernelPkg.name} has no boot/vmlinuz-${release} or lib/modules/${release}`);
    }
    let mods: ReturnType<typeof moduleClosure>;
    try {
      mods = moduleClosure(modDir, release, NIC_MODULES[arch]);
    } catch (e) {
      throw new BuildError(`${kernelPkg.name}: ${(e as Error).message}`);
    }
    const applets = (await listApplets(path.join(broot, 'bin/busybox'), arch)).split('\n').filter(Boolean);

    const cpio = initramfs({ release, kernelPkg, busyboxPkg, broot, mods, applets });
    const gz = gzipSync(cpio, { level: 9 });
    writeAtomic(initrd, gz);
    copyFileSync(vmlinuz, `${kernel}.${process.pid}.tmp`);
    renameSync(`${kernel}.${process.pid}.tmp`, kernel);

    const s: Stamp = {
      schema: 1,
      arch,
      version: release,
      packages: { kernel: kernelPkg, busybox: busyboxPkg },
      modules: mods.map((m) => m.name),
      sha256: { kernel: await sha256File(kernel), initrd: await sha256File(initrd) },
      size: { kernel: statSync(kernel).size, initrd: gz.length },
    };
    writeAtomic(path.join(outDir, STAMP), `${JSON.stringify(s, null, 2)}\n`);
    log(
      `deploy-env: built in ${secondsSince(t0)}: ${rel(kernel)} ${mib(s.size.kernel)}, ${rel(initrd)} ${mib(gz.length)} ` +
        `(cpio ${mib(cpio.length)}; ${applets.length} applets; modules ${s.modules.join(' ')})`,
    );
    return { ...stampFields(s), arch, kernel, initrd, built: true };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

interface InitramfsInput {
  release: string;
  kernelPkg: DebPackage;
  busyboxPkg: DebPackage;
  broot: string;
  mods: ReturnType<typeof moduleClosure>;
  applets: string[];
}

function initramfs(i: InitramfsInput): Buffer {
  const c = new CpioWriter(Number(process.env.SOURCE_DATE_EPOCH ?? 0));
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'run', 'tmp', 'root']) c.dir(d);
  // The kernel opens /dev/console for /init before /init can mount devtmpfs.
  c.charDevice('dev/console', 5, 1);
  c.file('bin/busybox', readFileSync(path.join(i.broot, 'bin/busybox')), 0o755);
  for (const a of i.applets) {
    if (a === 'bin/busybox' || a === 'linuxrc' || c.has(a)) continue;
    c.symlink(a, '/bin/busybox');
  }
  const modRoot = `lib/modules/${i.release}`;
  for (const m of i.mods) c.file(`${modRoot}/${m.path}`, m.data);
  c.file(`${modRoot}/modules.dep`, modulesDep(i.mods));
  c.file('etc/deploy-env/modules', i.mods.map((m) => `/${modRoot}/${m.path}\n`).join(''));
  c.file(
    'etc/deploy-env/build-info',
    `${i.kernelPkg.name} ${i.kernelPkg.version}, ${i.busyboxPkg.name} ${i.busyboxPkg.version}\n`,
  );
  c.file('etc/deploy-env/udhcpc.script', readFileSync(path.join(here, 'udhcpc.sh')), 0o755);
  c.file('init', readFileSync(path.join(here, 'init.sh')), 0o755);
  return c.toBuffer();
}

/** Debian's architecture of this machine. */
function hostArch(): DeployArch | string {
  return ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
}

/**
 * apt options for `arch`: none for the host's own; for another, its own lists (updated once
 * if empty) and no package cache files, so the host's apt state stays as it was.
 */
async function aptOptions(arch: DeployArch, log: (l: string) => void): Promise<string[]> {
  if (arch === hostArch()) return [];
  if (arch !== 'arm64') throw new BuildError(`the deploy environment for ${arch} can be built on an ${arch} host only`);
  const o = [
    '-o',
    'APT::Architecture=arm64',
    '-o',
    'APT::Architectures=arm64',
    '-o',
    `Dir::State::Lists=${ARM64_LISTS}`,
    '-o',
    'Dir::Cache::pkgcache=',
    '-o',
    'Dir::Cache::srcpkgcache=',
  ];
  // Lists older than a day may name package versions the mirror no longer has. apt dates the
  // list files by the archive, not by the download: the stamp file says when they were fetched.
  const stamp = path.join(ARM64_LISTS, LISTS_STAMP);
  const fresh = (() => {
    try {
      return Date.now() - statSync(stamp).mtimeMs < LISTS_MAX_AGE_MS;
    } catch {
      return false;
    }
  })();
  if (!fresh) {
    log(`deploy-env: apt-get update (arm64 lists in ${ARM64_LISTS})`);
    mkdirSync(path.join(ARM64_LISTS, 'partial'), { recursive: true });
    await run('apt-get', ['-q', ...o, 'update'], { what: 'update the arm64 package lists' });
    writeFileSync(stamp, '');
  }
  return o;
}

/** busybox --list-full; a foreign busybox runs under qemu-user (qemu-aarch64-static). */
async function listApplets(busybox: string, arch: DeployArch): Promise<string> {
  const what = 'list the busybox applets';
  if (arch === hostArch()) return (await run(busybox, ['--list-full'], { what })).stdout;
  const qemu = `qemu-${arch === 'arm64' ? 'aarch64' : 'x86_64'}-static`;
  requireTools(`list the applets of the ${arch} busybox`, { [qemu]: 'qemu-user-static' });
  return (await run(qemu, [busybox, '--list-full'], { what })).stdout;
}

/**
 * The versioned kernel package that linux-image-<arch> depends on now, and busybox-static,
 * with the versions apt would install. One apt-cache call: without a pkgcache.bin (as on
 * these machines) each call spends ~0.7 s rebuilding its cache.
 */
async function resolvePackages(arch: DeployArch, apt: string[]): Promise<{ kernel: DebPackage; busybox: DebPackage }> {
  const meta = `linux-image-${arch}`;
  const r = await run('apt-cache', [...apt, 'show', '--no-all-versions', meta, 'busybox-static'], {
    what: `find the current Debian ${arch} kernel and busybox-static`,
  }).catch((e: Error) => {
    throw new BuildError(`${e.message}\n(is apt's package list there? run apt-get update)`);
  });
  const records = new Map<string, string>();
  for (const rec of r.stdout.split(/\n\s*\n/)) {
    const name = /^Package:\s*(\S+)/m.exec(rec)?.[1];
    if (name && !records.has(name)) records.set(name, rec);
  }
  const field = (pkg: string, f: string) => new RegExp(`^${f}:\\s*(.+)$`, 'm').exec(records.get(pkg) ?? '')?.[1];
  const dep = new RegExp(`(linux-image-\\S+-${arch})(?:\\s*\\(=\\s*([^)\\s]+)\\))?`).exec(field(meta, 'Depends') ?? '');
  const bbVersion = field('busybox-static', 'Version');
  if (!dep || !bbVersion)
    throw new BuildError(`apt-cache show gave no kernel dependency or busybox version:\n${r.stdout}`);
  return {
    kernel: { name: dep[1]!, version: dep[2] ?? (await candidateVersion(dep[1]!, apt)) },
    busybox: { name: 'busybox-static', version: bbVersion.trim() },
  };
}

async function candidateVersion(pkg: string, apt: string[]): Promise<string> {
  const r = await run('apt-cache', [...apt, 'show', '--no-all-versions', pkg], {
    what: `find the version of ${pkg}`,
  }).catch(() => undefined);
  const version = r && /^Version:\s*(\S+)/m.exec(r.stdout)?.[1];
  if (!version) throw new BuildError(`apt knows no package ${pkg}: run apt-get update`);
  return version;
}

/** The .deb for `pkg` in debsDir, downloaded with apt-get if missing; older versions are removed. */
async function debFile(pkg: DebPackage, debsDir: string, apt: string[], log: (l: string) => void): Promise<string> {
  let found: string | undefined;
  for (const f of readdirSync(debsDir)) {
    if (!f.startsWith(`${pkg.name}_`) || !f.endsWith('.deb')) continue;
    const file = path.join(debsDir, f);
    const fields = await run('dpkg-deb', ['-f', file, 'Package', 'Version'], { what: `read ${f}` }).then(
      (r) => r.stdout,
      () => '',
    );
    if (fields.includes(`Package: ${pkg.name}\n`) && fields.includes(`Version: ${pkg.version}\n`)) {
      found = file;
    } else {
      rmSync(file, { force: true });
    }
  }
  if (found) return found;
  // Download into a private directory, then move: other processes may be doing the same.
  const tmp = path.join(debsDir, `.dl-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    log(`deploy-env: apt-get download ${pkg.name}=${pkg.version}`);
    await run('apt-get', ['-q', ...apt, '-o', 'APT::Sandbox::User=root', 'download', `${pkg.name}=${pkg.version}`], {
      cwd: tmp,
      what: `download ${pkg.name}`,
    });
    const f = readdirSync(tmp).find((x) => x.endsWith('.deb'));
    if (!f) throw new BuildError(`apt-get download ${pkg.name} left no .deb`);
    const dest = path.join(debsDir, f);
    renameSync(path.join(tmp, f), dest);
    return dest;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function readStamp(file: string, arch: DeployArch): Stamp | undefined {
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as Stamp;
    // Stamps without an arch were written by amd64-only builds.
    return s.schema === 1 && (s.arch ?? 'amd64') === arch ? s : undefined;
  } catch {
    return undefined;
  }
}

/** Outputs exist, are newer than every file of this directory, and come from these package versions. */
function isFresh(s: Stamp, k: DebPackage, b: DebPackage, outputs: string[]): boolean {
  const same = (x: DebPackage, y: DebPackage) => x.name === y.name && x.version === y.version;
  if (!same(s.packages.kernel, k) || !same(s.packages.busybox, b)) return false;
  const inputs = readdirSync(here).map((f) => statSync(path.join(here, f)).mtimeMs);
  const newestInput = Math.max(...inputs);
  return outputs.every((o) => exists(o) && statSync(o).mtimeMs > newestInput);
}

function stampFields(s: Stamp): Omit<DeployEnv, 'kernel' | 'initrd' | 'built' | 'arch'> {
  return { version: s.version, packages: s.packages, modules: s.modules, sha256: s.sha256, size: s.size };
}

function writeAtomic(file: string, data: Buffer | string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

const rel = (p: string) => path.relative(process.cwd(), p) || '.';

const USAGE = 'usage: node image-build/deploy-env/build.ts [--arch amd64|arm64] [--out DIR] [--force]';

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      arch: { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const arch = values.arch ?? 'amd64';
  if (arch !== 'amd64' && arch !== 'arm64')
    throw new BuildError(`--arch: must be amd64 or arm64 (got "${arch}")\n${USAGE}`);
  const env = await ensureDeployEnv({
    arch,
    outDir: values.out,
    force: values.force,
    log: (l) => process.stdout.write(`${l}\n`),
  });
  process.stdout.write(`kernel ${env.kernel}\ninitrd ${env.initrd}\nversion ${env.version}\n`);
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    const usage = (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    if (usage) process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    else process.stderr.write(`${e instanceof BuildError ? e.message : (e as Error).stack}\n`);
    process.exitCode = 1;
  });
}
