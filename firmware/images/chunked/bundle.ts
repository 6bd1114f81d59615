/**
 * The read side of a chunked image bundle, for servers and for apply: opens and checks
 * the manifest, gives the stored byte range of a chunk (HTTP resume serves those bytes
 * from chunks.bin as they are), and reads a chunk back to raw bytes, checked against its
 * sha256.
 */
import { createHash } from 'node:crypto';
import { type FileHandle, open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { zstdDecompress } from 'node:zlib';
import { BootboxError, DecodeError } from '../../core/errors.ts';
import {
  CHUNKS_FILE,
  type ChunkEntry,
  dataLength,
  decodeManifest,
  MANIFEST_FILE,
  type Manifest,
  type StoredRange,
  storedLength,
} from './manifest.ts';

const unzstd = promisify(zstdDecompress);

/** A manifest larger than this is not read (about 1.5 million chunks, 6 TiB at 4 MiB). */
export const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;

export interface OpenBundleOptions {
  /** A root hash from a trusted place (catalog, session): the manifest must carry it. */
  expectedRootHash?: string;
}

export interface Bundle {
  /** The bundle directory. */
  readonly dir: string;
  readonly manifest: Manifest;
  /** Path of chunks.bin, for serving byte ranges of it. */
  readonly chunksPath: string;
  /** Bytes of chunks.bin (checked equal to what the manifest's stored ranges need). */
  readonly storedSize: number;
  /** The chunk entry of an index; BootboxError NOT_FOUND when there is none. */
  chunk(index: number): ChunkEntry;
  /** Where the chunk's stored bytes are in chunks.bin, and how they are encoded. */
  storedRange(index: number): StoredRange;
  /** The stored bytes of a chunk as they are in chunks.bin (not decompressed, not checked). */
  readStored(index: number): Promise<Buffer>;
  /** The raw bytes of a chunk, decompressed and checked against its sha256 (else IMAGE_CORRUPT). */
  readChunk(index: number): Promise<{ raw: Buffer; chunk: ChunkEntry }>;
  close(): Promise<void>;
}

/**
 * Opens a bundle: reads and checks its manifest (every field, the root hash, and the
 * expected root hash when given) and checks that chunks.bin has exactly the bytes the
 * manifest describes. Errors: NOT_FOUND (no bundle there), IMAGE_CORRUPT (anything else).
 */
export async function openBundle(dir: string, opts: OpenBundleOptions = {}): Promise<Bundle> {
  const manifestPath = path.join(dir, MANIFEST_FILE);
  const chunksPath = path.join(dir, CHUNKS_FILE);
  let fh: FileHandle;
  try {
    fh = await open(chunksPath, 'r');
  } catch (e) {
    throw missing(e, dir, CHUNKS_FILE);
  }
  try {
    const storedSize = (await fh.stat()).size;
    let text: Buffer;
    try {
      const mf = await open(manifestPath, 'r');
      try {
        const st = await mf.stat();
        if (st.size > MAX_MANIFEST_BYTES) {
          throw new BootboxError(
            'IMAGE_CORRUPT',
            `image ${dir}: ${MANIFEST_FILE} is ${st.size} bytes, more than a manifest can be (${MAX_MANIFEST_BYTES})`,
          );
        }
        text = await mf.readFile();
      } finally {
        await mf.close();
      }
    } catch (e) {
      throw missing(e, dir, MANIFEST_FILE);
    }
    let manifest: Manifest;
    try {
      manifest = decodeManifest(text, { storedLength: storedSize, expectedRootHash: opts.expectedRootHash });
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      throw new BootboxError('IMAGE_CORRUPT', `image ${dir}: ${MANIFEST_FILE} is refused: ${e.message}`, {
        dir,
        reason: e.reason,
      });
    }
    const need = storedLength(manifest);
    if (storedSize !== need) {
      throw new BootboxError(
        'IMAGE_CORRUPT',
        `image ${manifest.name}: ${CHUNKS_FILE} is ${storedSize} bytes but its manifest describes ${need}`,
        { dir, reason: 'stored-size' },
      );
    }
    return makeBundle(dir, manifest, chunksPath, storedSize, fh);
  } catch (e) {
    await fh.close();
    throw e;
  }
}

function missing(e: unknown, dir: string, file: string): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new BootboxError('NOT_FOUND', `no image bundle at ${dir} (${file} is missing)`, { dir });
  }
  return e;
}

function makeBundle(dir: string, manifest: Manifest, chunksPath: string, storedSize: number, fh: FileHandle): Bundle {
  const name = manifest.name;
  const chunk = (index: number): ChunkEntry => {
    const c = Number.isInteger(index) ? manifest.chunks[index] : undefined;
    if (!c) {
      throw new BootboxError('NOT_FOUND', `image ${name} has no chunk ${index} (it has ${manifest.chunks.length})`, {
        image: name,
        index,
      });
    }
    return c;
  };
  const corrupt = (c: ChunkEntry, what: string) =>
    new BootboxError(
      'IMAGE_CORRUPT',
      `image ${name}: chunk ${c.index} (image offset ${c.offset}, ${CHUNKS_FILE} bytes ${c.stored.offset}-${
        c.stored.offset + c.stored.length - 1
      }) ${what}`,
      { image: name, index: c.index, offset: c.offset },
    );
  const readStored = async (index: number): Promise<Buffer> => {
    const c = chunk(index);
    const buf = Buffer.allocUnsafe(c.stored.length);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, c.stored.offset + got);
      if (bytesRead === 0) throw corrupt(c, `is cut short: ${CHUNKS_FILE} ends after ${got} of its bytes`);
      got += bytesRead;
    }
    return buf;
  };
  return {
    dir,
    manifest,
    chunksPath,
    storedSize,
    chunk,
    storedRange: (index) => ({ ...chunk(index).stored }),
    readStored,
    async readChunk(index) {
      const c = chunk(index);
      const stored = await readStored(index);
      let raw = stored;
      if (c.stored.compression === 'zstd') {
        try {
          raw = await unzstd(stored, { maxOutputLength: c.length });
        } catch (e) {
          throw corrupt(c, `has damaged compressed data (${(e as Error).message})`);
        }
      }
      if (raw.length !== c.length) throw corrupt(c, `decompresses to ${raw.length} bytes, not ${c.length}`);
      if (createHash('sha256').update(raw).digest('hex') !== c.sha256) throw corrupt(c, 'does not match its sha256');
      return { raw, chunk: c };
    },
    close: () => fh.close(),
  };
}

export interface VerifyOptions extends OpenBundleOptions {
  signal?: AbortSignal;
  /** Called after each chunk with the raw bytes checked so far. */
  onProgress?(bytes: number): void;
}

export interface VerifyResult {
  manifest: Manifest;
  chunks: number;
  /** Raw bytes in the chunk list (the image minus its sparse regions). */
  dataBytes: number;
  storedBytes: number;
}

/**
 * Full check of a bundle: the manifest (as openBundle) and every chunk, decompressed and
 * hashed. Damaged chunks are all listed: IMAGE_CORRUPT with details.chunks.
 */
export async function verifyBundle(dir: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const b = await openBundle(dir, opts);
  try {
    const bad: { index: number; message: string }[] = [];
    let done = 0;
    for (const c of b.manifest.chunks) {
      opts.signal?.throwIfAborted();
      try {
        await b.readChunk(c.index);
      } catch (e) {
        if (!(e instanceof BootboxError) || e.code !== 'IMAGE_CORRUPT') throw e;
        bad.push({ index: c.index, message: e.message });
      }
      done += c.length;
      opts.onProgress?.(done);
    }
    if (bad.length) {
      const shown = bad
        .slice(0, 5)
        .map((x) => x.index)
        .join(', ');
      const more = bad.length > 5 ? ` and ${bad.length - 5} more` : '';
      throw new BootboxError(
        'IMAGE_CORRUPT',
        `image ${b.manifest.name}: ${bad.length} damaged chunk(s): ${shown}${more}; first: ${bad[0]!.message}`,
        { image: b.manifest.name, chunks: bad.map((x) => x.index) },
      );
    }
    return {
      manifest: b.manifest,
      chunks: b.manifest.chunks.length,
      dataBytes: dataLength(b.manifest),
      storedBytes: b.storedSize,
    };
  } finally {
    await b.close();
  }
}

/** Reads the manifest of a bundle without opening chunks.bin (for listings). */
export async function readBundleManifest(dir: string, opts: OpenBundleOptions = {}): Promise<Manifest> {
  let text: Buffer;
  try {
    text = await readFile(path.join(dir, MANIFEST_FILE));
  } catch (e) {
    throw missing(e, dir, MANIFEST_FILE);
  }
  try {
    return decodeManifest(text, { expectedRootHash: opts.expectedRootHash });
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
    throw new BootboxError('IMAGE_CORRUPT', `image ${dir}: ${MANIFEST_FILE} is refused: ${e.message}`, {
      dir,
      reason: e.reason,
    });
  }
}
