/**
 * IPv4 + UDP headers for the raw endpoint (pure). Received raw IPPROTO_UDP
 * datagrams carry the IP header; sent ones are built whole (IP_HDRINCL), so the
 * source address and port are ours and the egress device is the bound one.
 */
import { formatIPv4, parseIPv4 } from '../firmware/core/net.ts';

export const IP_HEADER_LEN = 20;
export const UDP_HEADER_LEN = 8;
const PROTO_UDP = 17;

export interface UdpPacket {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

/** RFC 1071 one's-complement sum over `buf`, folded to 16 bits, added to `start`. */
function sum16(buf: Buffer, start = 0): number {
  let sum = start;
  const end = buf.length & ~1;
  for (let i = 0; i < end; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length & 1) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** Builds IPv4 header + UDP header + payload. Returns undefined for an address that does not parse. */
export function buildUdpDatagram(p: UdpPacket, ttl = 64): Buffer | undefined {
  const src = parseIPv4(p.src);
  const dst = parseIPv4(p.dst);
  if (src === undefined || dst === undefined) return undefined;
  const udpLen = UDP_HEADER_LEN + p.payload.length;
  const total = IP_HEADER_LEN + udpLen;
  const b = Buffer.allocUnsafe(total);
  // IPv4 header (RFC 791). The kernel fills the checksum and, when 0, the id (raw(7), IP_HDRINCL).
  b[0] = 0x45; // version 4, IHL 5
  b[1] = 0x10; // DSCP/ECN: low delay, like most DHCP servers
  b.writeUInt16BE(total, 2);
  b.writeUInt16BE(0, 4); // identification
  b.writeUInt16BE(0, 6); // flags/fragment offset
  b[8] = ttl;
  b[9] = PROTO_UDP;
  b.writeUInt16BE(0, 10);
  b.writeUInt32BE(src, 12);
  b.writeUInt32BE(dst, 16);
  b.writeUInt16BE(ipChecksum(b.subarray(0, IP_HEADER_LEN)), 10);
  // UDP header (RFC 768)
  b.writeUInt16BE(p.srcPort, 20);
  b.writeUInt16BE(p.dstPort, 22);
  b.writeUInt16BE(udpLen, 24);
  b.writeUInt16BE(0, 26);
  p.payload.copy(b, 28);
  b.writeUInt16BE(udpChecksum(src, dst, b.subarray(20)), 26);
  return b;
}

export function ipChecksum(header: Buffer): number {
  return ~sum16(header) & 0xffff;
}

/** UDP checksum over the pseudo-header (RFC 768); 0 is sent as 0xffff. */
export function udpChecksum(src: number, dst: number, udp: Buffer): number {
  let s = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + PROTO_UDP + udp.length;
  s = sum16(udp, s);
  const c = ~s & 0xffff;
  return c === 0 ? 0xffff : c;
}

/** Parses a received IPv4/UDP datagram. Returns undefined for anything that is not whole, valid UDP. */
export function parseUdpDatagram(b: Buffer): UdpPacket | undefined {
  if (b.length < IP_HEADER_LEN + UDP_HEADER_LEN) return undefined;
  if (b[0]! >> 4 !== 4) return undefined;
  const ihl = (b[0]! & 0x0f) * 4;
  if (ihl < IP_HEADER_LEN || b.length < ihl + UDP_HEADER_LEN) return undefined;
  if (b[9] !== PROTO_UDP) return undefined;
  const fragment = b.readUInt16BE(6);
  if ((fragment & 0x1fff) !== 0 || (fragment & 0x2000) !== 0) return undefined; // fragments are not reassembled here
  const totalLen = b.readUInt16BE(2);
  const end = Math.min(totalLen || b.length, b.length);
  const udpLen = b.readUInt16BE(ihl + 4);
  if (udpLen < UDP_HEADER_LEN || ihl + udpLen > end) return undefined;
  return {
    src: formatIPv4(b.readUInt32BE(12)),
    dst: formatIPv4(b.readUInt32BE(16)),
    srcPort: b.readUInt16BE(ihl),
    dstPort: b.readUInt16BE(ihl + 2),
    payload: b.subarray(ihl + UDP_HEADER_LEN, ihl + udpLen),
  };
}
