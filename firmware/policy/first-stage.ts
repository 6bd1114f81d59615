/**
 * Which first-stage boot program each kind of client gets (pure).
 *
 * - BIOS PXE ROMs chain into iPXE over UNDI: undionly.kpxe.
 * - UEFI x86 ROMs get iPXE for EFI: ipxe.efi (its own NIC drivers) or snponly.efi (the
 *   firmware's SNP driver); each fails on some NICs, so it is a setting. With Secure Boot
 *   on, neither runs (unsigned): `shim` hands out Debian's Microsoft-signed shimx64.efi,
 *   which loads grubx64.efi (Debian's signed GRUB netboot image) from the same directory;
 *   GRUB then reads grub/grub.cfg from the box (policy/grub-cfg.ts).
 *   Which one a UEFI x86 machine gets, first match wins:
 *   1. the machine's own setting (API: PUT /api/v1/machines/{id} `firstStage`);
 *   2. `boot.firstStageByVendor`: by the NIC's MAC prefix (its OUI: the NIC model decides
 *      whether ipxe.efi or snponly.efi works); the longest matching prefix wins;
 *   3. `boot.uefiX86`.
 * - ARM64 UEFI: Debian ships no arm64 iPXE, so the signed GRUB netboot image.
 * - A client that is already iPXE gets the box's iPXE script over HTTP (this is what
 *   breaks the PXE -> iPXE -> PXE loop: iPXE says so in its user class, option 77).
 * - UEFI HTTP-boot clients get a URL to the same EFI program.
 */
import type { UefiX86FirstStage } from '../domain/machine.ts';
import type { ClientInfo } from '../protocols/dhcp/classify.ts';

export interface FirstStageOptions {
  /** 'ipxe.efi' (default), 'snponly.efi' or 'shim' for UEFI x86 clients. */
  uefiX86: UefiX86FirstStage;
  /**
   * UEFI x86 first stage by MAC prefix (`52:54:00`, lower case, colons): the NIC's OUI, or a
   * longer prefix for a vendor's smaller blocks. Between the machine's own setting and uefiX86.
   */
  byVendor?: Readonly<Record<string, UefiX86FirstStage>>;
  /** Base URL of the HTTP boot server on the private interface, e.g. http://10.77.0.1 */
  httpBase: string;
}

export const FIRST_STAGES = {
  bios: 'undionly.kpxe',
  uefiX86: ['ipxe.efi', 'snponly.efi'],
  /** The Secure Boot chain: the shim, and the GRUB it loads (shim's default loader name). */
  shim: 'shimx64.efi',
  shimLoader: 'grubx64.efi',
  arm64: 'grubnetaa64.efi',
} as const;

/** The part of the DHCP classification the first-stage choice reads (a ClientInfo fits). */
export type FirstStageClient = Pick<ClientInfo, 'mac' | 'arch' | 'isIpxe' | 'isHttpBoot'>;

/** Per-machine choice, from the machine record (domain/machine.ts firstStageOverride). */
export interface FirstStageOverride {
  uefiX86?: UefiX86FirstStage;
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
  const file = programFor(c, uefiX86For(c.mac, o, override));
  if (!file) return null;
  if (c.isHttpBoot) return { kind: 'http', url: `${o.httpBase}/boot/${file}` };
  return { kind: 'tftp', file };
}

/** The UEFI x86 first stage for this MAC: the machine's own, then by vendor prefix, then the default. */
export function uefiX86For(mac: string, o: FirstStageOptions, override?: FirstStageOverride): UefiX86FirstStage {
  if (override?.uefiX86) return override.uefiX86;
  const byVendor = vendorChoice(mac, o.byVendor);
  return byVendor ?? o.uefiX86;
}

/** The entry of `table` whose key is the longest prefix of `mac` (whole octets only). */
export function vendorChoice(
  mac: string,
  table: Readonly<Record<string, UefiX86FirstStage>> | undefined,
): UefiX86FirstStage | undefined {
  if (!table) return undefined;
  const m = mac.toLowerCase().replace(/-/g, ':');
  let best: { len: number; stage: UefiX86FirstStage } | undefined;
  for (const [prefix, stage] of Object.entries(table)) {
    const p = prefix.toLowerCase().replace(/-/g, ':');
    // A prefix ends at an octet boundary: "52:54:0" must not match "52:54:00".
    if (!(m === p || m.startsWith(`${p}:`))) continue;
    if (!best || p.length > best.len) best = { len: p.length, stage };
  }
  return best?.stage;
}

function programFor(c: FirstStageClient, uefiX86: UefiX86FirstStage): string | null {
  switch (c.arch) {
    case 'bios':
      return FIRST_STAGES.bios;
    case 'uefi-x64':
    case 'uefi-ia32':
      // ia32 UEFI is rare (old tablets); iPXE's x86 EFI build is x86_64 only, so it will not
      // run there, but answering lets the admin see the attempt on the timeline.
      return uefiX86 === 'shim' ? FIRST_STAGES.shim : uefiX86;
    case 'arm64-uefi':
      return FIRST_STAGES.arm64;
    default:
      return null;
  }
}
