/**
 * Which file a TFTP request names, and whether it may be served. Two steps:
 * `normalizeRequestPath` is pure path logic; `FileResolver.resolve` checks the
 * file system (realpath inside the root, a regular file) and opens it.
 *
 * Rules (STYLE: never accept a raw client path):
 * - `\` is a separator (Windows boot managers ask for `\Boot\x64\wdsnbp.com`).
 * - A `..` segment is refused outright, wherever it is.
 * - A leading `/` is dropped, unless the whole path is an absolute path inside
 *   the root, which is then taken relative to the root (`/srv/boot/x` -> `x`).
 *   Since `..` is refused, what remains always stays in the root by name.
 * - Symlinks may be used inside the root; one whose target is outside is refused.
 * - Only regular files: directories, devices, FIFOs and sockets are refused
 *   before they are opened (opening a FIFO or a tape device has effects).
 * - A missing file answers ERROR 1 at once: pxelinux probes many names.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TftpErrorCode } from './codec.ts';

export type RefusalReason =
  | 'bad-name'
  | 'traversal'
  | 'not-found'
  | 'symlink-escape'
  | 'not-regular-file'
  | 'unreadable'
  | 'io-error';

export interface PathRefusal {
  kind: 'refused';
  reason: RefusalReason;
  /** The TFTP ERROR code the client gets. */
  errorCode: number;
  /** Text for the ERROR packet (short, reveals nothing about the host). */
  message: string;
}

/** Each refusal's ERROR code and wire text, in one table. */
export const REFUSALS: Record<RefusalReason, { errorCode: number; message: string }> = {
  'bad-name': { errorCode: TftpErrorCode.FileNotFound, message: 'File not found' },
  'not-found': { errorCode: TftpErrorCode.FileNotFound, message: 'File not found' },
  traversal: { errorCode: TftpErrorCode.AccessViolation, message: 'Access violation' },
  'symlink-escape': { errorCode: TftpErrorCode.AccessViolation, message: 'Access violation' },
  'not-regular-file': { errorCode: TftpErrorCode.AccessViolation, message: 'Not a regular file' },
  unreadable: { errorCode: TftpErrorCode.AccessViolation, message: 'Access violation' },
  'io-error': { errorCode: TftpErrorCode.NotDefined, message: 'Read error' },
};

export function refusal(reason: RefusalReason): PathRefusal {
  return { kind: 'refused', reason, ...REFUSALS[reason] };
}

export type NormalizedPath = { kind: 'ok'; relative: string } | PathRefusal;

/**
 * Pure: the request's name as a path relative to the root (`/`-separated, no
 * empty, `.` or `..` segment), or a refusal. `root` must be absolute.
 */
export function normalizeRequestPath(raw: string, roots: string | readonly string[]): NormalizedPath {
  // U+FFFD marks bytes that were not UTF-8; control characters name nothing we serve.
  if (raw.length === 0 || /[\u0000-\u001f\u007f\ufffd]/.test(raw)) return refusal('bad-name');
  const s = raw.replace(/\\/g, '/');
  if (s.split('/').includes('..')) return refusal('traversal');
  let rest = s;
  if (s.startsWith('/')) {
    // An absolute path inside the root (by its configured or its real name) is taken relative to it.
    for (const root of typeof roots === 'string' ? [roots] : roots) {
      const base = root.endsWith('/') ? root.slice(0, -1) : root;
      if (base !== '' && (s === base || s.startsWith(base + '/'))) {
        rest = s.slice(base.length);
        break;
      }
    }
  }
  const parts = rest.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) return refusal('not-regular-file');
  return { kind: 'ok', relative: parts.join('/') };
}

export interface ResolvedFile {
  kind: 'ok';
  /** Relative name inside the root. */
  relative: string;
  /** Real path (symlinks resolved). */
  path: string;
  /** Open, read-only; the caller owns it and must close it. */
  fd: number;
  size: number;
  mtimeMs: number;
  dev: number;
  ino: number;
}

export class FileResolver {
  readonly root: string;
  private realRoot: string | undefined;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  async resolve(raw: string): Promise<ResolvedFile | PathRefusal> {
    const realRoot = await this.getRealRoot();
    const norm = normalizeRequestPath(raw, realRoot ? [this.root, realRoot] : this.root);
    if (norm.kind !== 'ok') return norm;
    if (!realRoot) return refusal('not-found');
    const full = path.join(this.root, norm.relative);
    let real: string;
    try {
      real = await fs.promises.realpath(full);
    } catch (e) {
      return refusal(errnoRefusal(e));
    }
    if (real !== realRoot && !real.startsWith(realRoot.endsWith('/') ? realRoot : realRoot + '/')) {
      return refusal('symlink-escape');
    }
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(real);
    } catch (e) {
      return refusal(errnoRefusal(e));
    }
    if (!st.isFile()) return refusal('not-regular-file');
    let fd: number;
    try {
      // O_NOFOLLOW: the real path has no symlink left; one appearing now is a race we refuse.
      // O_NONBLOCK: should a FIFO be swapped in after the stat, open must not hang.
      fd = await openFd(real, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (e) {
      return refusal(errnoRefusal(e));
    }
    let fst: fs.Stats;
    try {
      fst = await fstatFd(fd);
    } catch {
      fs.close(fd, () => {});
      return refusal('io-error');
    }
    if (!fst.isFile() || fst.ino !== st.ino || fst.dev !== st.dev) {
      fs.close(fd, () => {});
      return refusal('not-regular-file');
    }
    return {
      kind: 'ok',
      relative: norm.relative,
      path: real,
      fd,
      size: fst.size,
      mtimeMs: fst.mtimeMs,
      dev: fst.dev,
      ino: fst.ino,
    };
  }

  private async getRealRoot(): Promise<string | undefined> {
    if (this.realRoot) return this.realRoot;
    try {
      this.realRoot = await fs.promises.realpath(this.root);
    } catch {
      return undefined;
    }
    return this.realRoot;
  }
}

function errnoRefusal(e: unknown): RefusalReason {
  switch ((e as NodeJS.ErrnoException).code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ENAMETOOLONG':
      return 'not-found';
    case 'EACCES':
    case 'EPERM':
      return 'unreadable';
    case 'ELOOP':
      return 'symlink-escape';
    default:
      return 'io-error';
  }
}

function openFd(p: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(p, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function fstatFd(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
}
