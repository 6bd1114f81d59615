/**
 * Interface-bound UDP over raw sockets (raw-socket addon).
 *
 * Why: plain node:dgram cannot serve DHCP on one interface of several. A socket on
 * 0.0.0.0:67 hears every interface and cannot tell which; one bound to the
 * interface address hears no broadcasts (../../shared/NOTES-build.md).
 *
 * How: one raw IPPROTO_UDP socket per interface, bound with SO_BINDTODEVICE, so the
 * kernel delivers only datagrams that arrived on that interface and routes sends out
 * of it only. Sends are whole hand-built IPv4+UDP datagrams (IP_HDRINCL) from the
 * interface address. Each endpoint also holds a dgram socket on <address>:<port> so
 * the port is reserved and unicast requests do not draw ICMP port-unreachable.
 */
import dgram from 'node:dgram';
import { BootboxError } from '../firmware/core/errors.ts';
import { broadcastOf, formatIPv4, parseIPv4, subnetOf } from '../firmware/core/net.ts';
import { buildUdpDatagram, parseUdpDatagram } from './ip-udp.ts';
import { loadRawSocket, type RawSocket } from './raw-addon.ts';
import {
  deviceName,
  IP_HDRINCL,
  IPPROTO_IP,
  IPPROTO_UDP,
  SO_BINDTODEVICE,
  SO_BROADCAST,
  SO_RCVBUF,
  SO_SNDBUF,
  SOL_SOCKET,
} from './sockopt.ts';
import type {
  Datagram,
  EndpointFactory,
  EndpointOptions,
  EndpointStats,
  SendCallback,
  UdpEndpoint,
} from './udp-endpoint.ts';
import { newStats } from './udp-endpoint.ts';

/** Stats for the whole interface socket: what the kernel handed us that no endpoint wanted. */
export interface RawInterfaceStats {
  received: number;
  malformed: number;
  notForUs: number;
}

/** One raw socket for one interface, shared by every endpoint on it (demultiplexed by port). */
export class RawInterface implements EndpointFactory {
  readonly ifname: string;
  readonly localAddress: string;
  readonly stats: RawInterfaceStats = { received: 0, malformed: 0, notForUs: 0 };
  private readonly sock: RawSocket;
  private readonly ports = new Map<number, RawEndpoint>();
  private readonly accept: Set<string>;
  private closed = false;

  private constructor(ifname: string, localAddress: string, prefix: number, sock: RawSocket) {
    this.ifname = ifname;
    this.localAddress = localAddress;
    this.sock = sock;
    const addr = parseIPv4(localAddress)!;
    this.accept = new Set([localAddress, '255.255.255.255', formatIPv4(broadcastOf(subnetOf(addr, prefix)))]);
  }

  /**
   * Opens the interface socket. Throws BootboxError NO_PRIVILEGE without CAP_NET_RAW,
   * INTERFACE_MISSING when the kernel does not know the interface.
   */
  static open(ifname: string, localAddress: string, prefix: number, opts: { bufferBytes?: number } = {}): RawInterface {
    const raw = loadRawSocket();
    let sock: RawSocket;
    try {
      sock = raw.createSocket({ protocol: IPPROTO_UDP, bufferSize: 65535 });
    } catch (e) {
      const msg = (e as Error).message;
      if (/not permitted|permission/i.test(msg)) {
        throw new BootboxError(
          'NO_PRIVILEGE',
          'boot services need root or CAP_NET_RAW to bind to the private interface (raw socket: operation not permitted)',
        );
      }
      throw new BootboxError('INTERNAL', `raw socket: ${msg}`);
    }
    try {
      const name = deviceName(ifname);
      sock.setOption(SOL_SOCKET, SO_BINDTODEVICE, name, name.length);
    } catch (e) {
      sock.close();
      throw new BootboxError('INTERFACE_MISSING', `cannot bind to interface "${ifname}": ${(e as Error).message}`);
    }
    sock.setOption(IPPROTO_IP, IP_HDRINCL, 1);
    sock.setOption(SOL_SOCKET, SO_BROADCAST, 1);
    const bytes = opts.bufferBytes ?? 4 * 1024 * 1024;
    try {
      sock.setOption(SOL_SOCKET, SO_RCVBUF, bytes);
      sock.setOption(SOL_SOCKET, SO_SNDBUF, bytes);
    } catch {
      // the kernel clamps to net.core.[rw]mem_max; a smaller buffer still works
    }
    // Anything queued between socket() and SO_BINDTODEVICE may have come from another
    // interface: drain it before listening.
    const scratch = Buffer.alloc(65535);
    for (let i = 0; i < 100000; i++) {
      try {
        sock.wrap.recv(scratch, () => {});
      } catch {
        break; // EAGAIN: the queue is empty
      }
    }
    const ri = new RawInterface(ifname, localAddress, prefix, sock);
    sock.on('message', (buf) => ri.onPacket(buf));
    // The socket hears every UDP datagram of the interface (TFTP ACKs too): read it only
    // while some raw endpoint is open.
    sock.pauseRecv();
    sock.on('error', () => {
      ri.stats.malformed++;
    });
    return ri;
  }

  private onPacket(buf: Buffer): void {
    this.stats.received++;
    const p = parseUdpDatagram(buf);
    if (!p) {
      this.stats.malformed++;
      return;
    }
    const ep = this.ports.get(p.dstPort);
    if (!ep || !this.accept.has(p.dst)) {
      this.stats.notForUs++;
      return;
    }
    // Copy: raw-socket reuses its receive buffer for the next packet.
    ep.deliver({
      data: Buffer.from(p.payload),
      srcAddr: p.src,
      srcPort: p.srcPort,
      dstAddr: p.dst,
      dstPort: p.dstPort,
      ifname: this.ifname,
    });
  }

  async open(opts: EndpointOptions): Promise<UdpEndpoint> {
    if (this.closed) throw new BootboxError('INTERNAL', `interface socket for ${this.ifname} is closed`);
    // The holder reserves the port on the private address (and so picks the port when 0 is asked).
    const holder = dgram.createSocket({ type: 'udp4' });
    await new Promise<void>((resolve, reject) => {
      holder.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          e.code === 'EADDRINUSE'
            ? new BootboxError('ADDRESS_IN_USE', `UDP port ${opts.port} on ${this.localAddress} is already in use`)
            : e.code === 'EACCES'
              ? new BootboxError('NO_PRIVILEGE', `UDP port ${opts.port} needs root or CAP_NET_BIND_SERVICE`)
              : e,
        ),
      );
      holder.bind({ port: opts.port, address: this.localAddress, exclusive: true }, () => resolve());
    });
    holder.on('message', () => {}); // drained: the raw socket sees the same datagram
    const port = holder.address().port;
    if (this.ports.has(port)) {
      holder.close();
      throw new BootboxError('ADDRESS_IN_USE', `port ${port} is already open on ${this.ifname}`);
    }
    const ep = new RawEndpoint(this, port, holder);
    if (this.ports.size === 0) this.sock.resumeRecv();
    this.ports.set(port, ep);
    return ep;
  }

  /** @internal */
  sendFrom(srcPort: number, data: Buffer, dstAddr: string, dstPort: number, cb: (err: Error | null) => void): void {
    const dgramBytes = buildUdpDatagram({ src: this.localAddress, dst: dstAddr, srcPort, dstPort, payload: data });
    if (!dgramBytes) {
      cb(new Error(`bad destination address ${dstAddr}`));
      return;
    }
    try {
      this.sock.send(dgramBytes, 0, dgramBytes.length, dstAddr, (err) => cb(err));
    } catch (e) {
      cb(e as Error);
    }
  }

  /** @internal */
  release(port: number): void {
    this.ports.delete(port);
    if (this.ports.size === 0 && !this.closed) this.sock.pauseRecv();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ep of [...this.ports.values()]) void ep.close();
    this.sock.close();
  }
}

class RawEndpoint implements UdpEndpoint {
  readonly kind = 'raw' as const;
  readonly stats: EndpointStats = newStats();
  readonly port: number;
  private readonly iface: RawInterface;
  private readonly holder: dgram.Socket;
  private listener: ((d: Datagram) => void) | undefined;
  private closed = false;

  constructor(iface: RawInterface, port: number, holder: dgram.Socket) {
    this.iface = iface;
    this.port = port;
    this.holder = holder;
  }

  get ifname(): string {
    return this.iface.ifname;
  }

  get localAddress(): string {
    return this.iface.localAddress;
  }

  deliver(d: Datagram): void {
    if (this.closed) return;
    this.stats.received++;
    this.listener?.(d);
  }

  onMessage(fn: (d: Datagram) => void): void {
    this.listener = fn;
  }

  send(data: Buffer, dstAddr: string, dstPort: number, cb?: SendCallback): void {
    if (this.closed) {
      cb?.(new Error('endpoint closed'));
      return;
    }
    this.iface.sendFrom(this.port, data, dstAddr, dstPort, (err) => {
      if (err) this.stats.sendErrors++;
      else this.stats.sent++;
      cb?.(err);
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.iface.release(this.port);
    return new Promise((resolve) => this.holder.close(() => resolve()));
  }
}
