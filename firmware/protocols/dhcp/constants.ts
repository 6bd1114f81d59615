/**
 * DHCP wire constants, named after the documents that define them:
 * RFC 951/1542 (BOOTP), RFC 2131 (DHCP), RFC 2132 (options), RFC 3004 (user class),
 * RFC 3046 (relay agent information), RFC 3396 (long options), RFC 4578 (PXE options),
 * the PXE 2.1 specification (option 43 sub-options) and iPXE's encapsulated option 175.
 */

/** RFC 2131 §2: op, htype … file: the fixed BOOTP header is 236 bytes. */
export const BOOTP_HEADER_LENGTH = 236;
/** RFC 2131 §3: the options field starts with the magic cookie 99.130.83.99. */
export const MAGIC_COOKIE = 0x63825363;
/** Header plus cookie: nothing shorter is a DHCP message. */
export const DHCP_MIN_DECODE_LENGTH = BOOTP_HEADER_LENGTH + 4;
/** RFC 1542 §2.1: a BOOTP message is at least 300 bytes; some PXE ROMs drop shorter replies. */
export const BOOTP_MIN_LENGTH = 300;
/** RFC 2131 §2: every client must accept 576-byte IP datagrams, i.e. 548 bytes of DHCP. */
export const DHCP_DEFAULT_MAX_MESSAGE = 576 - 20 - 8;

/** Offsets of the fixed fields (RFC 2131 §2, figure 1). */
export const Offset = {
  op: 0,
  htype: 1,
  hlen: 2,
  hops: 3,
  xid: 4,
  secs: 8,
  flags: 10,
  ciaddr: 12,
  yiaddr: 16,
  siaddr: 20,
  giaddr: 24,
  chaddr: 28,
  sname: 44,
  file: 108,
  cookie: 236,
  options: 240,
} as const;
export const CHADDR_LENGTH = 16;
export const SNAME_LENGTH = 64;
export const FILE_LENGTH = 128;

export const Port = {
  /** RFC 2131 §4.1: servers and relays listen on 67. */
  Server: 67,
  /** RFC 2131 §4.1: clients listen on 68. */
  Client: 68,
  /** PXE 2.1 §2.2: the ProxyDHCP boot server listens on 4011. */
  ProxyDhcp: 4011,
} as const;

/** RFC 951: op field. */
export const BootpOp = { BootRequest: 1, BootReply: 2 } as const;

/** RFC 1700 / ARP hardware types: only Ethernet is accepted here (see codec.ts). */
export const HardwareType = { Ethernet: 1 } as const;
export const ETHERNET_HLEN = 6;

/** RFC 2131 §2, figure 2: the leftmost bit of `flags`. */
export const BROADCAST_FLAG = 0x8000;

/** RFC 2132 §9.6 (1-8), RFC 3203 (9), RFC 4388 (10-13). */
export const MessageType = {
  Discover: 1,
  Offer: 2,
  Request: 3,
  Decline: 4,
  Ack: 5,
  Nak: 6,
  Release: 7,
  Inform: 8,
  ForceRenew: 9,
  LeaseQuery: 10,
  LeaseUnassigned: 11,
  LeaseUnknown: 12,
  LeaseActive: 13,
} as const;
export type MessageTypeValue = (typeof MessageType)[keyof typeof MessageType];

const MESSAGE_TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(MessageType).map(([k, v]) => [v, k.toUpperCase()]),
);
export function messageTypeName(t: number | undefined): string {
  return t === undefined ? 'NONE' : (MESSAGE_TYPE_NAMES[t] ?? `TYPE${t}`);
}

/** Option codes. Names follow the defining RFC; the comment names the section. */
export const DhcpOption = {
  Pad: 0, // RFC 2132 §3.1
  SubnetMask: 1, // RFC 2132 §3.3
  TimeOffset: 2, // RFC 2132 §3.4
  Router: 3, // RFC 2132 §3.5
  TimeServer: 4, // RFC 2132 §3.6
  NameServer: 5, // RFC 2132 §3.7 (IEN 116)
  DomainNameServer: 6, // RFC 2132 §3.8
  LogServer: 7, // RFC 2132 §3.9
  HostName: 12, // RFC 2132 §3.14
  BootFileSize: 13, // RFC 2132 §3.15
  DomainName: 15, // RFC 2132 §3.17
  RootPath: 17, // RFC 2132 §3.19
  ExtensionsPath: 18, // RFC 2132 §3.20
  InterfaceMtu: 26, // RFC 2132 §5.1
  BroadcastAddress: 28, // RFC 2132 §5.3
  StaticRoute: 33, // RFC 2132 §5.8
  NtpServers: 42, // RFC 2132 §8.3
  VendorSpecific: 43, // RFC 2132 §8.4; PXE 2.1 §2.4 sub-options
  RequestedIpAddress: 50, // RFC 2132 §9.1
  IpAddressLeaseTime: 51, // RFC 2132 §9.2
  Overload: 52, // RFC 2132 §9.3
  MessageType: 53, // RFC 2132 §9.6
  ServerIdentifier: 54, // RFC 2132 §9.7
  ParameterRequestList: 55, // RFC 2132 §9.8
  Message: 56, // RFC 2132 §9.9
  MaxMessageSize: 57, // RFC 2132 §9.10
  RenewalTime: 58, // RFC 2132 §9.11 (T1)
  RebindingTime: 59, // RFC 2132 §9.12 (T2)
  VendorClassId: 60, // RFC 2132 §9.13; "PXEClient:Arch:xxxxx:UNDI:yyyzzz" (PXE 2.1 §2.3)
  ClientId: 61, // RFC 2132 §9.14
  TftpServerName: 66, // RFC 2132 §9.4
  BootfileName: 67, // RFC 2132 §9.5
  UserClass: 77, // RFC 3004
  RelayAgentInfo: 82, // RFC 3046
  ClientArch: 93, // RFC 4578 §2.1
  ClientNdi: 94, // RFC 4578 §2.2
  ClientUuid: 97, // RFC 4578 §2.3
  DomainSearch: 119, // RFC 3397
  ClasslessStaticRoute: 121, // RFC 3442
  /** PXELINUX (RFC 5071) */
  PxelinuxMagic: 208,
  PxelinuxConfigFile: 209,
  PxelinuxPathPrefix: 210,
  PxelinuxRebootTime: 211,
  /** iPXE's encapsulated options (Etherboot, not IANA-assigned in practice). */
  IpxeEncap: 175,
  End: 255, // RFC 2132 §3.2
} as const;
export type DhcpOptionCode = (typeof DhcpOption)[keyof typeof DhcpOption];

/** RFC 2132 §9.3: values of option 52. */
export const Overload = { File: 1, Sname: 2, Both: 3 } as const;

/** PXE 2.1 §2.4, table 2-1: sub-options of option 43 when option 60 is "PXEClient". */
export const PxeSubOption = {
  MtftpIp: 1,
  MtftpClientPort: 2,
  MtftpServerPort: 3,
  MtftpTimeout: 4,
  MtftpDelay: 5,
  DiscoveryControl: 6,
  DiscoveryMcastAddr: 7,
  BootServers: 8,
  BootMenu: 9,
  MenuPrompt: 10,
  McastAddrsAlloc: 11,
  CredentialTypes: 12,
  BootItem: 71,
  End: 255,
} as const;

/** PXE 2.1 §2.4: bits of PXE_DISCOVERY_CONTROL (sub-option 6). */
export const PxeDiscoveryControl = {
  DisableBroadcast: 1,
  DisableMulticast: 2,
  OnlyListedServers: 4,
  /** "If set, and a boot file name is present in the initial offer, download it": no menu, no 4011. */
  UseBootfile: 8,
} as const;

/** iPXE's encapsulated option 175 (include/ipxe/dhcp.h). */
export const IpxeSubOption = {
  Priority: 1,
  KeepSan: 8,
  SkipSanBoot: 9,
  /** 0x10-0x4f are feature markers. */
  FeaturePxeExt: 0x10,
  FeatureIscsi: 0x11,
  FeatureAoe: 0x12,
  FeatureHttp: 0x13,
  FeatureHttps: 0x14,
  FeatureTftp: 0x15,
  FeatureFtp: 0x16,
  FeatureDns: 0x17,
  FeatureBzImage: 0x18,
  FeatureMultiboot: 0x19,
  FeatureSlam: 0x1a,
  FeatureSrp: 0x1b,
  FeatureNbi: 0x20,
  FeaturePxe: 0x21,
  FeatureElf: 0x22,
  FeatureComboot: 0x23,
  FeatureEfi: 0x24,
  FeatureFcoe: 0x25,
  FeatureVlan: 0x26,
  FeatureMenu: 0x27,
  FeatureSdi: 0x28,
  FeatureNfs: 0x29,
  Scriptlet: 0x51,
  /** "If set to a non-zero value, iPXE will not wait for ProxyDHCP offers." */
  NoPxeDhcp: 176,
  BusId: 177,
  BiosDrive: 189,
  Version: 235,
} as const;

const IPXE_FEATURE_NAMES = new Map<number, string>([
  [0x10, 'pxe-ext'],
  [0x11, 'iscsi'],
  [0x12, 'aoe'],
  [0x13, 'http'],
  [0x14, 'https'],
  [0x15, 'tftp'],
  [0x16, 'ftp'],
  [0x17, 'dns'],
  [0x18, 'bzimage'],
  [0x19, 'multiboot'],
  [0x1a, 'slam'],
  [0x1b, 'srp'],
  [0x20, 'nbi'],
  [0x21, 'pxe'],
  [0x22, 'elf'],
  [0x23, 'comboot'],
  [0x24, 'efi'],
  [0x25, 'fcoe'],
  [0x26, 'vlan'],
  [0x27, 'menu'],
  [0x28, 'sdi'],
  [0x29, 'nfs'],
]);
export function ipxeFeatureName(code: number): string | undefined {
  if (code < 0x10 || code > 0x4f) return undefined;
  return IPXE_FEATURE_NAMES.get(code) ?? `feature-0x${code.toString(16)}`;
}

/** RFC 3046 §2.0: sub-options of option 82. */
export const RelayAgentSubOption = { CircuitId: 1, RemoteId: 2 } as const;

/**
 * Client system architecture (option 93), RFC 4578 §2.1 and the IANA
 * "Processor Architecture Types" registry, which corrected RFC 4578: 7 is x64 UEFI
 * (RFC 4578 calls it "EFI BC") and 9 is EFI Byte Code (RFC 4578 calls it "EFI x86-64").
 * Firmware in the field sends 7 for x64 UEFI, and some old firmware sends 9, so both
 * are classified as x64 UEFI (classify.ts).
 */
export const ClientArch = {
  X86Bios: 0,
  NecPc98: 1,
  Itanium: 2,
  DecAlpha: 3,
  ArcX86: 4,
  IntelLeanClient: 5,
  EfiIa32: 6,
  EfiX64: 7,
  EfiXscale: 8,
  EfiBc: 9,
  EfiArm32: 10,
  EfiArm64: 11,
  PowerPcOpenFirmware: 12,
  PowerPcEpapr: 13,
  PowerOpalV3: 14,
  EfiX86Http: 15,
  EfiX64Http: 16,
  EfiBcHttp: 17,
  EfiArm32Http: 18,
  EfiArm64Http: 19,
  BiosHttp: 20,
  UbootArm32: 21,
  UbootArm64: 22,
  UbootArm32Http: 23,
  UbootArm64Http: 24,
  EfiRiscv32: 25,
  EfiRiscv32Http: 26,
  EfiRiscv64: 27,
  EfiRiscv64Http: 28,
  EfiRiscv128: 29,
  EfiRiscv128Http: 30,
  S390Basic: 31,
  S390Extended: 32,
  EfiMips32: 33,
  EfiMips64: 34,
  EfiSunway32: 35,
  EfiSunway64: 36,
  EfiLoongArch32: 37,
  EfiLoongArch32Http: 38,
  EfiLoongArch64: 39,
  EfiLoongArch64Http: 40,
  /** IANA: "arm rpiboot"; smee uses it for Raspberry Pis that send 0 (see classify.ts). */
  ArmRpiBoot: 41,
} as const;

/** Vendor class prefixes (option 60) of netboot clients. */
export const VENDOR_CLASS_PXE = 'PXEClient';
export const VENDOR_CLASS_HTTP = 'HTTPClient';
/** RFC 3004 user class iPXE sends (in its plain-string form). */
export const USER_CLASS_IPXE = 'iPXE';
