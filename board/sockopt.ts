/** Linux socket option numbers the board sets through raw-socket (asm-generic/socket.h, netinet/in.h). */
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_BROADCAST = 6;
export const SO_BINDTODEVICE = 25;
export const IPPROTO_IP = 0;
export const IP_HDRINCL = 3;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ICMPV6 = 58;

/** SO_BINDTODEVICE takes the interface name as a NUL-terminated string. */
export function deviceName(ifname: string): Buffer {
  return Buffer.from(`${ifname}\0`);
}
