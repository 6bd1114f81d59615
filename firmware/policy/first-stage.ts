/**
 * Which first-stage boot program each kind of client gets (pure).
 *
 * - BIOS PXE ROMs chain into iPXE over UNDI: undionly.kpxe.
 * - UEFI x86 ROMs get iPXE for EFI: ipxe.efi (its own NIC drivers) or snponly.efi (the
 *   firmware's SNP driver); each fails on some NICs, so it is a setting.
 * - ARM64 UEFI: Debian ships no arm64 iPXE, so the signed GRUB netboot image.
 * - A client that is already iPXE gets the box's iPXE script over HTTP (this is what
 *   breaks the PXE -> iPXE -> PXE loop: iPXE says so in its user class, option 77).
 * - UEFI HTTP-boot clients get a URL to the same EFI program.
 */
import type { ClientInfo } from '../protocols/dhcp/classify.ts';

export interface FirstStageOptions {
  /** 'ipxe.efi' (default) or 'snponly.efi' for UEFI x86 clients. */
  uefiX86: 'ipxe.efi' | 'snponly.efi';
  /** Base URL of the HTTP boot server on the private interface, e.g. http://10.77.0.1 */
  httpBase: string;
}

export const FIRST_STAGES = {
  bios: 'undionly.kpxe',
  uefiX86: ['ipxe.efi', 'snponly.efi'],
  arm64: 'grubnetaa64.efi',
} as const;

/** The part of the DHCP classification the first-stage choice reads (a ClientInfo fits). */
export type FirstStageClient = Pick<ClientInfo, 'mac' | 'arch' | 'isIpxe' | 'isHttpBoot'>;

/** Per-machine choice, from the machine record (domain/machine.ts firstStageOverride). */
export interface FirstStageOverride {
  uefiX86?: 'ipxe.efi' | 'snponly.efi';
}

export type FirstStage =
  | { kind: 'tftp'; file: string }
  | { kind: 'http'; url: string }
  | { kind: 'ipxe-script'; url: string };

export function firstStageFor(
  c: FirstStageClient,
  o: FirstStageOptions,
  override?: FirstStageOverride,
): FirstStage | null {
  if (c.isIpxe) return { kind: 'ipxe-script', url: `${o.httpBase}/boot/${c.mac}.ipxe` };
  const file = programFor(c, override?.uefiX86 ? { ...o, uefiX86: override.uefiX86 } : o);
  if (!file) return null;
  if (c.isHttpBoot) return { kind: 'http', url: `${o.httpBase}/boot/${file}` };
  return { kind: 'tftp', file };
}

function programFor(c: FirstStageClient, o: FirstStageOptions): string | null {
  switch (c.arch) {
    case 'bios':
      return FIRST_STAGES.bios;
    case 'uefi-x64':
    case 'uefi-ia32':
      // ia32 UEFI is rare (old tablets); iPXE's x86 EFI build is x86_64 only, so it will not
      // run there, but answering lets the admin see the attempt on the timeline.
      return o.uefiX86;
    case 'arm64-uefi':
      return FIRST_STAGES.arm64;
    default:
      return null;
  }
}
