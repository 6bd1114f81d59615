/**
 * Neighbour discovery, the two messages bootbox uses (RFC 4861 §4.1, §4.2). Pure.
 */
import { DecodeError } from '../../core/errors.ts';

export const Icmp6Type = { RouterSolicitation: 133, RouterAdvertisement: 134 } as const;

export interface RouterSolicitation {
  type: 'rs';
}

/** RFC 4861 §6.1.1: an RS is at least 8 octets, code 0. (Hop limit 255 is the kernel's to check.) */
export function decodeRouterSolicitation(b: Buffer): RouterSolicitation {
  if (b.length < 8) throw new DecodeError('truncated', 'router solicitation shorter than 8 bytes');
  if (b[0] !== Icmp6Type.RouterSolicitation) throw new DecodeError('not-rs', `ICMPv6 type ${b[0]}`);
  if (b[1] !== 0) throw new DecodeError('bad-code', `code ${b[1]}`);
  return { type: 'rs' };
}

export interface RouterAdvertisementFields {
  curHopLimit: number;
  managed: boolean;
  other: boolean;
  routerLifetimeSec: number;
  reachableTimeMs: number;
  retransTimerMs: number;
}

/**
 * "No router and no DHCPv6 here": lifetime 0 (never a default router, §4.2), M and O clear,
 * no prefixes. Hosts (and iPXE) then finish IPv6 autoconfiguration at once instead of
 * waiting out their router-solicitation retries.
 */
export const NO_ROUTER: RouterAdvertisementFields = {
  curHopLimit: 0,
  managed: false,
  other: false,
  routerLifetimeSec: 0,
  reachableTimeMs: 0,
  retransTimerMs: 0,
};

/** Encodes an RA without options; the kernel fills the checksum. */
export function encodeRouterAdvertisement(f: RouterAdvertisementFields): Buffer {
  const b = Buffer.alloc(16);
  b[0] = Icmp6Type.RouterAdvertisement;
  b[1] = 0; // code
  b.writeUInt16BE(0, 2); // checksum (kernel)
  b[4] = f.curHopLimit;
  b[5] = (f.managed ? 0x80 : 0) | (f.other ? 0x40 : 0);
  b.writeUInt16BE(f.routerLifetimeSec, 6);
  b.writeUInt32BE(f.reachableTimeMs, 8);
  b.writeUInt32BE(f.retransTimerMs, 12);
  return b;
}
