/**
 * What a transfer reads from: a size and synchronous positioned reads. The
 * transfer stays pure because reads are synchronous; memory-backed sources
 * serve hot boot files and `FdSource` (fd-source.ts) adapts a file handle.
 */

export type SourceErrorReason = 'shrunk' | 'io' | 'closed';

/** A source that can no longer give the bytes it promised (file truncated, volume gone). */
export class SourceError extends Error {
  readonly reason: SourceErrorReason;
  constructor(reason: SourceErrorReason, message: string) {
    super(message);
    this.name = 'SourceError';
    this.reason = reason;
  }
}

export interface FileSource {
  /** Bytes the transfer sends; fixed for the transfer's life (it is also the tsize answer). */
  readonly size: number;
  /**
   * Exactly `len` bytes at `offset` (offset + len <= size). The result may be a
   * view that stays valid only until the next call: copy it at once. Throws
   * `SourceError` when the bytes cannot be had any more.
   */
  read(offset: number, len: number): Buffer;
  /** Releases what the source holds (file handle, read-ahead). Idempotent. */
  close(): void;
}

/** A source over bytes in memory (cached boot files, netascii conversions, tests). */
export class MemorySource implements FileSource {
  readonly size: number;
  private readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
    this.size = buf.length;
  }
  read(offset: number, len: number): Buffer {
    if (offset < 0 || offset + len > this.size) {
      throw new SourceError('shrunk', `read of ${len} bytes at ${offset} past ${this.size}`);
    }
    return this.buf.subarray(offset, offset + len);
  }
  close(): void {}
}
