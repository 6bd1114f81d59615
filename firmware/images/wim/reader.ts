/**
 * Reads what the image catalog needs from a WIM file without decompressing anything:
 * the header (header.ts), the XML metadata (xml.ts, stored uncompressed in every WIM)
 * and, for LZMS-era WIMs only, the blob table's resource flags to tell a solid WIM
 * ("ESD") from one with per-file resources.
 *
 * Sizes are checked against the real file size and a limit before any buffer is
 * allocated, so a header declaring gigabytes of XML costs nothing. Every failure,
 * unreadable files included, is a `BootboxError('IMAGE_INVALID', '<file>: <reason>')`,
 * and the file is closed on every path.
 *
 * Split WIMs (.swm): every part has the same header facts (GUID, part N of M). The
 * parts written by DISM and wimlib all carry the XML data, so `images` is filled for
 * every part that has it; a part without XML data reports `images: []`. File data of
 * the image lives across all parts: the catalog lists an image once, from part 1.
 */
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { BootboxError, DecodeError } from '../../core/errors.ts';
import {
  BLOB_TABLE_ENTRY_SIZE,
  blobTableRange,
  decodeWimHeader,
  hasSolidBlobEntry,
  mayHoldSolidResources,
  WIM_HEADER_SIZE,
  type WimCompression,
  type WimHeader,
  xmlDataRange,
} from './header.ts';
import { decodeWimXml, type WimImageInfo } from './xml.ts';

export type { WimCompression } from './header.ts';
export type { WimArchitecture, WimImageInfo } from './xml.ts';

export const DEFAULT_MAX_XML_BYTES = 32 * 1024 * 1024;
/** Blob table entries read per step when looking for solid resources. */
const BLOB_SCAN_ENTRIES = 4096;

export interface WimInfo {
  /** The path as given. */
  file: string;
  /** Bytes of this file (this part, for a split WIM). */
  size: number;
  /** 32 lower-case hex digits, the GUID bytes in file order; shared by all parts of a split WIM. */
  guid: string;
  partNumber: number;
  totalParts: number;
  compression: WimCompression;
  /** Chunk size of the non-solid compressed resources (0 for an uncompressed WIM). */
  chunkSize: number;
  /** Holds solid resources (files compressed together: an "ESD"). */
  solid: boolean;
  /** 1-based index of the bootable image (WinPE boot.wim), 0 = none. */
  bootIndex: number;
  imageCount: number;
  /** The XML's top-level TOTALBYTES: the WIM's size up to its XML data (of the whole WIM, if split); 0 without XML data. */
  totalBytes: number;
  /** Sorted by index; empty for a part of a split WIM that has no XML data. */
  images: WimImageInfo[];
}

export interface ReadWimOptions {
  /** Refuse XML data larger than this (default 32 MiB; real WIMs have a few KiB per image). */
  maxXmlBytes?: number;
}

/** `ENOENT: no such file or directory` from a Node file system error. */
function errnoText(e: NodeJS.ErrnoException): string {
  const what = /^[A-Z0-9_]+: ([^,]+)/.exec(e.message)?.[1];
  return what ? `${e.code}: ${what}` : (e.code ?? e.message);
}

function invalid(file: string, e: unknown): BootboxError {
  if (e instanceof BootboxError) return e;
  if (e instanceof DecodeError) return new BootboxError('IMAGE_INVALID', `${file}: ${e.message}`, { reason: e.reason });
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string') {
    return new BootboxError('IMAGE_INVALID', `${file}: cannot read the file (${errnoText(err)})`, {
      errno: err.code,
    });
  }
  return new BootboxError('IMAGE_INVALID', `${file}: cannot read the file (${String(err?.message ?? err)})`);
}

/** Reads exactly `length` bytes at `position`; a short read means the file ends early. */
async function readAt(fh: FileHandle, position: number, length: number, what: string): Promise<Uint8Array> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new DecodeError('truncated', `the file ends inside the ${what} (at byte ${position + done})`);
    }
    done += bytesRead;
  }
  return buf;
}

/** [WIMLIB] only version 0xE00 WIMs can hold solid resources; then look for one in the blob table. */
async function holdsSolidResources(fh: FileHandle, h: WimHeader, fileSize: number): Promise<boolean> {
  if (!mayHoldSolidResources(h)) return false;
  const range = blobTableRange(h, fileSize);
  const step = BLOB_SCAN_ENTRIES * BLOB_TABLE_ENTRY_SIZE;
  for (let done = 0; done < range.length; done += step) {
    const n = Math.min(step, range.length - done);
    if (hasSolidBlobEntry(await readAt(fh, range.offset + done, n, 'blob table'))) return true;
  }
  return false;
}

/** Header facts and per-image metadata of one WIM file (or one part of a split WIM). */
export async function readWimInfo(file: string, opts: ReadWimOptions = {}): Promise<WimInfo> {
  const maxXmlBytes = opts.maxXmlBytes ?? DEFAULT_MAX_XML_BYTES;
  let fh: FileHandle | undefined;
  try {
    // Refuse anything but a regular file before opening it (opening a FIFO could block).
    const before = await fs.promises.stat(file);
    if (!before.isFile()) {
      throw new DecodeError('not-a-file', `not a regular file${before.isDirectory() ? ' (a directory)' : ''}`);
    }
    fh = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const st = await fh.stat();
    if (!st.isFile()) throw new DecodeError('not-a-file', 'not a regular file');
    const size = st.size;
    if (size === 0) throw new DecodeError('short-header', 'not a WIM file: the file is empty');
    const header = decodeWimHeader(await readAt(fh, 0, Math.min(size, WIM_HEADER_SIZE), 'WIM header'));
    const range = xmlDataRange(header, size, maxXmlBytes);
    if (!range && header.partNumber === 1 && header.imageCount > 0) {
      throw new DecodeError('xml-missing', `the header counts ${header.imageCount} images but there is no XML data`);
    }
    const xml = range
      ? decodeWimXml(await readAt(fh, range.offset, range.length, 'XML data'), { imageCount: header.imageCount })
      : { totalBytes: 0, images: [] };
    const solid = await holdsSolidResources(fh, header, size);
    return {
      file,
      size,
      guid: header.guid,
      partNumber: header.partNumber,
      totalParts: header.totalParts,
      compression: header.compression,
      chunkSize: header.chunkSize,
      solid,
      bootIndex: header.bootIndex,
      imageCount: header.imageCount,
      totalBytes: xml.totalBytes,
      images: xml.images,
    };
  } catch (e) {
    throw invalid(file, e);
  } finally {
    await fh?.close().catch(() => {});
  }
}
