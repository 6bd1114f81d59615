/**
 * The DHCP server: sockets in, decisions out. It owns no policy: each datagram is
 * decoded (a bad one is dropped and counted, never fatal), handed to the pure
 * responder, and the reply is encoded and sent where the responder says. Every
 * received, answered and ignored packet becomes an event.
 *
 * Storm behaviour: no disk in the reply path (leases persist from a timer), no
 * ping-before-offer, and retransmits (same xid, MAC and message type, and the same
 * bytes but for `secs`, within a short window) are answered from a reply cache instead
 * of being recomputed.
 */
import { createHash } from 'node:crypto';
import type { EndpointFactory, UdpEndpoint } from '../../../board/udp-endpoint.ts';
import type { Clock } from '../../core/clock.ts';
import { DecodeError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { formatIPv4, inSubnet, parseIPv4 } from '../../core/net.ts';
import { decode, encode } from './codec.ts';
import { messageTypeName, Offset, Port } from './constants.ts';
import { getMessageType } from './options.ts';
import { type BootPlanner, type Decision, respond, type SubnetConfig } from './responder.ts';

export interface DhcpEventMap {
  'dhcp.request': {
    ts: string;
    mac: string;
    type: string;
    arch: string;
    firmware: string;
    ipxe: boolean;
    relayed: boolean;
    src: string;
    port: number;
  };
  'dhcp.reply': {
    ts: string;
    mac: string;
    type: string;
    yiaddr?: string;
    bootFile?: string;
    to: string;
    port: number;
    retransmit: boolean;
  };
  'dhcp.ignored': { ts: string; mac?: string; type?: string; reason: string };
  'dhcp.dropped': { ts: string; reason: string; src: string };
  'dhcp.pool-exhausted': { ts: string; mac?: string; subnet: string };
}

/** Anything with a typed emit (the box's EventBus fits). */
export interface DhcpEventSink {
  emit<K extends keyof DhcpEventMap>(type: K, event: DhcpEventMap[K]): void;
}

export interface DhcpCounters {
  received: number;
  replied: number;
  ignored: number;
  dropped: number;
  retransmits: number;
  sendErrors: number;
  byReason: Record<string, number>;
  byType: Record<string, number>;
}

export interface DhcpServerOptions {
  /** Device-bound endpoints on the private interface (broadcast capable). */
  endpoints: EndpointFactory;
  mode: 'full' | 'proxy';
  serverAddr: string;
  subnet: SubnetConfig;
  relaySubnets?: SubnetConfig[];
  planner: BootPlanner;
  events: DhcpEventSink;
  clock: Clock;
  log: Logger;
  /** Listen on 67 (and 4011). Tests may use other ports. */
  port?: number;
  proxyPort?: number;
  /** How long a reply is reused for a retransmitted request (ms). */
  retransmitWindowMs?: number;
}

interface CachedReply {
  at: number;
  bytes: Buffer;
  to: string;
  port: number;
  type: string;
  yiaddr?: string;
  bootFile?: string;
  viaProxyPort: boolean;
}

export class DhcpServer {
  readonly name = 'dhcp';
  readonly counters: DhcpCounters = {
    received: 0,
    replied: 0,
    ignored: 0,
    dropped: 0,
    retransmits: 0,
    sendErrors: 0,
    byReason: {},
    byType: {},
  };
  private readonly o: DhcpServerOptions;
  private readonly serverAddrNum: number;
  private ep67: UdpEndpoint | undefined;
  private ep4011: UdpEndpoint | undefined;
  private readonly cache = new Map<string, CachedReply>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private lastExhaustWarn = -Infinity;
  private readonly relayAgents = new Map<number, number>();

  constructor(o: DhcpServerOptions) {
    this.o = o;
    this.serverAddrNum = parseIPv4(o.serverAddr)!;
  }

  async start(): Promise<void> {
    this.ep67 = await this.o.endpoints.open({ port: this.o.port ?? Port.Server, broadcast: true });
    try {
      this.ep4011 = await this.o.endpoints.open({ port: this.o.proxyPort ?? Port.ProxyDhcp, broadcast: true });
    } catch (e) {
      await this.ep67.close();
      throw e;
    }
    this.ep67.onMessage((d) => this.handle(d.data, d.srcAddr, d.srcPort, false, d.dstAddr));
    this.ep4011.onMessage((d) => this.handle(d.data, d.srcAddr, d.srcPort, true, d.dstAddr));
    this.sweepTimer = setInterval(() => this.sweep(), 1000);
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.all([this.ep67?.close(), this.ep4011?.close()]);
    this.ep67 = this.ep4011 = undefined;
  }

  status(): Record<string, unknown> {
    return {
      mode: this.o.mode,
      listen: [this.ep67, this.ep4011].filter(Boolean).map((e) => `${e!.localAddress}:${e!.port} (${e!.ifname})`),
      counters: this.counters,
    };
  }

  /** Remembers the relay agent of a relay subnet: the router of its clients' unicast renewals. */
  private noteRelayAgent(giaddr: number): void {
    const s = this.o.relaySubnets?.find((r) => inSubnet(giaddr, r.subnet));
    if (s) this.relayAgents.set(s.subnet.network, giaddr);
  }

  private count(map: Record<string, number>, key: string): void {
    map[key] = (map[key] ?? 0) + 1;
  }

  /**
   * One datagram. Never throws: whatever goes wrong is counted and reported. `dstAddr` is
   * where it was sent (our address for a unicast); unknown counts as a broadcast.
   */
  handle(data: Buffer, srcAddr: string, srcPort: number, viaProxyPort: boolean, dstAddr?: string): void {
    const ts = () => this.o.clock.date().toISOString();
    this.counters.received++;
    let packet: ReturnType<typeof decode>;
    try {
      packet = decode(data);
    } catch (e) {
      const reason = e instanceof DecodeError ? e.reason : 'decoder-fault';
      if (!(e instanceof DecodeError)) this.o.log.error('DHCP decoder fault', { error: String(e) });
      this.counters.dropped++;
      this.count(this.counters.byReason, reason);
      this.o.events.emit('dhcp.dropped', { ts: ts(), reason, src: `${srcAddr}:${srcPort}` });
      return;
    }
    const typeName = messageTypeName(getMessageType(packet.options));
    this.count(this.counters.byType, typeName);
    const key = retransmitKey(data, viaProxyPort, packet.xid, packet.chaddr, typeName);
    const cached = this.cache.get(key);
    const now = this.o.clock.now();
    if (cached && now - cached.at < (this.o.retransmitWindowMs ?? 2000)) {
      this.counters.retransmits++;
      this.send(cached, macOf(packet.chaddr), true);
      return;
    }
    if (packet.giaddr !== 0) this.noteRelayAgent(packet.giaddr);
    let decision: Decision;
    try {
      decision = respond({
        packet,
        source: { addr: parseIPv4(srcAddr) ?? 0, port: srcPort },
        localPort: viaProxyPort ? Port.ProxyDhcp : Port.Server,
        mode: this.o.mode,
        serverAddr: this.serverAddrNum,
        subnet: this.o.subnet,
        relaySubnets: this.o.relaySubnets,
        unicast: dstAddr === this.o.serverAddr,
        relayAgents: this.relayAgents,
        planner: this.o.planner,
      });
    } catch (e) {
      this.o.log.error('DHCP responder fault', { error: (e as Error).stack });
      this.counters.dropped++;
      this.count(this.counters.byReason, 'responder-fault');
      return;
    }
    const mac = macOf(packet.chaddr);
    if (decision.client) {
      const c = decision.client;
      this.o.events.emit('dhcp.request', {
        ts: ts(),
        mac,
        type: typeName,
        arch: c.arch,
        firmware: c.firmware,
        ipxe: c.isIpxe,
        relayed: c.relayed,
        src: srcAddr,
        port: viaProxyPort ? Port.ProxyDhcp : Port.Server,
      });
    }
    if (decision.kind === 'ignore') {
      this.counters.ignored++;
      this.count(this.counters.byReason, decision.reason);
      this.o.events.emit('dhcp.ignored', { ts: ts(), mac, type: typeName, reason: decision.reason });
      if (decision.reason === 'pool-exhausted' && now - this.lastExhaustWarn > 10_000) {
        this.lastExhaustWarn = now;
        this.o.log.warn('address pool exhausted: no offers until leases expire or the range grows', { mac });
        this.o.events.emit('dhcp.pool-exhausted', { ts: ts(), mac, subnet: formatIPv4(this.o.subnet.subnet.network) });
      }
      return;
    }
    let bytes: Buffer;
    try {
      bytes = encode(decision.packet, { maxLength: decision.maxLength });
    } catch (e) {
      this.o.log.error('DHCP reply could not be encoded', { mac, error: (e as Error).message });
      this.counters.dropped++;
      this.count(this.counters.byReason, 'encode-failed');
      return;
    }
    const reply: CachedReply = {
      at: now,
      bytes,
      to: formatIPv4(decision.to.addr),
      port: decision.to.port,
      type: messageTypeName(getMessageType(decision.packet.options)),
      yiaddr: decision.packet.yiaddr ? formatIPv4(decision.packet.yiaddr) : undefined,
      bootFile: decision.packet.file || undefined,
      viaProxyPort,
    };
    this.cache.delete(key); // keep the map in time order for sweep()
    this.cache.set(key, reply);
    this.send(reply, mac, false);
  }

  private send(r: CachedReply, mac: string, retransmit: boolean): void {
    const ep = r.viaProxyPort ? this.ep4011 : this.ep67;
    if (!ep) return;
    ep.send(r.bytes, r.to, r.port, (err) => {
      if (err) {
        this.counters.sendErrors++;
        this.o.log.debug('DHCP send failed', { to: r.to, error: err.message });
      }
    });
    this.counters.replied++;
    this.o.events.emit('dhcp.reply', {
      ts: this.o.clock.date().toISOString(),
      mac,
      type: r.type,
      yiaddr: r.yiaddr,
      bootFile: r.bootFile,
      to: r.to,
      port: r.port,
      retransmit,
    });
  }

  private sweep(): void {
    const limit = this.o.clock.now() - (this.o.retransmitWindowMs ?? 2000);
    for (const [k, v] of this.cache) {
      if (v.at < limit) this.cache.delete(k);
      else break; // insertion order is time order
    }
  }
}

/**
 * What makes a datagram a retransmit of an earlier one: the same xid, MAC and message
 * type, *and* the same bytes apart from `secs` (RFC 2131 §4.4.1: a client fills in the
 * seconds since it began, so retransmits differ there). Clients keep one xid for a whole
 * exchange: busybox udhcpc sends its RENEWING REQUEST (ciaddr set, no option 54) with the
 * xid of the SELECTING REQUEST before it, and through a relay the same REQUEST reaches us
 * twice, unicast and relayed (test/lab/dhcp-relay.test.ts). Those are new requests and must
 * be answered on their own, not with the cached ACK that went to the relay.
 */
function retransmitKey(data: Buffer, viaProxyPort: boolean, xid: number, chaddr: Buffer, type: string): string {
  const h = createHash('sha1');
  h.update(data.subarray(0, Offset.secs));
  h.update(data.subarray(Offset.secs + 2));
  return `${viaProxyPort ? 'p' : 's'}${xid}:${chaddr.toString('hex')}:${type}:${h.digest('base64')}`;
}

function macOf(chaddr: Buffer): string {
  return [...chaddr.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}
