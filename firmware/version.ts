import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface BuildInfo {
  version: string;
  commit: string;
  builtAt?: string;
  arch: string;
  node: string;
  bundled: boolean;
}

declare const BOOTBOX_BUILD: { version: string; commit: string; builtAt?: string } | undefined;

/** Build facts: injected by the bundler in a shipped binary, read from the checkout otherwise. */
export function buildInfo(): BuildInfo {
  if (typeof BOOTBOX_BUILD !== 'undefined') {
    return { ...BOOTBOX_BUILD, arch: process.arch, node: process.versions.node, bundled: true };
  }
  const root = path.resolve(import.meta.dirname, '..');
  let version = '0.0.0';
  try {
    version = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version;
  } catch {
    // not in a checkout
  }
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['-C', root, 'rev-parse', '--short=12', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    // no git
  }
  return { version, commit, arch: process.arch, node: process.versions.node, bundled: false };
}

export function versionLine(b: BuildInfo = buildInfo()): string {
  return `bootbox ${b.version} linux-${b.arch} commit ${b.commit} (node ${b.node})`;
}
