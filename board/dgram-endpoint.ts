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
}

/**
 * A plain dgram socket bound to one address: unicast services (TFTP, port 4011, HTTP-side helpers).
 *
 * With `peer` (a TFTP transfer), the endpoint holds two sockets on the same address and port,
 * both with SO_REUSEADDR: the main one stays unconnected, the other is connected to the peer.
 * Linux delivers a datagram to the socket whose binding matches it best, so the peer's
 * datagrams arrive on the connected socket and any other sender's on the main one; both reach
 * the same listener, so a stray sender is still seen (and answered, RFC 1350 ERROR 5) from the
 * same port. Sends to the peer go through the connected socket: Node skips its per-send
 * address handling and the kernel its per-send route lookup. If the second socket cannot be
 * set up, the endpoint works unconnected, as without `peer`.
 *
 * What SO_REUSEADDR allows besides: the kernel may pick, for port 0, a port another
 * SO_REUSEADDR socket on this address already holds (two transfers then share a port, each
 * with its own connected socket, and a stray gets ERROR 5 from either: still right), and a
 * local process that also sets it could bind the port too. Without `peer`, nothing changes.
 */
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
  /** Connected to the peer (see the class comment); undefined when not in use. */
  private peerSock: dgram.Socket | undefined;
  private peerAddr = '';
  private peerPort = 0;

  private constructor(opts: DgramEndpointOptions) {
    this.ifname = opts.ifname;
    this.localAddress = opts.address;
    const check = opts.allowPeer;
    if (!check) {
      this.allow = () => true;
    } else {
      // The guard runs for every datagram: remember answers (bounded) instead of re-parsing,
      // and the last one apart (a transfer talks to one peer: a string compare, no hashing).
      const seen = new Map<string, boolean>();
      let lastAddr = '';
      let lastOk = false;
      this.allow = (addr) => {
        if (addr === lastAddr) return lastOk;
        let ok = seen.get(addr);
        if (ok === undefined) {
          ok = check(addr);
          if (seen.size > 4096) seen.clear();
          seen.set(addr, ok);
        }
        lastAddr = addr;
        lastOk = ok;
        return ok;
      };
    }
    this.sock = dgram.createSocket({ type: 'udp4', reuseAddr: opts.peer !== undefined, lookup: literalLookup });
  }

  static async open(opts: DgramEndpointOptions): Promise<DgramEndpoint> {
    const ep = new DgramEndpoint(opts);
    await bind(ep.sock, opts.port, opts.address);
    ep.boundPort = ep.sock.address().port;
    sizeBuffers(ep.sock, opts);
    for (const g of opts.multicastGroups ?? []) ep.sock.addMembership(g, opts.address);
    if (opts.multicastGroups?.length) ep.sock.setMulticastInterface(opts.address);
    ep.watch(ep.sock);
    if (opts.peer && ep.allow(opts.peer.address)) await ep.connectPeer(opts.peer, opts);
    return ep;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Whether datagrams to and from the peer use the connected socket (tests, diagnostics). */
  get peerConnected(): boolean {
    return this.peerSock !== undefined;
  }

  onMessage(fn: (d: Datagram) => void): void {
    this.listener = fn;
  }

  send(data: Buffer, dstAddr: string, dstPort: number, cb?: SendCallback): void {
    if (this.closed) {
      cb?.(new Error('endpoint closed'));
      return;
    }
    const conn = this.peerSock;
    // The peer passed the guard when it was connected.
    const sock = conn !== undefined && dstPort === this.peerPort && dstAddr === this.peerAddr ? conn : undefined;
    if (sock === undefined && !this.allow(dstAddr)) {
      this.stats.refused++;
      cb?.(new Error(`destination ${dstAddr} is not on the private network`));
      return;
    }
    this.stats.sent++;
    if (!cb) {
      // Hot path (TFTP data): no per-datagram callback; failures arrive as 'error' events.
      if (sock !== undefined) sock.send(data);
      else this.sock.send(data, dstPort, dstAddr);
      return;
    }
    const done = (err: Error | null) => {
      if (err) {
        this.stats.sendErrors++;
        this.stats.sent--;
      }
      cb(err ?? null);
    };
    if (sock !== undefined) sock.send(data, done);
    else this.sock.send(data, dstPort, dstAddr, done);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    const conn = this.peerSock;
    this.peerSock = undefined;
    const main = new Promise<void>((resolve) => this.sock.close(() => resolve()));
    if (!conn) return main;
    return Promise.all([main, new Promise<void>((resolve) => conn.close(() => resolve()))]).then(() => undefined);
  }

  /** The buffer sizes the kernel granted the main socket (Linux reports twice what was asked). */
  bufferSizes(): { recv: number; send: number } {
    return { recv: this.sock.getRecvBufferSize(), send: this.sock.getSendBufferSize() };
  }

  private watch(sock: dgram.Socket): void {
    sock.on('error', () => {
      this.stats.sendErrors++;
    });
    sock.on('message', (data, rinfo) => {
      if (!this.allow(rinfo.address)) {
        this.stats.refused++;
        return;
      }
      this.stats.received++;
      this.listener?.({
        data,
        srcAddr: rinfo.address,
        srcPort: rinfo.port,
        dstAddr: this.localAddress,
        dstPort: this.boundPort,
        ifname: this.ifname,
      });
    });
  }

  private async connectPeer(peer: { address: string; port: number }, opts: DgramEndpointOptions): Promise<void> {
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true, lookup: literalLookup });
    try {
      await bind(sock, this.boundPort, this.localAddress);
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.connect(peer.port, peer.address, () => {
          sock.off('error', reject);
          resolve();
        });
      });
    } catch {
      // Unconnected it is: the main socket hears and answers the peer as without `peer`.
      sock.close();
      return;
    }
    if (this.closed) {
      sock.close();
      return;
    }
    sizeBuffers(sock, opts);
    const remote = sock.remoteAddress();
    this.peerAddr = remote.address;
    this.peerPort = remote.port;
    this.watch(sock);
    this.peerSock = sock;
  }
}

function bind(sock: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onErr = (e: Error) => reject(e);
    sock.once('error', onErr);
    sock.bind({ port, address, exclusive: true }, () => {
      sock.off('error', onErr);
      resolve();
    });
  });
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

/**
 * dgram resolves every destination before each send, even an IP literal: dns.lookup answers
 * a literal on the next tick, so each datagram cost a closure, a tick-queue entry and a second
 * entry into JS after the socket callback. Peers here are dotted-quad literals: answer those at
 * once (the send happens synchronously); anything else still goes through dns.lookup.
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

/** Asks for the buffer sizes; the kernel clamps them to its maximum, and a smaller buffer still works. */
function sizeBuffers(sock: dgram.Socket, opts: EndpointOptions): void {
  try {
    if (opts.recvBufferSize) sock.setRecvBufferSize(opts.recvBufferSize);
    if (opts.sendBufferSize) sock.setSendBufferSize(opts.sendBufferSize);
  } catch {
    // keep the default size
  }
}
