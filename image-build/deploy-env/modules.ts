/**
 * Kernel modules for the deploy environment, straight from an unpacked linux-image
 * package. Debian's package carries no modules.dep (depmod makes it at install time), so
 * dependencies come from each module's own `.modinfo` ELF section: its `depends=` line is
 * what modpost computed from the module's symbol references, which is what depmod would
 * write to modules.dep.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';

export interface KernelModule {
  /** Module name as the kernel knows it ("virtio_net"). */
  name: string;
  /** Path below lib/modules/<release>/, uncompressed (".ko"). */
  path: string;
  /** Names of the modules it needs, from `.modinfo`. */
  depends: string[];
  /** Module contents, decompressed. */
  data: Buffer;
}

const KO = /\.ko(\.(gz|xz|zst))?$/;

/** Module name → path below `modDir` (lib/modules/<release>), for every module file in kernel/. */
export function moduleIndex(modDir: string): Map<string, string> {
  const index = new Map<string, string>();
  for (const rel of readdirSync(path.join(modDir, 'kernel'), { recursive: true, encoding: 'utf8' })) {
    if (!KO.test(rel)) continue;
    const name = path.basename(rel).replace(KO, '').replaceAll('-', '_');
    index.set(name, path.join('kernel', rel));
  }
  return index;
}

/** `.modinfo` of an ELF64 little-endian module: key → values (a key may repeat, e.g. alias). */
export function readModinfo(ko: Buffer, what = 'module'): Map<string, string[]> {
  if (ko.length < 64 || ko.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${what}: not an ELF file`);
  if (ko[4] !== 2 || ko[5] !== 1) throw new Error(`${what}: not ELF64 little-endian`);
  const shoff = Number(ko.readBigUInt64LE(0x28));
  const shentsize = ko.readUInt16LE(0x3a);
  const shnum = ko.readUInt16LE(0x3c);
  const shstrndx = ko.readUInt16LE(0x3e);
  const section = (i: number) => {
    const o = shoff + i * shentsize;
    return {
      name: ko.readUInt32LE(o),
      offset: Number(ko.readBigUInt64LE(o + 0x18)),
      size: Number(ko.readBigUInt64LE(o + 0x20)),
    };
  };
  const strtab = section(shstrndx);
  const sectionName = (off: number) => {
    const start = strtab.offset + off;
    return ko.toString('latin1', start, ko.indexOf(0, start));
  };
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (sectionName(s.name) !== '.modinfo') continue;
    const info = new Map<string, string[]>();
    for (const kv of ko.toString('utf8', s.offset, s.offset + s.size).split('\0')) {
      const eq = kv.indexOf('=');
      if (eq <= 0) continue;
      const k = kv.slice(0, eq);
      info.set(k, [...(info.get(k) ?? []), kv.slice(eq + 1)]);
    }
    return info;
  }
  throw new Error(`${what}: no .modinfo section`);
}

function readModule(file: string): Buffer {
  const raw = readFileSync(file);
  if (file.endsWith('.ko')) return raw;
  if (file.endsWith('.gz')) return gunzipSync(raw);
  if (file.endsWith('.zst')) return zstdDecompressSync(raw);
  // .xz: Node has no xz; Debian's xz-utils does (newer Debian kernels compress modules with xz).
  return execFileSync('xz', ['-dc'], { input: raw, maxBuffer: 256 * 1024 * 1024 });
}

/**
 * `roots` and everything they depend on, dependencies first (the order to insmod them).
 * Throws if a module is missing, or if its vermagic does not start with `release`.
 */
export function moduleClosure(modDir: string, release: string, roots: string[]): KernelModule[] {
  const index = moduleIndex(modDir);
  const done = new Map<string, KernelModule>();
  const order: KernelModule[] = [];
  const visiting = new Set<string>();
  const visit = (name: string, chain: string[]) => {
    if (done.has(name)) return;
    if (visiting.has(name)) throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    const rel = index.get(name);
    if (!rel) {
      const via = chain.length ? ` (needed by ${chain.join(' -> ')})` : '';
      throw new Error(`kernel ${release} has no module ${name}${via}`);
    }
    visiting.add(name);
    const data = readModule(path.join(modDir, rel));
    const info = readModinfo(data, rel);
    const vermagic = info.get('vermagic')?.[0] ?? '';
    if (!vermagic.startsWith(`${release} `)) throw new Error(`${rel}: vermagic "${vermagic}" is not for ${release}`);
    const depends = (info.get('depends')?.[0] ?? '').split(',').filter(Boolean);
    for (const d of depends) visit(d, [...chain, name]);
    visiting.delete(name);
    const m: KernelModule = { name, path: rel.replace(KO, '.ko'), depends, data };
    done.set(name, m);
    order.push(m);
  };
  for (const r of roots) visit(r, []);
  return order;
}

/** modules.dep in the kmod format (busybox modprobe reads it too). */
export function modulesDep(mods: KernelModule[]): string {
  const byName = new Map(mods.map((m) => [m.name, m]));
  const deepDeps = (m: KernelModule, acc: string[] = []): string[] => {
    for (const d of m.depends) {
      const dm = byName.get(d)!;
      if (!acc.includes(dm.path)) {
        acc.push(dm.path);
        deepDeps(dm, acc);
      }
    }
    return acc;
  };
  return mods
    .map(
      (m) =>
        `${m.path}:${deepDeps(m)
          .map((p) => ` ${p}`)
          .join('')}\n`,
    )
    .join('');
}
