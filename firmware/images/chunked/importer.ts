/**
 * Import of a raw disk or partition image into a chunked bundle (`<name>.bbimg/`, see
 * manifest.ts). The source is read once, as a stream, one chunk at a time: all-zero
 * chunks are left out, the others are hashed, zstd-compressed (kept raw when that is not
 * smaller) and appended to chunks.bin. The whole image is hashed on the way.
 *
 * Atomic: everything is written into `<destDir>/.<name>.bbimg.partial-<random>/`, synced,
 * then renamed to `<destDir>/<name>.bbimg`. Any failure (source error, full or read-only
 * volume, abort) removes the partial directory, so an image either exists complete or not
 * at all.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { constants as zc, zstdCompressSync } from 'node:zlib';
import { type Clock, systemClock } from '../../core/clock.ts';
import { BootboxError } from '../../core/errors.ts';
import {
  BUNDLE_SUFFIX,
  CHUNKS_FILE,
  type ChunkCompression,
  type ChunkEntry,
  computeRootHash,
  DEFAULT_CHUNK_SIZE,
  encodeManifest,
  isValidChunkSize,
  isValidImageName,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  type Manifest,
} from './manifest.ts';

/**
 * zstd level when none is given. Level 1 is the fastest standard level; on disk images
 * (zeros are already left out) it keeps most of level 3's ratio (figures in
 * scripts/bench/image-import.ts).
 */
export const DEFAULT_ZSTD_LEVEL = 1;
export const MIN_ZSTD_LEVEL = 1;
export const MAX_ZSTD_LEVEL = 19;

export interface ImportOptions {
  /** Image name: the bundle becomes `<destDir>/<name>.bbimg`. */
  name: string;
  /** Default 4 MiB; a power of two from 64 KiB to 64 MiB. */
  chunkSize?: number;
  /** Default 'zstd'. */
  compression?: ChunkCompression;
  /** zstd level (1..19), default {@link DEFAULT_ZSTD_LEVEL}. */
  level?: number;
  /** Overwrite an existing bundle of the same name (otherwise IMAGE_EXISTS). */
  replace?: boolean;
  signal?: AbortSignal;
  /** Called after each chunk with the source bytes read so far. */
  onProgress?(bytes: number): void;
  /** For createdAt. */
  clock?: Clock;
}

export interface ImportResult {
  /** The bundle directory, `<destDir>/<name>.bbimg`. */
  dir: string;
  manifest: Manifest;
  /** Raw bytes read (= manifest.size). */
  size: number;
  /** Bytes of chunks.bin. */
  storedBytes: number;
  /** Grid slots that were all zeros (left out of the chunk list). */
  sparseChunks: number;
}

/** A source read failure, told apart from destination failures when mapping errors. */
class SourceError extends Error {
  readonly original: unknown;
  constructor(original: unknown) {
    super((original as Error)?.message ?? String(original));
    this.original = original;
  }
}

/** Fills a buffer from the source; returns fewer bytes than asked only at the end. */
interface ChunkReader {
  fill(buf: Buffer): Promise<number>;
  close(): Promise<void>;
}

/** Bundle names of imports under way (`.<name>.bbimg.partial-<hex>`). */
const PARTIAL = /^\..+\.bbimg\.(partial|old)-[0-9a-f]+$/;

/**
 * Removes partial imports left by a crash or power loss in `destDir`. Call it when the
 * image volume is mounted, before any import starts. Returns the names removed.
 */
export async function cleanupPartialImports(destDir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of await readdir(destDir)) {
    if (!PARTIAL.test(entry)) continue;
    await rm(path.join(destDir, entry), { recursive: true, force: true });
    removed.push(entry);
  }
  return removed;
}

/**
 * Imports a raw image from a file (or block device) path or a byte stream (stdin) into
 * `<destDir>/<name>.bbimg`. Memory use is two chunks plus zstd's output, whatever the size.
 */
export async function importRawImage(
  source: string | NodeJS.ReadableStream,
  destDir: string,
  opts: ImportOptions,
): Promise<ImportResult> {
  const { name, signal } = opts;
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const compression = opts.compression ?? 'zstd';
  const level = opts.level ?? DEFAULT_ZSTD_LEVEL;
  if (!isValidImageName(name)) {
    throw new BootboxError(
      'INVALID_REQUEST',
      `image name "${name}" is not valid: use 1-128 of A-Z a-z 0-9 . _ - starting with a letter or digit`,
    );
  }
  if (!isValidChunkSize(chunkSize)) {
    throw new BootboxError('INVALID_REQUEST', `chunk size ${chunkSize} must be a power of two from 64 KiB to 64 MiB`);
  }
  if (compression !== 'zstd' && compression !== 'none') {
    throw new BootboxError('INVALID_REQUEST', `compression "${compression}" must be zstd or none`);
  }
  if (!Number.isInteger(level) || level < MIN_ZSTD_LEVEL || level > MAX_ZSTD_LEVEL) {
    throw new BootboxError('INVALID_REQUEST', `zstd level ${level} must be an integer from 1 to 19`);
  }
  const final = path.join(destDir, `${name}${BUNDLE_SUFFIX}`);
  signal?.throwIfAborted();
  if (!opts.replace && (await exists(final))) {
    throw new BootboxError(
      'IMAGE_EXISTS',
      `image ${name} already exists in ${destDir} (import with replace to overwrite)`,
    );
  }
  const partial = path.join(destDir, `.${name}${BUNDLE_SUFFIX}.partial-${randomBytes(6).toString('hex')}`);
  const progress = { written: 0 };
  let reader: ChunkReader | undefined;
  try {
    reader = typeof source === 'string' ? await fileReader(source) : streamReader(source, signal);
    await mkdir(partial);
    const body = await writeChunks(reader, partial, { chunkSize, compression, level, signal, opts, progress });
    if (body.size === 0) {
      throw new BootboxError(
        'INVALID_REQUEST',
        `the source of image ${name} is empty (${typeof source === 'string' ? source : 'stream'})`,
      );
    }
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      name,
      size: body.size,
      chunkSize,
      compression,
      createdAt: (opts.clock ?? systemClock).date().toISOString(),
      source:
        typeof source === 'string' ? { file: path.resolve(source), sha256: body.sha256 } : { sha256: body.sha256 },
      chunks: body.chunks,
      rootHash: '',
    };
    manifest.rootHash = computeRootHash(manifest);
    await writeFileSynced(path.join(partial, MANIFEST_FILE), encodeManifest(manifest));
    await syncDir(partial);
    signal?.throwIfAborted();
    await publish(partial, final, name, destDir, opts.replace === true);
    await syncDir(destDir);
    return {
      dir: final,
      manifest,
      size: body.size,
      storedBytes: progress.written,
      sparseChunks: Math.ceil(body.size / chunkSize) - body.chunks.length,
    };
  } catch (e) {
    await rm(partial, { recursive: true, force: true }).catch(() => undefined);
    throw importError(e, { name, destDir, source, written: progress.written, signal });
  } finally {
    await reader?.close().catch(() => undefined);
  }
}

interface WriteParams {
  chunkSize: number;
  compression: ChunkCompression;
  level: number;
  signal: AbortSignal | undefined;
  opts: ImportOptions;
  progress: { written: number };
}

/**
 * The read -> zero check -> hash -> compress -> append loop. Reads of the next chunk and
 * the write of the previous one run while the current chunk is hashed and compressed;
 * two input buffers take turns, and an input buffer is refilled only once the write that
 * may still reference it (a chunk stored raw) has finished.
 */
async function writeChunks(
  reader: ChunkReader,
  dir: string,
  p: WriteParams,
): Promise<{ size: number; sha256: string; chunks: ChunkEntry[] }> {
  const { chunkSize, signal } = p;
  const out = await open(path.join(dir, CHUNKS_FILE), 'wx');
  const whole = createHash('sha256');
  const chunks: ChunkEntry[] = [];
  const bufs = [Buffer.allocUnsafe(chunkSize), Buffer.allocUnsafe(chunkSize)];
  const zstdParams = { params: { [zc.ZSTD_c_compressionLevel]: p.level } };
  let size = 0;
  let storedEnd = 0;
  let k = 0;
  let pendingWrite: Promise<void> = Promise.resolve();
  let pendingRead: Promise<number> = reader.fill(bufs[0]!);
  try {
    for (;;) {
      const n = await pendingRead;
      if (n === 0) break;
      const cur = bufs[k]!;
      // The other buffer may still be on its way to disk (raw chunk): wait before refilling it.
      await pendingWrite;
      signal?.throwIfAborted();
      pendingRead = n === chunkSize ? reader.fill(bufs[k ^ 1]!) : Promise.resolve(0);
      pendingRead.catch(() => undefined); // handled when awaited
      const raw = n === chunkSize ? cur : cur.subarray(0, n);
      whole.update(raw);
      if (!isAllZero(raw)) {
        let stored = raw;
        let sc: ChunkCompression = 'none';
        if (p.compression === 'zstd') {
          // The sync call: on one core it costs less CPU than zstdCompress, which adds a thread
          // pool hop per chunk (scripts/bench/image-import.ts). It holds the event loop for about
          // 10 ms per 4 MiB chunk at level 1 on an x86 server core.
          const z = zstdCompressSync(raw, zstdParams);
          if (z.length < raw.length) {
            stored = z;
            sc = 'zstd';
          }
        }
        chunks.push({
          index: chunks.length,
          offset: size,
          length: n,
          stored: { offset: storedEnd, length: stored.length, compression: sc },
          sha256: createHash('sha256').update(raw).digest('hex'),
        });
        pendingWrite = writeAll(out, stored, storedEnd, p.progress);
        pendingWrite.catch(() => undefined); // handled when awaited
        storedEnd += stored.length;
      }
      size += n;
      k ^= 1;
      p.opts.onProgress?.(size);
    }
    await pendingWrite;
    await out.sync();
  } finally {
    await pendingWrite.catch(() => undefined);
    await pendingRead.catch(() => undefined);
    await out.close();
  }
  return { size, sha256: whole.digest('hex'), chunks };
}

async function writeAll(fh: FileHandle, buf: Buffer, position: number, progress: { written: number }) {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
    progress.written += bytesWritten;
  }
}

const ZERO_PROBE = Buffer.alloc(64 * 1024);

/** memcmp against a zero page, 64 KiB at a time: stops at the first non-zero block. */
export function isAllZero(buf: Buffer): boolean {
  for (let at = 0; at < buf.length; at += ZERO_PROBE.length) {
    const end = Math.min(buf.length, at + ZERO_PROBE.length);
    if (!buf.subarray(at, end).equals(ZERO_PROBE.subarray(0, end - at))) return false;
  }
  return true;
}

async function fileReader(file: string): Promise<ChunkReader> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    throw new SourceError(e);
  }
  return {
    async fill(buf) {
      let got = 0;
      try {
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, null);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
      } catch (e) {
        throw new SourceError(e);
      }
      return got;
    },
    close: () => fh.close(),
  };
}

function streamReader(stream: NodeJS.ReadableStream, signal: AbortSignal | undefined): ChunkReader {
  const it = stream[Symbol.asyncIterator]();
  let rest: Buffer | undefined;
  let ended = false;
  const next = (): Promise<IteratorResult<string | Buffer>> => {
    const step = it.next();
    if (!signal) return step;
    // A stream that stalls (stdin with nothing coming) must not hold up an abort.
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      step.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  };
  return {
    async fill(buf) {
      let got = 0;
      while (got < buf.length) {
        if (!rest || rest.length === 0) {
          if (ended) break;
          let r: IteratorResult<string | Buffer>;
          try {
            r = await next();
          } catch (e) {
            if (signal?.aborted && e === signal.reason) throw e;
            throw new SourceError(e);
          }
          if (r.done) {
            ended = true;
            break;
          }
          if (typeof r.value === 'string') {
            throw new SourceError(new Error('the source stream delivers text, not bytes (an encoding is set on it)'));
          }
          rest = r.value;
        }
        const n = Math.min(rest.length, buf.length - got);
        rest.copy(buf, got, 0, n);
        rest = rest.subarray(n);
        got += n;
      }
      return got;
    },
    async close() {
      if (ended) return;
      // Stopped early (error, abort): a read may still be pending on a stalled stream, and the
      // iterator's return() would queue behind it. Destroying the stream settles both.
      const destroy = (stream as { destroy?: () => void }).destroy;
      if (typeof destroy === 'function') destroy.call(stream);
      it.return?.().catch(() => undefined);
    },
  };
}

/** Moves the finished bundle into place; with replace, the old one goes only once the new one is in. */
async function publish(partial: string, final: string, name: string, destDir: string, replace: boolean) {
  try {
    await rename(partial, final);
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR' && code !== 'EISDIR') throw e;
    if (!replace) {
      throw new BootboxError(
        'IMAGE_EXISTS',
        `image ${name} already exists in ${destDir} (import with replace to overwrite)`,
      );
    }
  }
  const old = path.join(destDir, `.${name}${BUNDLE_SUFFIX}.old-${randomBytes(6).toString('hex')}`);
  await rename(final, old);
  try {
    await rename(partial, final);
  } catch (e) {
    await rename(old, final).catch(() => undefined);
    throw e;
  }
  await rm(old, { recursive: true, force: true });
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

async function writeFileSynced(file: string, text: string): Promise<void> {
  const fh = await open(file, 'wx');
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync of a directory, so the names in it survive a power loss. Some FUSE volumes refuse it. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EBADF') throw e;
  } finally {
    await fh.close();
  }
}

function importError(
  e: unknown,
  ctx: {
    name: string;
    destDir: string;
    source: string | NodeJS.ReadableStream;
    written: number;
    signal: AbortSignal | undefined;
  },
): unknown {
  if (ctx.signal?.aborted && e === ctx.signal.reason) return e;
  if (e instanceof BootboxError) return e;
  const { name, destDir } = ctx;
  if (e instanceof SourceError) {
    const what = typeof ctx.source === 'string' ? ctx.source : 'the source stream';
    const orig = e.original as NodeJS.ErrnoException;
    const details = { image: name, source: typeof ctx.source === 'string' ? ctx.source : 'stream', errno: orig?.code };
    switch (orig?.code) {
      case 'ENOENT':
        return new BootboxError('NOT_FOUND', `image source ${what} does not exist`, details);
      case 'EACCES':
      case 'EPERM':
        return new BootboxError('FORBIDDEN', `image source ${what} cannot be read (permission denied)`, details);
      case 'EISDIR':
        return new BootboxError('INVALID_REQUEST', `image source ${what} is a directory, not an image`, details);
      default:
        return new BootboxError('INTERNAL', `reading ${what} failed while importing ${name}: ${e.message}`, details);
    }
  }
  const code = (e as NodeJS.ErrnoException)?.code;
  const details = { image: name, dir: destDir, bytesWritten: ctx.written, errno: code };
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new BootboxError(
        'DISK_FULL',
        `no space left on ${destDir} while importing ${name} (${ctx.written} bytes written)`,
        details,
      );
    case 'EROFS':
      return new BootboxError('VOLUME_READ_ONLY', `${destDir} is read-only: cannot import ${name}`, details);
    case 'ENOENT':
      return new BootboxError('NOT_FOUND', `image directory ${destDir} does not exist`, details);
    case 'EACCES':
    case 'EPERM':
      return new BootboxError('FORBIDDEN', `cannot write to ${destDir} (permission denied) to import ${name}`, details);
    default:
      return e;
  }
}
