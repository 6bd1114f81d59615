/**
 * A relayed client: ISC dhcrelay on a router between the box's link and a client link.
 *   [client eth0] ── [down0 10.88.0.1/16  router (dhcrelay -a)  eth0 10.77.0.2/24] ── [priv 10.77.0.1/24 box]
 * The box (full mode, relayNetworks 10.88.0.0/16, a route to it via the router) answers
 * the relay agent at giaddr:67, never with a broadcast on its own link; the client gets
 * an address of the relayed subnet with its mask and a router to reach the box; option 82
 * from the relay comes back verbatim; and a renewal, unicast across the router, works.
 */
import path from 'node:path';
import test from 'ava';
import { formatIPv4 } from '../../firmware/core/net.ts';
import { decode } from '../../firmware/protocols/dhcp/codec.ts';
import { DhcpOption, MessageType } from '../../firmware/protocols/dhcp/constants.ts';
import { getMessageType } from '../../firmware/protocols/dhcp/options.ts';
import { type BoxLab, boxLab } from '../helpers/box.ts';
import { readEvents, waitForEvent, writeClientScript } from '../helpers/dhcp-clients.ts';
import { Netns, sleep, uniqueId, vethPair, waitForLine } from '../helpers/netns.ts';
import { type PcapCapture, pcapCapture, type UdpFrame } from '../helpers/pcap.ts';

const CONFIG = {
  dhcp: {
    mode: 'full',
    range: '10.77.0.100-10.77.0.120',
    router: '10.77.0.1',
    leaseTime: 600,
    relayNetworks: ['10.88.0.0/16'],
  },
};
const RELAY = '10.88.0.1';
const BOX = '10.77.0.1';

interface RelayLab {
  lab: BoxLab;
  router: Netns;
  client: Netns;
  relayLog: string[];
  /** Stops dhcrelay: what follows can only reach the box by plain routing. */
  stopRelay(): Promise<void>;
  /** tcpdump on the box's private interface, binary. */
  boxSide: PcapCapture;
  /** tcpdump on the client's link, binary. */
  clientSide: PcapCapture;
}

/**
 * The box lab's client namespace becomes the router: its eth0 (the box's link) gets
 * 10.77.0.2/24, a new client namespace hangs off its down0 (10.88.0.1/16), and dhcrelay
 * relays between the two with agent information (-a: circuit id = "down0").
 */
async function relayLab(t: { teardown(fn: () => Promise<void> | void): void }): Promise<RelayLab> {
  const lab = await boxLab();
  t.teardown(() => lab.destroy());
  const router = lab.cli;
  const client = new Netns(`bbt-${uniqueId()}-rcl`);
  t.teardown(() => client.destroy());
  router.ip('addr', 'add', '10.77.0.2/24', 'dev', 'eth0');
  vethPair(router, 'down0', `${RELAY}/16`, client, 'eth0', undefined);
  await router.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  lab.box.ip('route', 'add', '10.88.0.0/16', 'via', '10.77.0.2', 'dev', 'priv');
  await lab.start(CONFIG);
  const boxSide = await pcapCapture(lab.box, 'priv', 'udp port 67 or udp port 68', path.join(lab.dataDir, 'box.pcap'));
  const clientSide = await pcapCapture(
    client,
    'eth0',
    'udp port 67 or udp port 68',
    path.join(lab.dataDir, 'client.pcap'),
  );
  // -d: foreground (and a log on stderr); -a: add option 82, strip it from replies.
  const relay = router.spawn('dhcrelay', ['-4', '-d', '--no-pid', '-a', '-id', 'down0', '-iu', 'eth0', BOX]);
  const relayLog: string[] = [];
  relay.stderr?.on('data', (d) => relayLog.push(String(d)));
  relay.stdout?.on('data', (d) => relayLog.push(String(d)));
  await waitForLine(relay, /Sending on\s+Socket/, 10_000);
  const stopRelay = async () => {
    if (relay.exitCode !== null) return;
    const gone = new Promise((res) => relay.once('exit', res));
    relay.kill('SIGTERM');
    await gone;
  };
  return { lab, router, client, relayLog, stopRelay, boxSide, clientSide };
}

const dhcp = (f: UdpFrame) => {
  const p = decode(f.payload);
  return { ...p, type: getMessageType(p.options) };
};

test('udhcpc behind dhcrelay: unicast replies to the relay, a 10.88/16 lease with mask and router, option 82 echoed', async (t) => {
  const r = await relayLab(t);
  const { script, out } = writeClientScript(r.lab.dataDir, 'udhcpc', { routes: true });
  const client = r.client.spawn('busybox', ['udhcpc', '-i', 'eth0', '-f', '-t', '5', '-T', '2', '-s', script]);
  const bound = await waitForEvent(out, ['bound'], 0, 30_000).catch((e: Error) => {
    throw new Error(`${e.message}\nrelay:\n${r.relayLog.join('')}\nbox:\n${r.lab.log.join('\n')}`);
  });
  t.regex(bound.ip, /^10\.88\.\d+\.\d+$/);
  t.is(bound.mask, '255.255.0.0');
  t.is(bound.server, BOX);
  t.is(bound.lease, '600');
  t.is(bound.routers, RELAY, 'a relayed subnet without a configured router gets the relay (giaddr) as its router');

  // Renewal: udhcpc unicasts a REQUEST (giaddr 0, ciaddr set) to the server identifier,
  // across the router. dhcrelay also relays a copy of that unicast, which it sees on its
  // link. It stays up: in about one run in eight busybox missed the direct ACK (on its
  // link 1 ms after the REQUEST) and only the ACK to the relayed copy reached it.
  await sleep(300);
  const seen = readEvents(out).length;
  client.kill('SIGUSR1');
  const renew = await waitForEvent(out, ['renew', 'bound'], seen, 20_000);
  t.is(renew.ip, bound.ip);
  client.kill('SIGTERM');

  const boxFrames = await r.boxSide.stop();
  const clientFrames = await r.clientSide.stop();
  const fromBox = boxFrames.filter((f) => f.src === BOX);
  const toBox = boxFrames.filter((f) => f.dst === BOX);
  t.log(
    boxFrames.map((f) => `${f.t.toFixed(3)} ${f.src}:${f.sport} > ${f.dst}:${f.dport} type ${dhcp(f).type}`).join('\n'),
  );
  t.deepEqual(
    fromBox.filter((f) => f.dst === '255.255.255.255' || f.dstMac === 'ff:ff:ff:ff:ff:ff'),
    [],
    'no broadcast on the box link',
  );
  // Every reply to a relayed request (giaddr set) went to the relay agent's server port.
  const relayed = fromBox.filter((f) => dhcp(f).giaddr !== 0);
  for (const f of relayed) t.is(`${f.dst}:${f.dport}`, `${RELAY}:67`);
  const types = relayed.map((f) => dhcp(f).type);
  t.deepEqual(types.slice(0, 2), [MessageType.Offer, MessageType.Ack], 'OFFER and ACK went to the relay');
  t.true(
    types.slice(2).every((x) => x === MessageType.Ack),
    `only ACKs to the relayed copies of the renewal follow: ${JSON.stringify(types)}`,
  );
  // The renewal itself (giaddr 0, ciaddr set) is answered straight to the client (RFC 2131
  // §4.1), from the relay subnet's pool, with the relay as its router.
  const direct = fromBox.filter((f) => dhcp(f).giaddr === 0);
  t.deepEqual(
    direct.map((f) => [`${f.dst}:${f.dport}`, dhcp(f).type]),
    [[`${bound.ip}:68`, MessageType.Ack]],
  );
  const ack = dhcp(direct[0]!);
  t.is(formatIPv4(ack.yiaddr), bound.ip);
  t.deepEqual(ack.options.get(DhcpOption.Router), Buffer.from([10, 88, 0, 1]));
  t.deepEqual(ack.options.get(DhcpOption.SubnetMask), Buffer.from([255, 255, 0, 0]));
  t.true(
    toBox.some((f) => f.src === bound.ip && dhcp(f).type === MessageType.Request),
    'the renewing REQUEST came from the client across the router',
  );
  // Option 82: the relay added it (circuit id = the client-side interface); every relayed
  // reply carries the same bytes back; the relay stripped it before the client saw it.
  const requests = toBox.filter((f) => dhcp(f).giaddr !== 0);
  t.true(requests.length >= 2);
  const rai = dhcp(requests[0]!).options.get(DhcpOption.RelayAgentInfo);
  t.truthy(rai, 'dhcrelay -a added option 82');
  t.true(rai!.includes(Buffer.from('down0')), `circuit id names the interface: ${rai!.toString('hex')}`);
  for (const f of relayed) t.deepEqual(dhcp(f).options.get(DhcpOption.RelayAgentInfo), rai);
  const toClient = clientFrames.filter((f) => f.sport === 67 && f.dport === 68);
  t.true(toClient.length >= 2, 'the relay forwarded the replies');
  for (const f of toClient) t.false(dhcp(f).options.has(DhcpOption.RelayAgentInfo));

  const h = await r.lab.health();
  t.is(h.services.dhcp.pools['10.88.0.0/16'].leased, 1);
  t.is(h.services.dhcp.pools.private.leased, 0);
});

test('dhclient behind dhcrelay gets a 10.88/16 lease and releases it through the router', async (t) => {
  const r = await relayLab(t);
  const { script, out } = writeClientScript(r.lab.dataDir, 'dhclient', { routes: true });
  const lf = `${r.lab.dataDir}/dhclient.leases`;
  const pf = `${r.lab.dataDir}/dhclient.pid`;
  await r.client.exec('dhclient', ['-1', '-4', '-lf', lf, '-pf', pf, '-sf', script, 'eth0'], { timeoutMs: 30_000 });
  const bound = readEvents(out).find((e) => e.reason === 'BOUND')!;
  t.truthy(bound, JSON.stringify(readEvents(out)));
  t.regex(bound.ip, /^10\.88\.\d+\.\d+$/);
  t.is(bound.mask, '255.255.0.0');
  t.is(bound.routers, RELAY);
  t.is(bound.server, BOX);
  let h = await r.lab.health();
  t.is(h.services.dhcp.pools['10.88.0.0/16'].leased, 1);
  // dhclient -r unicasts a RELEASE to the server identifier: with dhcrelay stopped, only
  // plain routing carries it, and the box must find the lease by ciaddr.
  await r.stopRelay();
  await r.client.exec('dhclient', ['-r', '-lf', lf, '-pf', pf, '-sf', script, 'eth0'], { timeoutMs: 30_000 });
  await sleep(500);
  h = await r.lab.health();
  t.is(h.services.dhcp.pools['10.88.0.0/16'].leased, 0, 'release freed the address');
  const frames = await r.boxSide.stop();
  await r.clientSide.stop();
  const fromBox = frames.filter((f) => f.src === BOX);
  t.true(fromBox.length >= 2);
  for (const f of fromBox) t.is(`${f.dst}:${f.dport}`, `${RELAY}:67`);
  const release = frames.filter((f) => f.dst === BOX && dhcp(f).type === MessageType.Release);
  t.deepEqual(
    release.map((f) => [f.src, dhcp(f).giaddr]),
    [[bound.ip, 0]],
    'one RELEASE, straight from the client',
  );
  t.is(h.services.dhcp.counters.byReason.released, 1);
});
