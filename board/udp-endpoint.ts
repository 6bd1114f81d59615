/**
 * The one socket shape protocol servers use. The board decides how it is
 * built (raw socket bound to the private device, or a plain dgram socket bound
 * to the private address); servers neither know nor care, and tests use the
 * dgram kind on 127.0.0.1:0.
 */
export interface Datagram {
  data: Buffer;
  srcAddr: string;
  srcPort: number;
  /** Destination address of the datagram as received (255.255.255.255 for a broadcast), when known. */
  dstAddr: string;
  dstPort: number;
  /** Interface it arrived on. */
  ifname: string;
}

export type SendCallback = (err: Error | null) => void;

export interface UdpEndpoint {
  readonly kind: 'raw' | 'dgram';
  readonly ifname: string;
  /** Local IPv4 address replies are sent from. */
  readonly localAddress: string;
  /** Bound UDP port (resolved, never 0). */
  readonly port: number;
  onMessage(fn: (d: Datagram) => void): void;
  /** Sends one datagram from localAddress:port. Never throws; errors go to the callback (or the counters). */
  send(data: Buffer, dstAddr: string, dstPort: number, cb?: SendCallback): void;
  close(): Promise<void>;
  readonly stats: EndpointStats;
  /** The socket buffer sizes the kernel granted (Linux reports twice the usable size), where known. */
  bufferSizes?(): { recv: number; send: number };
}

export interface EndpointStats {
  received: number;
  sent: number;
  sendErrors: number;
  /** Dropped by the interface guard: wrong source or destination for the private network. */
  refused: number;
}

export interface EndpointOptions {
  port: number;
  /** Receive broadcasts (DHCP). Only a raw endpoint can do this on one interface of several. */
  broadcast?: boolean;
  /** Join these multicast groups on the interface. */
  multicastGroups?: string[];
  /**
   * The one peer this endpoint mostly talks to (a TFTP transfer's client). A hint: an
   * implementation may give datagrams to and from it a faster path (a connected socket).
   * Nothing else changes: datagrams from other sources are still delivered, and sends to
   * other destinations still leave from the same port. Ignored by implementations without
   * such a path.
   */
  peer?: { address: string; port: number };
  /**
   * Socket buffer sizes asked of the kernel, which clamps them to net.core.[rw]mem_max. A
   * socket many clients share (single-port TFTP in a boot storm) needs room for a burst of
   * ACKs while the event loop is busy; a datagram that finds the buffer full is lost.
   */
  recvBufferSize?: number;
  sendBufferSize?: number;
}

/** What the board hands to services: endpoints on the private interface only. */
export interface EndpointFactory {
  readonly ifname: string;
  readonly localAddress: string;
  open(opts: EndpointOptions): Promise<UdpEndpoint>;
}

export function newStats(): EndpointStats {
  return { received: 0, sent: 0, sendErrors: 0, refused: 0 };
}
