/**
 * `npm run build:ui`: the web UI, bundled and minified, offline, into web-ui/dist:
 *
 *   index.html            the page (no inline script or style: the box's CSP forbids them)
 *   assets/app.js         web-ui/src/main.ts and Preact + htm, one IIFE
 *   assets/app.css        web-ui/src/app.css
 *   assets/favicon.svg
 *
 * The box serves this folder at / and /assets/*. Prints each file's size (raw and gzip).
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { build, type Plugin } from 'esbuild';

const here = import.meta.dirname;
const dist = path.join(here, 'dist');
const assets = path.join(dist, 'assets');

/** Browsers of the last few years; the box is reached from an admin's workstation. */
const TARGET = ['chrome109', 'firefox115', 'safari16', 'edge109'];

/**
 * The minifier keeps template literals as written, and the htm templates carry their source
 * indentation. Indentation after a newline means nothing to htm (whitespace with a newline is
 * dropped or renders as one space) nor to the code around it, so it goes.
 */
const dropIndentation: Plugin = {
  name: 'drop-indentation',
  setup(b) {
    b.onLoad({ filter: /web-ui[\\/]src[\\/].*\.ts$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replace(/\n[ \t]+/g, '\n'),
      loader: 'ts',
    }));
  },
};

export async function buildUi(
  opts: { quiet?: boolean } = {},
): Promise<{ file: string; bytes: number; gzip: number }[]> {
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(assets, { recursive: true });
  await build({
    entryPoints: [path.join(here, 'src/main.ts')],
    outfile: path.join(assets, 'app.js'),
    bundle: true,
    minify: true,
    format: 'iife',
    target: TARGET,
    legalComments: 'none',
    plugins: [dropIndentation],
    logLevel: 'warning',
    // preact's debug helpers stay out of the box's bundle
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  await build({
    entryPoints: [path.join(here, 'src/app.css')],
    outfile: path.join(assets, 'app.css'),
    bundle: true,
    minify: true,
    target: TARGET,
    logLevel: 'warning',
  });
  copyFileSync(path.join(here, 'index.html'), path.join(dist, 'index.html'));
  copyFileSync(path.join(here, 'favicon.svg'), path.join(assets, 'favicon.svg'));
  const files = ['index.html', 'assets/app.js', 'assets/app.css', 'assets/favicon.svg'].map((f) => {
    const p = path.join(dist, f);
    return { file: f, bytes: statSync(p).size, gzip: gzipSync(readFileSync(p), { level: 9 }).length };
  });
  if (!opts.quiet) {
    for (const f of files)
      console.log(`web-ui/dist/${f.file.padEnd(20)} ${String(f.bytes).padStart(7)} B  gzip ${f.gzip} B`);
  }
  return files;
}

if (import.meta.main) {
  buildUi().catch((e) => {
    console.error(`build:ui: ${(e as Error).message}`);
    process.exit(1);
  });
}
