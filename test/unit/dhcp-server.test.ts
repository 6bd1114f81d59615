/**
 * The DHCP server on an in-memory endpoint: a bad datagram is dropped and counted by
 * reason and never throws; the server keeps answering afterwards; retransmits are served
 * from the reply cache; a full pool is an event, not an offer.
 */
import test from 'ava';
import type {
  Datagram,
  EndpointFactory,
  EndpointOptions,
  SendCallback,
  UdpEndpoint,
} from '../../board/udp-endpoint.ts';
import { newStats } from '../../board/udp-endpoint.ts';
import { ManualClock } from '../../firmware/core/clock.ts';
import { type Logger, silentLogger } from '../../firmware/core/logger.ts';
import { formatIPv4, parseCidr } from '../../firmware/core/net.ts';
import { decode, encode } from '../../firmware/protocols/dhcp/codec.ts';
import { DhcpOption, MessageType } from '../../firmware/protocols/dhcp/constants.ts';
import { LeasePool } from '../../firmware/protocols/dhcp/leases.ts';
import { getMessageType, setIPv4, setU8 } from '../../firmware/protocols/dhcp/options.ts';
import type { BootPlanner, SubnetConfig } from '../../firmware/protocols/dhcp/responder.ts';
import { type DhcpEventMap, DhcpServer } from '../../firmware/protocols/dhcp/server.ts';
import { negative } from '../fixtures/dhcp/annotated.ts';
import { ip, loadHex } from '../helpers/dhcp.ts';
import { defaultBootPlanner } from '../helpers/planner.ts';
import { rng } from '../helpers/rng.ts';

const SERVER = '10.77.0.1';

interface Sent {
  data: Buffer;
  addr: string;
  port: number;
  from: number;
}

/** An endpoint that lives in memory: tests inject datagrams and read what was sent. */
class MemoryEndpoint implements UdpEndpoint {
  readonly kind = 'dgram' as const;
  readonly ifname = 'mem0';
  readonly localAddress = SERVER;
  readonly stats = newStats();
  readonly port: number;
  private readonly net: MemoryNet;
  private listener: ((d: Datagram) => void) | undefined;
  closed = false;
  constructor(net: MemoryNet, port: number) {
    this.net = net;
    this.port = port;
  }
  onMessage(fn: (d: Datagram) => void): void {
    this.listener = fn;
  }
  send(data: Buffer, addr: string, port: number, cb?: SendCallback): void {
    this.stats.sent++;
    this.net.sent.push({ data: Buffer.from(data), addr, port, from: this.port });
    cb?.(this.net.sendError);
  }
  deliver(d: Datagram): void {
    this.stats.received++;
    this.listener?.(d);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

class MemoryNet implements EndpointFactory {
  readonly ifname = 'mem0';
  readonly localAddress = SERVER;
  readonly endpoints = new Map<number, MemoryEndpoint>();
  readonly sent: Sent[] = [];
  sendError: Error | null = null;
  async open(o: EndpointOptions): Promise<UdpEndpoint> {
    const ep = new MemoryEndpoint(this, o.port);
    this.endpoints.set(o.port, ep);
    return ep;
  }
  /** A datagram arriving at `port` (67 or 4011), broadcast unless `dst` says otherwise. */
  inject(port: number, data: Buffer, src = '0.0.0.0', srcPort = 68, dst = '255.255.255.255'): void {
    const ep = this.endpoints.get(port);
    if (!ep) throw new Error(`nothing listens on ${port}`);
    ep.deliver({ data, srcAddr: src, srcPort, dstAddr: dst, dstPort: port, ifname: this.ifname });
  }
  /** The sent datagrams, decoded. */
  replies() {
    return this.sent.map((s) => ({ ...s, packet: decode(s.data), type: getMessageType(decode(s.data).options) }));
  }
}

type AnyEvent = { [K in keyof DhcpEventMap]: { type: K; event: DhcpEventMap[K] } }[keyof DhcpEventMap];

async function setup(o: { range?: [string, string]; planner?: BootPlanner; log?: Logger } = {}) {
  const net = new MemoryNet();
  const clock = new ManualClock();
  const [start, end] = o.range ?? ['10.77.0.100', '10.77.0.120'];
  const pool = new LeasePool({ range: { start: ip(start), end: ip(end) } }, clock);
  const subnet: SubnetConfig = {
    subnet: parseCidr('10.77.0.0/24')!,
    router: ip(SERVER),
    leaseTimeSec: 600,
    pool,
  };
  const events: AnyEvent[] = [];
  const server = new DhcpServer({
    endpoints: net,
    mode: 'full',
    serverAddr: SERVER,
    subnet,
    planner: o.planner ?? defaultBootPlanner({ serverAddr: SERVER, httpPort: 80 }),
    events: { emit: (type, event) => events.push({ type, event } as AnyEvent) },
    clock,
    log: o.log ?? silentLogger,
  });
  await server.start();
  const of = <K extends keyof DhcpEventMap>(type: K) =>
    events.filter((e) => e.type === type).map((e) => e.event as DhcpEventMap[K]);
  return { net, clock, pool, server, events, of };
}

const SEED = Number(process.env['DHCP_FUZZ_SEED'] ?? 0xb007) >>> 0;

/** A DISCOVER from a plain client (udhcpc's capture), with its MAC's last byte set to `n`. */
function discover(n = 1): Buffer {
  const p = decode(loadHex('udhcpc'));
  p.chaddr[5] = n;
  p.xid = (0x10000 + n) >>> 0;
  return encode(p);
}

test(`random bytes and every negative fixture are dropped and counted by reason, and the server still answers (seed ${SEED})`, async (t) => {
  const errors: string[] = [];
  const log: Logger = { ...silentLogger, error: (m) => errors.push(m), child: () => log };
  const { net, clock, server, of } = await setup({ log });
  t.teardown(() => server.stop());
  const rand = rng(SEED);
  const int = (n: number) => Math.floor(rand() * n);
  const seedPackets = ['udhcpc', 'dhclient', 'ipxe-bios', 'ipxe-efi', 'edk2-pxe', 'edk2-http'].map((n) => loadHex(n));
  let sent = 0;
  t.notThrows(() => {
    for (let i = 0; i < 5000; i++) {
      let buf: Buffer;
      if (i % 2 === 0) {
        // noise of any length, to either port
        buf = Buffer.alloc(int(700));
        for (let j = 0; j < buf.length; j++) buf[j] = int(256);
      } else {
        // a real request with a few bytes flipped and sometimes cut short: some still
        // decode and go through the responder with odd fields
        buf = Buffer.from(seedPackets[int(seedPackets.length)]!);
        const flips = 1 + int(6);
        for (let f = 0; f < flips; f++) buf[int(buf.length)] = int(256);
        if (rand() < 0.2) buf = buf.subarray(0, int(buf.length));
      }
      net.inject(rand() < 0.8 ? 67 : 4011, buf, `10.77.0.${int(250) + 1}`, 68, rand() < 0.5 ? SERVER : undefined);
      sent++;
    }
  });
  const c = server.counters;
  t.log(JSON.stringify({ ...c, byType: undefined }));
  t.is(c.received, sent);
  // Every datagram has exactly one outcome.
  t.is(c.dropped + c.ignored + c.replied, c.received, JSON.stringify(c));
  t.true(c.dropped > 2000, `most garbage is undecodable: ${c.dropped}`);
  const reasons = Object.values(c.byReason).reduce((a, b) => a + b, 0);
  t.is(reasons, c.dropped + c.ignored, 'each drop and ignore is counted under a reason');
  t.is(of('dhcp.dropped').length, c.dropped);
  t.deepEqual(errors, [], 'no decoder, responder or encoder fault');
  t.falsy(c.byReason['decoder-fault']);
  t.falsy(c.byReason['responder-fault']);

  // Each negative fixture: dropped under its own reason.
  for (const f of negative) {
    const before = { ...c.byReason };
    const dropped = c.dropped;
    t.notThrows(() => net.inject(67, Buffer.from(f.bytes)), f.name);
    t.is(c.dropped, dropped + 1, f.name);
    t.is(c.byReason[f.reason], (before[f.reason] ?? 0) + 1, f.name);
    t.like(of('dhcp.dropped').at(-1), { reason: f.reason, src: '0.0.0.0:68' }, f.name);
  }

  // A valid DISCOVER afterwards is answered with an OFFER (once the offers and leases the
  // mutated requests got have lapsed: they may have used up the pool).
  clock.advance(3600_000);
  net.sent.length = 0;
  net.inject(67, discover(0xaa));
  const replies = net.replies();
  t.is(replies.length, 1);
  t.is(replies[0]!.type, MessageType.Offer);
  t.is(replies[0]!.addr, '255.255.255.255');
  t.is(replies[0]!.port, 68);
  t.regex(formatIPv4(replies[0]!.packet.yiaddr), /^10\.77\.0\.1[0-2]\d$/);
});

test('a planner that throws is a counted responder fault, not a crash', async (t) => {
  const errors: string[] = [];
  const log: Logger = { ...silentLogger, error: (m) => errors.push(m), child: () => log };
  const planner: BootPlanner = {
    plan() {
      throw new Error('boom');
    },
  };
  const { net, server } = await setup({ planner, log });
  t.teardown(() => server.stop());
  t.notThrows(() => net.inject(67, loadHex('edk2-pxe')));
  t.is(server.counters.dropped, 1);
  t.is(server.counters.byReason['responder-fault'], 1);
  t.is(errors.length, 1);
  t.is(net.sent.length, 0);
  // Plain clients need no plan and are still served.
  net.inject(67, discover(3));
  t.is(net.replies()[0]?.type, MessageType.Offer);
});

test('retransmits within the window are answered from the cache; later ones and new requests are recomputed', async (t) => {
  const { net, clock, pool, server, of } = await setup();
  t.teardown(() => server.stop());
  const d = discover(7);
  net.inject(67, d);
  clock.advance(500);
  net.inject(67, d);
  // A retransmit with a later `secs` (RFC 2131 §4.4.1) is still a retransmit.
  const later = Buffer.from(d);
  later.writeUInt16BE(3, 8);
  clock.advance(500);
  net.inject(67, later);
  const c = server.counters;
  t.is(c.received, 3);
  t.is(c.retransmits, 2);
  t.is(c.replied, 3);
  t.is(net.sent.length, 3);
  t.deepEqual(net.sent[1]!.data, net.sent[0]!.data, 'the very same bytes');
  t.deepEqual(net.sent[2]!.data, net.sent[0]!.data);
  t.deepEqual(
    of('dhcp.reply').map((r) => r.retransmit),
    [false, true, true],
  );
  t.is(pool.stats().offered, 1);
  // The same DISCOVER on port 4011 is a different exchange (and is not a 4011 request).
  net.inject(4011, d, '10.77.0.50', 4011, SERVER);
  t.is(c.retransmits, 2);
  // Past the window (2 s) it is recomputed (and gets the same address).
  clock.advance(2500);
  net.inject(67, d);
  t.is(c.retransmits, 2);
  t.is(net.sent.length, 4);
  t.is(decode(net.sent[3]!.data).yiaddr, decode(net.sent[0]!.data).yiaddr);

  // REQUEST (SELECTING), then a RENEWING REQUEST with the same xid inside the window (busybox
  // udhcpc keeps its xid): the renewal is a new request, answered on its own, to ciaddr.
  const offered = decode(net.sent[0]!.data).yiaddr;
  const sel = decode(d);
  setU8(sel.options, DhcpOption.MessageType, MessageType.Request);
  setIPv4(sel.options, DhcpOption.ServerIdentifier, ip(SERVER));
  setIPv4(sel.options, DhcpOption.RequestedIpAddress, offered);
  net.sent.length = 0;
  net.inject(67, encode(sel));
  const renew = decode(d);
  setU8(renew.options, DhcpOption.MessageType, MessageType.Request);
  renew.ciaddr = offered;
  clock.advance(200);
  net.inject(67, encode(renew), formatIPv4(offered), 68, SERVER);
  const replies = net.replies();
  t.deepEqual(
    replies.map((r) => [r.type, r.addr, r.port]),
    [
      [MessageType.Ack, '255.255.255.255', 68],
      [MessageType.Ack, formatIPv4(offered), 68],
    ],
  );
  t.is(c.retransmits, 2, 'the renewal was not taken for a retransmit');
  t.is(pool.stats().leased, 1);
});

test('a full pool: no offer, a dhcp.pool-exhausted event and a counted reason', async (t) => {
  const { net, server, of } = await setup({ range: ['10.77.0.100', '10.77.0.101'] });
  t.teardown(() => server.stop());
  net.inject(67, discover(1));
  net.inject(67, discover(2));
  t.deepEqual(
    net.replies().map((r) => [r.type, formatIPv4(r.packet.yiaddr)]),
    [
      [MessageType.Offer, '10.77.0.100'],
      [MessageType.Offer, '10.77.0.101'],
    ],
  );
  net.inject(67, discover(3));
  net.inject(67, discover(4));
  t.is(net.sent.length, 2, 'no offer for the third and fourth client');
  t.is(server.counters.byReason['pool-exhausted'], 2);
  t.is(server.counters.ignored, 2);
  const exhausted = of('dhcp.pool-exhausted');
  t.is(exhausted.length, 1, 'one event per 10 s, not one per packet');
  t.like(exhausted[0], { mac: '02:77:00:00:00:03', subnet: '10.77.0.0' });
  t.deepEqual(
    of('dhcp.ignored').map((e) => e.reason),
    ['pool-exhausted', 'pool-exhausted'],
  );
});

test('a failed send is counted and the server carries on', async (t) => {
  const { net, server } = await setup();
  t.teardown(() => server.stop());
  net.sendError = new Error('ENETUNREACH');
  net.inject(67, discover(1));
  t.is(server.counters.sendErrors, 1);
  net.sendError = null;
  net.inject(67, discover(2));
  t.is(server.counters.sendErrors, 1);
  t.is(server.counters.replied, 2);
});

test('stop() closes both endpoints', async (t) => {
  const { net, server } = await setup();
  await server.stop();
  t.true(net.endpoints.get(67)!.closed);
  t.true(net.endpoints.get(4011)!.closed);
});
