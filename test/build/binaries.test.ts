/**
 * The shipped executables (image-build/build.ts): what `npm run build` makes, for
 * both architectures, and that each one loads its embedded raw-socket and sendfile addons.
 *
 * The build always runs first (a warm build takes seconds), so these tests never
 * judge a stale dist/. Besides dist/bootbox-linux-*, the probe entry
 * (image-build/probe-entry.ts), bundled and injected the same way into
 * dist/probe/, reports which file the addon was loaded from; the tests use it to
 * walk the loader's fallbacks: runtime dir, tmpdir, next to the binary, none.
 *
 * Runs as root (CI does): raw sockets, and private mount namespaces for noexec dirs.
 * arm64 runs under qemu-aarch64-static with the cross toolchain's sysroot.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DIST = path.join(ROOT, 'dist');
const PROBE = path.join(DIST, 'probe');
const NODE = path.join(ROOT, 'node_modules/.bin/node');
const QEMU = ['qemu-aarch64-static'];
const QEMU_ENV = { QEMU_LD_PREFIX: '/usr/aarch64-linux-gnu' };
const BUILD_TIMEOUT_MS = 600_000;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => {
      stdout += b;
    });
    child.stderr.on('data', (b) => {
      stderr += b;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs a built executable of either arch (arm64 through qemu-user). */
function exe(arch: 'x64' | 'arm64', file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return arch === 'x64' ? run(file, args, { env }) : run(QEMU[0], [file, ...args], { env: { ...env, ...QEMU_ENV } });
}

const sha16 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16);

function tmpDir(t: { teardown(fn: () => void): void }, mode = 0o755): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'bootbox-build-test-'));
  chmodSync(d, mode);
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A copy of the executable alone in a fresh directory: no raw-<arch>.node beside it to fall back on. */
function alone(t: { teardown(fn: () => void): void }, file: string): string {
  const copy = path.join(tmpDir(t), path.basename(file));
  copyFileSync(file, copy);
  chmodSync(copy, 0o755);
  return copy;
}

/**
 * Runs a shell script in a private mount namespace (unshare -m), so it may mount
 * noexec tmpfs over the runtime directories without touching the host.
 */
function inMountNs(script: string, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return run('unshare', ['--mount', '--propagation', 'private', 'sh', '-ec', script], { env });
}

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
let commit = '';

test.before('npm run build, and the probe build', async (t) => {
  t.timeout(BUILD_TIMEOUT_MS);
  commit = (await run('git', ['rev-parse', '--short=12', 'HEAD'])).stdout.trim();
  const build = await run('npm', ['run', 'build']);
  t.log(build.stdout.trim().split('\n').slice(-6).join('\n'));
  if (build.code !== 0) throw new Error(`npm run build failed (${build.code}):\n${build.stdout}\n${build.stderr}`);
  const probe = await run('npm', [
    'run',
    'build',
    '--',
    '--entry',
    'image-build/probe-entry.ts',
    '--name',
    'bootbox-probe',
    '--out',
    'dist/probe',
  ]);
  if (probe.code !== 0) throw new Error(`probe build failed (${probe.code}):\n${probe.stdout}\n${probe.stderr}`);
});

for (const [arch, magic] of [
  ['x64', /ELF 64-bit LSB .*x86-64/],
  ['arm64', /ELF 64-bit LSB .*ARM aarch64/],
] as const) {
  test(`dist/bootbox-linux-${arch}, raw-${arch}.node and sendfile-${arch}.node are ${arch} ELF files`, async (t) => {
    for (const f of [`bootbox-linux-${arch}`, `raw-${arch}.node`, `sendfile-${arch}.node`]) {
      const r = await run('file', ['-b', path.join(DIST, f)]);
      t.regex(r.stdout, magic, f);
    }
  });

  test(`bootbox-linux-${arch} version: package version, ${arch}, this commit`, async (t) => {
    const r = await exe(arch, path.join(DIST, `bootbox-linux-${arch}`), ['version']);
    t.is(r.code, 0, r.stderr);
    t.true(r.stdout.startsWith(`bootbox ${pkg.version} linux-${arch} commit ${commit}`), r.stdout);
  });

  test(`bootbox-linux-${arch} selftest raw: its embedded addon opens a raw socket bound to lo`, async (t) => {
    const r = await exe(arch, alone(t, path.join(DIST, `bootbox-linux-${arch}`)), ['selftest', 'raw', '--iface', 'lo']);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^raw ok lo\b/);
  });

  test(`bootbox-linux-${arch} selftest sendfile: its embedded sendfile addon serves a file to itself over loopback`, async (t) => {
    const hash = sha16(path.join(DIST, `sendfile-${arch}.node`));
    const r = await exe(arch, alone(t, path.join(DIST, `bootbox-linux-${arch}`)), ['selftest', 'sendfile']);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^sendfile ok \d+ bytes sha256 [0-9a-f]{16} from /);
    t.true(r.stdout.trim().endsWith(`from /run/bootbox/sendfile-${hash}.node`), r.stdout);
  });

  test(`probe ${arch}: the addon comes from the SEA asset, extracted to /run/bootbox`, async (t) => {
    const hash = sha16(path.join(PROBE, `raw-${arch}.node`));
    const r = await exe(arch, alone(t, path.join(PROBE, `bootbox-probe-linux-${arch}`)), ['addon']);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.trim(), `addon ok /run/bootbox/raw-${hash}.node`);
  });
}

test('selftest raw on an unknown interface fails with exit 2 (SO_BINDTODEVICE is really applied)', async (t) => {
  const r = await exe('x64', path.join(DIST, 'bootbox-linux-x64'), ['selftest', 'raw', '--iface', 'nosuch0']);
  t.is(r.code, 2);
  t.regex(r.stderr, /nosuch0/);
});

test('probe: /run/bootbox noexec → the addon is extracted under $TMPDIR/bootbox-<uid>', async (t) => {
  const bin = alone(t, path.join(PROBE, 'bootbox-probe-linux-x64'));
  const tmp = tmpDir(t);
  const hash = sha16(path.join(PROBE, 'raw-x64.node'));
  const r = await inMountNs(
    `mkdir -p /run/bootbox; mount -t tmpfs -o noexec,mode=0700 tmpfs /run/bootbox; "${bin}" addon`,
    {
      TMPDIR: tmp,
      XDG_RUNTIME_DIR: '',
    },
  );
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), `addon ok ${tmp}/bootbox-0/raw-${hash}.node`);
});

test('probe: not root → /run/bootbox is not writable, $TMPDIR/bootbox-<uid> is used', async (t) => {
  const bin = alone(t, path.join(PROBE, 'bootbox-probe-linux-x64'));
  const tmp = tmpDir(t, 0o1777);
  const hash = sha16(path.join(PROBE, 'raw-x64.node'));
  const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', bin, 'addon'], {
    env: { TMPDIR: tmp, XDG_RUNTIME_DIR: '' },
  });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), `addon ok ${tmp}/bootbox-65534/raw-${hash}.node`);
});

test('probe: no exec-capable runtime dir → raw-<arch>.node next to the executable', async (t) => {
  const tmp = tmpDir(t);
  const r = await inMountNs(
    `mkdir -p /run/bootbox; mount -t tmpfs -o noexec,mode=0700 tmpfs /run/bootbox; mount -t tmpfs -o noexec tmpfs "${tmp}"; "${PROBE}/bootbox-probe-linux-x64" addon`,
    { TMPDIR: tmp, XDG_RUNTIME_DIR: '' },
  );
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), `addon ok ${PROBE}/raw-x64.node`);
});

test('probe: nowhere to load from → ADDON_MISSING naming every path tried and why', async (t) => {
  const bin = alone(t, path.join(PROBE, 'bootbox-probe-linux-x64'));
  const tmp = tmpDir(t);
  // A world-writable directory where the loader would write: it must be refused, not used.
  mkdirSync(path.join(tmp, 'bootbox-0'));
  chmodSync(path.join(tmp, 'bootbox-0'), 0o777);
  const r = await inMountNs(
    `mkdir -p /run/bootbox; mount -t tmpfs -o noexec,mode=0700 tmpfs /run/bootbox; "${bin}" addon`,
    {
      TMPDIR: tmp,
      XDG_RUNTIME_DIR: '',
    },
  );
  t.is(r.code, 1);
  t.regex(r.stderr, /^error ADDON_MISSING: cannot load the raw-socket addon; tried: /);
  t.regex(r.stderr, /\/run\/bootbox\/raw-[0-9a-f]{16}\.node \(failed to map segment/);
  t.regex(r.stderr, new RegExp(`${tmp}/bootbox-0/raw-[0-9a-f]{16}\\.node \\(directory is world-writable\\)`));
  t.true(r.stderr.includes(`${path.dirname(bin)}/raw-x64.node (cannot open shared object file`), r.stderr);
});

test('plain bundle under node: the addon is raw-<arch>.node next to the bundle', async (t) => {
  const r = await run(NODE, [path.join(PROBE, 'bootbox-probe.cjs'), 'addon']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), `addon ok ${PROBE}/raw-x64.node`);
});

test('checkout (no bundle): raw-socket loads its own build', async (t) => {
  const r = await run(NODE, ['image-build/probe-entry.ts', 'raw', '--iface', 'lo']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), 'raw ok lo');
});

test('build --bundle-only writes only the bundle, which runs under node', async (t) => {
  const out = tmpDir(t);
  const b = await run(NODE, ['image-build/build.ts', '--bundle-only', '--out', out]);
  t.is(b.code, 0, b.stderr);
  const r = await run(NODE, [path.join(out, 'bootbox.cjs'), 'version']);
  t.true(r.stdout.startsWith(`bootbox ${pkg.version} linux-x64 commit ${commit}`), r.stdout + r.stderr);
});

test('build: bad flag → exit 2 with usage', async (t) => {
  const r = await run(NODE, ['image-build/build.ts', '--arch', 'sparc']);
  t.is(r.code, 2);
  t.regex(r.stderr, /^build: --arch sparc: use x64, arm64 or all/);
});

test('build: without the aarch64 cross compiler → a message naming it, no stack trace', async (t) => {
  const bin = tmpDir(t);
  // A PATH with everything the x64 side needs but none of the aarch64-linux-gnu tools.
  for (const tool of ['npm', 'git', 'tar', 'make', 'python3', 'strip']) {
    const found = (await run('sh', ['-c', `command -v ${tool}`])).stdout.trim();
    if (found) await run('ln', ['-s', found, path.join(bin, tool)]);
  }
  const out = tmpDir(t);
  const r = await run(NODE, ['image-build/build.ts', '--arch', 'arm64', '--out', out], {
    env: { PATH: `${path.dirname(NODE)}:${bin}` },
  });
  t.is(r.code, 1);
  t.regex(r.stderr, /missing aarch64-linux-gnu-gcc, aarch64-linux-gnu-g\+\+, aarch64-linux-gnu-ar/);
  t.regex(r.stderr, /apt-get install gcc-aarch64-linux-gnu g\+\+-aarch64-linux-gnu binutils-aarch64-linux-gnu/);
  t.notRegex(r.stderr, /^\s+at /m);
});

test('the web UI ships beside the binaries (dist/web-ui), where a bundled box serves it from', (t) => {
  const index = readFileSync(path.join(DIST, 'web-ui', 'index.html'), 'utf8');
  t.regex(index, /assets\/app\.js/);
  t.true(statSync(path.join(DIST, 'web-ui', 'assets', 'app.js')).size > 10_000);
  t.notRegex(index, /<script>[^<]/, 'no inline script (the CSP forbids it)');
});
