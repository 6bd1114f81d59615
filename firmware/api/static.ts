/**
 * The web UI's files (the built bundle: index.html and assets/), served from one directory
 * and nothing outside it.
 *
 * - `/` is index.html; any other path that is not a file is index.html too (the UI routes
 *   on the client), except under /assets/, where a missing file is a 404.
 * - A client path is never joined raw: each segment is percent-decoded, and `..`, `.`,
 *   backslashes, NUL and encoded slashes are refused; dot-files are not served; the real path
 *   (symlinks resolved) must lie inside the directory.
 * - Every file has a strong ETag (SHA-256 of its bytes); If-None-Match answers 304. Files
 *   whose name carries a content hash (`app-4F2KQZ7A.js`, as esbuild names them) are cached
 *   for a year; everything else is revalidated (`no-cache`).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ErrorCode } from '../core/errors.ts';

export interface StaticReply {
  status: number;
  headers: Record<string, string>;
  /** File bytes; absent for 304 and errors (see `error`). */
  body?: Buffer;
  /** Set instead of `body` when the answer is an error. */
  error?: { code: ErrorCode; message: string };
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** esbuild's `[name]-[hash]`: 8 characters of upper-case base32. */
const HASHED_NAME = /-[A-Z0-9]{8}\.[a-z0-9]+$/;
/** The UI bundle is small; a larger file here is a mistake, not something to stream. */
const MAX_FILE_BYTES = 32 * 1024 * 1024;
const MAX_CACHED = 256;

interface Cached {
  mtimeMs: number;
  size: number;
  etag: string;
  body: Buffer;
}

export class StaticFiles {
  private readonly dir: string;
  private root: string | undefined;
  private readonly cache = new Map<string, Cached>();

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  /** Answers GET/HEAD of a non-API path (`pathname` as it came, still percent-encoded). */
  async serve(pathname: string, ifNoneMatch: string | undefined): Promise<StaticReply> {
    const rel = safeRelative(pathname);
    if (rel === undefined) return fail(400, 'INVALID_REQUEST', `refused path ${JSON.stringify(pathname)}`);
    const root = await this.rootDir();
    if (!root) {
      return fail(
        404,
        'NOT_FOUND',
        `the web UI is not installed (${this.dir} has no index.html); the API is at /api/v1`,
      );
    }
    let file = rel === '' ? 'index.html' : rel;
    let found = await this.read(root, file);
    if (found === 'outside') return fail(400, 'INVALID_REQUEST', `refused path ${JSON.stringify(pathname)}`);
    if (!found) {
      if (rel.startsWith('assets/') || rel === 'assets') return fail(404, 'NOT_FOUND', `no file ${pathname}`);
      file = 'index.html';
      found = await this.read(root, file);
      if (!found || found === 'outside') return fail(404, 'NOT_FOUND', 'the web UI has no index.html');
    }
    const headers: Record<string, string> = {
      'Content-Type': CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      ETag: found.etag,
      'Cache-Control': HASHED_NAME.test(file) ? 'public, max-age=31536000, immutable' : 'no-cache',
    };
    if (ifNoneMatch && etagMatches(ifNoneMatch, found.etag)) return { status: 304, headers };
    headers['Content-Length'] = String(found.body.length);
    return { status: 200, headers, body: found.body };
  }

  private async rootDir(): Promise<string | undefined> {
    if (this.root) return this.root;
    try {
      const real = await fs.realpath(this.dir);
      await fs.access(path.join(real, 'index.html'));
      this.root = real;
      return real;
    } catch {
      return undefined;
    }
  }

  /** The file, from cache while unchanged; undefined when it is not a regular file. */
  private async read(root: string, rel: string): Promise<Cached | 'outside' | undefined> {
    const full = path.join(root, rel);
    if (!full.startsWith(root + path.sep)) return 'outside';
    let real: string;
    try {
      real = await fs.realpath(full);
    } catch {
      return undefined;
    }
    // A symlink may not lead out of the directory.
    if (!real.startsWith(root + path.sep)) return 'outside';
    let st: Awaited<ReturnType<typeof fs.stat>>;
    try {
      st = await fs.stat(real);
    } catch {
      return undefined;
    }
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return undefined;
    const hit = this.cache.get(real);
    if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
    let body: Buffer;
    try {
      body = await fs.readFile(real);
    } catch {
      return undefined;
    }
    const c: Cached = {
      mtimeMs: st.mtimeMs,
      size: st.size,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`,
      body,
    };
    this.cache.delete(real);
    this.cache.set(real, c);
    while (this.cache.size > MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    return c;
  }
}

/**
 * The path below the UI directory for a URL path, or undefined when it must be refused:
 * `..` or `.` segments, backslashes, NUL, control characters, or an encoded `/` in a segment.
 * Dot-files and dot-directories (`.git`, `.env`) are refused too.
 */
export function safeRelative(pathname: string): string | undefined {
  if (!pathname.startsWith('/')) return undefined;
  const out: string[] = [];
  const parts = pathname.slice(1).split('/');
  for (const [i, raw] of parts.entries()) {
    if (raw === '') {
      // `/` itself and a trailing slash are fine; `//` inside is not.
      if (i === parts.length - 1) continue;
      return undefined;
    }
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (seg === '.' || seg === '..' || seg.startsWith('.')) return undefined;
    if (/[/\\\u0000-\u001f\u007f]/.test(seg)) return undefined;
    out.push(seg);
  }
  return out.join('/');
}

function etagMatches(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  // RFC 9110 §13.1.2: If-None-Match uses the weak comparison.
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

function fail(status: number, code: ErrorCode, message: string): StaticReply {
  return { status, headers: {}, error: { code, message } };
}
