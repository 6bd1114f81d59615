/**
 * A FileSource over an open file descriptor, for files too large to cache.
 * Positioned reads into two read-ahead chunks: while the transfer consumes one,
 * the next is read asynchronously (fs.read on the thread pool, no promise). If
 * the transfer gets ahead of the prefetch, or jumps back (window restart before
 * the current chunk), the chunk is refilled with a synchronous positioned read,
 * so `read()` stays synchronous and the transfer stays pure. Never buffers the
 * whole file.
 */
import fs from 'node:fs';
import type { FileSource } from './file-source.ts';
import { SourceError } from './file-source.ts';

interface Chunk {
  buf: Buffer;
  start: number;
  len: number;
}

export interface FdSourceOptions {
  /** Bytes per read-ahead chunk (two are kept). Default 128 KiB. */
  chunkBytes?: number;
  /** Closes the descriptor when the source closes (default true). */
  ownsFd?: boolean;
}

export class FdSource implements FileSource {
  readonly size: number;
  /** Synchronous refills (prefetch misses); a measure of how well read-ahead keeps up. */
  syncReads = 0;
  asyncReads = 0;
  private readonly fd: number;
  private readonly ownsFd: boolean;
  private readonly chunkBytes: number;
  private cur: Chunk;
  private next: Chunk;
  private nextState: 'empty' | 'loading' | 'ready' = 'empty';
  private scratch: Buffer | undefined;
  private closed = false;
  private fdClosed = false;
  private ioError: Error | undefined;

  constructor(fd: number, size: number, opts: FdSourceOptions = {}) {
    this.fd = fd;
    this.size = size;
    this.ownsFd = opts.ownsFd ?? true;
    this.chunkBytes = Math.max(4096, Math.min(opts.chunkBytes ?? 131072, Math.max(size, 4096)));
    this.cur = { buf: Buffer.allocUnsafe(this.chunkBytes), start: 0, len: 0 };
    this.next = { buf: Buffer.allocUnsafe(this.chunkBytes), start: 0, len: 0 };
  }

  read(offset: number, len: number): Buffer {
    if (this.closed) throw new SourceError('closed', 'source closed');
    if (offset < 0 || offset + len > this.size) {
      throw new SourceError('shrunk', `read of ${len} bytes at ${offset} past ${this.size}`);
    }
    const end = offset + len;
    const cur = this.cur;
    const curEnd = cur.start + cur.len;
    if (offset >= cur.start && end <= curEnd) {
      this.prefetch();
      return cur.buf.subarray(offset - cur.start, end - cur.start);
    }
    if (this.nextState === 'ready') {
      const next = this.next;
      const nextEnd = next.start + next.len;
      if (offset >= next.start && end <= nextEnd) {
        this.swap();
        this.prefetch();
        return this.cur.buf.subarray(offset - this.cur.start, end - this.cur.start);
      }
      // A block straddling the two chunks: stitch it, then move on to the next chunk.
      if (offset >= cur.start && offset < curEnd && next.start === curEnd && end <= nextEnd) {
        const out = this.scratchFor(len);
        const head = curEnd - offset;
        cur.buf.copy(out, 0, offset - cur.start, cur.len);
        next.buf.copy(out, head, 0, len - head);
        this.swap();
        this.prefetch();
        return out.subarray(0, len);
      }
    }
    // Miss: refill the current chunk synchronously from `offset`.
    this.fill(cur, offset, len);
    this.prefetch();
    return cur.buf.subarray(0, len);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // An async read in flight still writes into `next`; close the fd after it.
    if (this.nextState !== 'loading') this.closeFd();
  }

  private fill(chunk: Chunk, offset: number, need: number): void {
    const want = Math.min(this.chunkBytes, this.size - offset);
    let got = 0;
    try {
      while (got < want) {
        const n = fs.readSync(this.fd, chunk.buf, got, want - got, offset + got);
        if (n === 0) break;
        got += n;
      }
    } catch (e) {
      throw new SourceError('io', `read at ${offset} failed: ${(e as Error).message}`);
    }
    this.syncReads++;
    chunk.start = offset;
    chunk.len = got;
    if (got < need) {
      chunk.len = 0;
      throw new SourceError('shrunk', `file shrank: ${offset + got} bytes where ${this.size} were announced`);
    }
  }

  private prefetch(): void {
    if (this.nextState === 'loading' || this.closed || this.ioError) return;
    const start = this.cur.start + this.cur.len;
    if (start >= this.size) return;
    if (this.nextState === 'ready' && this.next.start === start) return;
    const next = this.next;
    const want = Math.min(this.chunkBytes, this.size - start);
    this.nextState = 'loading';
    this.asyncReads++;
    fs.read(this.fd, next.buf, 0, want, start, (err, n) => {
      if (this.closed) {
        this.nextState = 'empty';
        this.closeFd();
        return;
      }
      if (err) {
        // Left to the synchronous path, which reports it to the transfer.
        this.ioError = err;
        this.nextState = 'empty';
        return;
      }
      next.start = start;
      next.len = n;
      this.nextState = 'ready';
    });
  }

  private swap(): void {
    const old = this.cur;
    this.cur = this.next;
    this.next = old;
    this.nextState = 'empty';
  }

  private scratchFor(len: number): Buffer {
    if (!this.scratch || this.scratch.length < len) this.scratch = Buffer.allocUnsafe(len);
    return this.scratch;
  }

  private closeFd(): void {
    if (this.fdClosed || !this.ownsFd) return;
    this.fdClosed = true;
    fs.close(this.fd, () => {});
  }
}
