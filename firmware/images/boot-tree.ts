/**
 * The boot tree: the directory of files nodes may fetch by TFTP and HTTP (first
 * stages, kernels, initrds, menus). Nothing outside it is ever served.
 *
 * First stages come from Debian's packages, never from the repository: on start the
 * box copies any that are missing from where those packages install them (the board
 * root filesystem carries the same packages).
 */
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';

export interface FirstStageSource {
  /** Name in the boot tree. */
  name: string;
  /** Where Debian's package puts it, in order of preference. */
  from: string[];
  pkg: string;
}

export const FIRST_STAGE_SOURCES: FirstStageSource[] = [
  { name: 'undionly.kpxe', from: ['/usr/lib/ipxe/undionly.kpxe'], pkg: 'ipxe' },
  { name: 'ipxe.efi', from: ['/usr/lib/ipxe/ipxe.efi'], pkg: 'ipxe' },
  { name: 'snponly.efi', from: ['/usr/lib/ipxe/snponly.efi'], pkg: 'ipxe' },
  {
    name: 'grubnetaa64.efi',
    from: ['/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed', '/usr/lib/bootbox/grubnetaa64.efi'],
    pkg: 'grub-efi-arm64-signed (arm64)',
  },
];

export interface SeedResult {
  present: string[];
  copied: string[];
  missing: { name: string; pkg: string }[];
}

/** Creates the boot tree if needed and copies missing first stages into it. */
export function seedBootTree(bootDir: string, sources: FirstStageSource[] = FIRST_STAGE_SOURCES): SeedResult {
  mkdirSync(bootDir, { recursive: true });
  const r: SeedResult = { present: [], copied: [], missing: [] };
  for (const s of sources) {
    const dest = path.join(bootDir, s.name);
    if (existsSync(dest) && statSync(dest).size > 0) {
      r.present.push(s.name);
      continue;
    }
    const src = s.from.find((f) => existsSync(f));
    if (!src) {
      r.missing.push({ name: s.name, pkg: s.pkg });
      continue;
    }
    copyFileSync(src, dest);
    r.copied.push(s.name);
  }
  return r;
}
