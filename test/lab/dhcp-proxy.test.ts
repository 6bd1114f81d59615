/**
 * ProxyDHCP beside a real DHCP server on one private switch:
 *   [box priv 10.77.0.1] ─┐
 *   [dnsmasq 10.77.0.2] ──┼─ br0
 *   [client eth0] ────────┘
 * dnsmasq hands out the addresses; bootbox (dhcp.mode proxy) gives PXE clients their
 * boot file and nothing else. A hand-made PXE client (test/helpers/pxe-probe.ts, our
 * codec) is the fast check here; the QEMU clients are in test/e2e/pxe-dhcp.test.ts.
 * dhcp.mode auto: with dnsmasq on the link the box runs proxy, alone it runs full.
 */
import path from 'node:path';
import test from 'ava';
import { decode } from '../../firmware/protocols/dhcp/codec.ts';
import { readEvents, writeClientScript } from '../helpers/dhcp-clients.ts';
import { NODE, ROOT } from '../helpers/netns.ts';
import { pcapCapture } from '../helpers/pcap.ts';
import { startDnsmasq, switchLab } from '../helpers/switch.ts';

const PROBE = path.join(ROOT, 'test/helpers/pxe-probe.ts');
const BOX = '10.77.0.1';
const OTHER = '10.77.0.2';
const inOtherRange = (a: string) =>
  /^10\.77\.0\.(\d+)$/.test(a) && +a.split('.')[3]! >= 150 && +a.split('.')[3]! <= 199;

interface Offer {
  from: string;
  type: number;
  serverId: string;
  yiaddr: string;
  siaddr: string;
  file: string;
  bootfileOption?: string;
  vendorClass?: string;
  option43?: string;
}

async function setup(t: { teardown(fn: () => Promise<void>): void }, mode: string, withDnsmasq = true) {
  const sl = await switchLab();
  t.teardown(() => sl.destroy());
  const dir = sl.lab.dataDir;
  let dnsmasqLog: string[] = [];
  if (withDnsmasq) {
    const other = sl.addHost('dns', `${OTHER}/24`);
    dnsmasqLog = (await startDnsmasq(other, dir)).log;
  }
  const client = sl.addHost('cl');
  const started = Date.now();
  await sl.lab.start({ dhcp: { mode } });
  return { sl, client, dir, dnsmasqLog, startMs: Date.now() - started };
}

/** udhcpc in the client namespace; it configures the address and a default route. */
async function lease(client: import('../helpers/netns.ts').Netns, dir: string) {
  const { script, out } = writeClientScript(dir, 'udhcpc', { routes: true });
  await client.exec('busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', script], {
    timeoutMs: 30_000,
  });
  return readEvents(out).find((e) => e.reason === 'bound')!;
}

async function probe(client: import('../helpers/netns.ts').Netns, cfg: Record<string, unknown>) {
  const { stdout } = await client.exec(NODE, [PROBE, JSON.stringify(cfg)], { timeoutMs: 20_000 });
  return JSON.parse(stdout) as { offers: Offer[]; ack4011?: Offer & { error?: string } };
}

test('proxy beside dnsmasq: addresses come from dnsmasq, boot files from bootbox (BIOS in the offer, UEFI on 4011)', async (t) => {
  const { sl, client, dir } = await setup(t, 'proxy');
  const cap = await pcapCapture(sl.sw, 'br0', 'udp port 67 or udp port 68 or udp port 4011', path.join(dir, 'sw.pcap'));

  // A plain client (no PXE): only dnsmasq answers it.
  const bound = await lease(client, dir);
  t.truthy(bound);
  t.true(inOtherRange(bound.ip), bound.ip);
  t.is(bound.server, OTHER);

  // A BIOS PXE client: dnsmasq offers an address, bootbox the boot file with PXE option 43
  // sub-option 6 = 8 ("boot the file in this offer", no port 4011).
  const bios = await probe(client, { mac: '52:54:00:77:01:01', arch: 0, ciaddr: bound.ip });
  const biosAddr = bios.offers.filter((o) => o.serverId === OTHER);
  const biosBoot = bios.offers.filter((o) => o.serverId === BOX);
  t.is(biosAddr.length, 1, JSON.stringify(bios));
  t.true(inOtherRange(biosAddr[0]!.yiaddr));
  t.is(biosAddr[0]!.file, '', 'dnsmasq gives no boot file');
  t.is(biosBoot.length, 1, JSON.stringify(bios));
  t.like(biosBoot[0], {
    from: `${BOX}:67`,
    type: 2,
    yiaddr: '0.0.0.0',
    siaddr: BOX,
    file: 'undionly.kpxe',
    vendorClass: 'PXEClient',
    option43: '060108ff',
  });
  t.is(bios.ack4011, undefined, 'BIOS does not go to 4011');

  // A UEFI PXE client: bootbox's offer has no option 43, so it asks on port 4011 and gets ipxe.efi.
  const uefi = await probe(client, { mac: '52:54:00:77:01:02', arch: 7, ciaddr: bound.ip });
  const uefiBoot = uefi.offers.filter((o) => o.serverId === BOX);
  t.is(uefi.offers.filter((o) => o.serverId === OTHER).length, 1, JSON.stringify(uefi));
  t.is(uefiBoot.length, 1);
  t.like(uefiBoot[0], { yiaddr: '0.0.0.0', vendorClass: 'PXEClient' });
  t.is(uefiBoot[0]!.option43, undefined);
  t.like(uefi.ack4011, { from: `${BOX}:4011`, type: 5, siaddr: BOX, file: 'ipxe.efi', yiaddr: '0.0.0.0' });

  // On the wire: bootbox never offered an address, and answered only PXE requests.
  const frames = await cap.stop();
  const fromBox = frames.filter((f) => f.src === BOX).map((f) => decode(f.payload));
  t.is(fromBox.length, 3, 'two proxy offers and one 4011 ACK');
  t.true(fromBox.every((p) => p.yiaddr === 0));
  const h = await sl.lab.health();
  t.is(h.services.dhcp.mode, 'proxy');
  t.deepEqual(h.services.dhcp.pools, {});
  t.true(h.services.dhcp.counters.byReason['not-netboot-client'] >= 1, JSON.stringify(h.services.dhcp.counters));
});

test('dhcp.mode auto with dnsmasq on the link: the box runs proxy and names the other server', async (t) => {
  const { sl, client, dir, startMs } = await setup(t, 'auto');
  const h = await sl.lab.health();
  t.is(h.services.dhcp.mode, 'proxy');
  t.regex(h.services.dhcp.modeReason, /10\.77\.0\.2/);
  t.log(`auto probe + start: ${startMs} ms; ${h.services.dhcp.modeReason}`);
  // And it acts the part: the client's address still comes from dnsmasq.
  const bound = await lease(client, dir);
  t.is(bound.server, OTHER);
  t.true(inOtherRange(bound.ip));
});

test('dhcp.mode auto alone on the link: the box runs full and leases addresses', async (t) => {
  const { sl, client, dir, startMs } = await setup(t, 'auto', false);
  const h = await sl.lab.health();
  t.is(h.services.dhcp.mode, 'full');
  t.regex(h.services.dhcp.modeReason, /no other DHCP server/);
  t.log(`auto probe + start: ${startMs} ms`);
  const bound = await lease(client, dir);
  t.is(bound.server, BOX);
  t.regex(bound.ip, /^10\.77\.0\.\d+$/);
  t.is((await sl.lab.health()).services.dhcp.pools.private.leased, 1);
});
