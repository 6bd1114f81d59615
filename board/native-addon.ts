/**
 * Opens a native addon (.node file) the way the shipped binary must: a Node SEA's
 * `require` knows only built-in modules, so the addon travels as a SEA asset
 * (image-build/build.ts puts it there), is written once to an exec-capable runtime
 * directory only this user can write, and is opened with process.dlopen. Failing
 * that, the files the caller names (next to the executable, or a checkout's build)
 * are tried in order.
 *
 * Used by board/raw-addon.ts (raw-socket) and board/sendfile-addon.ts.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sea from 'node:sea';
import { BootboxError } from '../firmware/core/errors.ts';

export interface NativeAddonSpec {
  /** What the addon is called in messages ("the raw-socket addon"). */
  name: string;
  /** SEA asset that holds it, e.g. `raw.node`. */
  asset: string;
  /** Stem of the extracted file: `<stem>-<hash>.node` in the runtime directory. */
  stem: string;
  /** Files tried after the SEA asset, in order (absolute paths). */
  fallbacks: string[];
}

export interface OpenedAddon {
  exports: unknown;
  /** The file it was opened from. */
  file: string;
}

/** The directory of the running executable (in a SEA) or of this module (bundle or checkout). */
export function addonHomeDir(): string {
  return sea.isSea() ? path.dirname(process.execPath) : import.meta.dirname;
}

/** Opens the addon; throws BootboxError ADDON_MISSING naming every file tried and why it failed. */
export function openNativeAddon(spec: NativeAddonSpec): OpenedAddon {
  const tried: string[] = [];
  if (sea.isSea()) {
    const asset = seaAsset(spec.asset);
    if (asset) {
      for (const dir of runtimeDirs()) {
        const file = path.join(dir, `${spec.stem}-${asset.hash}.node`);
        const why = extract(asset.bytes, asset.hash, spec.stem, dir, file);
        const opened = why === undefined ? dlopen(file) : why;
        if (typeof opened !== 'string') return opened;
        tried.push(`${file} (${opened})`);
      }
    } else {
      tried.push(`SEA asset "${spec.asset}" (not in this binary)`);
    }
  }
  for (const file of spec.fallbacks) {
    const opened = dlopen(file);
    if (typeof opened !== 'string') return opened;
    tried.push(`${file} (${opened})`);
  }
  throw new BootboxError('ADDON_MISSING', `cannot load ${spec.name}; tried: ${tried.join('; ')}`, { tried });
}

function seaAsset(name: string): { bytes: Buffer; hash: string } | undefined {
  let raw: ArrayBuffer;
  try {
    raw = sea.getRawAsset(name);
  } catch {
    return undefined;
  }
  const bytes = Buffer.from(raw);
  return { bytes, hash: sha256(bytes).slice(0, 16) };
}

/** Where an embedded addon may be written, best first. Each is a directory only this user can write. */
function runtimeDirs(): string[] {
  const uid = process.getuid?.() ?? 0;
  const dirs = ['/run/bootbox'];
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg)) dirs.push(path.join(xdg, 'bootbox'));
  dirs.push(path.join(os.tmpdir(), `bootbox-${uid}`));
  return [...new Set(dirs)];
}

/**
 * Makes sure `file` holds exactly `bytes`, in a directory nobody else can write.
 * Returns why not, or undefined on success.
 */
function extract(bytes: Buffer, hash: string, stem: string, dir: string, file: string): string | undefined {
  try {
    // Not recursive: the parent must exist (and Node 24's recursive mkdir spins forever under /proc).
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return `cannot create directory: ${errorCode(e)}`;
  }
  let unsafeDir: string | undefined;
  try {
    unsafeDir = unsafe(dir, 'directory');
  } catch (e) {
    unsafeDir = `cannot inspect directory: ${errorCode(e)}`;
  }
  if (unsafeDir) return unsafeDir;
  try {
    if (!unsafe(file, 'file') && sha256(readFileSync(file)).startsWith(hash)) return undefined;
  } catch {
    // absent or unreadable: write it
  }
  const tmp = path.join(dir, `.${stem}-${hash}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', 0o500);
    try {
      writeSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    return undefined;
  } catch (e) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was written
    }
    return `cannot write: ${errorCode(e)}`;
  }
}

/** Why `p` may not be trusted (a symlink, someone else's, writable by others), or undefined. */
function unsafe(p: string, kind: 'file' | 'directory'): string | undefined {
  const st = lstatSync(p);
  if (kind === 'directory' ? !st.isDirectory() : !st.isFile()) return `not a plain ${kind}`;
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== uid && st.uid !== 0) return `${kind} owned by uid ${st.uid}`;
  if (st.mode & 0o002) return `${kind} is world-writable`;
  if (st.uid !== uid && st.mode & 0o020) return `${kind} is group-writable`;
  return undefined;
}

/** Opens a native addon. Returns it, or why not. */
function dlopen(file: string): OpenedAddon | string {
  const mod = { exports: {} };
  try {
    process.dlopen(mod, file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const first = (e as Error).message.split('\n')[0];
    return code === 'ERR_DLOPEN_FAILED' ? first.replace(`${file}: `, '') : `${code ?? 'error'}: ${first}`;
  }
  return { exports: mod.exports, file };
}

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
