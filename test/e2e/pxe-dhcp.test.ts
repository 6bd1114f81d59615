/**
 * Real PXE firmware against bootbox's DHCP, in QEMU (TCG), on a private switch:
 *   [box priv 10.77.0.1] ─┐
 *   [ISC dhcpd 10.77.0.2] ┼─ br0 ── tap ── QEMU node     (dhcpd only in proxy mode)
 * Three clients, in full mode and in proxy mode (dhcpd hands out the addresses):
 * - SeaBIOS with QEMU's e1000 iPXE ROM, and OVMF with the e1000 iPXE EFI ROM: both are
 *   iPXE already (user class "iPXE"), so the policy (policy/first-stage.ts) gives them the
 *   box's iPXE script, http://10.77.0.1:<http port>/boot/<mac>.ipxe, which they GET.
 * - OVMF's own PXE client (virtio-net with no option ROM): it gets ipxe.efi and sends a
 *   TFTP read request for it; in proxy mode only after the port-4011 exchange.
 * The proof is a capture on the switch: the box's reply to the node names the file, and
 * the node asks the box for exactly that file (what the box then sends back is the TFTP
 * and HTTP servers' business; the node is stopped as soon as it has asked). One box per
 * mode is shared by its three clients.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { type NodeFirmware, qemuArgs } from '../../board/lab.ts';
import { formatIPv4 } from '../../firmware/core/net.ts';
import { type DhcpPacket, decode } from '../../firmware/protocols/dhcp/codec.ts';
import { MessageType } from '../../firmware/protocols/dhcp/constants.ts';
import { getMessageType } from '../../firmware/protocols/dhcp/options.ts';
import { type PcapCapture, parseTftpRrq, pcapCapture, type UdpFrame } from '../helpers/pcap.ts';
import { type SwitchLab, startDhcpd, switchLab } from '../helpers/switch.ts';

const BOX = '10.77.0.1';
const OTHER = '10.77.0.2';
const HTTP_PORT = 8081; // boxLab's http.port
const NODE_TIMEOUT_MS = 60_000;

type Mode = 'full' | 'proxy';

interface Rig {
  sl: SwitchLab;
  cap: PcapCapture;
  dhcpdLog: string[];
}

const rigs = new Map<Mode, Promise<Rig>>();

async function makeRig(mode: Mode): Promise<Rig> {
  const sl = await switchLab();
  try {
    let dhcpdLog: string[] = [];
    if (mode === 'proxy') {
      const other = sl.addHost('isc', `${OTHER}/24`);
      dhcpdLog = (await startDhcpd(other, sl.lab.dataDir)).log;
    }
    await sl.lab.start({ dhcp: { mode, range: '10.77.0.100-10.77.0.120', leaseTime: 600 } });
    const filter = `udp port 67 or udp port 68 or udp port 4011 or udp port 69 or tcp port ${HTTP_PORT}`;
    const cap = await pcapCapture(sl.sw, 'br0', filter, path.join(sl.lab.dataDir, `${mode}.pcap`));
    return { sl, cap, dhcpdLog };
  } catch (e) {
    await sl.destroy();
    throw e;
  }
}

function rig(mode: Mode): Promise<Rig> {
  let r = rigs.get(mode);
  if (!r) {
    r = makeRig(mode);
    rigs.set(mode, r);
  }
  return r;
}

test.after.always(async () => {
  for (const r of rigs.values()) {
    const x = await r.catch(() => undefined);
    await x?.cap.stop().catch(() => undefined);
    await x?.sl.destroy();
  }
});

interface Client {
  name: string;
  firmware: NodeFirmware;
  mac: string;
  /** What the node must ask the box for. */
  expect: { kind: 'tftp'; file: string } | { kind: 'http'; path: string };
}

const clients = (n: number): Client[] => [
  {
    name: 'SeaBIOS + e1000 iPXE ROM',
    firmware: 'bios',
    mac: `52:54:00:77:0${n}:11`,
    expect: { kind: 'http', path: `/boot/52:54:00:77:0${n}:11.ipxe` },
  },
  {
    name: 'OVMF + e1000 iPXE EFI ROM',
    firmware: 'uefi',
    mac: `52:54:00:77:0${n}:12`,
    expect: { kind: 'http', path: `/boot/52:54:00:77:0${n}:12.ipxe` },
  },
  {
    name: 'OVMF native edk2 PXE (virtio-net, no ROM)',
    firmware: 'uefi-pxe',
    mac: `52:54:00:77:0${n}:13`,
    expect: { kind: 'tftp', file: 'ipxe.efi' },
  },
];

interface Dhcp {
  f: UdpFrame;
  p: DhcpPacket;
  type: number | undefined;
  mac: string;
}

function dhcpFrames(frames: UdpFrame[]): Dhcp[] {
  const out: Dhcp[] = [];
  for (const f of frames) {
    if (f.proto !== 'udp' || ![67, 68, 4011].includes(f.dport)) continue;
    try {
      const p = decode(f.payload);
      const mac = [...p.chaddr.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
      out.push({ f, p, type: getMessageType(p.options), mac });
    } catch {
      // not DHCP
    }
  }
  return out;
}

const strip = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');

/** Boots one node until it asks for its first stage (or the timeout); returns what the capture saw. */
async function bootNode(t: ExecutionContext, mode: Mode, c: Client) {
  const { sl, cap } = await rig(mode);
  const tap = sl.addTap();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-e2e-node-'));
  const serial = path.join(workDir, 'serial.log');
  const args = qemuArgs({
    lab: '-',
    nodeName: c.firmware,
    firmware: c.firmware,
    mac: c.mac,
    tap,
    workDir,
    serialFile: serial,
  });
  const t0 = Date.now() / 1000;
  const qemu: ChildProcess = sl.sw.spawn('qemu-system-x86_64', args);
  const qemuErr: string[] = [];
  qemu.stderr?.on('data', (d) => qemuErr.push(String(d)));
  let killed = false;
  const kill = async () => {
    if (killed) return;
    killed = true;
    if (qemu.exitCode === null && qemu.signalCode === null) {
      const gone = new Promise((r) => qemu.once('exit', r));
      qemu.kill('SIGKILL');
      await gone;
    }
    sl.sw.ip('link', 'del', tap);
    rmSync(workDir, { recursive: true, force: true });
  };
  t.teardown(kill);
  const macBytes = Buffer.from(c.mac.replaceAll(':', ''), 'hex');
  // The node's frames, and DHCP replies for it (broadcast ones too: chaddr names it).
  const mine = (f: UdpFrame) =>
    f.t >= t0 - 1 &&
    (f.srcMac === c.mac ||
      f.dstMac === c.mac ||
      (f.proto === 'udp' && f.payload.length >= 34 && f.payload.subarray(28, 34).equals(macBytes)));
  const asked = (f: UdpFrame) => {
    if (!mine(f) || f.dst !== BOX || f.srcMac !== c.mac) return false;
    if (c.expect.kind === 'tftp') return f.proto === 'udp' && f.dport === 69 && parseTftpRrq(f.payload) !== null;
    return f.proto === 'tcp' && f.dport === HTTP_PORT && f.payload.subarray(0, 4).toString() === 'GET ';
  };
  let hit: UdpFrame | undefined;
  try {
    hit = await cap.waitFor(asked, NODE_TIMEOUT_MS);
  } catch {
    // reported below, with the node's console
  }
  // The box's answer to the GET, for the record (the node is stopped right after).
  const answer =
    hit?.proto === 'tcp'
      ? await cap
          .waitFor(
            (f) =>
              f.src === BOX &&
              f.sport === HTTP_PORT &&
              f.dport === hit.sport &&
              f.payload.subarray(0, 5).toString() === 'HTTP/',
            3000,
          )
          .then((f) => f.payload.toString('latin1').split('\r\n')[0])
          .catch(() => undefined)
      : undefined;
  const frames = cap.read().filter(mine);
  let console_ = '';
  try {
    console_ = strip(readFileSync(serial, 'utf8'));
  } catch {
    // no console yet
  }
  await kill();
  if (!hit) {
    const summary = frames
      .map(
        (f) => `${(f.t - t0).toFixed(2)}s ${f.proto} ${f.src}:${f.sport} > ${f.dst}:${f.dport} (${f.payload.length})`,
      )
      .join('\n');
    t.fail(
      `${c.name} in ${mode} mode asked for nothing in ${NODE_TIMEOUT_MS / 1000} s.\ncapture:\n${summary}\nconsole (tail):\n${console_.slice(-3000)}\nqemu: ${qemuErr.join('')}`,
    );
    throw new Error('no request from the node');
  }
  return { t0, hit, answer, frames, dhcp: dhcpFrames(frames).filter((d) => d.mac === c.mac), console: console_ };
}

function timeline(t0: number, d: Dhcp[], hit: UdpFrame): string {
  const name = (x: Dhcp) =>
    x.type === undefined ? '?' : Object.entries(MessageType).find(([, v]) => v === x.type)?.[0];
  return [
    ...d.map((x) => `${(x.f.t - t0).toFixed(2)}s ${name(x)} ${x.f.src}:${x.f.sport} > ${x.f.dst}:${x.f.dport}`),
    `${(hit.t - t0).toFixed(2)}s ${hit.proto === 'udp' ? `TFTP RRQ ${JSON.stringify(parseTftpRrq(hit.payload))}` : `HTTP ${hit.payload.toString('latin1').split('\r\n')[0]}`}`,
  ].join('\n');
}

/** What the box answered each iPXE node's GET for its script. */
const httpAnswers = new Map<string, string>();

for (const mode of ['full', 'proxy'] as const) {
  for (const c of clients(mode === 'full' ? 1 : 2)) {
    test(`${mode} mode: ${c.name} asks the box for ${c.expect.kind === 'tftp' ? c.expect.file : 'its iPXE script'}`, async (t) => {
      t.timeout(NODE_TIMEOUT_MS + 60_000);
      const { t0, hit, answer, dhcp } = await bootNode(t, mode, c);
      t.log(`${mode} / ${c.name}:\n${timeline(t0, dhcp, hit)}${answer ? `\n  the box answered: ${answer}` : ''}`);
      if (c.expect.kind === 'http') httpAnswers.set(`${mode} / ${c.name}`, answer ?? '(no answer)');
      const fromBox = dhcp.filter((d) => d.f.src === BOX);
      const bootFile = (d: Dhcp) => d.p.file || d.p.options.get(67)?.toString('latin1') || '';
      const wanted = c.expect.kind === 'tftp' ? c.expect.file : `http://${BOX}:${HTTP_PORT}${c.expect.path}`;
      t.true(
        fromBox.some((d) => bootFile(d) === wanted),
        `the box offered ${wanted}: ${JSON.stringify(fromBox.map(bootFile))}`,
      );
      // What the node asked for, of whom.
      if (c.expect.kind === 'tftp') {
        const rrq = parseTftpRrq(hit.payload)!;
        t.is(rrq.file, c.expect.file);
        t.is(rrq.mode, 'octet');
        t.is(`${hit.dst}:${hit.dport}`, `${BOX}:69`);
      } else {
        // iPXE percent-encodes the colons of the MAC (GET /boot/52%3A54%3A00…): the HTTP
        // boot server has to decode the path.
        const [method, target, version] = hit.payload.toString('latin1').split('\r\n')[0]!.split(' ');
        t.is(method, 'GET');
        t.is(decodeURIComponent(target!), c.expect.path);
        t.is(version, 'HTTP/1.1');
        t.is(hit.dst, BOX);
      }
      // Where its address came from.
      const acks = dhcp.filter((d) => d.type === MessageType.Ack && d.p.yiaddr !== 0);
      t.true(acks.length >= 1, 'the node was given an address');
      const addr = formatIPv4(acks.at(-1)!.p.yiaddr);
      t.is(hit.src, addr, 'it asked from the address it was given');
      if (mode === 'full') {
        t.true(
          acks.every((d) => d.f.src === BOX),
          'only the box gives addresses',
        );
        t.regex(addr, /^10\.77\.0\.1[0-2]\d$/);
      } else {
        t.true(
          acks.every((d) => d.f.src === OTHER),
          'dhcpd gives the address',
        );
        t.regex(addr, /^10\.77\.0\.1[5-9]\d$/);
        t.true(
          fromBox.every((d) => d.p.yiaddr === 0),
          'the box never offers an address in proxy mode',
        );
        t.true(
          fromBox.some((d) => d.type === MessageType.Offer && d.f.sport === 67),
          'a ProxyDHCP offer',
        );
      }
      if (c.firmware === 'uefi-pxe' && mode === 'proxy') {
        // edk2 asks the boot server on 4011, from 4011 (NOTES-lab), and only then reads the file.
        const req = dhcp.find((d) => d.type === MessageType.Request && d.f.dst === BOX && d.f.dport === 4011);
        const ack = dhcp.find((d) => d.type === MessageType.Ack && d.f.src === BOX && d.f.sport === 4011);
        t.truthy(req, 'a REQUEST to the box on port 4011');
        t.truthy(ack, 'an ACK from the box on port 4011');
        t.is(req!.f.sport, 4011);
        t.is(`${ack!.f.dst}:${ack!.f.dport}`, `${req!.f.src}:4011`);
        t.is(bootFile(ack!), 'ipxe.efi');
        t.true(req!.f.t < ack!.f.t && ack!.f.t <= hit.t, 'REQUEST, ACK, then the RRQ');
      }
    });
  }
}

// iPXE percent-encodes the colons of the MAC in the script URL
// (GET /boot/52%3A54%3A00%3A77%3A01%3A11.ipxe); the box must still answer with the script.
test('the iPXE nodes got their script (HTTP 200) from the box', (t) => {
  t.true(httpAnswers.size > 0, 'the iPXE cases ran');
  for (const [node, answer] of httpAnswers) t.regex(answer, /^HTTP\/1\.[01] 200/, node);
});
