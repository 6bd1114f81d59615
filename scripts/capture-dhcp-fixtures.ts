/**
 * Captures the first DHCPDISCOVER of real DHCP/PXE clients into test/fixtures/dhcp/<name>.hex.
 *
 *   node scripts/capture-dhcp-fixtures.ts [name ...] [--out DIR] [--http-timeout SECONDS] [--keep-serial]
 *
 * Run as root on a machine with the lab peers (scripts/setup-system.sh test). For each
 * client it builds a private switch: namespace `bbcap-sw` with a bridge, a veth port to a
 * client namespace `bbcap-cl` and a tap port for QEMU. `tcpdump -w -` on the bridge
 * streams every UDP datagram to port 67 back here; the first one that decodes as a
 * DISCOVER matching the client's predicate is written as hex (UDP payload only). No
 * DHCP server runs and no address is configured: a client's first DISCOVER needs
 * neither. Everything lives in the two namespaces, which are removed at the end; the
 * host's interfaces, leases and resolv.conf are never touched (dhclient and udhcpc get
 * `/bin/true` as their script and private lease/pid files).
 *
 * Names: dhclient, udhcpc, ipxe-bios, ipxe-efi, edk2-pxe, edk2-http (default: all).
 * edk2-http needs OVMF to give up on PXEv4 and PXEv6 first (about 160 s here); it is
 * skipped with a message if nothing arrives within --http-timeout (default 200 s).
 *
 *   node scripts/capture-dhcp-fixtures.ts --derive
 *
 * (no root needed) rewrites the quirk fixtures that are derived from the captures
 * (one option removed or changed, then re-encoded) or built by hand from the spec where
 * no such client is at hand (the Raspberry Pi). Their header says which.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { classifyClient } from '../firmware/protocols/dhcp/classify.ts';
import { type DhcpPacket, decode, emptyPacket, encode } from '../firmware/protocols/dhcp/codec.ts';
import { BootpOp, BROADCAST_FLAG, DhcpOption, MessageType } from '../firmware/protocols/dhcp/constants.ts';
import { getMessageType, getVendorClass, setString, setU16 } from '../firmware/protocols/dhcp/options.ts';

const NS_SW = 'bbcap-sw';
const NS_CL = 'bbcap-cl';
const QEMU_UUID = '7a8b9c0d-1e2f-3a4b-5c6d-7e8f9a0b1c2d';
const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

interface Target {
  name: string;
  description: string;
  timeoutS: number;
  /** Starts the client; returns the process and the command line (recorded in the fixture). */
  start(work: string): { proc: ChildProcess; command: string[] };
  match(pkt: DhcpPacket): boolean;
  /** On timeout: skip with this note instead of failing. */
  optional?: boolean;
}

function sh(cmd: string, args: string[], quiet = false): void {
  execFileSync(cmd, args, { stdio: quiet ? 'ignore' : ['ignore', 'ignore', 'inherit'] });
}

function teardown(): void {
  for (const ns of [NS_SW, NS_CL]) {
    try {
      sh('ip', ['netns', 'del', ns], true);
    } catch {
      /* not there */
    }
  }
}

function setup(): void {
  teardown();
  sh('ip', ['netns', 'add', NS_SW]);
  sh('ip', ['netns', 'add', NS_CL]);
  sh('ip', ['-n', NS_SW, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  sh('ip', ['-n', NS_SW, 'link', 'set', 'br0', 'up']);
  sh('ip', ['-n', NS_SW, 'link', 'add', 'cl-p', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS_CL]);
  sh('ip', ['-n', NS_SW, 'link', 'set', 'cl-p', 'master', 'br0', 'up']);
  sh('ip', ['-n', NS_CL, 'link', 'set', 'eth0', 'address', '02:77:00:00:00:01']);
  sh('ip', ['-n', NS_CL, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', NS_CL, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['-n', NS_SW, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap']);
  sh('ip', ['-n', NS_SW, 'link', 'set', 'tap0', 'master', 'br0', 'up']);
}

function qemu(work: string, opts: { uefi: boolean; nic: string }): string[] {
  const args = [
    'netns',
    'exec',
    NS_SW,
    'qemu-system-x86_64',
    '-accel',
    'tcg',
    '-machine',
    'q35',
    '-m',
    opts.uefi ? '512' : '256',
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-vga',
    'none',
    '-uuid',
    QEMU_UUID,
    '-netdev',
    'tap,id=n0,ifname=tap0,script=no,downscript=no',
    '-device',
    opts.nic,
    '-boot',
    'order=n,strict=on',
    '-no-reboot',
    '-serial',
    `file:${join(work, 'serial.log')}`,
    '-monitor',
    'none',
  ];
  if (opts.uefi) {
    const vars = join(work, 'OVMF_VARS.fd');
    copyFileSync(OVMF_VARS, vars);
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`);
    args.push('-drive', `if=pflash,format=raw,unit=1,file=${vars}`);
  }
  return args;
}

const isDiscover = (p: DhcpPacket) => getMessageType(p.options) === MessageType.Discover;

const TARGETS: Target[] = [
  {
    name: 'dhclient',
    description: 'ISC dhclient (Debian 12 isc-dhcp-client), default /etc/dhcp/dhclient.conf',
    timeoutS: 30,
    start(work) {
      const cmd = ['netns', 'exec', NS_CL, 'dhclient', '-4', '-1', '-d', '-sf', '/bin/true'];
      cmd.push('-lf', join(work, 'dhclient.leases'), '-pf', join(work, 'dhclient.pid'), 'eth0');
      return { proc: spawn('ip', cmd, { stdio: 'ignore' }), command: ['ip', ...cmd] };
    },
    match: isDiscover,
  },
  {
    name: 'udhcpc',
    description: 'busybox udhcpc (Debian 12 busybox-static)',
    timeoutS: 30,
    start() {
      const cmd = ['netns', 'exec', NS_CL, 'busybox', 'udhcpc', '-i', 'eth0', '-f', '-q', '-n', '-t', '5', '-T', '2'];
      cmd.push('-s', '/bin/true');
      return { proc: spawn('ip', cmd, { stdio: 'ignore' }), command: ['ip', ...cmd] };
    },
    match: isDiscover,
  },
  {
    name: 'ipxe-bios',
    description: 'QEMU q35 SeaBIOS with the e1000 iPXE option ROM (Debian 12 ipxe-qemu), -uuid set',
    timeoutS: 90,
    start(work) {
      const cmd = qemu(work, { uefi: false, nic: 'e1000,netdev=n0,mac=52:54:00:77:00:11,bootindex=1' });
      return { proc: spawn('ip', cmd, { stdio: 'ignore' }), command: ['ip', ...cmd] };
    },
    match: isDiscover,
  },
  {
    name: 'ipxe-efi',
    description: 'QEMU q35 OVMF with the e1000 iPXE EFI option ROM (Debian 12 ovmf, ipxe-qemu), -uuid set',
    timeoutS: 120,
    start(work) {
      const cmd = qemu(work, { uefi: true, nic: 'e1000,netdev=n0,mac=52:54:00:77:00:12,bootindex=1' });
      return { proc: spawn('ip', cmd, { stdio: 'ignore' }), command: ['ip', ...cmd] };
    },
    match: isDiscover,
  },
  {
    name: 'edk2-pxe',
    description: 'QEMU q35 OVMF native PXE (virtio-net-pci with no option ROM: edk2 PxeBcDxe), -uuid set',
    timeoutS: 120,
    start(work) {
      const cmd = qemu(work, {
        uefi: true,
        nic: 'virtio-net-pci,netdev=n0,mac=52:54:00:77:00:13,romfile=,bootindex=1',
      });
      return { proc: spawn('ip', cmd, { stdio: 'ignore' }), command: ['ip', ...cmd] };
    },
    match: (p) => isDiscover(p) && (getVendorClass(p.options) ?? '').startsWith('PXEClient'),
  },
  {
    name: 'edk2-http',
    description: 'QEMU q35 OVMF HTTP boot (virtio-net-pci with no option ROM: edk2 HttpBootDxe), -uuid set',
    timeoutS: 200,
    optional: true,
    start(work) {
      const cmd = qemu(work, {
        uefi: true,
        nic: 'virtio-net-pci,netdev=n0,mac=52:54:00:77:00:14,romfile=,bootindex=1',
      });
      return { proc: spawn('ip', cmd, { stdio: 'ignore' }), command: ['ip', ...cmd] };
    },
    match: (p) => isDiscover(p) && (getVendorClass(p.options) ?? '').startsWith('HTTPClient'),
  },
];

/** Streams pcap records from tcpdump's stdout and yields UDP payloads of IPv4 frames. */
class PcapStream {
  private buf = Buffer.alloc(0);
  private headerSeen = false;
  private little = true;
  private readonly onPayload: (payload: Buffer) => void;
  constructor(onPayload: (payload: Buffer) => void) {
    this.onPayload = onPayload;
  }
  push(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (!this.headerSeen) {
      if (this.buf.length < 24) return;
      const magic = this.buf.readUInt32LE(0);
      this.little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
      this.buf = this.buf.subarray(24);
      this.headerSeen = true;
    }
    for (;;) {
      if (this.buf.length < 16) return;
      const incl = this.little ? this.buf.readUInt32LE(8) : this.buf.readUInt32BE(8);
      if (this.buf.length < 16 + incl) return;
      const frame = this.buf.subarray(16, 16 + incl);
      this.buf = this.buf.subarray(16 + incl);
      const payload = udpPayload(frame);
      if (payload) this.onPayload(Buffer.from(payload));
    }
  }
}

function udpPayload(frame: Buffer): Buffer | undefined {
  if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== 0x0800) return undefined;
  const ip = frame.subarray(14);
  const ihl = (ip[0]! & 0x0f) * 4;
  if (ip[9] !== 17) return undefined;
  const udp = ip.subarray(ihl);
  const len = udp.readUInt16BE(4);
  return udp.subarray(8, Math.min(len, udp.length));
}

function toHexLines(b: Buffer): string {
  const lines: string[] = [];
  for (let i = 0; i < b.length; i += 32) lines.push(b.subarray(i, i + 32).toString('hex'));
  return lines.join('\n');
}

interface Derived {
  name: string;
  /** Captured fixture it starts from, or undefined for a packet built from scratch. */
  from?: string;
  description: string;
  make(base: DhcpPacket | undefined): DhcpPacket;
}

const DERIVED: Derived[] = [
  {
    name: 'no-uuid-rom',
    from: 'edk2-pxe',
    description: 'edk2-pxe with option 97 removed: PXE ROMs in the field that omit the client UUID',
    make(p) {
      p!.options.delete(DhcpOption.ClientUuid);
      return p!;
    },
  },
  {
    name: 'arch-from-vendor-class',
    from: 'edk2-pxe',
    description: 'edk2-pxe with option 93 removed: the architecture is only in "PXEClient:Arch:00007"',
    make(p) {
      p!.options.delete(DhcpOption.ClientArch);
      return p!;
    },
  },
  {
    name: 'arch9-uefi-x64',
    from: 'edk2-pxe',
    description: 'edk2-pxe reporting arch 9 (RFC 4578 "EFI x86-64"), as older x64 UEFI firmware does',
    make(p) {
      setU16(p!.options, DhcpOption.ClientArch, 9);
      setString(p!.options, DhcpOption.VendorClassId, 'PXEClient:Arch:00009:UNDI:003000');
      return p!;
    },
  },
  {
    name: 'arch6-uefi-ia32',
    from: 'edk2-pxe',
    description: 'edk2-pxe reporting arch 6 (EFI IA32), as 32-bit UEFI tablets and early Macs do',
    make(p) {
      setU16(p!.options, DhcpOption.ClientArch, 6);
      setString(p!.options, DhcpOption.VendorClassId, 'PXEClient:Arch:00006:UNDI:003016');
      return p!;
    },
  },
  {
    name: 'rpi4-quirk',
    description:
      'HAND-MADE, no Raspberry Pi here: a Pi 4 EEPROM bootloader DISCOVER as smee and NOTES-lab describe it ' +
      '(option 93 = 0 and "PXEClient:Arch:00000:UNDI:002001", exactly like x86 BIOS; MAC in the Pi OUI dc:a6:32)',
    make() {
      const p = emptyPacket(BootpOp.BootRequest, Buffer.from('dca632010203', 'hex'));
      p.xid = 0x26f30339;
      p.flags = BROADCAST_FLAG;
      const o = p.options;
      o.set(DhcpOption.MessageType, Buffer.from([MessageType.Discover]));
      o.set(
        DhcpOption.ParameterRequestList,
        Buffer.from([1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135]),
      );
      setU16(o, DhcpOption.MaxMessageSize, 1260);
      setU16(o, DhcpOption.ClientArch, 0);
      o.set(DhcpOption.ClientNdi, Buffer.from([1, 2, 1]));
      o.set(DhcpOption.ClientUuid, Buffer.from('0034695e7a000000000000000000000000', 'hex'));
      setString(o, DhcpOption.VendorClassId, 'PXEClient:Arch:00000:UNDI:002001');
      return p;
    },
  },
];

function readHexFixture(dir: string, name: string): Buffer {
  const text = readFileSync(join(dir, `${name}.hex`), 'utf8');
  return Buffer.from(
    text
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('')
      .replace(/\s+/g, ''),
    'hex',
  );
}

function derive(outDir: string): void {
  for (const d of DERIVED) {
    const base = d.from ? decode(readHexFixture(outDir, d.from)) : undefined;
    const pkt = d.make(base);
    const raw = encode(pkt);
    const info = classifyClient(decode(raw));
    const header = [
      `# bootbox DHCP fixture: ${d.name} (${d.from ? `derived from the capture ${d.from}.hex` : 'hand-made'})`,
      `# ${d.description}`,
      '# written by scripts/capture-dhcp-fixtures.ts --derive',
      `# classified: arch=${info.arch} archCode=${info.archCode} firmware=${info.firmware} quirks=${info.quirks.join(',') || '(none)'}`,
      '# UDP payload, hex, 32 bytes a line:',
    ];
    writeFileSync(join(outDir, `${d.name}.hex`), `${header.join('\n')}\n${toHexLines(raw)}\n`);
    console.log(`${d.name}: ${raw.length} bytes -> ${join(outDir, `${d.name}.hex`)}`);
  }
}

async function capture(t: Target, outDir: string, timeoutS: number, keepSerial: boolean): Promise<boolean> {
  const work = mkdtempSync(join(tmpdir(), `bbcap-${t.name}-`));
  setup();
  const started = Date.now();
  const dump = spawn(
    'ip',
    ['netns', 'exec', NS_SW, 'tcpdump', '-i', 'br0', '-U', '-n', '-s', '0', '-w', '-', 'udp and dst port 67'],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  let client: { proc: ChildProcess; command: string[] } | undefined;
  try {
    const found = await new Promise<{ raw: Buffer; pkt: DhcpPacket } | undefined>((done) => {
      const timer = setTimeout(() => done(undefined), timeoutS * 1000);
      const pcap = new PcapStream((payload) => {
        let pkt: DhcpPacket;
        try {
          pkt = decode(payload);
        } catch {
          return;
        }
        if (t.match(pkt)) {
          clearTimeout(timer);
          done({ raw: payload, pkt });
        }
      });
      dump.stdout!.on('data', (c: Buffer) => pcap.push(c));
      // Give tcpdump a moment to open the interface before the client speaks.
      setTimeout(() => {
        client = t.start(work);
      }, 700);
    });
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    if (!found) {
      console.log(`${t.name}: nothing matching within ${timeoutS} s${t.optional ? ' (skipped)' : ''}`);
      return t.optional === true;
    }
    const info = classifyClient(found.pkt);
    const header = [
      `# bootbox DHCP fixture: ${t.name} (captured, not hand-made)`,
      `# client: ${t.description}`,
      `# captured by scripts/capture-dhcp-fixtures.ts on ${new Date().toISOString().slice(0, 10)}, ${secs} s after start`,
      `# command: ${client?.command.join(' ')}`,
      `# classified: arch=${info.arch} archCode=${info.archCode} firmware=${info.firmware} pxe=${info.isPxe} http=${info.isHttpBoot} ipxe=${info.isIpxe}`,
      `# vendor class: ${info.vendorClass ?? '(none)'}; user class: ${info.userClass.join(',') || '(none)'}`,
      '# UDP payload, hex, 32 bytes a line:',
    ];
    writeFileSync(join(outDir, `${t.name}.hex`), `${header.join('\n')}\n${toHexLines(found.raw)}\n`);
    console.log(`${t.name}: ${found.raw.length} bytes after ${secs} s -> ${join(outDir, `${t.name}.hex`)}`);
    return true;
  } finally {
    client?.proc.kill('SIGKILL');
    dump.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    teardown();
    if (keepSerial) {
      try {
        console.log(
          readFileSync(join(work, 'serial.log'), 'utf8')
            .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
            .replace(/\r/g, ''),
        );
      } catch {
        /* no serial for this client */
      }
    }
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let outDir = resolve(import.meta.dirname, '../test/fixtures/dhcp');
  let httpTimeout: number | undefined;
  let keepSerial = false;
  let deriveOnly = false;
  const names: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--out') outDir = resolve(args[++i]!);
    else if (a === '--http-timeout') httpTimeout = Number(args[++i]);
    else if (a === '--keep-serial') keepSerial = true;
    else if (a === '--derive') deriveOnly = true;
    else names.push(a);
  }
  if (deriveOnly) {
    derive(outDir);
    return;
  }
  if (process.getuid?.() !== 0) {
    console.error('capture-dhcp-fixtures: run as root (network namespaces, tcpdump, tap)');
    process.exit(2);
  }
  const chosen = names.length ? TARGETS.filter((t) => names.includes(t.name)) : TARGETS;
  if (chosen.length !== (names.length || TARGETS.length)) {
    console.error(`capture-dhcp-fixtures: unknown name; known: ${TARGETS.map((t) => t.name).join(', ')}`);
    process.exit(2);
  }
  const onSignal = () => {
    teardown();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let ok = true;
  for (const t of chosen) {
    const timeout = t.name === 'edk2-http' && httpTimeout ? httpTimeout : t.timeoutS;
    ok = (await capture(t, outDir, timeout, keepSerial)) && ok;
  }
  process.exit(ok ? 0 : 1);
}

await main();
