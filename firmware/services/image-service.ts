/**
 * The image store as one service: the catalog, uploads, serving catalog files over HTTP,
 * and following the image volume (when the store is on one) as it goes and comes back.
 */
import path from 'node:path';
import type { Service } from '../app.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import { Catalog, type CatalogEventSink, INSTALL_IMAGES_DIR } from '../images/catalog.ts';
import { cleanupPartialImports, importRawImage } from '../images/chunked/importer.ts';
import { imageReaders } from '../images/readers.ts';
import { type UploadEventSink, Uploads } from '../images/uploads.ts';
import { readWimInfo } from '../images/wim/reader.ts';
import type { BootFile, FileRefusal } from '../protocols/http-boot/server.ts';
import { FileResolver } from '../protocols/tftp/file-resolver.ts';

export interface ImageServiceOptions {
  imagesDir: string;
  dataDir: string;
  clock: Clock;
  log: Logger;
  events: CatalogEventSink & UploadEventSink;
  /** Space an upload must leave free on the volume (bytes); default 16 MiB. */
  reserveBytes?: number;
}

export class ImageService implements Service {
  readonly name = 'images';
  readonly catalog: Catalog;
  readonly uploads: Uploads;
  private readonly o: ImageServiceOptions;
  private readonly files: FileResolver;
  served = 0;
  refused = 0;

  constructor(o: ImageServiceOptions) {
    this.o = o;
    this.catalog = new Catalog({
      file: path.join(o.dataDir, 'catalog.json'),
      imagesDir: o.imagesDir,
      readers: imageReaders,
      clock: o.clock,
      log: o.log,
      events: o.events,
    });
    this.uploads = new Uploads({
      catalog: this.catalog,
      clock: o.clock,
      log: o.log,
      events: o.events,
      importRaw: async (file, destDir, name) => {
        await importRawImage(file, destDir, { name, clock: o.clock });
      },
      ...(o.reserveBytes !== undefined ? { reserveBytes: o.reserveBytes } : {}),
      wimNames: async (file) => (await readWimInfo(file)).images.map((i) => i.name),
    });
    this.files = new FileResolver(o.imagesDir);
  }

  async start(): Promise<void> {
    await this.catalog.load();
    if (this.catalog.volumeState().state === 'attached') await this.rescanQuietly();
    await this.uploads.start();
  }

  async stop(): Promise<void> {
    await this.catalog.close();
  }

  /** Scans, after removing what an interrupted import left behind. Never throws. */
  async rescanQuietly(): Promise<void> {
    try {
      for (const g of this.catalog.groups()) {
        if (g.kind === 'install') {
          await cleanupPartialImports(path.join(this.o.imagesDir, INSTALL_IMAGES_DIR, g.name)).catch(() => []);
        }
      }
      const r = await this.catalog.scan();
      this.o.log.info(
        `image catalog: ${r.images} images (${r.added} new, ${r.problems.length} problems) in ${r.ms} ms`,
      );
    } catch (e) {
      this.o.log.error(`image catalog scan failed: ${(e as Error).message}`);
    }
  }

  /** `/images/<rel>` on the private HTTP server: only files the catalog names, enabled and available. */
  async resolveImageFile(rel: string): Promise<BootFile | FileRefusal> {
    const norm = rel.replace(/\\/g, '/').replace(/^\/+/, '');
    const img = this.catalog.servable(norm);
    if (!img) {
      this.refused++;
      return { kind: 'refused', reason: 'not-found' };
    }
    const r = await this.files.resolve(norm);
    if (r.kind !== 'ok') {
      this.refused++;
      return { kind: 'refused', reason: r.reason };
    }
    this.served++;
    return r;
  }

  status(): Record<string, unknown> {
    const list = this.catalog.list();
    return {
      imagesDir: this.o.imagesDir,
      volume: this.catalog.volumeState(),
      images: list.length,
      available: list.filter((i) => i.available).length,
      problems: this.catalog.problems().length,
      uploads: this.uploads.list().length,
      counters: { served: this.served, refused: this.refused },
    };
  }
}
