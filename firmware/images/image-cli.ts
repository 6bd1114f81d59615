/**
 * `bootbox image import|list|scan`: the image store from a shell on the box.
 *
 * Import places the file in the store layout (catalog.ts) atomically: a WIM is checked,
 * its image names checked free in the group, copied under a dot-name and renamed into
 * place; a raw disk image (or standard input) becomes a chunked image. Then the catalog
 * is rescanned: through the running box's API when one runs (its pid file), else directly.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ImageCommand } from '../cli/image-args.ts';
import type { Config } from '../config/schema.ts';
import { systemClock } from '../core/clock.ts';
import { BootboxError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import {
  BOOT_GROUP,
  BOOT_IMAGES_DIR,
  Catalog,
  type CatalogImage,
  DEFAULT_GROUP,
  INSTALL_IMAGES_DIR,
} from './catalog.ts';
import { importRawImage } from './chunked/importer.ts';
import { imageReaders, writeBundleInfo } from './readers.ts';
import { makeDirs, storageError } from './uploads.ts';
import { readWimInfo } from './wim/reader.ts';

export const PID_FILE = 'bootbox.pid';
/** The running box's local API socket in its data directory (see ApiServer socketPath). */
export const API_SOCKET = 'api.sock';

/** The image store's directory as the box resolves it: imagesDir, the mounted volume, or <data>/images. */
export function storeDir(config: Config): string {
  if (config.imagesDir) return config.imagesDir;
  const mp = path.join(config.images.volumeRoot, config.images.volumeLabel.replace(/[^A-Za-z0-9._-]/g, '_'));
  try {
    if (fs.statSync(mp).dev !== fs.statSync(path.dirname(mp)).dev) return mp;
  } catch {
    // not mounted
  }
  return path.join(config.dataDir, 'images');
}

/** The pid of a box serving from this data directory, if one runs. */
function runningBox(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, PID_FILE), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

function apiToken(config: Config): string | undefined {
  if (config.api.tokens[0]) return config.api.tokens[0];
  try {
    return fs.readFileSync(path.join(config.dataDir, 'api-token'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * One API call to the box running from this data directory: over its local socket
 * (<data>/api.sock, plain HTTP whatever ui.tls says), else over http://127.0.0.1:ui.port.
 */
async function viaApi(config: Config, method: string, p: string): Promise<unknown> {
  const token = apiToken(config);
  const socketPath = path.join(config.dataDir, API_SOCKET);
  const local = fs.existsSync(socketPath);
  const where = local ? socketPath : `127.0.0.1:${config.ui.port}`;
  const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = http.request(
      {
        ...(local ? { socketPath } : { host: '127.0.0.1', port: config.ui.port }),
        method,
        path: p,
        headers: { host: 'localhost', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      },
      (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        r.on('error', reject);
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error('no answer within 60 s')));
    req.on('error', reject);
    req.end();
  }).catch((e: Error) => {
    throw new BootboxError('INTERNAL', `the running box does not answer on ${where} (${e.message})`);
  });
  let body: { error?: { code: string; message: string } } = {};
  try {
    body = JSON.parse(res.text);
  } catch {
    // not JSON: the status says enough
  }
  if (res.status < 200 || res.status >= 300)
    throw new BootboxError('INTERNAL', `the running box refused ${method} ${p}: ${body.error?.message ?? res.status}`);
  return body;
}

/** Scans the catalog and returns it (through the running box when there is one). */
async function rescan(
  config: Config,
  imagesDir: string,
): Promise<{ images: CatalogImage[]; problems: { file: string; message: string }[] }> {
  if (runningBox(config.dataDir)) {
    await viaApi(config, 'POST', '/api/v1/images/rescan');
    return (await viaApi(config, 'GET', '/api/v1/images')) as {
      images: CatalogImage[];
      problems: { file: string; message: string }[];
    };
  }
  const catalog = new Catalog({
    file: path.join(config.dataDir, 'catalog.json'),
    imagesDir,
    readers: imageReaders,
    clock: systemClock,
    log: createLogger('image', { level: 'warn' }),
  });
  await catalog.load();
  try {
    await catalog.scan();
    return { images: catalog.list(), problems: catalog.problems() };
  } finally {
    await catalog.close();
  }
}

/** Names already taken in a group, from the catalog file (read-only). */
function takenNames(config: Config, kind: string, group: string): Set<string> {
  try {
    const f = JSON.parse(fs.readFileSync(path.join(config.dataDir, 'catalog.json'), 'utf8')) as {
      images: CatalogImage[];
    };
    return new Set(
      f.images
        .filter((i) => i.available && i.kind === kind && i.group.toLowerCase() === group.toLowerCase())
        .map((i) => i.name.toLowerCase()),
    );
  } catch {
    return new Set();
  }
}

function line(i: CatalogImage): string {
  const size = `${(i.size / 2 ** 20).toFixed(1)} MiB`;
  const state = i.available ? (i.enabled ? 'enabled' : 'disabled') : `unavailable: ${i.unavailableReason ?? ''}`;
  return `${i.id}\t${i.format}\t${i.architecture}\t${size}\t${state}`;
}

export async function runImageCommand(cmd: ImageCommand, config: Config, out: (s: string) => void): Promise<void> {
  const imagesDir = storeDir(config);
  switch (cmd.cmd) {
    case 'image-list': {
      const file = path.join(config.dataDir, 'catalog.json');
      const images = fs.existsSync(file)
        ? ((JSON.parse(fs.readFileSync(file, 'utf8')) as { images: CatalogImage[] }).images ?? [])
        : [];
      if (cmd.json) out(`${JSON.stringify({ imagesDir, images }, null, 2)}\n`);
      else if (!images.length)
        out(`no images in the catalog (${imagesDir}); add one with: bootbox image import FILE\n`);
      else for (const i of images.sort((a, b) => a.id.localeCompare(b.id))) out(`${line(i)}\n`);
      return;
    }
    case 'image-scan': {
      const r = await rescan(config, imagesDir);
      for (const i of r.images) out(`${line(i)}\n`);
      for (const p of r.problems) out(`problem: ${p.message}\n`);
      return;
    }
    case 'image-import':
      return importImage(cmd, config, imagesDir, out);
  }
}

async function importImage(
  cmd: Extract<ImageCommand, { cmd: 'image-import' }>,
  config: Config,
  imagesDir: string,
  out: (s: string) => void,
): Promise<void> {
  const kind = cmd.kind;
  const group = kind === 'boot' ? BOOT_GROUP : (cmd.group ?? DEFAULT_GROUP);
  const destDir =
    kind === 'boot' ? path.join(imagesDir, BOOT_IMAGES_DIR) : path.join(imagesDir, INSTALL_IMAGES_DIR, group);
  const isWim = cmd.file !== '-' && /\.(wim|esd)$/i.test(cmd.file);
  if (cmd.file !== '-') {
    const st = fs.statSync(cmd.file, { throwIfNoEntry: false });
    if (!st) throw new BootboxError('NOT_FOUND', `image import: ${cmd.file} does not exist`);
    if (!st.isFile() && !st.isBlockDevice())
      throw new BootboxError('INVALID_REQUEST', `image import: ${cmd.file} is not a file`);
  }
  // The group's directory is made only once the image is known good, and removed again
  // (when it is still empty) if the import fails: a refused import leaves nothing behind.
  const made: string[] = [];
  const makeDest = async () => {
    for (let d = destDir; d !== imagesDir && !fs.existsSync(d); d = path.dirname(d)) made.unshift(d);
    try {
      await makeDirs(destDir);
    } catch (e) {
      throw storageError(e, `creating ${destDir}`);
    }
  };
  const unmakeDest = () => {
    for (const d of [...made].reverse()) {
      try {
        fs.rmdirSync(d);
      } catch {
        return; // not empty (another import meanwhile): leave it
      }
    }
  };
  const taken = takenNames(config, kind, group);
  let placed: string;
  if (isWim) {
    if (cmd.name)
      throw new BootboxError('USAGE', 'image import: --name is for disk images; a WIM names its own images');
    const info = await readWimInfo(cmd.file);
    if (info.totalParts > 1)
      throw new BootboxError(
        'INVALID_REQUEST',
        `image import: ${cmd.file} is part of a split WIM; copy all parts into ${destDir} and run bootbox image scan`,
      );
    for (const i of info.images) {
      if (taken.has(i.name.toLowerCase())) {
        throw new BootboxError('CONFLICT', `image import: group "${group}" already has an image named "${i.name}"`);
      }
    }
    placed = path.join(destDir, path.basename(cmd.file));
    if (fs.existsSync(placed)) throw new BootboxError('CONFLICT', `image import: ${placed} already exists`);
    await makeDest();
    const tmp = path.join(destDir, `.${path.basename(cmd.file)}.partial-${randomBytes(4).toString('hex')}`);
    try {
      await pipeline(fs.createReadStream(cmd.file), fs.createWriteStream(tmp, { flags: 'wx' }));
      const fd = fs.openSync(tmp, 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.renameSync(tmp, placed);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      unmakeDest();
      throw storageError(e, `copying ${cmd.file} into ${destDir}`);
    }
  } else {
    const name = cmd.name ?? path.basename(cmd.file).replace(/\.[^.]+$/, '');
    if (taken.has(name.toLowerCase()))
      throw new BootboxError('CONFLICT', `image import: group "${group}" already has an image named "${name}"`);
    let last = 0;
    await makeDest();
    const r = await importRawImage(cmd.file === '-' ? process.stdin : cmd.file, destDir, {
      name,
      onProgress: (n) => {
        if (n - last >= 256 * 2 ** 20) {
          last = n;
          process.stderr.write(`image import: ${(n / 2 ** 20).toFixed(0)} MiB read\n`);
        }
      },
    }).catch((e: unknown) => {
      unmakeDest();
      throw e;
    });
    await writeBundleInfo(r.dir, {
      ...(cmd.description !== undefined ? { description: cmd.description } : {}),
      architecture: cmd.arch ?? 'any',
      os: cmd.os ?? 'linux',
    });
    placed = r.dir;
    out(
      `imported ${r.size} bytes into ${r.manifest.chunks.length} chunks (${r.sparseChunks} sparse), ${r.storedBytes} bytes stored\n`,
    );
  }
  const rel = path.relative(imagesDir, placed).split(path.sep).join('/');
  const after = await rescan(config, imagesDir);
  const mine = after.images.filter((i) => i.source.file === rel);
  if (!mine.length) {
    const why = after.problems.find((p) => p.file === rel)?.message ?? 'the catalog did not list it';
    throw new BootboxError('IMAGE_INVALID', `image import: ${rel} was stored but ${why}`);
  }
  for (const i of mine) out(`${line(i)}\n`);
}
