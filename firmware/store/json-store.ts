/**
 * A JSON document the box owns (leases, machines, settings), persisted with lowdb:
 * atomic writes (temp file + rename, via steno), batched. Hot paths change the
 * in-memory data and call markDirty(); the store writes at most once per interval,
 * never in the reply path. A failed write (disk full, volume gone) is reported and
 * retried; the previous file stays intact.
 */
import { mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { Low } from 'lowdb';
import { JSONFile } from 'lowdb/node';
import type { Logger } from '../core/logger.ts';

export interface JsonStoreOptions<T> {
  file: string;
  defaults: () => T;
  /** Longest time a change waits before it is written (ms). */
  flushIntervalMs?: number;
  log?: Logger;
  /** Checks a loaded document; returns an error message or undefined. */
  validate?: (data: unknown) => string | undefined;
}

export class JsonStore<T extends object> {
  private readonly db: Low<T>;
  private readonly opts: JsonStoreOptions<T>;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private dirty = false;
  /** Last write error, cleared by a successful write. */
  lastError: string | undefined;
  writes = 0;

  constructor(opts: JsonStoreOptions<T>) {
    this.opts = opts;
    this.db = new Low<T>(new JSONFile<T>(opts.file), opts.defaults());
  }

  get data(): T {
    return this.db.data;
  }

  /** Reads the file; a missing file gives the defaults. A corrupt one is kept aside, never overwritten silently. */
  async load(): Promise<void> {
    mkdirSync(path.dirname(this.opts.file), { recursive: true });
    try {
      await this.db.read();
    } catch (e) {
      const aside = `${this.opts.file}.corrupt-${Date.now()}`;
      renameSync(this.opts.file, aside);
      this.opts.log?.error(`state file ${this.opts.file} was unreadable; kept as ${aside}, starting empty`, {
        error: (e as Error).message,
      });
      this.db.data = this.opts.defaults();
    }
    if (this.db.data === null || this.db.data === undefined) this.db.data = this.opts.defaults();
    const problem = this.opts.validate?.(this.db.data);
    if (problem) {
      const aside = `${this.opts.file}.invalid-${Date.now()}`;
      renameSync(this.opts.file, aside);
      this.opts.log?.error(`state file ${this.opts.file}: ${problem}; kept as ${aside}, starting empty`);
      this.db.data = this.opts.defaults();
    }
  }

  /** Replaces the whole document (in memory) and schedules a write. */
  replace(data: T): void {
    this.db.data = data;
    this.markDirty();
  }

  markDirty(): void {
    this.dirty = true;
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.opts.flushIntervalMs ?? 500);
      this.timer.unref?.();
    }
  }

  /** Writes now if anything changed. Concurrent calls share one write. */
  async flush(): Promise<void> {
    if (this.writing) await this.writing;
    if (!this.dirty) return;
    this.dirty = false;
    this.writing = this.db
      .write()
      .then(() => {
        this.writes++;
        if (this.lastError) this.opts.log?.info(`state file ${this.opts.file} written again`);
        this.lastError = undefined;
      })
      .catch((e: NodeJS.ErrnoException) => {
        // Keep the change pending; the old file is intact (atomic rename never happened).
        this.dirty = true;
        const msg = `${e.code ?? ''} ${e.message}`.trim();
        if (this.lastError !== msg) this.opts.log?.error(`cannot write state file ${this.opts.file}: ${msg}`);
        this.lastError = msg;
        this.markDirtyLater();
      })
      .finally(() => {
        this.writing = undefined;
      });
    await this.writing;
  }

  private markDirtyLater(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, 5000);
    this.timer.unref?.();
  }

  /** Flushes and stops the timer. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
