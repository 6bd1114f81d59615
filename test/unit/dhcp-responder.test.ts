/** Table tests for every branch of the responder, on real captured requests. */
import test from 'ava';
import { ManualClock } from '../../firmware/core/clock.ts';
import { macFromBytes, parseCidr } from '../../firmware/core/net.ts';
import type { ClientInfo } from '../../firmware/protocols/dhcp/classify.ts';
import { type DhcpPacket, decode, encode } from '../../firmware/protocols/dhcp/codec.ts';
import { DhcpOption, MessageType } from '../../firmware/protocols/dhcp/constants.ts';
import { LeasePool } from '../../firmware/protocols/dhcp/leases.ts';
import { encodeSubOptions, getVendorSpecific, setIPv4, setU8 } from '../../firmware/protocols/dhcp/options.ts';
import {
  type BootPlan,
  type BootPlanner,
  type Decision,
  type DhcpRequestContext,
  respond,
  type SubnetConfig,
} from '../../firmware/protocols/dhcp/responder.ts';
import { ip, loadHex } from '../helpers/dhcp.ts';

const SERVER = ip('10.77.0.1');
const OTHER_SERVER = ip('10.77.0.254');
const BCAST = 0xffffffff;
const URL = 'http://10.77.0.1/boot/ipxe.efi';

function request(fixture: string, type: number, build?: (p: DhcpPacket) => void): DhcpPacket {
  const p = decode(loadHex(fixture));
  setU8(p.options, DhcpOption.MessageType, type);
  build?.(p);
  return p;
}

class Planner implements BootPlanner {
  calls: ClientInfo[] = [];
  result: ((c: ClientInfo) => BootPlan | null) | undefined;
  plan(c: ClientInfo): BootPlan | null {
    this.calls.push(c);
    if (this.result) return this.result(c);
    return {
      nextServer: SERVER,
      bootFile: c.isIpxe ? 'http://10.77.0.1/boot/script.ipxe' : c.firmware === 'bios' ? 'undionly.kpxe' : 'ipxe.efi',
      httpUrl: c.isHttpBoot ? URL : undefined,
    } as BootPlan;
  }
}

function setup(mode: 'full' | 'proxy' = 'full', range = ['10.77.0.10', '10.77.0.20']) {
  const clock = new ManualClock();
  const pool = new LeasePool({ range: { start: ip(range[0]!), end: ip(range[1]!) } }, clock);
  const relayPool = new LeasePool({ range: { start: ip('10.88.0.10'), end: ip('10.88.0.20') } }, clock);
  const subnet: SubnetConfig = {
    subnet: parseCidr('10.77.0.0/24')!,
    router: SERVER,
    dns: [SERVER],
    domainName: 'cluster.lan',
    leaseTimeSec: 3600,
    pool,
  };
  const relay: SubnetConfig = {
    subnet: parseCidr('10.88.0.0/24')!,
    router: ip('10.88.0.1'),
    leaseTimeSec: 600,
    pool: relayPool,
  };
  const planner = new Planner();
  const ctx = (packet: DhcpPacket, over: Partial<DhcpRequestContext> = {}): DhcpRequestContext => ({
    packet,
    source: { addr: packet.ciaddr, port: 68 },
    localPort: 67,
    mode,
    serverAddr: SERVER,
    subnet,
    relaySubnets: [relay],
    planner,
    ...over,
  });
  const run = (packet: DhcpPacket, over?: Partial<DhcpRequestContext>) => respond(ctx(packet, over));
  return { clock, pool, relayPool, subnet, planner, run };
}

/** A reply, checked to encode within the client's limit and decode back. */
function reply(t: import('ava').ExecutionContext, d: Decision) {
  if (d.kind !== 'reply') {
    t.fail(`expected a reply, got ignore: ${d.reason}`);
    throw new Error('not a reply');
  }
  const bytes = encode(d.packet, { maxLength: d.maxLength });
  t.true(bytes.length >= 300 && bytes.length <= d.maxLength);
  t.deepEqual(decode(bytes).options.get(DhcpOption.MessageType), d.packet.options.get(DhcpOption.MessageType));
  return d;
}

const opt = (p: DhcpPacket, code: number) => p.options.get(code);
const str = (p: DhcpPacket, code: number) => p.options.get(code)?.toString('latin1');
const u32 = (p: DhcpPacket, code: number) => p.options.get(code)?.readUInt32BE(0);

// -- generic ------------------------------------------------------------------

test('ignores replies, too many hops and unknown message types', (t) => {
  const { run } = setup();
  t.deepEqual(run(request('dhclient', MessageType.Discover, (p) => (p.op = 2))), {
    kind: 'ignore',
    reason: 'not-a-request',
  });
  t.deepEqual(run(request('dhclient', MessageType.Discover, (p) => (p.hops = 17))), {
    kind: 'ignore',
    reason: 'too-many-hops',
  });
  t.like(run(request('dhclient', MessageType.ForceRenew)), { kind: 'ignore', reason: 'unsupported-message-type' });
});

// -- full mode: DISCOVER ------------------------------------------------------------

test('full DISCOVER from a plain client: an address and network options, no boot options, no planner call', (t) => {
  const { run, planner } = setup();
  const d = reply(t, run(request('dhclient', MessageType.Discover)));
  const p = d.packet;
  t.is(p.op, 2);
  t.is(p.yiaddr, ip('10.77.0.10'));
  t.is(p.siaddr, 0);
  t.is(p.file, '');
  t.is(opt(p, 53)![0], MessageType.Offer);
  t.is(u32(p, 54), SERVER);
  t.is(u32(p, 51), 3600);
  t.is(u32(p, 58), 1800);
  t.is(u32(p, 59), 3150);
  t.is(u32(p, 1), ip('255.255.255.0'));
  t.is(u32(p, 3), SERVER);
  t.is(u32(p, 6), SERVER);
  t.is(str(p, 15), 'cluster.lan');
  t.is(u32(p, 28), ip('10.77.0.255'));
  t.false(p.options.has(60) || p.options.has(43) || p.options.has(175));
  t.deepEqual(d.to, { addr: BCAST, port: 68 });
  t.true(d.broadcast);
  t.is(planner.calls.length, 0);
});

test('full DISCOVER from BIOS iPXE: siaddr + file, no-pxedhcp 175.176, UUID echoed, no option 60/43', (t) => {
  const { run } = setup();
  const d = reply(t, run(request('ipxe-bios', MessageType.Discover)));
  const p = d.packet;
  t.is(p.siaddr, SERVER);
  t.is(p.file, 'http://10.77.0.1/boot/script.ipxe');
  t.deepEqual(opt(p, 175), encodeSubOptions([[176, Buffer.from([1])]]));
  t.deepEqual(opt(p, 97), opt(request('ipxe-bios', 1), 97));
  t.false(p.options.has(60));
  t.false(p.options.has(43));
  t.is(d.maxLength, 1472 - 28, 'option 57 = 1472 from iPXE');
});

test('full DISCOVER from edk2 PXE: classic siaddr + file', (t) => {
  const { run } = setup();
  const p = reply(t, run(request('edk2-pxe', MessageType.Discover))).packet;
  t.is(p.file, 'ipxe.efi');
  t.is(p.siaddr, SERVER);
  t.false(p.options.has(60) || p.options.has(43) || p.options.has(175));
  t.is(p.yiaddr, ip('10.77.0.10'));
});

test('full DISCOVER from edk2 HTTP boot: option 60 HTTPClient and the URL as boot file', (t) => {
  const { run } = setup();
  const p = reply(t, run(request('edk2-http', MessageType.Discover))).packet;
  t.is(str(p, 60), 'HTTPClient');
  t.is(p.file, URL);
  t.is(str(p, 67), URL);
  t.true(p.options.has(97));
});

test('an HTTP-boot client whose plan has no URL is ignored', (t) => {
  const { run, planner } = setup();
  planner.result = () => ({ nextServer: SERVER, bootFile: 'ipxe.efi' });
  t.like(run(request('edk2-http', MessageType.Discover)), { kind: 'ignore', reason: 'no-http-url' });
});

test('the planner can decline a machine; the decision carries the classification', (t) => {
  const { run, planner } = setup();
  planner.result = () => null;
  const d = run(request('edk2-pxe', MessageType.Discover));
  t.like(d, { kind: 'ignore', reason: 'planner-declined' });
  t.is(d.client?.mac, '52:54:00:77:00:13');
});

test('a full pool is ignored with reason pool-exhausted', (t) => {
  const { run } = setup('full', ['10.77.0.10', '10.77.0.10']);
  reply(t, run(request('ipxe-bios', MessageType.Discover)));
  t.like(run(request('edk2-pxe', MessageType.Discover)), { kind: 'ignore', reason: 'pool-exhausted' });
});

test('relayed DISCOVER: the relay subnet pool, reply to giaddr:67, option 82 echoed verbatim and last', (t) => {
  const { run } = setup();
  const rai = Buffer.from([1, 4, 0, 0, 0, 7, 2, 2, 0xab, 0xcd]);
  const req = request('edk2-pxe', MessageType.Discover, (p) => {
    p.giaddr = ip('10.88.0.1');
    p.hops = 1;
    p.options.set(82, rai);
  });
  const d = reply(t, run(req, { source: { addr: ip('10.88.0.1'), port: 67 } }));
  t.is(d.packet.yiaddr, ip('10.88.0.10'));
  t.is(d.packet.giaddr, ip('10.88.0.1'));
  t.is(u32(d.packet, 51), 600);
  t.is(u32(d.packet, 3), ip('10.88.0.1'));
  t.deepEqual(opt(d.packet, 82), rai);
  t.is([...d.packet.options.keys()].at(-1), 82);
  t.deepEqual(d.to, { addr: ip('10.88.0.1'), port: 67 });
  t.false(d.broadcast);
});

test('relayed DISCOVER from an unknown network is ignored', (t) => {
  const { run } = setup();
  const req = request('edk2-pxe', MessageType.Discover, (p) => (p.giaddr = ip('10.99.0.1')));
  t.like(run(req), { kind: 'ignore', reason: 'no-subnet-for-relay' });
});

test('a relay subnet without a configured router gets the relay agent (giaddr) as its router', (t) => {
  const { run, relayPool, subnet } = setup();
  const bare: SubnetConfig = { subnet: parseCidr('10.88.0.0/24')!, leaseTimeSec: 600, pool: relayPool };
  const req = request('udhcpc', MessageType.Discover, (p) => (p.giaddr = ip('10.88.0.1')));
  const d = reply(t, run(req, { relaySubnets: [bare] }));
  t.is(u32(d.packet, 3), ip('10.88.0.1'));
  t.is(u32(d.packet, 1), ip('255.255.255.0'));
  // The box's own link: no router unless one is configured.
  const own = reply(t, run(request('udhcpc', MessageType.Discover), { subnet: { ...subnet, router: undefined } }));
  t.false(own.packet.options.has(3));
});

test('a unicast renewal from behind a relay: ciaddr picks the relay subnet, the ACK goes straight to the client', (t) => {
  const { run, relayPool } = setup();
  const bare: SubnetConfig = { subnet: parseCidr('10.88.0.0/24')!, leaseTimeSec: 600, pool: relayPool };
  const mac = macFromBytes(decode(loadHex('udhcpc')).chaddr);
  const leased = relayPool.offer({ mac })!;
  t.true(relayPool.commit({ mac }, leased, 600_000).ok);
  // RENEWING (RFC 2131 §4.3.2): no option 54 or 50, ciaddr set, giaddr 0, sent to our address.
  const renew = () => request('udhcpc', MessageType.Request, (p) => (p.ciaddr = leased));
  const from = { source: { addr: leased, port: 68 }, relaySubnets: [bare] };
  const relayAgents = new Map([[ip('10.88.0.0'), ip('10.88.0.1')]]);
  const d = reply(t, run(renew(), { ...from, unicast: true, relayAgents }));
  t.is(opt(d.packet, 53)![0], MessageType.Ack);
  t.is(d.packet.yiaddr, leased);
  t.is(u32(d.packet, 3), ip('10.88.0.1'), 'the relay last seen for the subnet is its router');
  t.is(u32(d.packet, 51), 600);
  t.deepEqual(d.to, { addr: leased, port: 68 });
  // Right after a restart no relay has been seen: stay silent, the client rebinds through it.
  t.like(run(renew(), { ...from, unicast: true }), { kind: 'ignore', reason: 'relay-router-unknown' });
  // A configured router needs no relay.
  t.is(
    u32(
      reply(t, run(renew(), { ...from, unicast: true, relaySubnets: [{ ...bare, router: ip('10.88.0.254') }] })).packet,
      3,
    ),
    ip('10.88.0.254'),
  );
  // The same REQUEST broadcast on our own link comes from a client that is here: wrong network.
  const nak = reply(t, run(renew(), { ...from, unicast: false, relayAgents }));
  t.is(opt(nak.packet, 53)![0], MessageType.Nak);
});

test('a unicast RELEASE from behind a relay frees the relay subnet lease', (t) => {
  const { run, relayPool } = setup();
  const mac = macFromBytes(decode(loadHex('dhclient')).chaddr);
  const leased = relayPool.offer({ mac })!;
  t.true(relayPool.commit({ mac }, leased, 600_000).ok);
  const rel = request('dhclient', MessageType.Release, (p) => {
    p.ciaddr = leased;
    setIPv4(p.options, DhcpOption.ServerIdentifier, SERVER);
  });
  t.like(run(rel, { source: { addr: leased, port: 68 }, unicast: true }), { kind: 'ignore', reason: 'released' });
  t.is(relayPool.stats().leased, 0);
});

test('full mode without a pool is ignored with reason no-pool', (t) => {
  const { run, subnet } = setup();
  t.like(run(request('dhclient', MessageType.Discover), { subnet: { ...subnet, pool: undefined } }), {
    kind: 'ignore',
    reason: 'no-pool',
  });
});

test('Raspberry Pi gets "Raspberry Pi Boot" in option 43 and PXEClient', (t) => {
  const { run } = setup();
  const p = reply(t, run(request('rpi4-quirk', MessageType.Discover))).packet;
  t.is(str(p, 60), 'PXEClient');
  const subs = getVendorSpecific(p.options)!;
  t.is(subs.get(9)!.subarray(3).toString(), 'Raspberry Pi Boot');
  t.is(subs.get(10)!.subarray(1).toString(), 'PXE');
});

test('boot files longer than the file field go in option 67; option 67 also when requested; extra options win', (t) => {
  const { run, planner } = setup();
  const long = `http://10.77.0.1/boot/${'x'.repeat(140)}.ipxe`;
  planner.result = () => ({
    nextServer: SERVER,
    bootFile: long,
    tftpServerName: 'boot.lan',
    extraOptions: [[15, Buffer.from('other.lan')]],
  });
  let p = reply(t, run(request('ipxe-efi', MessageType.Discover))).packet;
  t.is(p.file, '');
  t.is(str(p, 67), long);
  t.is(str(p, 66), 'boot.lan');
  t.is(str(p, 15), 'other.lan');
  planner.result = undefined;
  p = reply(
    t,
    run(
      request('udhcpc', MessageType.Discover, (q) =>
        q.options.set(60, Buffer.from('PXEClient')).set(55, Buffer.from([1, 67])),
      ),
    ),
  ).packet;
  t.is(p.file, 'undionly.kpxe');
  t.is(str(p, 67), 'undionly.kpxe');
});

// -- full mode: REQUEST ------------------------------------------------------------

function selecting(fixture: string, server: number, addr: number) {
  return request(fixture, MessageType.Request, (p) => {
    setIPv4(p.options, DhcpOption.ServerIdentifier, server);
    setIPv4(p.options, DhcpOption.RequestedIpAddress, addr);
  });
}

test('REQUEST (SELECTING) for our offer: ACK with the lease and the boot options', (t) => {
  const { run, pool } = setup();
  const offered = reply(t, run(request('edk2-pxe', MessageType.Discover))).packet.yiaddr;
  const d = reply(t, run(selecting('edk2-pxe', SERVER, offered)));
  t.is(opt(d.packet, 53)![0], MessageType.Ack);
  t.is(d.packet.yiaddr, offered);
  t.is(d.packet.file, 'ipxe.efi');
  t.is(u32(d.packet, 51), 3600);
  t.is(pool.lookup({ mac: '52:54:00:77:00:13' })?.state, 'leased');
  t.deepEqual(d.to, { addr: BCAST, port: 68 });
});

test('REQUEST naming another server releases our offer, silently', (t) => {
  const { run, pool } = setup();
  const offered = reply(t, run(request('dhclient', MessageType.Discover))).packet.yiaddr;
  t.like(run(selecting('dhclient', OTHER_SERVER, ip('10.77.0.99'))), {
    kind: 'ignore',
    reason: 'selected-other-server',
  });
  t.is(pool.lookup({ mac: '02:77:00:00:00:01' }), undefined);
  t.is(pool.get(offered)?.state, 'free');
});

test('REQUEST (SELECTING) for an address someone else holds: NAK, broadcast', (t) => {
  const { run } = setup();
  const taken = reply(t, run(request('edk2-pxe', MessageType.Discover))).packet.yiaddr;
  const d = reply(t, run(selecting('dhclient', SERVER, taken)));
  t.is(opt(d.packet, 53)![0], MessageType.Nak);
  t.is(d.packet.yiaddr, 0);
  t.is(d.packet.siaddr, 0);
  t.is(d.packet.file, '');
  t.false(d.packet.options.has(51));
  t.is(str(d.packet, 56), 'address-taken');
  t.deepEqual(d.to, { addr: BCAST, port: 68 });
});

function initReboot(fixture: string, addr: number) {
  return request(fixture, MessageType.Request, (p) => setIPv4(p.options, DhcpOption.RequestedIpAddress, addr));
}

test('INIT-REBOOT: its own address is ACKed, a wrong network or someone else’s address is NAKed', (t) => {
  const { run } = setup();
  const mine = reply(t, run(request('dhclient', MessageType.Discover))).packet.yiaddr;
  reply(t, run(selecting('dhclient', SERVER, mine)));
  t.is(reply(t, run(initReboot('dhclient', mine))).packet.yiaddr, mine);
  t.is(str(reply(t, run(initReboot('dhclient', ip('192.168.1.5')))).packet, 56), 'wrong network');
  t.is(str(reply(t, run(initReboot('dhclient', ip('10.77.0.15')))).packet, 56), 'not your address');
  // udhcpc.hex was captured on the same veth MAC: the same client as far as the pool knows.
  t.is(opt(reply(t, run(initReboot('udhcpc', mine))).packet, 53)![0], MessageType.Ack);
});

test('INIT-REBOOT from an unknown client: a free pool address is ACKed (authoritative), others stay silent', (t) => {
  const { run } = setup();
  t.is(reply(t, run(initReboot('edk2-pxe', ip('10.77.0.17')))).packet.yiaddr, ip('10.77.0.17'));
  t.like(run(initReboot('ipxe-bios', ip('10.77.0.200'))), { kind: 'ignore', reason: 'unknown-lease' });
});

test('RENEWING: ACK unicast to ciaddr; a REQUEST with no address at all is ignored', (t) => {
  const { run } = setup();
  const mine = reply(t, run(request('dhclient', MessageType.Discover))).packet.yiaddr;
  reply(t, run(selecting('dhclient', SERVER, mine)));
  const renew = request('dhclient', MessageType.Request, (p) => (p.ciaddr = mine));
  const d = reply(t, run(renew, { source: { addr: mine, port: 68 } }));
  t.is(d.packet.ciaddr, mine);
  t.is(d.packet.yiaddr, mine);
  t.deepEqual(d.to, { addr: mine, port: 68 });
  t.false(d.broadcast);
  t.like(run(request('dhclient', MessageType.Request)), { kind: 'ignore', reason: 'request-without-address' });
});

test('relayed NAK goes to the relay with the broadcast bit set', (t) => {
  const { run } = setup();
  const req = initReboot('dhclient', ip('10.77.0.5'));
  req.giaddr = ip('10.88.0.1');
  const d = reply(t, run(req));
  t.is(opt(d.packet, 53)![0], MessageType.Nak);
  t.is(d.packet.flags & 0x8000, 0x8000);
  t.deepEqual(d.to, { addr: ip('10.88.0.1'), port: 67 });
});

// -- full mode: INFORM, RELEASE, DECLINE ----------------------------------------------

test('INFORM: ACK without yiaddr or lease time, unicast to ciaddr; without ciaddr it is ignored', (t) => {
  const { run } = setup();
  const req = request('ipxe-efi', MessageType.Inform, (p) => (p.ciaddr = ip('10.77.0.100')));
  const d = reply(t, run(req));
  t.is(d.packet.yiaddr, 0);
  t.false(d.packet.options.has(51));
  t.is(u32(d.packet, 1), ip('255.255.255.0'));
  t.is(d.packet.siaddr, SERVER);
  t.deepEqual(d.to, { addr: ip('10.77.0.100'), port: 68 });
  t.like(run(request('ipxe-efi', MessageType.Inform)), { kind: 'ignore', reason: 'inform-without-ciaddr' });
});

test('RELEASE frees the lease; a foreign RELEASE or one for another server does nothing', (t) => {
  const { run, pool } = setup();
  const mine = reply(t, run(request('dhclient', MessageType.Discover))).packet.yiaddr;
  reply(t, run(selecting('dhclient', SERVER, mine)));
  const rel = (fixture: string, server = SERVER) =>
    request(fixture, MessageType.Release, (p) => {
      p.ciaddr = mine;
      setIPv4(p.options, DhcpOption.ServerIdentifier, server);
    });
  t.like(run(rel('edk2-pxe')), { kind: 'ignore', reason: 'release-not-ours' });
  t.like(run(rel('dhclient', OTHER_SERVER)), { kind: 'ignore', reason: 'not-our-server' });
  t.is(pool.lookup({ mac: '02:77:00:00:00:01' })?.state, 'leased');
  t.like(run(rel('dhclient')), { kind: 'ignore', reason: 'released' });
  t.is(pool.lookup({ mac: '02:77:00:00:00:01' }), undefined);
});

test('DECLINE quarantines the address; a foreign DECLINE does nothing', (t) => {
  const { run, pool } = setup();
  const mine = reply(t, run(request('dhclient', MessageType.Discover))).packet.yiaddr;
  reply(t, run(selecting('dhclient', SERVER, mine)));
  const dec = (fixture: string) =>
    request(fixture, MessageType.Decline, (p) => {
      setIPv4(p.options, DhcpOption.RequestedIpAddress, mine);
      setIPv4(p.options, DhcpOption.ServerIdentifier, SERVER);
    });
  t.like(run(dec('edk2-pxe')), { kind: 'ignore', reason: 'decline-not-ours' });
  t.like(run(dec('dhclient')), { kind: 'ignore', reason: 'declined' });
  t.is(pool.get(mine)?.state, 'declined');
  t.not(reply(t, run(request('dhclient', MessageType.Discover))).packet.yiaddr, mine);
  const foreign = dec('dhclient');
  setIPv4(foreign.options, DhcpOption.ServerIdentifier, OTHER_SERVER);
  t.like(run(foreign), { kind: 'ignore', reason: 'not-our-server' });
});

// -- proxy mode -----------------------------------------------------------------------

test('proxy DISCOVER from BIOS: no yiaddr, next server, PXEClient, option 43 sub-option 6 = 8, UUID echoed', (t) => {
  const { run } = setup('proxy');
  const d = reply(t, run(request('ipxe-bios', MessageType.Discover)));
  const p = d.packet;
  t.is(p.yiaddr, 0);
  t.is(p.siaddr, SERVER);
  t.is(str(p, 60), 'PXEClient');
  t.is(u32(p, 54), SERVER);
  t.deepEqual(opt(p, 43), Buffer.from([6, 1, 8, 255]));
  t.true(p.options.has(97));
  t.false(p.options.has(51) || p.options.has(1) || p.options.has(175));
  t.deepEqual(d.to, { addr: BCAST, port: 68 });
});

test('proxy DISCOVER from UEFI: PXEClient and no option 43, so edk2 asks port 4011', (t) => {
  const { run } = setup('proxy');
  const p = reply(t, run(request('edk2-pxe', MessageType.Discover))).packet;
  t.is(str(p, 60), 'PXEClient');
  t.false(p.options.has(43));
  t.is(p.yiaddr, 0);
});

test('proxy DISCOVER from HTTP boot: HTTPClient and the URL', (t) => {
  const { run } = setup('proxy');
  const p = reply(t, run(request('edk2-http', MessageType.Discover))).packet;
  t.is(str(p, 60), 'HTTPClient');
  t.is(p.file, URL);
  t.is(p.yiaddr, 0);
});

test('proxy mode answers only netboot DISCOVERs', (t) => {
  const { run, planner } = setup('proxy');
  t.like(run(request('dhclient', MessageType.Discover)), { kind: 'ignore', reason: 'not-netboot-client' });
  t.like(run(request('ipxe-bios', MessageType.Request)), { kind: 'ignore', reason: 'proxy-ignores-message' });
  planner.result = () => null;
  t.like(run(request('ipxe-bios', MessageType.Discover)), { kind: 'ignore', reason: 'planner-declined' });
});

// -- port 4011 ------------------------------------------------------------------------

const CLIENT = ip('10.77.0.60');

test('port 4011: edk2 REQUEST from 4011 gets an ACK with the boot file at its source address and port', (t) => {
  const { run } = setup('proxy');
  const req = request('edk2-pxe', MessageType.Request, (p) => (p.ciaddr = CLIENT));
  const d = reply(t, run(req, { localPort: 4011, source: { addr: CLIENT, port: 4011 } }));
  t.is(opt(d.packet, 53)![0], MessageType.Ack);
  t.is(d.packet.file, 'ipxe.efi');
  t.is(d.packet.siaddr, SERVER);
  t.is(d.packet.ciaddr, CLIENT);
  t.is(d.packet.yiaddr, 0);
  t.is(str(d.packet, 60), 'PXEClient');
  t.false(d.packet.options.has(43));
  t.deepEqual(d.to, { addr: CLIENT, port: 4011 });
  t.false(d.broadcast);
});

test('port 4011: a PXEBS request names its boot item, and the ACK echoes it', (t) => {
  const { run } = setup('full');
  const item = Buffer.from([0x80, 0x00, 0x00, 0x00]);
  const req = request('ipxe-bios', MessageType.Request, (p) => {
    p.ciaddr = CLIENT;
    p.options.set(43, encodeSubOptions([[71, item]]));
  });
  const d = reply(t, run(req, { localPort: 4011, source: { addr: CLIENT, port: 68 } }));
  t.deepEqual(getVendorSpecific(d.packet.options)?.get(71), item);
  t.deepEqual(d.to, { addr: CLIENT, port: 68 });
});

test('port 4011: other servers, other message types and plain clients are ignored', (t) => {
  const { run } = setup('proxy');
  const at4011 = { localPort: 4011, source: { addr: CLIENT, port: 4011 } };
  const other = request('edk2-pxe', MessageType.Request, (p) => setIPv4(p.options, 54, OTHER_SERVER));
  t.like(run(other, at4011), { kind: 'ignore', reason: 'not-our-server' });
  t.like(run(request('edk2-pxe', MessageType.Discover), at4011), {
    kind: 'ignore',
    reason: 'unsupported-message-type',
  });
  t.like(run(request('dhclient', MessageType.Request), at4011), { kind: 'ignore', reason: 'not-netboot-client' });
});

test('the planner is consulted once per request and sees the classification', (t) => {
  const { run, planner } = setup();
  run(request('ipxe-efi', MessageType.Discover));
  t.is(planner.calls.length, 1);
  t.like(planner.calls[0], { arch: 'uefi-x64', isIpxe: true, mac: '52:54:00:77:00:12' });
});
