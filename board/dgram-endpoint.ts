import dgram from 'node:dgram';
import dns from 'node:dns';
import type { Datagram, EndpointOptions, EndpointStats, SendCallback, UdpEndpoint } from './udp-endpoint.ts';
import { newStats } from './udp-endpoint.ts';

export interface DgramEndpointOptions extends EndpointOptions {
  ifname: string;
  /** Address to bind (the private interface's address, or 127.0.0.1 in tests). */
  address: string;
  /**
   * Guard for the private network. Linux accepts a datagram for any local address on any
   * interface, so a socket bound to the private address could be reached, and answer, through
   * the uplink. Sources and destinations outside what this returns true for are refused.
   */
  allowPeer?: (addr: string) => boolean;
  recvBufferSize?: number;
  sendBufferSize?: number;
}

/** A plain dgram socket bound to one address: unicast services (TFTP, port 4011, HTTP-side helpers). */
export class DgramEndpoint implements UdpEndpoint {
  readonly kind = 'dgram' as const;
  readonly ifname: string;
  readonly localAddress: string;
  readonly stats: EndpointStats = newStats();
  private readonly sock: dgram.Socket;
  private readonly allow: (addr: string) => boolean;
  private listener: ((d: Datagram) => void) | undefined;
  private boundPort = 0;
  private closed = false;

  private constructor(opts: DgramEndpointOptions) {
    this.ifname = opts.ifname;
    this.localAddress = opts.address;
    const check = opts.allowPeer;
    if (!check) {
      this.allow = () => true;
    } else {
      // The guard runs for every datagram: remember answers (bounded) instead of re-parsing.
      const seen = new Map<string, boolean>();
      this.allow = (addr) => {
        let ok = seen.get(addr);
        if (ok === undefined) {
          ok = check(addr);
          if (seen.size > 4096) seen.clear();
          seen.set(addr, ok);
        }
        return ok;
      };
    }
    this.sock = dgram.createSocket({ type: 'udp4', reuseAddr: false, lookup: literalLookup });
  }

  static async open(opts: DgramEndpointOptions): Promise<DgramEndpoint> {
    const ep = new DgramEndpoint(opts);
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error) => reject(e);
      ep.sock.once('error', onErr);
      ep.sock.bind({ port: opts.port, address: opts.address, exclusive: true }, () => {
        ep.sock.off('error', onErr);
        resolve();
      });
    });
    ep.boundPort = ep.sock.address().port;
    if (opts.recvBufferSize) ep.sock.setRecvBufferSize(opts.recvBufferSize);
    if (opts.sendBufferSize) ep.sock.setSendBufferSize(opts.sendBufferSize);
    for (const g of opts.multicastGroups ?? []) ep.sock.addMembership(g, opts.address);
    if (opts.multicastGroups?.length) ep.sock.setMulticastInterface(opts.address);
    ep.sock.on('error', () => {
      ep.stats.sendErrors++;
    });
    ep.sock.on('message', (data, rinfo) => {
      if (!ep.allow(rinfo.address)) {
        ep.stats.refused++;
        return;
      }
      ep.stats.received++;
      ep.listener?.({
        data,
        srcAddr: rinfo.address,
        srcPort: rinfo.port,
        dstAddr: ep.localAddress,
        dstPort: ep.boundPort,
        ifname: ep.ifname,
      });
    });
    return ep;
  }

  get port(): number {
    return this.boundPort;
  }

  onMessage(fn: (d: Datagram) => void): void {
    this.listener = fn;
  }

  send(data: Buffer, dstAddr: string, dstPort: number, cb?: SendCallback): void {
    if (this.closed) {
      cb?.(new Error('endpoint closed'));
      return;
    }
    if (!this.allow(dstAddr)) {
      this.stats.refused++;
      cb?.(new Error(`destination ${dstAddr} is not on the private network`));
      return;
    }
    this.stats.sent++;
    if (!cb) {
      // Hot path (TFTP data): no per-datagram callback; failures arrive as 'error' events.
      this.sock.send(data, dstPort, dstAddr);
      return;
    }
    this.sock.send(data, dstPort, dstAddr, (err) => {
      if (err) {
        this.stats.sendErrors++;
        this.stats.sent--;
      }
      cb(err ?? null);
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => this.sock.close(() => resolve()));
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

/**
 * dgram resolves every destination before each send, even an IP literal: dns.lookup answers
 * a literal on the next tick, so each datagram cost a closure, a tick-queue entry and a second
 * entry into JS after the socket callback. Peers here are always dotted-quad literals: answer
 * those at once (the send happens synchronously); anything else still goes through dns.lookup.
 */
function literalLookup(address: string, family: unknown, cb: LookupCallback): void {
  if (isDottedQuad(address)) {
    cb(null, address, 4);
    return;
  }
  dns.lookup(address, family as number, cb);
}

/** Four decimal octets 0-255 separated by dots, as inet_pton accepts them (net.isIPv4 without the regular expression). */
function isDottedQuad(s: string): boolean {
  const n = s.length;
  if (n < 7 || n > 15) return false;
  let dots = 0;
  let octet = 0;
  let digits = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return false;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return false; // no leading zeros (inet_pton refuses them)
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return false;
    } else {
      return false;
    }
  }
  return dots === 3 && digits > 0;
}
