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
  // The x64 Secure Boot chain: Microsoft-signed shim, which loads `grubx64.efi` from its own
  // directory: Debian's signed GRUB *netboot* image under shim's default loader name.
  {
    name: 'shimx64.efi',
    from: ['/usr/lib/shim/shimx64.efi.signed', '/usr/lib/bootbox/shimx64.efi'],
    pkg: 'shim-signed',
  },
  {
    name: 'grubx64.efi',
    from: ['/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed', '/usr/lib/bootbox/grubnetx64.efi'],
    pkg: 'grub-efi-amd64-signed',
  },
];

export interface SeedResult {
  present: string[];
  copied: string[];
  missing: { name: string; pkg: string }[];
  /**
   * Why the tree could not be written (a read-only or failing image volume holding it):
   * the files already there are still served; the box starts anyway.
   */
  unwritable?: string;
}

/** Creates the boot tree if needed and copies missing first stages into it. Never throws. */
export function seedBootTree(bootDir: string, sources: FirstStageSource[] = FIRST_STAGE_SOURCES): SeedResult {
  const r: SeedResult = { present: [], copied: [], missing: [] };
  try {
    // Not recursive when the parent is there: Node's recursive mkdir reports ENOENT for EROFS.
    if (!existsSync(bootDir)) mkdirSync(bootDir, { recursive: !existsSync(path.dirname(bootDir)) });
  } catch (e) {
    r.unwritable = `cannot create ${bootDir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  for (const s of sources) {
    const dest = path.join(bootDir, s.name);
    if (existsSync(dest) && statSync(dest).size > 0) {
      r.present.push(s.name);
      continue;
    }
    const src = s.from.find((f) => existsSync(f));
    if (!src || r.unwritable) {
      r.missing.push({ name: s.name, pkg: s.pkg });
      continue;
    }
    try {
      copyFileSync(src, dest);
      r.copied.push(s.name);
    } catch (e) {
      r.unwritable = `cannot copy ${s.name} into ${bootDir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
      r.missing.push({ name: s.name, pkg: s.pkg });
    }
  }
  return r;
}
