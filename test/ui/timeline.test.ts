/** The web UI's account of a machine's boots: events in words, grouped into boots, outcome per boot. */
import test from 'ava';
import { describeEvent, groupBoots, type TimelineEntry } from '../../web-ui/src/timeline.ts';

const MAC = '52:54:00:77:00:11';
const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 12, 0, s)).toISOString();

/** A BIOS PXE boot of a pending machine as the registry records it (services/machines.ts recordEvent). */
const pendingBoot: TimelineEntry[] = [
  { ts: at(0), type: 'machine.created', mac: MAC, name: 'NODE001', state: 'unknown' },
  {
    ts: at(0),
    type: 'machine.state',
    mac: MAC,
    from: 'unknown',
    to: 'pending',
    reason: 'first netboot; waiting for an administrator to approve it',
    event: 'seen',
  },
  {
    ts: at(0),
    type: 'boot.decision',
    mac: MAC,
    phase: 'dhcp',
    action: 'first-stage',
    reason: 'BIOS PXE',
    file: 'undionly.kpxe',
  },
  // the registry records the DISCOVER after what it caused (the record, the decision)
  {
    ts: at(0),
    type: 'dhcp.request',
    messageType: 'DISCOVER',
    mac: MAC,
    arch: 'bios',
    firmware: 'bios',
    ipxe: false,
    relayed: false,
    src: '0.0.0.0',
    port: 68,
  },
  {
    ts: at(0),
    type: 'dhcp.reply',
    messageType: 'OFFER',
    mac: MAC,
    yiaddr: '10.77.0.100',
    bootFile: 'undionly.kpxe',
    to: '255.255.255.255',
    port: 68,
    retransmit: false,
  },
  {
    ts: at(1),
    type: 'dhcp.request',
    messageType: 'REQUEST',
    mac: MAC,
    arch: 'bios',
    firmware: 'bios',
    ipxe: false,
    relayed: false,
    src: '0.0.0.0',
    port: 68,
  },
  {
    ts: at(1),
    type: 'dhcp.reply',
    messageType: 'ACK',
    mac: MAC,
    yiaddr: '10.77.0.100',
    to: '255.255.255.255',
    port: 68,
    retransmit: false,
  },
  {
    ts: at(2),
    type: 'tftp.aborted',
    mac: MAC,
    client: '10.77.0.100:2070',
    address: '10.77.0.100',
    port: 2070,
    filename: 'undionly.kpxe',
    phase: 'oack',
    probe: true,
    code: 8,
    message: 'User aborted the transfer',
    bytes: 0,
    durationMs: 2,
  },
  {
    ts: at(2),
    type: 'tftp.complete',
    mac: MAC,
    client: '10.77.0.100:2071',
    address: '10.77.0.100',
    port: 2071,
    filename: 'undionly.kpxe',
    bytes: 70_000,
    durationMs: 50,
    retransmits: 0,
    timeouts: 0,
    blksize: 1468,
    windowsize: 16,
    rate: 1_400_000,
  },
  {
    ts: at(4),
    type: 'dhcp.request',
    messageType: 'DISCOVER',
    mac: MAC,
    arch: 'bios',
    firmware: 'bios',
    ipxe: true,
    relayed: false,
    src: '0.0.0.0',
    port: 68,
  },
  {
    ts: at(5),
    type: 'http.request',
    mac: MAC,
    path: `/boot/${MAC}.ipxe`,
    status: 200,
    bytes: 310,
    peer: '10.77.0.100',
    ms: 3,
  },
  { ts: at(5), type: 'boot.decision', mac: MAC, phase: 'script', action: 'wait', reason: 'waiting for approval' },
];

test('each event reads as a sentence in its phase', (t) => {
  const steps = pendingBoot.map(describeEvent);
  t.deepEqual(
    steps.map((s) => s.phase),
    ['state', 'state', 'dhcp', 'dhcp', 'dhcp', 'dhcp', 'dhcp', 'tftp', 'tftp', 'dhcp', 'http', 'deploy'],
  );
  t.is(
    steps[1]!.text,
    'Now waiting for approval (was unknown): first netboot; waiting for an administrator to approve it',
  );
  t.is(steps[3]!.text, 'DISCOVER from the BIOS network boot ROM');
  t.is(steps[4]!.text, 'OFFER sent: address 10.77.0.100, boot file undionly.kpxe');
  t.is(steps[5]!.text, 'REQUEST from the BIOS network boot ROM');
  t.is(steps[7]!.text, 'Size check of undionly.kpxe (normal for UEFI firmware)');
  t.is(steps[7]!.level, 'info', 'a size probe is not a problem');
  t.is(steps[8]!.text, 'Sent undionly.kpxe: 68.4 KiB in 50 ms (1.34 MiB/s)');
  t.is(steps[9]!.text, 'DISCOVER from iPXE (BIOS)');
  t.is(steps[10]!.text, `Fetched /boot/${MAC}.ipxe: 310 B in 3 ms`);
  t.is(steps[11]!.text, 'Told to wait for approval: waiting for approval');
});

test("iPXE's DHCP continues the ROM's boot; a later ROM DISCOVER starts a new one, newest first", (t) => {
  const second: TimelineEntry[] = [
    { ts: at(300), type: 'dhcp.request', messageType: 'DISCOVER', mac: MAC, arch: 'bios', ipxe: false },
    {
      ts: at(301),
      type: 'tftp.refused',
      mac: MAC,
      address: '10.77.0.100',
      filename: 'undionly.kpxe',
      reason: 'not-found',
      message: 'File not found',
    },
  ];
  const boots = groupBoots([...pendingBoot, ...second]);
  t.is(boots.length, 2);
  t.is(boots[0]!.start, at(300), 'newest first');
  t.is(boots[1]!.steps.length, pendingBoot.length, "the record's creation, the ROM's DISCOVER and iPXE's are one boot");
  t.deepEqual(boots[1]!.outcome, { level: 'warn', text: 'Waiting for an administrator to approve it' });
  t.deepEqual(boots[0]!.outcome, {
    level: 'error',
    text: 'Problem: Refused undionly.kpxe: the file is not in the boot tree',
  });
});

test('errors are told in plain words', (t) => {
  const d = (e: Omit<TimelineEntry, 'ts'>) => describeEvent({ ts: at(0), ...e } as TimelineEntry);
  t.is(
    d({ type: 'tftp.error', filename: 'ipxe.efi', reason: 'timeout', bytes: 1024, message: 'x' }).text,
    'Transfer of ipxe.efi failed after 1.00 KiB: the node stopped answering (timeout)',
  );
  t.is(
    d({ type: 'http.request', path: '/images/x.bbimg', status: 404, bytes: 0 }).text,
    '/images/x.bbimg is not on the box (404 not found)',
  );
  t.is(d({ type: 'http.request', path: '/images/x.bbimg', status: 404, bytes: 0 }).phase, 'deploy');
  t.is(
    d({ type: 'dhcp.pool-exhausted', subnet: '10.77.0.0/24' }).text,
    'No free address left in 10.77.0.0/24: widen dhcp.range or free leases',
  );
  t.is(
    d({ type: 'boot.report', state: 'deployed', accepted: false, reason: 'wrong token' }).text,
    `The box refused the node's report "deployed": wrong token`,
  );
  t.is(d({ type: 'dhcp.reply', messageType: 'NAK' }).level, 'warn');
});

test('an unknown event keeps its plain fields; nested values and the MAC are left out', (t) => {
  const s = describeEvent({ ts: at(0), type: 'volume.state', mac: MAC, state: 'missing', detail: { a: 1 }, n: 3 });
  t.is(s.phase, 'other');
  t.is(s.text, 'volume.state: state=missing, n=3');
});

test('a ROM that sends DISCOVER again without getting anywhere is still in the same boot; after a TFTP step it is a new one', (t) => {
  const d = (s: number): TimelineEntry => ({
    ts: at(s),
    type: 'dhcp.request',
    messageType: 'DISCOVER',
    mac: MAC,
    ipxe: false,
  });
  t.is(groupBoots([d(0), d(4), d(8)]).length, 1);
  const tftp: TimelineEntry = { ts: at(9), type: 'tftp.complete', filename: 'undionly.kpxe', bytes: 1, durationMs: 1 };
  t.is(groupBoots([d(0), tftp, d(12)]).length, 2);
  t.is(groupBoots([d(0), d(100)]).length, 2, 'more than 30 s apart');
});

test('a group of admin changes without network activity is not a boot', (t) => {
  const boots = groupBoots([
    { ts: at(0), type: 'machine.state', mac: MAC, from: 'pending', to: 'approved', reason: 'approved by admin' },
  ]);
  t.is(boots.length, 1);
  t.false(boots[0]!.netboot);
  t.is(boots[0]!.outcome.text, 'Now approved');
});
