/**
 * The catalog's readers over the real formats: the WIM reader and the chunked bundle.
 * A chunked bundle may carry `info.json` ({description, architecture, os}) written at
 * import, so its catalog entry can be rebuilt from the volume alone.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { BundleFacts, ImageReaders, WimFacts } from './catalog.ts';
import { openBundle } from './chunked/bundle.ts';
import { readWimInfo } from './wim/reader.ts';

export const BUNDLE_INFO = 'info.json';

export interface BundleInfo {
  description?: string;
  architecture?: string;
  os?: string;
}

export async function readBundleInfo(dir: string): Promise<BundleInfo> {
  try {
    const raw = JSON.parse(await fs.promises.readFile(path.join(dir, BUNDLE_INFO), 'utf8')) as Record<string, unknown>;
    const pick = (k: string, max: number) =>
      typeof raw[k] === 'string' && (raw[k] as string).length <= max ? (raw[k] as string) : undefined;
    const info: BundleInfo = {};
    const d = pick('description', 1024);
    const a = pick('architecture', 16);
    const o = pick('os', 16);
    if (d !== undefined) info.description = d;
    if (a !== undefined) info.architecture = a;
    if (o === 'windows' || o === 'linux') info.os = o;
    return info;
  } catch {
    return {};
  }
}

export async function writeBundleInfo(dir: string, info: BundleInfo): Promise<void> {
  const file = path.join(dir, BUNDLE_INFO);
  await fs.promises.writeFile(`${file}.tmp`, `${JSON.stringify(info, null, 2)}\n`);
  await fs.promises.rename(`${file}.tmp`, file);
}

export const imageReaders: ImageReaders = {
  async wim(file: string): Promise<WimFacts> {
    const w = await readWimInfo(file);
    return {
      size: w.size,
      compression: w.compression,
      partNumber: w.partNumber,
      totalParts: w.totalParts,
      guid: w.guid,
      images: w.images.map((i) => ({
        index: i.index,
        name: i.name,
        ...(i.description ? { description: i.description } : {}),
        architecture: i.architecture,
        ...(i.edition ? { edition: i.edition } : {}),
        ...(i.installationType ? { installationType: i.installationType } : {}),
        ...(i.productName ? { productName: i.productName } : {}),
        languages: i.languages,
        ...(i.version ? { version: i.version } : {}),
        totalBytes: i.totalBytes,
        fileCount: i.fileCount,
        directoryCount: i.directoryCount,
      })),
    };
  },
  async bundle(dir: string): Promise<BundleFacts> {
    const b = await openBundle(dir);
    try {
      const info = await readBundleInfo(dir);
      return {
        name: b.manifest.name,
        size: b.manifest.size,
        storedBytes: b.storedSize,
        rootHash: b.manifest.rootHash,
        chunkCount: b.manifest.chunks.length,
        ...info,
      };
    } finally {
      await b.close();
    }
  },
};
