/**
 * Resumable uploads into the image store (capture environments sending a fresh image,
 * admins uploading from the UI).
 *
 *   create  → an upload id, with the declared size checked against the volume's free space
 *   write   → bytes at `offset` (must be where the upload stands: `received`); a dropped
 *             connection keeps what arrived, and the client resumes from `received`
 *   (last byte) → verified (declared SHA-256, the WIM's own structure), then made visible
 *             atomically: a rename into the store (WIM) or a chunked import (raw disk image)
 *
 * Staging lives in `<imagesDir>/.uploads/` (same file system as the store, so the final
 * rename is atomic; dot-names are never scanned). A partial upload is never in the catalog.
 * A disk that fills up ends the upload with DISK_FULL and gives its space back.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Clock } from '../core/clock.ts';
import { BootboxError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import {
  BOOT_GROUP,
  BOOT_IMAGES_DIR,
  type Catalog,
  type CatalogImage,
  GROUP_NAME,
  type ImageKind,
  INSTALL_IMAGES_DIR,
} from './catalog.ts';

export type UploadFormat = 'wim' | 'raw';

export interface UploadRecord {
  id: string;
  /** Image name (raw images); WIM images are named by their own metadata. */
  name: string;
  group: string;
  kind: ImageKind;
  filename: string;
  format: UploadFormat;
  size: number;
  sha256?: string;
  received: number;
  state: 'receiving' | 'verifying' | 'complete' | 'failed';
  error?: { code: string; message: string };
  createdAt: string;
  updatedAt: string;
  by: string;
  images?: string[];
}

export interface UploadEventMap {
  'upload.progress': { ts: string; id: string; received: number; size: number; name: string };
  'upload.complete': { ts: string; id: string; name: string; images: string[]; size: number };
  'upload.failed': { ts: string; id: string; name: string; code: string; message: string };
}

export interface UploadEventSink {
  emit<K extends keyof UploadEventMap>(type: K, event: UploadEventMap[K]): void;
}

export interface UploadsOptions {
  catalog: Catalog;
  clock: Clock;
  log: Logger;
  events?: UploadEventSink;
  /** Raw disk image → chunked bundle `<destDir>/<name>.bbimg` (images/chunked/importer). */
  importRaw(file: string, destDir: string, name: string): Promise<void>;
  /** Checks a WIM and gives its image names (images/wim/reader). */
  wimNames(file: string): Promise<string[]>;
  /** Unfinished uploads older than this are removed at start (ms). */
  expireMs?: number;
  /** Space kept free on the volume beyond an upload's size (bytes). */
  reserveBytes?: number;
}

const ID = /^[a-f0-9]{24}$/;
const FILENAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}$/;
const SHA256 = /^[a-f0-9]{64}$/;
const formatOf = (filename: string): UploadFormat | undefined =>
  /\.(wim|esd)$/i.test(filename) ? 'wim' : /\.(img|raw)$/i.test(filename) ? 'raw' : undefined;

export class Uploads {
  private readonly o: UploadsOptions;
  private readonly uploads = new Map<string, UploadRecord>();
  /** Uploads with a write in progress (one writer at a time). */
  private readonly busy = new Set<string>();
  private lastProgress = new Map<string, number>();

  constructor(o: UploadsOptions) {
    this.o = o;
  }

  get dir(): string {
    return path.join(this.o.catalog.imagesDir, '.uploads');
  }

  /** Picks up unfinished uploads (they stay resumable across restarts) and drops expired ones. */
  async start(): Promise<void> {
    let names: string[] = [];
    try {
      names = await fs.promises.readdir(this.dir);
    } catch {
      return;
    }
    const now = this.o.clock.date().getTime();
    for (const n of names.filter((x) => x.endsWith('.json'))) {
      const id = n.slice(0, -5);
      try {
        const rec = JSON.parse(await fs.promises.readFile(path.join(this.dir, n), 'utf8')) as UploadRecord;
        const st = await fs.promises.stat(this.partFile(id)).catch(() => undefined);
        if (!ID.test(id) || rec.id !== id || rec.state !== 'receiving' || !st) throw new Error('stale');
        if (now - Date.parse(rec.updatedAt) > (this.o.expireMs ?? 24 * 3600_000)) throw new Error('expired');
        rec.received = Math.min(st.size, rec.size);
        this.uploads.set(id, rec);
      } catch {
        await this.removeFiles(id);
      }
    }
  }

  list(): Array<UploadRecord & { active: boolean }> {
    return [...this.uploads.values()]
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      .map((u) => ({ ...u, active: this.busy.has(u.id) }));
  }

  get(id: string): UploadRecord {
    const u = ID.test(id) ? this.uploads.get(id) : undefined;
    if (!u) throw new BootboxError('NOT_FOUND', `no upload "${id}"`);
    return u;
  }

  /** The record as callers see it: with `active` while a connection is sending to it. */
  describe(id: string): UploadRecord & { active: boolean } {
    const u = this.get(id);
    return { ...u, active: this.busy.has(u.id) };
  }

  async create(input: unknown, by: string): Promise<UploadRecord> {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      throw new BootboxError(
        'INVALID_REQUEST',
        'body must be {"filename", "size", "kind"?, "group"?, "name"?, "sha256"?}',
      );
    }
    const b = input as Record<string, unknown>;
    for (const k of Object.keys(b)) {
      if (!['filename', 'size', 'kind', 'group', 'name', 'sha256'].includes(k)) {
        throw new BootboxError('INVALID_REQUEST', `unknown field "${k}"`);
      }
    }
    if (typeof b.filename !== 'string' || !FILENAME.test(b.filename)) {
      throw new BootboxError(
        'INVALID_REQUEST',
        '"filename" must be 1-128 letters, digits, space, . _ or - (e.g. install.wim)',
      );
    }
    const format = formatOf(b.filename);
    if (!format) {
      throw new BootboxError(
        'INVALID_REQUEST',
        `"filename" ${JSON.stringify(b.filename)}: only .wim/.esd (Windows) and .img/.raw (disk images) can be uploaded`,
      );
    }
    if (typeof b.size !== 'number' || !Number.isSafeInteger(b.size) || b.size <= 0) {
      throw new BootboxError('INVALID_REQUEST', '"size" must be the file size in bytes (a positive integer)');
    }
    const kind = b.kind ?? 'install';
    if (kind !== 'boot' && kind !== 'install')
      throw new BootboxError('INVALID_REQUEST', '"kind" must be "boot" or "install"');
    if (kind === 'boot' && format !== 'wim') throw new BootboxError('INVALID_REQUEST', 'boot images are WIM files');
    const group = kind === 'boot' ? BOOT_GROUP : (b.group ?? 'default');
    if (typeof group !== 'string' || !GROUP_NAME.test(group)) {
      throw new BootboxError('INVALID_REQUEST', '"group" must be 1-64 letters, digits, space, . _ or -');
    }
    const name = b.name ?? b.filename.replace(/\.[^.]+$/, '');
    if (typeof name !== 'string' || !GROUP_NAME.test(name)) {
      throw new BootboxError('INVALID_REQUEST', '"name" must be 1-64 letters, digits, space, . _ or -');
    }
    if (b.sha256 !== undefined && (typeof b.sha256 !== 'string' || !SHA256.test(b.sha256))) {
      throw new BootboxError('INVALID_REQUEST', '"sha256" must be 64 lower-case hex digits');
    }
    if (format === 'raw') this.o.catalog.assertNameFree(kind, group, name);
    const dest = this.destination(kind, group, b.filename, format, name);
    if (fs.existsSync(dest))
      throw new BootboxError(
        'CONFLICT',
        `${path.relative(this.o.catalog.imagesDir, dest)} already exists on the image volume`,
      );
    for (const u of this.uploads.values()) {
      if (u.state === 'receiving' && u.kind === kind && u.group === group && u.filename === b.filename) {
        throw new BootboxError(
          'CONFLICT',
          `upload ${u.id} of ${u.filename} to group "${group}" is already under way (resume it, or DELETE it)`,
        );
      }
    }
    await this.assertFits(b.size);
    const now = this.o.clock.date().toISOString();
    const rec: UploadRecord = {
      id: randomBytes(12).toString('hex'),
      name,
      group,
      kind,
      filename: b.filename,
      format,
      size: b.size,
      ...(b.sha256 ? { sha256: b.sha256 as string } : {}),
      received: 0,
      state: 'receiving',
      createdAt: now,
      updatedAt: now,
      by,
    };
    try {
      await makeDirs(this.dir);
      await fs.promises.writeFile(this.partFile(rec.id), '');
      await this.saveRecord(rec);
    } catch (e) {
      await this.removeFiles(rec.id);
      throw storageError(e, `creating upload of ${rec.filename}`);
    }
    this.uploads.set(rec.id, rec);
    return rec;
  }

  /**
   * Appends `data` at `offset`. `offset` must equal `received` (resume from where the box
   * says it stands). Bytes beyond the declared size are refused. Returns the record after
   * the write (and after verification when this was the last byte).
   */
  async write(id: string, offset: number, data: Readable, length?: number): Promise<UploadRecord> {
    const u = this.get(id);
    if (u.state !== 'receiving') throw new BootboxError('INVALID_STATE', `upload ${id} is ${u.state}, not receiving`);
    if (this.busy.has(id))
      throw new BootboxError('CONFLICT', `upload ${id} is already receiving on another connection`);
    if (offset !== u.received) {
      throw new BootboxError(
        'CONFLICT',
        `upload ${id} stands at byte ${u.received}: send from there (got offset ${offset})`,
        {
          received: u.received,
        },
      );
    }
    if (length !== undefined && offset + length > u.size) {
      throw new BootboxError(
        'UPLOAD_INVALID',
        `bytes ${offset}-${offset + length - 1} go beyond the declared size ${u.size}`,
      );
    }
    this.busy.add(id);
    let fh: fs.promises.FileHandle | undefined;
    try {
      fh = await fs.promises.open(this.partFile(id), 'r+');
      // a previous connection may have left bytes past `received` (never counted): drop them
      await fh.truncate(u.received);
      let pos = u.received;
      for await (const chunk of data) {
        const buf = chunk as Buffer;
        if (pos + buf.length > u.size) {
          throw new BootboxError('UPLOAD_INVALID', `upload ${id} sent more than its declared size ${u.size}`);
        }
        await fh.write(buf, 0, buf.length, pos);
        pos += buf.length;
        u.received = pos;
        this.progress(u);
      }
      await fh.sync();
      u.updatedAt = this.o.clock.date().toISOString();
      await this.saveRecord(u);
    } catch (e) {
      await fh?.close().catch(() => {});
      fh = undefined;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EROFS' || code === 'EIO' || code === 'ENOTCONN' || code === 'ENOENT') {
        const err = storageError(e, `writing upload ${u.filename} at byte ${u.received}`);
        await this.fail(u, err);
        throw err;
      }
      if (e instanceof BootboxError) {
        // what was received stays; the client resumes from `received`
        throw e;
      }
      // a dropped connection: keep what arrived, resumable
      this.o.log.info(`upload ${id} interrupted at ${u.received}/${u.size} bytes: resumable`, {
        error: (e as Error).message,
      });
      u.updatedAt = this.o.clock.date().toISOString();
      await this.saveRecord(u).catch(() => {});
      throw new BootboxError(
        'UPLOAD_INVALID',
        `upload ${id} was interrupted at byte ${u.received}: resume from there`,
        {
          received: u.received,
        },
      );
    } finally {
      await fh?.close().catch(() => {});
      this.busy.delete(id);
    }
    if (u.received === u.size) await this.finish(u);
    return u;
  }

  async abort(id: string): Promise<void> {
    const u = this.get(id);
    if (this.busy.has(id)) throw new BootboxError('CONFLICT', `upload ${id} is receiving; stop the sender first`);
    this.uploads.delete(id);
    await this.removeFiles(u.id);
  }

  private async finish(u: UploadRecord): Promise<void> {
    u.state = 'verifying';
    const part = this.partFile(u.id);
    try {
      if (u.sha256) {
        const h = createHash('sha256');
        for await (const c of fs.createReadStream(part, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
        const got = h.digest('hex');
        if (got !== u.sha256) {
          throw new BootboxError('UPLOAD_INVALID', `${u.filename}: SHA-256 is ${got}, the upload declared ${u.sha256}`);
        }
      }
      const dest = this.destination(u.kind, u.group, u.filename, u.format, u.name);
      await makeDirs(path.dirname(dest));
      if (u.format === 'wim') {
        const names = await this.o.wimNames(part);
        for (const n of names) this.o.catalog.assertNameFree(u.kind, u.group, n);
        if (fs.existsSync(dest))
          throw new BootboxError('CONFLICT', `${u.filename} appeared in group "${u.group}" meanwhile`);
        await fs.promises.rename(part, dest);
      } else {
        this.o.catalog.assertNameFree(u.kind, u.group, u.name);
        await this.o.importRaw(part, path.dirname(dest), u.name);
      }
      await this.o.catalog.scan();
      const rel = path.relative(this.o.catalog.imagesDir, dest).split(path.sep).join('/');
      const images = this.o.catalog.list().filter((i: CatalogImage) => i.source.file === rel && i.available);
      u.images = images.map((i) => i.id);
      u.state = 'complete';
      u.updatedAt = this.o.clock.date().toISOString();
      this.uploads.delete(u.id);
      await this.removeFiles(u.id);
      this.o.events?.emit('upload.complete', {
        ts: u.updatedAt,
        id: u.id,
        name: u.name,
        images: u.images,
        size: u.size,
      });
      this.o.log.info(`upload ${u.id}: ${u.filename} is in the catalog`, { images: u.images });
    } catch (e) {
      const err = e instanceof BootboxError ? e : storageError(e, `storing upload ${u.filename}`);
      await this.fail(u, err);
      throw err;
    }
  }

  private async fail(u: UploadRecord, err: BootboxError): Promise<void> {
    u.state = 'failed';
    u.error = { code: err.code, message: err.message };
    u.updatedAt = this.o.clock.date().toISOString();
    this.uploads.delete(u.id);
    await this.removeFiles(u.id);
    this.o.events?.emit('upload.failed', {
      ts: u.updatedAt,
      id: u.id,
      name: u.name,
      code: err.code,
      message: err.message,
    });
    this.o.log.warn(`upload ${u.id} of ${u.filename} failed: ${err.message}`);
  }

  private progress(u: UploadRecord): void {
    const now = this.o.clock.now();
    if (now - (this.lastProgress.get(u.id) ?? -1e9) < 500 && u.received !== u.size) return;
    this.lastProgress.set(u.id, now);
    this.o.events?.emit('upload.progress', {
      ts: this.o.clock.date().toISOString(),
      id: u.id,
      received: u.received,
      size: u.size,
      name: u.name,
    });
  }

  private async assertFits(size: number): Promise<void> {
    let free: number;
    try {
      await fs.promises.mkdir(this.o.catalog.imagesDir, { recursive: true });
      const st = await fs.promises.statfs(this.o.catalog.imagesDir);
      free = st.bavail * st.bsize;
    } catch (e) {
      throw storageError(e, 'checking free space');
    }
    const reserve = this.o.reserveBytes ?? 16 * 1024 * 1024;
    let pending = 0;
    for (const u of this.uploads.values()) if (u.state === 'receiving') pending += u.size - u.received;
    if (size + reserve + pending > free) {
      throw new BootboxError(
        'DISK_FULL',
        `an upload of ${size} bytes does not fit: the image volume has ${free} bytes free` +
          (pending ? ` (${pending} bytes promised to uploads under way)` : ''),
      );
    }
  }

  private destination(kind: ImageKind, group: string, filename: string, format: UploadFormat, name: string): string {
    const dir =
      kind === 'boot'
        ? path.join(this.o.catalog.imagesDir, BOOT_IMAGES_DIR)
        : path.join(this.o.catalog.imagesDir, INSTALL_IMAGES_DIR, group);
    return path.join(dir, format === 'raw' ? `${name}.bbimg` : filename);
  }

  private partFile(id: string): string {
    return path.join(this.dir, `${id}.part`);
  }

  private async saveRecord(u: UploadRecord): Promise<void> {
    const file = path.join(this.dir, `${u.id}.json`);
    const tmp = `${file}.tmp`;
    await fs.promises.writeFile(tmp, JSON.stringify(u));
    await fs.promises.rename(tmp, file);
  }

  private async removeFiles(id: string): Promise<void> {
    for (const f of [this.partFile(id), path.join(this.dir, `${id}.json`), path.join(this.dir, `${id}.json.tmp`)]) {
      await fs.promises.rm(f, { force: true }).catch(() => {});
    }
  }
}

/**
 * `mkdir -p` that reports the real failure. Node's recursive mkdir answers ENOENT when the
 * directory could not be made for another reason (EROFS on a read-only volume: it reports
 * the error of the stat it does after the failed mkdir), which would hide the cause.
 */
export async function makeDirs(dir: string): Promise<void> {
  try {
    await fs.promises.mkdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && (await fs.promises.stat(dir)).isDirectory()) return;
    if (code !== 'ENOENT' || path.dirname(dir) === dir) throw e;
    await makeDirs(path.dirname(dir));
    await fs.promises.mkdir(dir).catch((e2: NodeJS.ErrnoException) => {
      if (e2.code !== 'EEXIST') throw e2;
    });
  }
}

/** File-system failures in words an admin can act on. */
export function storageError(e: unknown, doing: string): BootboxError {
  if (e instanceof BootboxError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOSPC':
      return new BootboxError('DISK_FULL', `the image volume is full (${doing})`);
    case 'EROFS':
      return new BootboxError('VOLUME_READ_ONLY', `the image volume is read-only (${doing})`);
    case 'EIO':
    case 'ENOTCONN':
    case 'ENODEV':
      return new BootboxError('VOLUME_UNAVAILABLE', `the image volume stopped answering (${doing}: ${code})`);
    default:
      return new BootboxError('INTERNAL', `${doing}: ${(e as Error).message}`);
  }
}
