/**
 * The machine registry's timeline (services/machines.ts recordEvent): every event of the bus
 * goes onto the timeline of the machine it is about, with its own event type. TFTP transfers
 * and HTTP file downloads name only the client's address; they are matched to the MAC last seen
 * at that address. Found by test/e2e/boot-e2e.test.ts: the deploy environment's kernel and
 * initrd downloads and edk2's TFTP of ipxe.efi were missing from the timeline, and DHCP entries
 * read "DISCOVER" instead of "dhcp.request".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { ManualClock } from '../../firmware/core/clock.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import { MachineRegistry } from '../../firmware/services/machines.ts';

const MAC = '52:54:00:77:e2:11';
const OTHER = '52:54:00:77:e2:12';

async function registry(t: ExecutionContext): Promise<MachineRegistry> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-registry-'));
  const reg = new MachineRegistry({
    file: path.join(dir, 'machines.json'),
    namingPattern: 'NODE%03#',
    clock: new ManualClock(),
    log: silentLogger,
    events: { emit: () => {} },
  });
  await reg.load();
  t.teardown(async () => {
    await reg.close();
    rmSync(dir, { recursive: true, force: true });
  });
  reg.create({ mac: MAC, arch: 'bios', firmware: 'bios' });
  reg.create({ mac: OTHER, arch: 'uefi-x64', firmware: 'uefi' });
  return reg;
}

const ts = '2026-01-01T00:00:00.000Z';
const ack = (mac: string, yiaddr: string) => ({
  ts,
  mac,
  type: 'ACK',
  yiaddr,
  to: '255.255.255.255',
  port: 68,
  retransmit: false,
});
const tftp = (address: string) => ({ ts, client: `${address}:1070`, address, port: 1070, filename: 'ipxe.efi' });
const download = (peer: string, p = '/boot/deploy/vmlinuz') => ({
  ts,
  mac: undefined,
  path: p,
  status: 200,
  bytes: 100,
  peer,
  ms: 1,
});

test('an entry keeps its event type; the DHCP message type is kept as messageType', async (t) => {
  const reg = await registry(t);
  reg.recordEvent('dhcp.request', { ts, mac: MAC, type: 'DISCOVER', ipxe: true, relayed: false, src: '0.0.0.0' });
  reg.recordEvent('dhcp.ignored', { ts, mac: MAC, type: 'DISCOVER', reason: 'answer-none' });
  reg.recordEvent('dhcp.reply', ack(MAC, '10.77.0.100'));
  t.deepEqual(
    reg.timeline(MAC).map((e) => [e.type, e.messageType]),
    [
      ['dhcp.request', 'DISCOVER'],
      ['dhcp.ignored', 'DISCOVER'],
      ['dhcp.reply', 'ACK'],
    ],
  );
  t.is(reg.timeline(MAC)[0]!.ts, ts);
  t.is(reg.timeline(MAC)[0]!.mac, MAC);
});

test('TFTP and HTTP events of an address go to the machine the box last ACKed that address to', async (t) => {
  const reg = await registry(t);
  reg.recordEvent('dhcp.reply', ack(OTHER, '10.77.0.101'));
  reg.recordEvent('tftp.request', tftp('10.77.0.101'));
  reg.recordEvent('tftp.complete', { ...tftp('10.77.0.101'), bytes: 850528 });
  reg.recordEvent('http.request', download('10.77.0.101'));
  const entries = reg.timeline(OTHER);
  t.deepEqual(
    entries.map((e) => e.type),
    ['dhcp.reply', 'tftp.request', 'tftp.complete', 'http.request'],
  );
  t.true(entries.every((e) => e.mac === OTHER));
  t.deepEqual(reg.timeline(MAC), []);
});

test('an address leased to another machine moves with the lease', async (t) => {
  const reg = await registry(t);
  reg.recordEvent('dhcp.reply', ack(MAC, '10.77.0.100'));
  reg.recordEvent('http.request', download('10.77.0.100'));
  reg.recordEvent('dhcp.reply', ack(OTHER, '10.77.0.100'));
  reg.recordEvent('http.request', download('10.77.0.100', '/boot/deploy/initrd.img'));
  t.deepEqual(
    reg.timeline(MAC).map((e) => e.path ?? e.type),
    ['dhcp.reply', '/boot/deploy/vmlinuz'],
  );
  t.deepEqual(
    reg.timeline(OTHER).map((e) => e.path ?? e.type),
    ['dhcp.reply', '/boot/deploy/initrd.img'],
  );
});

test('addresses are also learned from un-relayed requests and the machine script requests (proxy mode)', async (t) => {
  const reg = await registry(t);
  // edk2 asks the boot server on port 4011 from the address the other DHCP server gave it.
  reg.recordEvent('dhcp.request', { ts, mac: OTHER, type: 'REQUEST', relayed: false, src: '10.77.0.160', port: 4011 });
  reg.recordEvent('tftp.request', tftp('10.77.0.160'));
  // iPXE asks for its script from its address.
  reg.recordEvent('http.request', { ...download('10.77.0.161', `/boot/${MAC}.ipxe`), mac: MAC });
  reg.recordEvent('http.request', download('10.77.0.161'));
  t.deepEqual(
    reg.timeline(OTHER).map((e) => e.type),
    ['dhcp.request', 'tftp.request'],
  );
  t.deepEqual(
    reg.timeline(MAC).map((e) => e.path),
    [`/boot/${MAC}.ipxe`, '/boot/deploy/vmlinuz'],
  );
});

test('a relayed request, an OFFER and a refused request teach nothing; unknown addresses are not kept', async (t) => {
  const reg = await registry(t);
  // A relayed request comes from the relay's address, not the client's.
  reg.recordEvent('dhcp.request', { ts, mac: MAC, type: 'REQUEST', relayed: true, src: '10.88.0.1' });
  reg.recordEvent('dhcp.reply', { ...ack(MAC, '10.77.0.102'), type: 'OFFER' });
  reg.recordEvent('http.request', { ...download('10.77.0.103', `/boot/${MAC}.ipxe`), mac: MAC, status: 404 });
  reg.recordEvent('tftp.request', tftp('10.88.0.1'));
  reg.recordEvent('tftp.request', tftp('10.77.0.102'));
  reg.recordEvent('http.request', download('10.77.0.103'));
  reg.recordEvent('tftp.request', tftp('10.77.0.199'));
  t.deepEqual(
    reg.timeline(MAC).map((e) => e.type),
    ['dhcp.request', 'dhcp.reply', 'http.request'],
  );
  t.deepEqual(reg.timeline(OTHER), []);
});

test('events of a MAC the registry does not know are not kept', async (t) => {
  const reg = await registry(t);
  reg.recordEvent('dhcp.reply', ack('52:54:00:00:00:99', '10.77.0.110'));
  reg.recordEvent('tftp.request', tftp('10.77.0.110'));
  t.is(reg.timeline('52:54:00:00:00:99').length, 0);
  t.deepEqual(reg.timeline(MAC), []);
});

test('a DHCP ACK records the leased address on the machine; an OFFER or another MAC does not', async (t) => {
  const reg = await registry(t);
  reg.recordEvent('dhcp.reply', { ...ack(MAC, '10.77.0.130'), type: 'OFFER' });
  t.is(reg.get(MAC)!.ip, undefined);
  reg.recordEvent('dhcp.reply', ack(MAC, '10.77.0.130'));
  t.is(reg.get(MAC)!.ip, '10.77.0.130');
  t.is(reg.get(OTHER)!.ip, undefined);
  reg.recordEvent('dhcp.reply', ack(MAC, '10.77.0.131'));
  t.is(reg.get(MAC)!.ip, '10.77.0.131');
  t.is(reg.list().find((m) => m.mac === MAC)!.ip, '10.77.0.131');
});
