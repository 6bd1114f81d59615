/**
 * WIM header codec: the fixed 208-byte header at the start of every WIM (and of every
 * part of a split WIM), and the resource headers it holds. Pure: bytes in, facts out;
 * garbage only ever throws `DecodeError` with a short stable `reason`.
 *
 * Sources (facts only):
 * - [WIMFMT] Microsoft, "Windows Imaging File Format (WIM)", v1.0 (WAIK), §2.2 "WIM
 *   Header" (WIMHEADER_V1_PACKED), §2.3 "Resource Header" (RESHDR_DISK_SHORT),
 *   §2.4 "Lookup Table" (the blob table).
 * - [WIMLIB] wimlib's documentation of the later additions (include/wimlib/header.h,
 *   resource.h): LZMS and XPRESS-2 compression flags, solid resources and the 0xE00
 *   version that WIMs with LZMS or solid resources carry ("ESD files"), the pipable
 *   WIM magic, and the 65535-image limit.
 *
 * Header layout [WIMFMT §2.2], all little-endian:
 *
 *   0  ImageTag[8]        "MSWIM\0\0\0"
 *   8  cbSize u32         208
 *  12  dwVersion u32      0x10d00 (0xe00: LZMS / solid)
 *  16  dwFlags u32        WimHeaderFlag
 *  20  dwCompressionSize  chunk size of compressed resources
 *  24  gWIMGuid[16]       the same in every part of a split WIM
 *  40  usPartNumber u16   1-based
 *  42  usTotalParts u16
 *  44  dwImageCount u32
 *  48  rhOffsetTable      resource header (24 bytes) of the blob (lookup) table
 *  72  rhXmlData          resource header of the XML metadata (UTF-16LE)
 *  96  rhBootMetadata     resource header of the boot image's metadata
 * 120  dwBootIndex u32    1-based index of the bootable image, 0 = none
 * 124  rhIntegrity        resource header of the integrity table
 * 148  bUnused[60]
 */
import { DecodeError } from '../../core/errors.ts';

/** [WIMFMT §2.2] cbSize: the header is exactly this long. */
export const WIM_HEADER_SIZE = 208;
/** [WIMFMT §2.2] ImageTag. */
export const WIM_MAGIC = 'MSWIM\0\0\0';
/** [WIMLIB header.h PWM_MAGIC] wimlib's "pipable" WIM: not readable by Windows (DISM, Setup). */
export const PIPABLE_WIM_MAGIC = 'WLPWM\0\0\0';
/** [WIMLIB header.h MAX_IMAGES] */
export const WIM_MAX_IMAGES = 65535;

/** [WIMFMT §2.2] dwVersion; [WIMLIB header.h WIM_VERSION_SOLID] for LZMS and solid WIMs. */
export const WimVersion = {
  Default: 0x10d00,
  Solid: 0xe00,
} as const;

/** [WIMFMT §2.2] dwFlags (FLAG_HEADER_*); LZMS and XPRESS-2 from [WIMLIB header.h]. */
export const WimHeaderFlag = {
  Reserved: 0x00000001,
  Compression: 0x00000002,
  ReadOnly: 0x00000004,
  Spanned: 0x00000008,
  ResourceOnly: 0x00000010,
  MetadataOnly: 0x00000020,
  WriteInProgress: 0x00000040,
  RpFix: 0x00000080,
  CompressReserved: 0x00010000,
  CompressXpress: 0x00020000,
  CompressLzx: 0x00040000,
  CompressLzms: 0x00080000,
  CompressXpress2: 0x00200000,
} as const;

/** [WIMFMT §2.3] bFlags of a resource header (RESHDR_FLAG_*); Solid from [WIMLIB resource.h]. */
export const ResourceFlag = {
  Free: 0x01,
  Metadata: 0x02,
  Compressed: 0x04,
  Spanned: 0x08,
  Solid: 0x10,
} as const;

/** [WIMFMT §2.3] RESHDR_DISK_SHORT: 7-byte size, 1-byte flags, 8-byte offset, 8-byte original size. */
export const RESOURCE_HEADER_SIZE = 24;
/** [WIMFMT §2.4] a blob (lookup) table entry: resource header, usPartNumber u16, dwRefCount u32, SHA-1[20]. */
export const BLOB_TABLE_ENTRY_SIZE = 50;

export type WimCompression = 'none' | 'xpress' | 'lzx' | 'lzms';

/** Chunk sizes a compressed WIM may declare, per type [WIMLIB wim.c, from the WIMGAPI limits]. */
const CHUNK_SIZE_RANGE: Record<Exclude<WimCompression, 'none'>, [number, number]> = {
  xpress: [4096, 65536],
  lzx: [32768, 2097152],
  lzms: [32768, 1073741824],
};

export interface ResourceHeader {
  /** Bytes stored in the file (compressed size). */
  size: number;
  /** ResourceFlag bits. */
  flags: number;
  /** File offset of the first byte. */
  offset: number;
  /** Bytes once decompressed. */
  originalSize: number;
}

export interface WimHeader {
  version: number;
  /** WimHeaderFlag bits as stored. */
  flags: number;
  compression: WimCompression;
  /** Chunk size of the (non-solid) compressed resources; 0 or meaningless when uncompressed. */
  chunkSize: number;
  /** The 16 GUID bytes in file order as 32 lower-case hex digits (as `wiminfo --header` prints them). */
  guid: string;
  partNumber: number;
  totalParts: number;
  imageCount: number;
  blobTable: ResourceHeader;
  xmlData: ResourceHeader;
  bootMetadata: ResourceHeader;
  /** 1-based index of the bootable image, 0 = none. */
  bootIndex: number;
  integrity: ResourceHeader;
}

/** A byte range of the file to read. */
export interface FileRange {
  offset: number;
  length: number;
}

const latin1 = (b: Uint8Array) => String.fromCharCode(...b);
const printable = (s: string) => JSON.stringify(s).slice(1, -1);

/** [WIMFMT §2.3] one RESHDR_DISK_SHORT at `at`; `what` names it in errors. */
export function decodeResourceHeader(buf: Uint8Array, at: number, what: string): ResourceHeader {
  if (at < 0 || buf.length - at < RESOURCE_HEADER_SIZE) {
    throw new DecodeError('short-resource-header', `${what}: resource header truncated`);
  }
  const v = new DataView(buf.buffer, buf.byteOffset + at, RESOURCE_HEADER_SIZE);
  // ullSize is 7 bytes (56 bits), bFlags the 8th byte.
  const size = v.getUint32(0, true) + (v.getUint16(4, true) + v.getUint8(6) * 0x10000) * 0x100000000;
  const flags = v.getUint8(7);
  const offset = v.getBigUint64(8, true);
  const originalSize = v.getBigUint64(16, true);
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  if (!Number.isSafeInteger(size) || offset > max || originalSize > max) {
    throw new DecodeError('resource-out-of-range', `${what}: size or offset beyond 2^53 bytes`);
  }
  return { size, flags, offset: Number(offset), originalSize: Number(originalSize) };
}

/** [WIMFMT §2.2] plus the compression types of [WIMLIB]; a compressed WIM names exactly one type. */
function compressionOf(flags: number): WimCompression {
  if (!(flags & WimHeaderFlag.Compression)) return 'none';
  const types: WimCompression[] = [];
  if (flags & (WimHeaderFlag.CompressXpress | WimHeaderFlag.CompressXpress2)) types.push('xpress');
  if (flags & WimHeaderFlag.CompressLzx) types.push('lzx');
  if (flags & WimHeaderFlag.CompressLzms) types.push('lzms');
  if (types.length === 0) {
    throw new DecodeError(
      'unsupported-compression',
      `compressed, but with no known compression type (flags 0x${flags.toString(16)})`,
    );
  }
  if (types.length > 1) {
    throw new DecodeError(
      'bad-compression-flags',
      `header names several compression types (${types.join(', ')}; flags 0x${flags.toString(16)})`,
    );
  }
  return types[0]!;
}

/** Decodes the first 208 bytes of a WIM file (or of one part of a split WIM). */
export function decodeWimHeader(buf: Uint8Array): WimHeader {
  if (buf.length < WIM_HEADER_SIZE) {
    throw new DecodeError(
      'short-header',
      `not a WIM file: ${buf.length} bytes, shorter than the ${WIM_HEADER_SIZE}-byte WIM header`,
    );
  }
  const magic = latin1(buf.subarray(0, 8));
  if (magic === PIPABLE_WIM_MAGIC) {
    throw new DecodeError(
      'pipable-unsupported',
      'a wimlib "pipable" WIM, which Windows cannot use: convert it with `wimoptimize --not-pipable`',
    );
  }
  if (magic !== WIM_MAGIC) throw new DecodeError('bad-magic', `not a WIM file (starts with "${printable(magic)}")`);
  const v = new DataView(buf.buffer, buf.byteOffset, WIM_HEADER_SIZE);
  const headerSize = v.getUint32(8, true);
  if (headerSize !== WIM_HEADER_SIZE) {
    throw new DecodeError('bad-header-size', `header size ${headerSize}, expected ${WIM_HEADER_SIZE}`);
  }
  const version = v.getUint32(12, true);
  if (version !== WimVersion.Default && version !== WimVersion.Solid) {
    throw new DecodeError(
      'unsupported-version',
      `unsupported WIM version 0x${version.toString(16)} (known: 0x10d00, 0xe00)`,
    );
  }
  const flags = v.getUint32(16, true);
  const compression = compressionOf(flags);
  const chunkSize = v.getUint32(20, true);
  if (compression !== 'none') {
    const [min, max] = CHUNK_SIZE_RANGE[compression];
    // A power of two within the type's limits.
    if (chunkSize < min || chunkSize > max || (chunkSize & (chunkSize - 1)) !== 0) {
      throw new DecodeError('bad-chunk-size', `chunk size ${chunkSize} is not valid for ${compression} compression`);
    }
  }
  const guid = Buffer.from(buf.buffer, buf.byteOffset + 24, 16).toString('hex');
  const partNumber = v.getUint16(40, true);
  const totalParts = v.getUint16(42, true);
  if (totalParts === 0 || partNumber === 0 || partNumber > totalParts) {
    throw new DecodeError('bad-part-number', `part ${partNumber} of ${totalParts} is not a valid split WIM part`);
  }
  const imageCount = v.getUint32(44, true);
  if (imageCount > WIM_MAX_IMAGES) {
    throw new DecodeError('bad-image-count', `image count ${imageCount} is over the limit of ${WIM_MAX_IMAGES}`);
  }
  const blobTable = decodeResourceHeader(buf, 48, 'blob table');
  const xmlData = decodeResourceHeader(buf, 72, 'XML data');
  const bootMetadata = decodeResourceHeader(buf, 96, 'boot metadata');
  const bootIndex = v.getUint32(120, true);
  if (bootIndex > imageCount) {
    throw new DecodeError('bad-boot-index', `boot index ${bootIndex} names no image (the WIM has ${imageCount})`);
  }
  const integrity = decodeResourceHeader(buf, 124, 'integrity table');
  return {
    version,
    flags,
    compression,
    chunkSize,
    guid,
    partNumber,
    totalParts,
    imageCount,
    blobTable,
    xmlData,
    bootMetadata,
    bootIndex,
    integrity,
  };
}

/**
 * Where the XML metadata lies, checked against the real file size and a size limit
 * before anything is allocated for it; null when this part has no XML data.
 * [WIMLIB header.c] the XML data is never compressed, so its stored and original sizes agree.
 */
export function xmlDataRange(h: WimHeader, fileSize: number, maxBytes: number): FileRange | null {
  const r = h.xmlData;
  if (r.size === 0 && r.originalSize === 0) return null;
  if (r.flags & ResourceFlag.Compressed) {
    throw new DecodeError('xml-compressed', 'the XML data is stored compressed, which WIM files never do');
  }
  if (r.size !== r.originalSize) {
    throw new DecodeError('xml-bad-size', `XML data size ${r.size} differs from its original size ${r.originalSize}`);
  }
  if (r.offset < WIM_HEADER_SIZE || r.size > fileSize || r.offset > fileSize - r.size) {
    throw new DecodeError(
      'xml-out-of-range',
      `XML data (${r.size} bytes at offset ${r.offset}) lies outside the ${fileSize}-byte file`,
    );
  }
  if (r.size > maxBytes) {
    throw new DecodeError('xml-too-large', `XML data of ${r.size} bytes is over the ${maxBytes}-byte limit`);
  }
  return { offset: r.offset, length: r.size };
}

/**
 * Where the blob table lies, checked against the file size. [WIMLIB header.c] it is
 * never compressed; [WIMFMT §2.4] it is a whole number of 50-byte entries.
 */
export function blobTableRange(h: WimHeader, fileSize: number): FileRange {
  const r = h.blobTable;
  if (r.flags & ResourceFlag.Compressed || r.size !== r.originalSize) {
    throw new DecodeError('blob-table-compressed', 'the blob table is stored compressed, which WIM files never do');
  }
  if (r.size % BLOB_TABLE_ENTRY_SIZE !== 0) {
    throw new DecodeError(
      'blob-table-bad-size',
      `blob table of ${r.size} bytes is not a whole number of ${BLOB_TABLE_ENTRY_SIZE}-byte entries`,
    );
  }
  if (r.size > 0 && (r.offset < WIM_HEADER_SIZE || r.size > fileSize || r.offset > fileSize - r.size)) {
    throw new DecodeError(
      'blob-table-out-of-range',
      `blob table (${r.size} bytes at offset ${r.offset}) lies outside the ${fileSize}-byte file`,
    );
  }
  return { offset: r.offset, length: r.size };
}

/** [WIMLIB] solid resources exist only in version 0xE00 WIMs: others need no blob table scan. */
export const mayHoldSolidResources = (h: WimHeader) => h.version === WimVersion.Solid;

/** True if any entry of this run of whole blob table entries lies in a solid resource. */
export function hasSolidBlobEntry(entries: Uint8Array): boolean {
  if (entries.length % BLOB_TABLE_ENTRY_SIZE !== 0) {
    throw new DecodeError('blob-table-bad-size', 'blob table run is not a whole number of entries');
  }
  // bFlags is byte 7 of each entry's resource header [WIMFMT §2.3].
  for (let at = 7; at < entries.length; at += BLOB_TABLE_ENTRY_SIZE) {
    if (entries[at]! & ResourceFlag.Solid) return true;
  }
  return false;
}
