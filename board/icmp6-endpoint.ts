/**
 * ICMPv6 on the private interface only (raw socket bound with SO_BINDTODEVICE): what
 * the router-advertisement responder needs. The kernel fills the IPv6 header and the
 * ICMPv6 checksum; we set hop limit 255 as neighbour discovery requires (RFC 4861 §6.1).
 */
import { BootboxError } from '../firmware/core/errors.ts';
import { loadRawSocket, type RawSocket } from './raw-addon.ts';
import { deviceName, IPPROTO_ICMPV6, IPPROTO_IPV6, SO_BINDTODEVICE, SOL_SOCKET } from './sockopt.ts';

const IPV6_UNICAST_HOPS = 16;
const IPV6_MULTICAST_HOPS = 18;
const IPV6_MULTICAST_LOOP = 19;
const IPV6_ADD_MEMBERSHIP = 20;
const AF_INET6 = 2; // raw-socket's numbering

export interface Icmp6Endpoint {
  readonly ifname: string;
  onMessage(fn: (msg: Buffer, src: string) => void): void;
  /** Sends to an address on the private link (a link-local or multicast address). */
  send(msg: Buffer, dst: string, cb?: (err: Error | null) => void): void;
  close(): void;
}

export function openIcmp6(ifname: string, ifindex: number, groups: string[]): Icmp6Endpoint {
  const raw = loadRawSocket();
  let sock: RawSocket;
  try {
    sock = raw.createSocket({ protocol: IPPROTO_ICMPV6, addressFamily: AF_INET6, bufferSize: 4096 });
  } catch (e) {
    throw new BootboxError('NO_PRIVILEGE', `ICMPv6 raw socket: ${(e as Error).message}`);
  }
  try {
    const name = deviceName(ifname);
    sock.setOption(SOL_SOCKET, SO_BINDTODEVICE, name, name.length);
    sock.setOption(IPPROTO_IPV6, IPV6_UNICAST_HOPS, 255);
    sock.setOption(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 255);
    sock.setOption(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0);
    for (const g of groups) {
      const mreq = Buffer.alloc(20);
      ipv6Bytes(g).copy(mreq, 0);
      mreq.writeUInt32LE(ifindex, 16);
      sock.setOption(IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, mreq, mreq.length);
    }
  } catch (e) {
    sock.close();
    throw new BootboxError('INTERFACE_MISSING', `ICMPv6 on ${ifname}: ${(e as Error).message}`);
  }
  let listener: ((msg: Buffer, src: string) => void) | undefined;
  sock.on('message', (buf, src) => listener?.(Buffer.from(buf), src));
  sock.on('error', () => {});
  return {
    ifname,
    onMessage: (fn) => {
      listener = fn;
    },
    send: (msg, dst, cb) => {
      // A link-local destination needs its zone: the bound device.
      const to = dst.startsWith('fe80:') || dst.startsWith('ff02:') ? `${dst}%${ifname}` : dst;
      try {
        sock.send(msg, 0, msg.length, to, (err) => cb?.(err));
      } catch (e) {
        cb?.(e as Error);
      }
    },
    close: () => sock.close(),
  };
}

/** 16 bytes of an IPv6 address in text form (no zone). */
export function ipv6Bytes(addr: string): Buffer {
  const [head = '', tail = ''] = addr.split('::');
  const h = head ? head.split(':') : [];
  const t = addr.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = addr.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const b = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) b.writeUInt16BE(Number.parseInt(g || '0', 16), i * 2);
  return b;
}
