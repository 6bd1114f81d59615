/**
 * Writing a chunked image back out: onto a file or a block device (applyBundle), or as
 * one raw byte stream (exportRaw). Every chunk is checked against its sha256 before its
 * bytes are written.
 */
import { createHash } from 'node:crypto';
import { constants, type FileHandle, open, readFile, stat } from 'node:fs/promises';
import { BootboxError } from '../../core/errors.ts';
import { type Bundle, openBundle } from './bundle.ts';
import { dataLength } from './manifest.ts';

export interface ApplyOptions {
  signal?: AbortSignal;
  /** Called after each chunk or zero run with the image bytes done so far. */
  onProgress?(bytes: number): void;
}

export interface ApplyResult {
  target: string;
  /** 'file': sparse regions are holes. 'block-device': sparse regions are written as zeros. */
  kind: 'file' | 'block-device';
  size: number;
  chunks: number;
  /** Bytes written from chunks. */
  dataBytes: number;
  /** Zero bytes written for sparse regions (block devices only). */
  zeroBytes: number;
}

/**
 * Writes the image onto `target`. A regular file (created if missing) is truncated to the
 * image size first, so sparse regions stay holes. A block device is opened exclusively
 * (refused while mounted), must be at least the image size, and gets zeros written over the
 * sparse regions so nothing of what was there before survives in them. Each chunk is checked
 * before it is written; a damaged one stops the apply with IMAGE_CORRUPT and the target is
 * then incomplete.
 */
export async function applyBundle(bundleDir: string, target: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const bundle = await openBundle(bundleDir);
  try {
    const m = bundle.manifest;
    const device = await isBlockDevice(target);
    let fh: FileHandle;
    try {
      fh = device ? await open(target, constants.O_WRONLY | constants.O_EXCL) : await open(target, 'w');
    } catch (e) {
      throw targetError(e, target);
    }
    try {
      if (device) {
        const cap = await blockDeviceSize(target);
        if (cap !== undefined && cap < m.size) {
          throw new BootboxError(
            'INVALID_REQUEST',
            `target ${target} holds ${cap} bytes, image ${m.name} needs ${m.size}`,
            { target, image: m.name },
          );
        }
      } else {
        await fh.truncate(m.size);
      }
      const zeros = device ? Buffer.alloc(m.chunkSize) : undefined;
      let zeroBytes = 0;
      let pos = 0;
      const fill = async (end: number) => {
        while (zeros && pos < end) {
          const n = Math.min(zeros.length, end - pos);
          await writeAll(fh, zeros.subarray(0, n), pos).catch((e) => {
            throw targetError(e, target);
          });
          zeroBytes += n;
          pos += n;
          opts.onProgress?.(pos);
        }
        pos = end;
      };
      await eachChunk(bundle, opts.signal, async (raw, offset) => {
        await fill(offset);
        await writeAll(fh, raw, offset).catch((e) => {
          throw targetError(e, target);
        });
        pos = offset + raw.length;
        opts.onProgress?.(pos);
      });
      await fill(m.size);
      await fh.sync().catch((e) => {
        throw targetError(e, target);
      });
      return {
        target,
        kind: device ? 'block-device' : 'file',
        size: m.size,
        chunks: m.chunks.length,
        dataBytes: dataLength(m),
        zeroBytes,
      };
    } finally {
      await fh.close();
    }
  } finally {
    await bundle.close();
  }
}

export interface ExportResult {
  size: number;
  /** SHA-256 of the bytes written (checked against the manifest's source.sha256 when it has one). */
  sha256: string;
}

/**
 * Writes the whole raw image to `out` (zeros for sparse regions), honouring backpressure.
 * Does not end `out`. Resolves once `out` has taken every byte. Every chunk is checked
 * before it is written, and at the end the whole-image hash is checked against the
 * manifest's source.sha256. A mismatch is IMAGE_CORRUPT, raised after the bytes went out.
 */
export async function exportRaw(
  bundleDir: string,
  out: NodeJS.WritableStream,
  opts: ApplyOptions = {},
): Promise<ExportResult> {
  const bundle = await openBundle(bundleDir);
  const m = bundle.manifest;
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(m.chunkSize);
  let failed: Error | undefined;
  const onError = (e: Error) => {
    failed ??= e;
  };
  out.on('error', onError);
  let pos = 0;
  const put = async (buf: Buffer) => {
    if (failed) throw failed;
    hash.update(buf);
    if (!out.write(buf)) await drained(out, opts.signal);
    if (failed) throw failed;
  };
  const fill = async (end: number) => {
    while (pos < end) {
      const n = Math.min(zeros.length, end - pos);
      await put(zeros.subarray(0, n));
      pos += n;
      opts.onProgress?.(pos);
    }
  };
  try {
    await eachChunk(bundle, opts.signal, async (raw, offset) => {
      await fill(offset);
      await put(raw);
      pos = offset + raw.length;
      opts.onProgress?.(pos);
    });
    await fill(m.size);
    await new Promise<void>((resolve, reject) => {
      out.write(Buffer.alloc(0), (e?: Error | null) => (e ? reject(e) : resolve()));
    });
    if (failed) throw failed;
    const sha256 = hash.digest('hex');
    if (m.source && m.source.sha256 !== sha256) {
      throw new BootboxError(
        'IMAGE_CORRUPT',
        `image ${m.name}: the exported image's sha256 ${sha256} is not the source's ${m.source.sha256}`,
        { image: m.name },
      );
    }
    return { size: m.size, sha256 };
  } finally {
    out.removeListener('error', onError);
    await bundle.close();
  }
}

/** Reads chunk i+1 while chunk i is being written; stops on abort. */
async function eachChunk(
  bundle: Bundle,
  signal: AbortSignal | undefined,
  write: (raw: Buffer, offset: number) => Promise<void>,
): Promise<void> {
  const n = bundle.manifest.chunks.length;
  let next = n > 0 ? bundle.readChunk(0) : undefined;
  try {
    for (let i = 0; i < n; i++) {
      signal?.throwIfAborted();
      const cur = await next!;
      next = i + 1 < n ? bundle.readChunk(i + 1) : undefined;
      next?.catch(() => undefined); // handled when awaited
      await write(cur.raw, cur.chunk.offset);
    }
  } finally {
    await next?.catch(() => undefined);
  }
}

/** Waits for 'drain' (or 'close'/'error', which the caller then reports), or the abort. */
function drained(out: NodeJS.WritableStream, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      out.removeListener('drain', done);
      out.removeListener('close', done);
      out.removeListener('error', done);
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = () => {
      done();
      reject(signal?.reason);
    };
    if (signal?.aborted) return onAbort();
    out.on('drain', done);
    out.on('close', done);
    out.on('error', done);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

async function isBlockDevice(target: string): Promise<boolean> {
  try {
    return (await stat(target)).isBlockDevice();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw targetError(e, target);
  }
}

/** Size of a block device from sysfs (/sys/dev/block/MAJ:MIN/size is in 512-byte sectors). */
async function blockDeviceSize(target: string): Promise<number | undefined> {
  const rdev = (await stat(target)).rdev;
  // Linux dev_t: major in bits 8-19 (and 32+), minor in bits 0-7 and 20-31 (glibc's gnu_dev_major/minor).
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | ((Math.floor(rdev / 4096) & 0xfff00) >>> 0);
  try {
    const sectors = Number((await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8')).trim());
    return Number.isSafeInteger(sectors) ? sectors * 512 : undefined;
  } catch {
    return undefined;
  }
}

function targetError(e: unknown, target: string): unknown {
  if (e instanceof BootboxError) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  const details = { target, errno: code };
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new BootboxError('DISK_FULL', `no space left on ${target} while applying the image`, details);
    case 'EROFS':
      return new BootboxError('VOLUME_READ_ONLY', `${target} is read-only: cannot apply the image`, details);
    case 'EBUSY':
      return new BootboxError('CONFLICT', `${target} is in use (mounted or opened exclusively elsewhere)`, details);
    case 'ENOENT':
      return new BootboxError('NOT_FOUND', `the directory of ${target} does not exist`, details);
    case 'EACCES':
    case 'EPERM':
      return new BootboxError('FORBIDDEN', `cannot write to ${target} (permission denied)`, details);
    case 'EISDIR':
      return new BootboxError('INVALID_REQUEST', `target ${target} is a directory`, details);
    default:
      return e;
  }
}
