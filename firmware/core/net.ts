/** IPv4 and MAC helpers. Addresses are kept as unsigned 32-bit numbers internally. */

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIPv4(s: string): number | undefined {
  const m = IPV4_RE.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = Number(m[i]);
    if (part > 255 || (m[i]!.length > 1 && m[i]!.startsWith('0'))) return undefined;
    n = n * 256 + part;
  }
  return n >>> 0;
}

export function formatIPv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function isIPv4(s: string): boolean {
  return parseIPv4(s) !== undefined;
}

export function prefixToMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function maskToPrefix(mask: number): number | undefined {
  let p = 0;
  while (p < 32 && (mask & (0x80000000 >>> p)) !== 0) p++;
  return prefixToMask(p) === mask >>> 0 ? p : undefined;
}

export interface Subnet {
  network: number;
  prefix: number;
  mask: number;
}

export function subnetOf(addr: number, prefix: number): Subnet {
  const mask = prefixToMask(prefix);
  return { network: (addr & mask) >>> 0, prefix, mask };
}

export function inSubnet(addr: number, s: Subnet): boolean {
  return (addr & s.mask) >>> 0 === s.network;
}

export function broadcastOf(s: Subnet): number {
  return (s.network | ~s.mask) >>> 0;
}

/** `10.0.0.0/24` → Subnet, or undefined. */
export function parseCidr(s: string): Subnet | undefined {
  const [a, p] = s.split('/');
  const addr = parseIPv4(a ?? '');
  const prefix = Number(p);
  if (addr === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) return undefined;
  return subnetOf(addr, prefix);
}

/** `A.B.C.D-A.B.C.E` → inclusive range, or undefined. */
export function parseRange(s: string): { start: number; end: number } | undefined {
  const [a, b] = s.split('-');
  const start = parseIPv4((a ?? '').trim());
  const end = parseIPv4((b ?? '').trim());
  if (start === undefined || end === undefined || end < start) return undefined;
  return { start, end };
}

const MAC_RE = /^([0-9a-f]{2})([:-]?)([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i;

/** Normalises `AA-BB-CC-DD-EE-FF`, `aabbccddeeff` or `aa:bb:…` to `aa:bb:cc:dd:ee:ff`. */
export function normalizeMac(s: string): string | undefined {
  const m = MAC_RE.exec(s.trim());
  if (!m) return undefined;
  return [m[1], m[3], m[4], m[5], m[6], m[7]].join(':').toLowerCase();
}

export function macFromBytes(b: Uint8Array, offset = 0, len = 6): string {
  const parts: string[] = [];
  for (let i = 0; i < len; i++) parts.push(b[offset + i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}

export function macToBytes(mac: string): Buffer {
  return Buffer.from(mac.replace(/[:-]/g, ''), 'hex');
}
