/**
 * esbuild: one CommonJS file for Node 24 (a SEA's main script must be CJS).
 *
 * - `BOOTBOX_BUILD` is replaced by `{version, commit, builtAt}` (firmware/version.ts).
 * - `import.meta.url`, `.dirname` and `.filename` become those of the bundle file
 *   (in a SEA: of the executable). Any other use of import.meta fails the build,
 *   since CJS output would silently turn it into `undefined`.
 * - The whole file is strict, as the ESM sources are in a checkout. CommonJS
 *   dependencies that never said "use strict" (raw-socket, and mqtt's debug, ms,
 *   mqtt-packet, ...) run strict too; their module code loads fine that way.
 * - raw-socket's `require("./build/Release/raw.node")` becomes
 *   `loadRawBinding()` from board/raw-addon.ts; any other `.node` file fails the build.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { BuildError } from './run.ts';

export interface BuildStamp {
  version: string;
  commit: string;
  builtAt: string;
}

export interface BundleOptions {
  root: string;
  entry: string;
  outfile: string;
  stamp: BuildStamp;
}

export interface BundleResult {
  bytes: number;
  inputs: number;
  warnings: string[];
}

export async function bundle(opts: BundleOptions): Promise<BundleResult> {
  const rawAddon = path.join(opts.root, 'board/raw-addon.ts');
  let result: esbuild.BuildResult<{ metafile: true }>;
  try {
    result = await esbuild.build({
      absWorkingDir: opts.root,
      entryPoints: [opts.entry],
      outfile: opts.outfile,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node24',
      metafile: true,
      logLevel: 'silent',
      define: {
        BOOTBOX_BUILD: JSON.stringify(opts.stamp),
        'import.meta.url': 'bootboxImportMetaUrl',
        'import.meta.dirname': '__dirname',
        'import.meta.filename': '__filename',
      },
      inject: [path.join(opts.root, 'image-build/cjs-shim.ts')],
      // ESM sources are strict; in one CJS file they stay so only if the file says it.
      banner: { js: '"use strict";' },
      plugins: [rawSocketPlugin(rawAddon)],
    });
  } catch (e) {
    const errors = (e as esbuild.BuildFailure).errors;
    if (!errors) throw e;
    throw new BuildError(`bundling ${opts.entry} failed:\n${await formatMessages(errors, 'error')}`);
  }
  const importMeta = result.warnings.filter((w) => w.id === 'empty-import-meta');
  if (importMeta.length > 0) {
    throw new BuildError(
      `import.meta other than url/dirname/filename cannot work in the CJS bundle:\n${await formatMessages(importMeta, 'error')}`,
    );
  }
  const out = result.metafile.outputs[path.relative(opts.root, opts.outfile)];
  return {
    bytes: out?.bytes ?? 0,
    inputs: Object.keys(result.metafile.inputs).length,
    warnings: result.warnings.length ? [await formatMessages(result.warnings, 'warning')] : [],
  };
}

async function formatMessages(msgs: esbuild.Message[], kind: 'error' | 'warning'): Promise<string> {
  return (await esbuild.formatMessages(msgs, { kind, color: false })).join('\n');
}

/** Points raw-socket's native require at the SEA-aware loader, and refuses every other native addon. */
function rawSocketPlugin(rawAddon: string): esbuild.Plugin {
  return {
    name: 'bootbox-raw-socket',
    setup(build) {
      build.onLoad({ filter: /[\\/]node_modules[\\/]raw-socket[\\/]index\.js$/ }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        const nativeRequire = /\brequire\s*\(\s*(["'])\.\/build\/Release\/raw\.node\1\s*\)/g;
        const found = source.match(nativeRequire)?.length ?? 0;
        if (found !== 1) {
          return {
            errors: [
              {
                text: `expected one require("./build/Release/raw.node") in ${args.path}, found ${found}: raw-socket changed, update image-build/bundle.ts`,
              },
            ],
          };
        }
        return {
          contents: source.replace(nativeRequire, `require(${JSON.stringify(rawAddon)}).loadRawBinding()`),
          loader: 'js',
          resolveDir: path.dirname(args.path),
        };
      });
      build.onResolve({ filter: /\.node$/ }, (args) => ({
        errors: [
          {
            text: `${args.importer} requires the native addon ${args.path}; a SEA cannot require it. Load it the way board/raw-addon.ts loads raw-socket's.`,
          },
        ],
      }));
    },
  };
}
