/**
 * The manifest of a chunked deploy image (`<name>.bbimg/manifest.json`): pure types,
 * codec and checks. No I/O here.
 *
 * A bundle is a directory holding `manifest.json` and `chunks.bin`. The raw image
 * (`size` bytes) is cut into chunks of `chunkSize` bytes on a fixed grid (the last one
 * may be shorter). Chunks that are all zeros are left out of the list: the receiver
 * leaves them as holes or writes zeros. Every other chunk is stored in `chunks.bin`, one
 * after the other in index order, either zstd-compressed or raw when zstd did not make it
 * smaller (`stored.compression` says which, per chunk). So:
 * - one HTTP Range request fetches one stored chunk (`stored.offset`, `stored.length`),
 *   and a node that stopped resumes at the first chunk it does not have;
 * - a node that joins a multicast session late asks for the chunk `index`es it lacks;
 *   indexes are dense (0 .. chunks.length-1), so a bitmap of chunks.length bits covers them.
 *
 * Trust: `rootHash` is SHA-256 over the canonical encoding of the chunk list
 * ({@link encodeChunkList}). A receiver that got the root hash from a trusted place
 * (the catalog, the session announcement) proves the chunk list with it, then each chunk
 * by its `sha256` (of the raw bytes). Storage fields (`stored`) are deliberately not
 * covered: the same raw image has the same root hash whatever the compression, and a
 * wrong stored range can only yield bytes whose sha256 does not match.
 */
import { createHash } from 'node:crypto';
import { DecodeError } from '../../core/errors.ts';

export const MANIFEST_FORMAT = 'bootbox-chunked';
export const MANIFEST_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const CHUNKS_FILE = 'chunks.bin';
export const BUNDLE_SUFFIX = '.bbimg';

export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
export const MIN_CHUNK_SIZE = 64 * 1024;
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;

export type ChunkCompression = 'zstd' | 'none';

/** Where a chunk's bytes sit in chunks.bin and how they are encoded there. */
export interface StoredRange {
  /** Byte offset in chunks.bin. */
  offset: number;
  /** Stored bytes (compressed length for zstd, equal to the raw length for none). */
  length: number;
  /** 'none' when the bundle is uncompressed or zstd did not make this chunk smaller. */
  compression: ChunkCompression;
}

export interface ChunkEntry {
  /** Position in the chunk list (dense: sparse chunks take no index). */
  index: number;
  /** Target offset in the raw image: a multiple of chunkSize. */
  offset: number;
  /** Raw bytes: chunkSize, or what is left of the image for the last grid slot. */
  length: number;
  stored: StoredRange;
  /** SHA-256 of the raw bytes, lowercase hex. */
  sha256: string;
}

export interface ImageSource {
  /** The file the image was imported from (absent for a stream such as stdin). */
  file?: string;
  /** SHA-256 of the whole raw image, sparse regions included, lowercase hex. */
  sha256: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  name: string;
  /** Raw bytes of the source image. */
  size: number;
  chunkSize: number;
  /** What the importer was asked for; each chunk's stored.compression says what it got. */
  compression: ChunkCompression;
  /** ISO 8601 UTC, as Date.prototype.toISOString writes it. */
  createdAt: string;
  source?: ImageSource;
  chunks: ChunkEntry[];
  /** {@link computeRootHash}, lowercase hex. */
  rootHash: string;
}

export interface DecodeManifestOptions {
  /** Size of chunks.bin when known: every stored range must lie inside it. */
  storedLength?: number;
  /** A root hash from a trusted place: the manifest must carry exactly this one. */
  expectedRootHash?: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
/** Image names become directory names on NTFS/exFAT volumes and URL path segments. */
const IMAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** True for a name that can be a bundle directory name (`<name>.bbimg`) and a URL segment. */
export function isValidImageName(name: string): boolean {
  return IMAGE_NAME.test(name) && !name.endsWith('.') && !name.toLowerCase().endsWith(BUNDLE_SUFFIX);
}

export function isValidChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

/** The prefix of the root hash encoding: names the format and its version. */
const ROOT_TAG = Buffer.from(`${MANIFEST_FORMAT}/${MANIFEST_VERSION}`, 'ascii');
const ROOT_HEADER = ROOT_TAG.length + 8 + 4 + 4;
const ROOT_ENTRY = 8 + 4 + 32;

/**
 * The canonical binary encoding of a chunk list, the input of the root hash. All integers
 * are big-endian:
 *
 *   "bootbox-chunked/1"   17 ASCII bytes (format and version)
 *   size                  u64  raw image bytes
 *   chunkSize             u32
 *   count                 u32  number of chunks in the list
 *   then for each chunk, in list order:
 *     offset              u64  target offset
 *     length              u32  raw bytes
 *     sha256              32 bytes (of the raw bytes)
 *
 * Indexes are positions in that order; sparse regions are the gaps. Stored ranges and
 * compression are not part of it (see the module comment).
 */
export function encodeChunkList(
  size: number,
  chunkSize: number,
  chunks: readonly Pick<ChunkEntry, 'offset' | 'length' | 'sha256'>[],
): Buffer {
  const out = Buffer.alloc(ROOT_HEADER + ROOT_ENTRY * chunks.length);
  let p = ROOT_TAG.copy(out, 0);
  p = out.writeBigUInt64BE(BigInt(size), p);
  p = out.writeUInt32BE(chunkSize, p);
  p = out.writeUInt32BE(chunks.length, p);
  for (const c of chunks) {
    p = out.writeBigUInt64BE(BigInt(c.offset), p);
    p = out.writeUInt32BE(c.length, p);
    p += out.write(c.sha256, p, 32, 'hex');
  }
  return out;
}

/** SHA-256 of {@link encodeChunkList}, lowercase hex. */
export function computeRootHash(m: Pick<Manifest, 'size' | 'chunkSize' | 'chunks'>): string {
  return createHash('sha256')
    .update(encodeChunkList(m.size, m.chunkSize, m.chunks))
    .digest('hex');
}

/**
 * Checks the root hash against the chunk list and, when given, against a root hash from a
 * trusted place. Throws DecodeError 'root-hash-mismatch' or 'root-hash-unexpected'.
 */
export function verifyManifest(m: Manifest, expectedRootHash?: string): void {
  const actual = computeRootHash(m);
  if (actual !== m.rootHash) {
    throw new DecodeError(
      'root-hash-mismatch',
      `manifest of image "${m.name}": rootHash ${m.rootHash} does not match its chunk list (${actual})`,
    );
  }
  if (expectedRootHash !== undefined && expectedRootHash !== m.rootHash) {
    throw new DecodeError(
      'root-hash-unexpected',
      `manifest of image "${m.name}": rootHash ${m.rootHash} is not the expected ${expectedRootHash}`,
    );
  }
}

/** Bytes chunks.bin must hold: the stored ranges are packed one after the other. */
export function storedLength(m: Pick<Manifest, 'chunks'>): number {
  const last = m.chunks.at(-1);
  return last ? last.stored.offset + last.stored.length : 0;
}

/** Raw bytes that the chunk list carries (size minus the sparse regions). */
export function dataLength(m: Pick<Manifest, 'chunks'>): number {
  let n = 0;
  for (const c of m.chunks) n += c.length;
  return n;
}

/**
 * Parses and checks a manifest (JSON text, its bytes, or an already parsed object). Every
 * field is checked for type and range, the chunk list for order, overlap and bounds, the
 * stored ranges for packing (and against `storedLength` when given), then the root hash.
 * Returns a fresh object; throws only DecodeError, whose message names the field.
 */
export function decodeManifest(input: string | Uint8Array | unknown, opts: DecodeManifestOptions = {}): Manifest {
  let value: unknown = input;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new DecodeError('json', `manifest is not valid JSON: ${(e as Error).message}`);
    }
  }
  const m = checkManifest(value, opts.storedLength);
  verifyManifest(m, opts.expectedRootHash);
  return m;
}

/**
 * The manifest as JSON text: fields in a fixed order, one chunk per line, newline at the
 * end. Checks it first (same rules as decodeManifest), so an invalid manifest is never
 * written.
 */
export function encodeManifest(m: Manifest): string {
  const v = checkManifest(m, undefined);
  verifyManifest(v);
  const head: Record<string, unknown> = {
    format: v.format,
    version: v.version,
    name: v.name,
    size: v.size,
    chunkSize: v.chunkSize,
    compression: v.compression,
    createdAt: v.createdAt,
  };
  if (v.source) head.source = v.source.file === undefined ? { sha256: v.source.sha256 } : v.source;
  head.rootHash = v.rootHash;
  const lines = Object.entries(head).map(([k, x]) => `  ${JSON.stringify(k)}: ${JSON.stringify(x)},`);
  if (v.chunks.length === 0) return `{\n${lines.join('\n')}\n  "chunks": []\n}\n`;
  const chunks = v.chunks.map((c) =>
    JSON.stringify({
      index: c.index,
      offset: c.offset,
      length: c.length,
      stored: { offset: c.stored.offset, length: c.stored.length, compression: c.stored.compression },
      sha256: c.sha256,
    }),
  );
  return `{\n${lines.join('\n')}\n  "chunks": [\n    ${chunks.join(',\n    ')}\n  ]\n}\n`;
}

// --- checks -------------------------------------------------------------------------

function fail(reason: string, message: string): never {
  throw new DecodeError(reason, `manifest: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) fail('unknown-field', `${where}${k} is not a field of format version 1`);
  }
}

function uint(v: unknown, reason: string, where: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    fail(reason, `${where} must be a non-negative integer (got ${JSON.stringify(v)})`);
  }
  return v;
}

function hex64(v: unknown, reason: string, where: string): string {
  if (typeof v !== 'string' || !HEX64.test(v)) fail(reason, `${where} must be 64 lowercase hex digits`);
  return v;
}

function compressionOf(v: unknown, reason: string, where: string): ChunkCompression {
  if (v !== 'zstd' && v !== 'none') fail(reason, `${where} must be "zstd" or "none" (got ${JSON.stringify(v)})`);
  return v;
}

const TOP_KEYS = [
  'format',
  'version',
  'name',
  'size',
  'chunkSize',
  'compression',
  'createdAt',
  'source',
  'chunks',
  'rootHash',
] as const;
const CHUNK_KEYS = ['index', 'offset', 'length', 'stored', 'sha256'] as const;
const STORED_KEYS = ['offset', 'length', 'compression'] as const;
const SOURCE_KEYS = ['file', 'sha256'] as const;

function checkManifest(value: unknown, storedLimit: number | undefined): Manifest {
  if (!isObject(value)) fail('not-object', 'must be a JSON object');
  onlyKeys(value, TOP_KEYS, '');
  if (value.format !== MANIFEST_FORMAT) {
    fail('format', `format must be "${MANIFEST_FORMAT}" (got ${JSON.stringify(value.format)})`);
  }
  if (value.version !== MANIFEST_VERSION) {
    fail('version', `version ${JSON.stringify(value.version)} is not supported (this box reads version 1)`);
  }
  const name = value.name;
  if (typeof name !== 'string' || !isValidImageName(name)) {
    fail('name', `name ${JSON.stringify(name)} must be 1-128 of A-Z a-z 0-9 . _ - (starting with a letter or digit)`);
  }
  const size = uint(value.size, 'size', 'size');
  const chunkSize = value.chunkSize;
  if (typeof chunkSize !== 'number' || !isValidChunkSize(chunkSize)) {
    fail('chunk-size', `chunkSize ${JSON.stringify(chunkSize)} must be a power of two from 64 KiB to 64 MiB`);
  }
  const compression = compressionOf(value.compression, 'compression', 'compression');
  const createdAt = value.createdAt;
  if (typeof createdAt !== 'string' || !ISO_UTC.test(createdAt) || Number.isNaN(Date.parse(createdAt))) {
    fail('created-at', `createdAt ${JSON.stringify(createdAt)} must be an ISO 8601 UTC time`);
  }
  let source: ImageSource | undefined;
  if (value.source !== undefined) {
    const s = value.source;
    if (!isObject(s)) fail('source', 'source must be an object');
    onlyKeys(s, SOURCE_KEYS, 'source.');
    if (s.file !== undefined && (typeof s.file !== 'string' || s.file.length === 0)) {
      fail('source', 'source.file must be a non-empty string');
    }
    source = { sha256: hex64(s.sha256, 'source', 'source.sha256') };
    if (typeof s.file === 'string') source = { file: s.file, sha256: source.sha256 };
  }
  if (!Array.isArray(value.chunks)) fail('chunks', 'chunks must be an array');
  const chunks: ChunkEntry[] = [];
  let prevEnd = -1;
  let prevOffset = -1;
  let storedEnd = 0;
  for (const [i, c] of (value.chunks as unknown[]).entries()) {
    const at = `chunks[${i}]`;
    if (!isObject(c)) fail('chunk', `${at} must be an object`);
    onlyKeys(c, CHUNK_KEYS, `${at}.`);
    if (c.index !== i) fail('chunk-index', `${at}.index must be ${i} (got ${JSON.stringify(c.index)})`);
    const offset = uint(c.offset, 'chunk-offset', `${at}.offset`);
    const length = uint(c.length, 'chunk-length', `${at}.length`);
    if (offset % chunkSize !== 0) fail('chunk-misaligned', `${at}.offset ${offset} is not a multiple of ${chunkSize}`);
    if (offset < prevOffset) fail('chunk-order', `${at}.offset ${offset} comes before the previous chunk's`);
    if (offset < prevEnd) fail('chunk-overlap', `${at} (offset ${offset}) overlaps the previous chunk`);
    if (offset >= size || length > size - offset) {
      fail('chunk-outside', `${at} (offset ${offset}, length ${length}) ends beyond the image size ${size}`);
    }
    const expected = Math.min(chunkSize, size - offset);
    if (length !== expected) fail('chunk-length', `${at}.length must be ${expected} (got ${length})`);
    const sha256 = hex64(c.sha256, 'chunk-sha256', `${at}.sha256`);
    const st = c.stored;
    if (!isObject(st)) fail('stored', `${at}.stored must be an object`);
    onlyKeys(st, STORED_KEYS, `${at}.stored.`);
    const sc = compressionOf(st.compression, 'stored-compression', `${at}.stored.compression`);
    if (compression === 'none' && sc !== 'none') {
      fail('stored-compression', `${at}.stored.compression is ${sc} in an uncompressed image`);
    }
    const sOffset = uint(st.offset, 'stored-offset', `${at}.stored.offset`);
    const sLength = uint(st.length, 'stored-length', `${at}.stored.length`);
    if (sc === 'none' && sLength !== length) {
      fail('stored-length', `${at}.stored.length must equal length ${length} for a raw chunk (got ${sLength})`);
    }
    if (sc === 'zstd' && (sLength === 0 || sLength >= length)) {
      fail('stored-length', `${at}.stored.length ${sLength} must be 1..${length - 1} for a zstd chunk`);
    }
    if (sOffset !== storedEnd) {
      fail('stored-offset', `${at}.stored.offset must be ${storedEnd} (chunks are packed in index order)`);
    }
    if (storedLimit !== undefined && sOffset + sLength > storedLimit) {
      fail(
        'stored-outside',
        `${at}.stored range ends at ${sOffset + sLength}, beyond chunks.bin (${storedLimit} bytes)`,
      );
    }
    storedEnd = sOffset + sLength;
    prevOffset = offset;
    prevEnd = offset + length;
    chunks.push({ index: i, offset, length, stored: { offset: sOffset, length: sLength, compression: sc }, sha256 });
  }
  const rootHash = hex64(value.rootHash, 'root-hash', 'rootHash');
  const m: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    name,
    size,
    chunkSize,
    compression,
    createdAt,
    chunks,
    rootHash,
  };
  if (source) m.source = source;
  return m;
}
