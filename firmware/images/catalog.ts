/**
 * The image catalog: every boot and install image the box can deploy, in groups, each
 * enabled or disabled. It is kept in <data>/catalog.json (so nothing an admin set is lost
 * when the image volume goes away) and rebuilt from the volume on demand (`scan`).
 *
 * Layout of the image store (imagesDir, usually the root of the image volume):
 *
 *   boot/                       the TFTP/HTTP boot tree (first stages, kernels)
 *   boot-images/<file>.wim      boot images (WinPE boot.wim): kind "boot", group "boot"
 *   install-images/<group>/     install images of a group:
 *       <file>.wim | <file>.swm    Windows images, one catalog entry per WIM image index
 *       <name>.bbimg/              chunked whole-disk / partition images (manifest.json + chunks.bin)
 *   install-images/<file>       install images outside any folder: group "default"
 *   unattend/<arch>.xml         client unattend templates (see unattend-store.ts)
 *
 * An image is identified by `<kind>/<group>/<name>`; names are unique within a group,
 * case-insensitively (a second WIM image with the same name is reported, not added).
 * Only files the catalog names are ever served (`servable`).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Clock } from '../core/clock.ts';
import { BootboxError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { JsonStore } from '../store/json-store.ts';

export type ImageKind = 'boot' | 'install';
export type ImageFormat = 'wim' | 'chunked';

export const BOOT_IMAGES_DIR = 'boot-images';
export const INSTALL_IMAGES_DIR = 'install-images';
export const BOOT_GROUP = 'boot';
export const DEFAULT_GROUP = 'default';
/** Group and image names: what a path segment and a UI label can both carry safely. */
export const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;

export interface WimImageFacts {
  index: number;
  name: string;
  description?: string;
  architecture: string;
  edition?: string;
  installationType?: string;
  productName?: string;
  languages: string[];
  version?: string;
  totalBytes: number;
  fileCount: number;
  directoryCount: number;
}

export interface WimFacts {
  size: number;
  compression: string;
  partNumber: number;
  totalParts: number;
  guid: string;
  images: WimImageFacts[];
}

export interface BundleFacts {
  name: string;
  size: number;
  storedBytes: number;
  rootHash: string;
  chunkCount: number;
  description?: string;
  architecture?: string;
  os?: string;
}

/** How the catalog reads image files (the WIM reader and the chunked bundle reader). */
export interface ImageReaders {
  wim(file: string): Promise<WimFacts>;
  bundle(dir: string): Promise<BundleFacts>;
}

export interface CatalogImage {
  /** `<kind>/<group>/<name>` */
  id: string;
  name: string;
  group: string;
  kind: ImageKind;
  format: ImageFormat;
  description: string;
  /** x86 | x64 | arm | arm64 | ia64 | any | unknown */
  architecture: string;
  /** `windows` | `linux` | undefined: which node action wipes it (see telemetry/mqtt/node-actions). */
  os?: string;
  /** Bytes a node receives: the WIM file(s), or the raw size of a chunked image. */
  size: number;
  /** `sha256:<hex>` of the WIM file, or the chunked image's root hash; absent while being hashed. */
  hash?: string;
  source: { file: string; index?: number; parts?: string[] };
  addedAt: string;
  enabled: boolean;
  available: boolean;
  unavailableReason?: string;
  wim?: Omit<WimImageFacts, 'index' | 'name' | 'description' | 'architecture'> & { compression: string };
  /** For change detection of the source between scans. */
  fileSize: number;
  mtimeMs: number;
}

export interface CatalogGroup {
  name: string;
  kind: ImageKind;
  enabled: boolean;
  description: string;
}

export interface CatalogProblem {
  file: string;
  code: string;
  message: string;
}

interface CatalogFile {
  version: 1;
  groups: CatalogGroup[];
  images: CatalogImage[];
  problems: CatalogProblem[];
  lastScan?: { at: string; ms: number; files: number };
}

export interface CatalogEventMap {
  'catalog.scan': { ts: string; images: number; added: number; removed: number; problems: number; ms: number };
  'catalog.image': { ts: string; id: string; change: 'added' | 'updated' | 'unavailable' | 'available' | 'removed' };
}

export interface CatalogEventSink {
  emit<K extends keyof CatalogEventMap>(type: K, event: CatalogEventMap[K]): void;
}

export interface CatalogOptions {
  file: string;
  imagesDir: string;
  readers: ImageReaders;
  clock: Clock;
  log: Logger;
  events?: CatalogEventSink;
  flushIntervalMs?: number;
}

export type VolumeState = { state: 'attached' } | { state: 'missing' | 'unavailable'; reason: string };

export function imageId(kind: ImageKind, group: string, name: string): string {
  return `${kind}/${group}/${name}`;
}

const key = (id: string) => id.toLowerCase();

/** One file found on the volume, before it is read. */
interface Found {
  kind: ImageKind;
  group: string;
  /** Relative to imagesDir, `/`-separated. */
  rel: string;
  format: ImageFormat;
}

export class Catalog {
  private readonly o: CatalogOptions;
  private readonly store: JsonStore<CatalogFile>;
  private volume: VolumeState = { state: 'attached' };
  private scanning: Promise<ScanResult> | undefined;
  private hashQueue: string[] = [];
  private hashing = false;
  private stopped = false;

  constructor(o: CatalogOptions) {
    this.o = o;
    this.store = new JsonStore<CatalogFile>({
      file: o.file,
      defaults: () => ({ version: 1, groups: [], images: [], problems: [] }),
      log: o.log,
      flushIntervalMs: o.flushIntervalMs ?? 500,
      validate: (d) => {
        const f = d as CatalogFile;
        return f?.version === 1 && Array.isArray(f.images) && Array.isArray(f.groups)
          ? undefined
          : 'not a catalog file';
      },
    });
  }

  get imagesDir(): string {
    return this.o.imagesDir;
  }

  async load(): Promise<void> {
    await this.store.load();
    this.store.data.problems ??= [];
    if (this.volume.state !== 'attached') this.setVolumeState(this.volume);
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.store.close();
  }

  list(): CatalogImage[] {
    return [...this.store.data.images].sort((a, b) => a.id.localeCompare(b.id));
  }

  groups(): CatalogGroup[] {
    return [...this.store.data.groups].sort((a, b) => a.name.localeCompare(b.name));
  }

  problems(): CatalogProblem[] {
    return [...this.store.data.problems];
  }

  lastScan(): CatalogFile['lastScan'] {
    return this.store.data.lastScan;
  }

  volumeState(): VolumeState {
    return this.volume;
  }

  /** By id (`install/<group>/<name>`), or by bare name when that is unique. */
  get(idOrName: string): CatalogImage | undefined {
    const k = key(idOrName);
    const byId = this.store.data.images.find((i) => key(i.id) === k);
    if (byId) return byId;
    const byName = this.store.data.images.filter((i) => key(i.name) === k);
    return byName.length === 1 ? byName[0] : undefined;
  }

  /** The names a machine or a command may be given: enabled install images. */
  deployable(): CatalogImage[] {
    const disabledGroups = new Set(this.store.data.groups.filter((g) => !g.enabled).map((g) => key(g.name)));
    return this.list().filter((i) => i.kind === 'install' && i.enabled && !disabledGroups.has(key(i.group)));
  }

  /**
   * The image volume came or went. While it is away every image is unavailable, with the
   * reason; the records and their settings stay. When it comes back, a scan restores them.
   */
  setVolumeState(v: VolumeState): void {
    const was = this.volume.state;
    this.volume = v;
    const now = this.o.clock.date().toISOString();
    if (v.state !== 'attached') {
      for (const img of this.store.data.images) {
        if (img.available) this.o.events?.emit('catalog.image', { ts: now, id: img.id, change: 'unavailable' });
        img.available = false;
        img.unavailableReason = v.reason;
      }
      this.store.markDirty();
    } else if (was !== 'attached') {
      void this.scan().catch((e) => this.o.log.error('catalog scan after re-attach failed', { error: e.message }));
    }
  }

  /** Settings an admin changes: enabled, description, architecture, os. */
  update(
    id: string,
    patch: { enabled?: boolean; description?: string; architecture?: string; os?: string },
  ): CatalogImage {
    const img = this.get(id);
    if (!img) throw new BootboxError('NOT_FOUND', `no image "${id}" in the catalog`);
    if (patch.enabled !== undefined) img.enabled = patch.enabled;
    if (patch.description !== undefined) img.description = patch.description;
    if (patch.architecture !== undefined) img.architecture = patch.architecture;
    if (patch.os !== undefined) img.os = patch.os;
    this.store.markDirty();
    this.o.events?.emit('catalog.image', { ts: this.o.clock.date().toISOString(), id: img.id, change: 'updated' });
    return img;
  }

  setGroup(name: string, patch: { enabled?: boolean; description?: string }): CatalogGroup {
    const g = this.store.data.groups.find((x) => key(x.name) === key(name));
    if (!g) throw new BootboxError('NOT_FOUND', `no image group "${name}"`);
    if (patch.enabled !== undefined) g.enabled = patch.enabled;
    if (patch.description !== undefined) g.description = patch.description;
    this.store.markDirty();
    return g;
  }

  /** Removes an unavailable record for good (its file is gone). Available images are removed by deleting their file. */
  forget(id: string): void {
    const img = this.get(id);
    if (!img) throw new BootboxError('NOT_FOUND', `no image "${id}" in the catalog`);
    if (img.available) {
      throw new BootboxError(
        'INVALID_STATE',
        `image "${img.id}" is available; only a record whose file is gone can be forgotten`,
      );
    }
    this.store.data.images = this.store.data.images.filter((i) => i !== img);
    this.store.markDirty();
    this.o.events?.emit('catalog.image', { ts: this.o.clock.date().toISOString(), id: img.id, change: 'removed' });
  }

  /**
   * Relative paths (to imagesDir) that HTTP may serve: the source files of enabled,
   * available images, the parts of split WIMs, and both files of a chunked image.
   */
  servable(rel: string): CatalogImage | undefined {
    const want = rel.replace(/^\/+/, '');
    for (const img of this.store.data.images) {
      if (!img.available || !img.enabled) continue;
      if (img.format === 'wim') {
        if (img.source.file === want || img.source.parts?.includes(want)) return img;
      } else if (want === `${img.source.file}/manifest.json` || want === `${img.source.file}/chunks.bin`) {
        return img;
      }
    }
    return undefined;
  }

  /** Checks that a new image name is free in its group (duplicate names are refused). */
  assertNameFree(kind: ImageKind, group: string, name: string): void {
    if (this.get(imageId(kind, group, name))?.available) {
      throw new BootboxError('CONFLICT', `group "${group}" already has an image named "${name}"`);
    }
  }

  /** Rebuilds the catalog from the volume. Concurrent calls share one scan. */
  scan(): Promise<ScanResult> {
    if (!this.scanning) {
      this.scanning = this.doScan().finally(() => {
        this.scanning = undefined;
        if (this.hashQueue.length && !this.hashing) void this.drainHashes();
      });
    }
    return this.scanning;
  }

  private async doScan(): Promise<ScanResult> {
    const t0 = this.o.clock.now();
    const now = this.o.clock.date().toISOString();
    if (this.volume.state !== 'attached') {
      throw new BootboxError('VOLUME_UNAVAILABLE', `the image volume is ${this.volume.state}: ${this.volume.reason}`);
    }
    const found = await findImageFiles(this.o.imagesDir);
    const problems: CatalogProblem[] = [];
    const seen = new Set<string>();
    const data = this.store.data;
    const byKey = new Map(data.images.map((i) => [key(i.id), i]));
    let added = 0;
    const groupSeen = new Map<string, ImageKind>();

    const accept = (img: Omit<CatalogImage, 'addedAt' | 'enabled' | 'available'>) => {
      const k = key(img.id);
      if (seen.has(k)) {
        problems.push({
          file: img.source.file,
          code: 'CONFLICT',
          message: `group "${img.group}" already has an image named "${img.name}" (from another file); this one is not listed`,
        });
        return;
      }
      seen.add(k);
      groupSeen.set(img.group, img.kind);
      const old = byKey.get(k);
      if (old) {
        const sameFile =
          old.fileSize === img.fileSize && old.mtimeMs === img.mtimeMs && old.source.file === img.source.file;
        Object.assign(old, {
          ...img,
          // admin settings survive a rescan
          description: old.description || img.description,
          architecture: old.architecture && old.architecture !== 'unknown' ? old.architecture : img.architecture,
          os: old.os ?? img.os,
          hash: img.format === 'chunked' ? img.hash : sameFile ? old.hash : undefined,
          available: true,
        });
        delete old.unavailableReason;
        if (!old.hash) this.queueHash(old.id);
      } else {
        const rec: CatalogImage = { ...img, addedAt: now, enabled: true, available: true };
        data.images.push(rec);
        byKey.set(k, rec);
        added++;
        this.o.events?.emit('catalog.image', { ts: now, id: rec.id, change: 'added' });
        if (!rec.hash) this.queueHash(rec.id);
      }
    };

    for (const f of found) {
      const abs = path.join(this.o.imagesDir, f.rel);
      try {
        const st = await fs.promises.stat(abs);
        if (f.format === 'chunked') {
          const b = await this.o.readers.bundle(abs);
          accept({
            id: imageId(f.kind, f.group, b.name),
            name: b.name,
            group: f.group,
            kind: f.kind,
            format: 'chunked',
            description: b.description ?? '',
            architecture: b.architecture ?? 'any',
            ...(b.os ? { os: b.os } : {}),
            size: b.size,
            hash: b.rootHash.startsWith('sha256:') ? b.rootHash : `sha256:${b.rootHash}`,
            source: { file: f.rel },
            fileSize: b.storedBytes,
            mtimeMs: st.mtimeMs,
          });
          continue;
        }
        const w = await this.o.readers.wim(abs);
        if (w.partNumber > 1) continue; // parts 2..N are listed with part 1
        const parts = w.totalParts > 1 ? await splitParts(abs, w.totalParts) : undefined;
        let size = w.size;
        if (parts) for (const p of parts) size += (await fs.promises.stat(p)).size;
        if (w.images.length === 0) {
          problems.push({ file: f.rel, code: 'IMAGE_INVALID', message: `${f.rel}: the WIM holds no image` });
          continue;
        }
        for (const wi of w.images) {
          accept({
            id: imageId(f.kind, f.group, wi.name),
            name: wi.name,
            group: f.group,
            kind: f.kind,
            format: 'wim',
            description: wi.description ?? '',
            architecture: wi.architecture,
            os: 'windows',
            size,
            source: {
              file: f.rel,
              index: wi.index,
              ...(parts
                ? { parts: parts.map((p) => path.relative(this.o.imagesDir, p).split(path.sep).join('/')) }
                : {}),
            },
            wim: {
              ...(wi.edition ? { edition: wi.edition } : {}),
              ...(wi.installationType ? { installationType: wi.installationType } : {}),
              ...(wi.productName ? { productName: wi.productName } : {}),
              languages: wi.languages,
              ...(wi.version ? { version: wi.version } : {}),
              totalBytes: wi.totalBytes,
              fileCount: wi.fileCount,
              directoryCount: wi.directoryCount,
              compression: w.compression,
            },
            fileSize: w.size,
            mtimeMs: st.mtimeMs,
          });
        }
      } catch (e) {
        const err = e as BootboxError;
        problems.push({ file: f.rel, code: err.code ?? 'IMAGE_INVALID', message: err.message });
      }
    }

    let removed = 0;
    for (const img of data.images) {
      if (seen.has(key(img.id))) continue;
      if (img.available) {
        removed++;
        this.o.events?.emit('catalog.image', { ts: now, id: img.id, change: 'unavailable' });
      }
      img.available = false;
      img.unavailableReason = `its file ${img.source.file} is no longer on the image volume (last scan ${now})`;
    }
    for (const [name, kind] of groupSeen) {
      if (!data.groups.some((g) => key(g.name) === key(name))) {
        data.groups.push({ name, kind, enabled: true, description: '' });
      }
    }
    data.problems = problems;
    const ms = Math.round(this.o.clock.now() - t0);
    data.lastScan = { at: now, ms, files: found.length };
    this.store.markDirty();
    for (const p of problems) this.o.log.warn(`catalog: ${p.message}`);
    const images = data.images.filter((i) => i.available).length;
    this.o.events?.emit('catalog.scan', { ts: now, images, added, removed, problems: problems.length, ms });
    return { images, added, removed, problems, ms };
  }

  private queueHash(id: string): void {
    if (!this.hashQueue.includes(id)) this.hashQueue.push(id);
    // Hashing waits for the scan to end: its reads would otherwise slow every header read
    // of the scan (the catalog is listed, and the box ready, that much later).
    if (!this.hashing && !this.scanning) void this.drainHashes();
  }

  /** WIM files are hashed one at a time in the background; the hash is kept while the file is unchanged. */
  private async drainHashes(): Promise<void> {
    this.hashing = true;
    try {
      while (this.hashQueue.length && !this.stopped) {
        const id = this.hashQueue.shift()!;
        const img = this.get(id);
        if (!img || img.hash || !img.available) continue;
        const files = [img.source.file, ...(img.source.parts ?? [])].map((f) => path.join(this.o.imagesDir, f));
        try {
          const h = createHash('sha256');
          for (const f of files) {
            for await (const c of fs.createReadStream(f, { highWaterMark: 1 << 20 })) {
              // close() ends the read at once (a command-line import would otherwise wait for the whole file)
              if (this.stopped) return;
              h.update(c as Buffer);
            }
          }
          const digest = `sha256:${h.digest('hex')}`;
          // every catalog entry of the same file shares the hash
          for (const other of this.store.data.images) {
            if (other.source.file === img.source.file && other.format === img.format) other.hash = digest;
          }
          this.store.markDirty();
        } catch (e) {
          this.o.log.warn(`catalog: could not hash ${img.source.file}`, { error: (e as Error).message });
        }
      }
    } finally {
      this.hashing = false;
    }
  }

  /** Resolves when background hashing is idle (tests, import). */
  async hashesSettled(): Promise<void> {
    while (this.hashing || this.hashQueue.length) await new Promise((r) => setTimeout(r, 20));
  }

  async flush(): Promise<void> {
    await this.store.flush();
  }
}

export interface ScanResult {
  images: number;
  added: number;
  removed: number;
  problems: CatalogProblem[];
  ms: number;
}

/** The other parts of a split WIM: `install.swm` → `install2.swm` … `installN.swm` beside it. */
async function splitParts(first: string, total: number): Promise<string[]> {
  const ext = path.extname(first);
  const base = first.slice(0, -ext.length);
  const parts: string[] = [];
  for (let n = 2; n <= total; n++) {
    const p = `${base}${n}${ext}`;
    try {
      await fs.promises.access(p, fs.constants.R_OK);
    } catch {
      throw new BootboxError(
        'IMAGE_INVALID',
        `${path.basename(first)}: split WIM part ${n} of ${total} (${path.basename(p)}) is missing`,
      );
    }
    parts.push(p);
  }
  return parts;
}

const isWim = (n: string) => /\.(wim|swm|esd)$/i.test(n);
const isBundle = (n: string) => /\.bbimg$/i.test(n);

/** Lists the image files of the store layout (see the top of this file). Missing folders are empty. */
export async function findImageFiles(imagesDir: string): Promise<Found[]> {
  const out: Found[] = [];
  const list = async (rel: string): Promise<fs.Dirent[]> => {
    try {
      return await fs.promises.readdir(path.join(imagesDir, rel), { withFileTypes: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw new BootboxError('VOLUME_UNAVAILABLE', `cannot read ${path.join(imagesDir, rel)} (${code})`);
    }
  };
  const add = (kind: ImageKind, group: string, dir: string, d: fs.Dirent) => {
    const rel = `${dir}/${d.name}`;
    if (d.name.startsWith('.')) return; // partial uploads and imports
    if (d.isFile() && isWim(d.name)) {
      out.push({ kind, group, rel, format: 'wim' });
    } else if (d.isDirectory() && isBundle(d.name)) {
      out.push({ kind, group, rel, format: 'chunked' });
    }
  };
  for (const d of await list(BOOT_IMAGES_DIR)) add('boot', BOOT_GROUP, BOOT_IMAGES_DIR, d);
  for (const d of await list(INSTALL_IMAGES_DIR)) {
    if (d.isDirectory() && !isBundle(d.name) && !d.name.startsWith('.')) {
      if (!GROUP_NAME.test(d.name)) continue;
      for (const e of await list(`${INSTALL_IMAGES_DIR}/${d.name}`))
        add('install', d.name, `${INSTALL_IMAGES_DIR}/${d.name}`, e);
    } else {
      add('install', DEFAULT_GROUP, INSTALL_IMAGES_DIR, d);
    }
  }
  return out.sort((a, b) => a.rel.localeCompare(b.rel));
}

/** Which machine architectures a catalog architecture boots on (absent: any). */
const ARCH_MACHINES: Record<string, string[]> = {
  x86: ['bios', 'uefi-ia32'],
  x64: ['bios', 'uefi-x64'],
  arm64: ['arm64-uefi', 'arm64-uboot'],
  arm: ['arm32-uefi', 'arm32-uboot'],
};

/**
 * The deployable images as the boot policy sees them: by id (`install/<group>/<name>`)
 * and by bare name where that name is unique.
 */
export function bootImagesOf(images: CatalogImage[]): Record<string, { title?: string; arches?: string[] }> {
  const out: Record<string, { title?: string; arches?: string[] }> = {};
  const count = new Map<string, number>();
  for (const i of images) count.set(i.name.toLowerCase(), (count.get(i.name.toLowerCase()) ?? 0) + 1);
  for (const i of images) {
    const arches = ARCH_MACHINES[i.architecture];
    const info = { title: i.description || i.name, ...(arches ? { arches } : {}) };
    out[i.id] = info;
    if (count.get(i.name.toLowerCase()) === 1) out[i.name] = info;
  }
  return out;
}
