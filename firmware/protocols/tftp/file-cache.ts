/**
 * Hot boot files in memory: first stages, menus, small kernels. A least
 * recently used cache bounded in bytes; an entry is valid only for the exact
 * version it was read from (device, inode, size, mtime), so a replaced or
 * rewritten file is read again on the next request. Loads of the same version
 * are shared by concurrent requests (a boot storm reads each file once).
 */
import fs from 'node:fs';
import { SourceError } from './file-source.ts';

export interface FileVersion {
  /** The resolved (real) path. */
  path: string;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

export interface FileCacheOptions {
  /** Total bytes kept (default 64 MiB). */
  budgetBytes?: number;
  /** Files above this are never cached (default 16 MiB). */
  maxFileBytes?: number;
}

interface Entry {
  version: FileVersion;
  bytes: Promise<Buffer>;
  size: number;
}

export interface FileCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  invalidations: number;
  bytes: number;
  entries: number;
}

export class FileCache {
  readonly budgetBytes: number;
  readonly maxFileBytes: number;
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  private invalidations = 0;

  constructor(opts: FileCacheOptions = {}) {
    this.budgetBytes = opts.budgetBytes ?? 64 * 1024 * 1024;
    this.maxFileBytes = Math.min(opts.maxFileBytes ?? 16 * 1024 * 1024, this.budgetBytes);
  }

  /** Whether a file of this size is served from memory. */
  admits(size: number): boolean {
    return size <= this.maxFileBytes;
  }

  /**
   * The file's bytes, from memory or read now through `fd` (which stays the
   * caller's). `variant` names a derived form (e.g. 'netascii') built by `derive`.
   */
  get(version: FileVersion, fd: number, variant?: { name: string; derive: (b: Buffer) => Buffer }): Promise<Buffer> {
    const key = variant ? `${version.path}\0${variant.name}` : version.path;
    const hit = this.entries.get(key);
    if (hit && sameVersion(hit.version, version)) {
      this.hits++;
      // Least recently used order: re-insert at the end.
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.bytes;
    }
    if (hit) {
      this.invalidations++;
      this.drop(key, hit);
    }
    this.misses++;
    const load = variant ? readWhole(fd, version.size).then(variant.derive) : readWhole(fd, version.size);
    const entry: Entry = { version, bytes: load, size: version.size };
    this.entries.set(key, entry);
    this.bytes += entry.size;
    load.then(
      (b) => {
        // The derived form may be larger than the file.
        if (this.entries.get(key) === entry) {
          this.bytes += b.length - entry.size;
          entry.size = b.length;
          this.evict();
        }
      },
      () => {
        if (this.entries.get(key) === entry) this.drop(key, entry);
      },
    );
    this.evict();
    return load;
  }

  get stats(): FileCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      invalidations: this.invalidations,
      bytes: this.bytes,
      entries: this.entries.size,
    };
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  private evict(): void {
    for (const [key, e] of this.entries) {
      if (this.bytes <= this.budgetBytes) break;
      this.evictions++;
      this.drop(key, e);
    }
  }

  private drop(key: string, e: Entry): void {
    this.entries.delete(key);
    this.bytes -= e.size;
  }
}

function sameVersion(a: FileVersion, b: FileVersion): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** Reads exactly `size` bytes from the start of `fd`; fails if the file is shorter now. */
export function readWhole(fd: number, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    const step = (): void => {
      if (got >= size) {
        resolve(buf);
        return;
      }
      fs.read(fd, buf, got, size - got, got, (err, n) => {
        if (err) reject(new SourceError('io', `read failed: ${err.message}`));
        else if (n === 0) reject(new SourceError('shrunk', `file shrank to ${got} of ${size} bytes while read`));
        else {
          got += n;
          step();
        }
      });
    };
    step();
  });
}
