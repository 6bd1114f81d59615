/**
 * Client classification: one pure function from a decoded request to what the boot
 * planner needs to know (in the spirit of Tinkerbell smee's NewInfo). It runs before,
 * and apart from, any offer. Option 93 decides the architecture; option 60 says PXE or
 * HTTP boot; user class "iPXE" or option 175 says iPXE, which is how a chainload loop
 * is broken. Quirks are named in `quirks` and each has a fixture in test/fixtures/dhcp.
 */
import { macFromBytes } from '../../core/net.ts';
import type { DhcpPacket } from './codec.ts';
import {
  ClientArch,
  DhcpOption,
  ipxeFeatureName,
  USER_CLASS_IPXE,
  VENDOR_CLASS_HTTP,
  VENDOR_CLASS_PXE,
} from './constants.ts';
import {
  type ClientNdi,
  formatSmbiosUuid,
  formatUuid,
  getClientArch,
  getClientId,
  getClientNdi,
  getClientUuid,
  getIpxeEncap,
  getMessageType,
  getUserClasses,
  getVendorClass,
} from './options.ts';

// One list of architectures and firmware kinds for the whole box: the domain owns it.
export type { MachineArch as ArchName, MachineFirmware as Firmware } from '../../domain/machine.ts';

import type { MachineArch as ArchName, MachineFirmware as Firmware } from '../../domain/machine.ts';

interface ArchEntry {
  arch: ArchName;
  firmware: Firmware;
  http: boolean;
}

/** RFC 4578 §2.1 and the IANA registry; see constants.ts for the 7/9 correction. */
const ARCHES = new Map<number, ArchEntry>([
  [ClientArch.X86Bios, { arch: 'bios', firmware: 'bios', http: false }],
  [ClientArch.EfiIa32, { arch: 'uefi-ia32', firmware: 'uefi', http: false }],
  [ClientArch.EfiX64, { arch: 'uefi-x64', firmware: 'uefi', http: false }],
  // RFC 4578 names 9 "EFI x86-64"; IANA later made it EFI BC. Firmware that sends 9
  // means x64 (e.g. older Hyper-V and some HP/Dell UEFI), so 6/7/9 are all x86 UEFI.
  [ClientArch.EfiBc, { arch: 'uefi-x64', firmware: 'uefi', http: false }],
  [ClientArch.EfiArm32, { arch: 'arm32-uefi', firmware: 'uefi', http: false }],
  [ClientArch.EfiArm64, { arch: 'arm64-uefi', firmware: 'uefi', http: false }],
  [ClientArch.EfiX86Http, { arch: 'uefi-ia32', firmware: 'uefi', http: true }],
  [ClientArch.EfiX64Http, { arch: 'uefi-x64', firmware: 'uefi', http: true }],
  [ClientArch.EfiBcHttp, { arch: 'uefi-ebc', firmware: 'uefi', http: true }],
  [ClientArch.EfiArm32Http, { arch: 'arm32-uefi', firmware: 'uefi', http: true }],
  [ClientArch.EfiArm64Http, { arch: 'arm64-uefi', firmware: 'uefi', http: true }],
  [ClientArch.BiosHttp, { arch: 'bios', firmware: 'bios', http: true }],
  [ClientArch.UbootArm32, { arch: 'arm32-uboot', firmware: 'uboot', http: false }],
  [ClientArch.UbootArm64, { arch: 'arm64-uboot', firmware: 'uboot', http: false }],
  [ClientArch.UbootArm32Http, { arch: 'arm32-uboot', firmware: 'uboot', http: true }],
  [ClientArch.UbootArm64Http, { arch: 'arm64-uboot', firmware: 'uboot', http: true }],
  [ClientArch.EfiRiscv32, { arch: 'riscv32-uefi', firmware: 'uefi', http: false }],
  [ClientArch.EfiRiscv32Http, { arch: 'riscv32-uefi', firmware: 'uefi', http: true }],
  [ClientArch.EfiRiscv64, { arch: 'riscv64-uefi', firmware: 'uefi', http: false }],
  [ClientArch.EfiRiscv64Http, { arch: 'riscv64-uefi', firmware: 'uefi', http: true }],
  [ClientArch.EfiLoongArch64, { arch: 'loongarch64-uefi', firmware: 'uefi', http: false }],
  [ClientArch.EfiLoongArch64Http, { arch: 'loongarch64-uefi', firmware: 'uefi', http: true }],
  [ClientArch.ArmRpiBoot, { arch: 'rpi', firmware: 'rpi', http: false }],
]);

/**
 * OUIs of Raspberry Pi Trading / Foundation (the list smee keeps). Their network boot
 * ROM sends option 93 = 0 and "PXEClient:Arch:00000:UNDI:002001", exactly what a
 * SeaBIOS/iPXE x86 BIOS sends (fixture rpi4-quirk.hex).
 */
const RPI_OUIS = new Set(['b8:27:eb', 'dc:a6:32', 'e4:5f:01', '28:cd:c1', 'd8:3a:dd', '2c:cf:67']);

export type Quirk =
  /** No option 97 (RFC 4578 says MUST): tolerated, as pixiecore and smee do. Fixtures dhclient.hex, no-uuid-rom.hex. */
  | 'no-uuid'
  /** Option 97 present but all zero or all ones (QEMU without -uuid, unset SMBIOS). */
  | 'uuid-unset'
  /** Option 97 of the wrong length or type. */
  | 'uuid-malformed'
  /** No option 93, architecture taken from "PXEClient:Arch:NNNNN" (fixture arch-from-vendor-class.hex). */
  | 'arch-from-vendor-class'
  /** PXE client with no architecture at all: assumed x86 BIOS, the only kind that predates option 93. */
  | 'arch-assumed-bios'
  /** Raspberry Pi reports 0 (x86 BIOS); smee maps it to 41 "arm rpiboot" (fixture rpi4-quirk.hex). */
  | 'raspberry-pi-arch-0'
  /** Arch 9 read as x64 UEFI (RFC 4578 text) rather than EFI BC (IANA). */
  | 'arch-9-as-x64'
  /** Option 93 of odd length, or only codes we do not know. */
  | 'arch-unknown';

export interface ClientInfo {
  mac: string;
  /** Option 53 of the request. */
  messageType: number | undefined;
  arch: ArchName;
  /** The option 93 code the classification used (41 for the Raspberry Pi quirk); undefined if none. */
  archCode: number | undefined;
  /** Every code in option 93, in the client's order. */
  archCodes: number[];
  firmware: Firmware;
  /** Option 60 starts with "PXEClient" (PXE 2.1 §2.3). */
  isPxe: boolean;
  /** Option 60 starts with "HTTPClient" or option 93 is an HTTP-boot code (15/16/19 …). */
  isHttpBoot: boolean;
  /** User class "iPXE" or option 175 present. */
  isIpxe: boolean;
  /** Any of the three above: the planner is asked only about these. */
  isNetboot: boolean;
  /** Option 97 as the machine's SMBIOS UUID (dmidecode form; see options.formatSmbiosUuid). */
  uuid: string | undefined;
  /** Option 97 formatted in the byte order it was sent. */
  uuidWire: string | undefined;
  vendorClass: string | undefined;
  userClass: string[];
  ndi: ClientNdi | undefined;
  /** Option 61 as hex, if sent. */
  clientId: string | undefined;
  /** Feature markers of option 175 ("http", "https", "efi", …). */
  ipxeFeatures: string[];
  /** Came through a relay (giaddr set). */
  relayed: boolean;
  quirks: Quirk[];
}

function isBlank(b: Uint8Array): boolean {
  return b.every((x) => x === 0) || b.every((x) => x === 0xff);
}

export function isRaspberryPiMac(mac: string): boolean {
  return RPI_OUIS.has(mac.slice(0, 8));
}

export function classifyClient(pkt: DhcpPacket): ClientInfo {
  const o = pkt.options;
  const quirks: Quirk[] = [];
  const mac = macFromBytes(pkt.chaddr, 0, Math.min(pkt.chaddr.length, 6));
  const vendorClass = getVendorClass(o);
  const userClass = getUserClasses(o);
  const isPxe = vendorClass?.startsWith(VENDOR_CLASS_PXE) ?? false;
  const httpVendor = vendorClass?.startsWith(VENDOR_CLASS_HTTP) ?? false;
  const ipxe = getIpxeEncap(o);
  const isIpxe = userClass.includes(USER_CLASS_IPXE) || o.has(DhcpOption.IpxeEncap);

  // Architecture: option 93 first (first code we know), then the Arch field of option 60.
  const archCodes = getClientArch(o) ?? [];
  if (o.has(DhcpOption.ClientArch) && archCodes.length === 0) quirks.push('arch-unknown');
  let archCode = archCodes.find((c) => ARCHES.has(c));
  if (archCodes.length > 0 && archCode === undefined) quirks.push('arch-unknown');
  if (archCode === undefined && archCodes.length === 0 && vendorClass) {
    const m = /^(?:PXEClient|HTTPClient):Arch:(\d{5})/.exec(vendorClass);
    if (m && ARCHES.has(Number(m[1]))) {
      archCode = Number(m[1]);
      quirks.push('arch-from-vendor-class');
    }
  }
  if (archCode === undefined && archCodes.length === 0 && isPxe) {
    archCode = ClientArch.X86Bios;
    quirks.push('arch-assumed-bios');
  }
  // Raspberry Pi (smee: "Raspberry Pi 5 reports option 93 = 0"). A Pi running UEFI
  // firmware (pftf RPi4) sends 11 and is left alone; only the 0/absent case is remapped.
  if (isRaspberryPiMac(mac) && (archCode === undefined || archCode === ClientArch.X86Bios)) {
    archCode = ClientArch.ArmRpiBoot;
    quirks.push('raspberry-pi-arch-0');
  }
  if (archCode === ClientArch.EfiBc) quirks.push('arch-9-as-x64');
  const entry = archCode === undefined ? undefined : ARCHES.get(archCode);

  let uuid: string | undefined;
  let uuidWire: string | undefined;
  const uuidBytes = getClientUuid(o);
  if (uuidBytes) {
    if (isBlank(uuidBytes)) quirks.push('uuid-unset');
    else {
      uuid = formatSmbiosUuid(uuidBytes);
      uuidWire = formatUuid(uuidBytes);
    }
  } else if (o.has(DhcpOption.ClientUuid)) {
    quirks.push('uuid-malformed');
  } else if (isPxe || httpVendor) {
    quirks.push('no-uuid');
  }

  const ipxeFeatures: string[] = [];
  if (ipxe) {
    for (const code of ipxe.keys()) {
      const name = ipxeFeatureName(code);
      if (name) ipxeFeatures.push(name);
    }
  }

  const isHttpBoot = httpVendor || (entry?.http ?? false);
  const clientId = getClientId(o);
  return {
    mac,
    messageType: getMessageType(o),
    arch: entry?.arch ?? 'unknown',
    archCode,
    archCodes,
    firmware: entry?.firmware ?? 'unknown',
    isPxe,
    isHttpBoot,
    isIpxe,
    isNetboot: isPxe || isHttpBoot || isIpxe,
    uuid,
    uuidWire,
    vendorClass,
    userClass,
    ndi: getClientNdi(o),
    clientId: clientId?.toString('hex'),
    ipxeFeatures,
    relayed: pkt.giaddr !== 0,
    quirks,
  };
}
