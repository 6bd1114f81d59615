/**
 * The lab: a virtual private switch built from network namespaces, so bootbox can be
 * tried (and tested) on a machine with no second NIC.
 *
 *   [box port bbl-<lab>, 10.77.0.1/24] ── veth ── [p0 ─ br0 ─ tap ports] in netns bblab-<lab>
 *
 * The box side stays in the caller's namespace (or in --netns). Virtual nodes are QEMU
 * guests whose NICs are tap ports on br0.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BootboxError } from '../firmware/core/errors.ts';

export const LAB_ADDRESS = '10.77.0.1';
export const LAB_PREFIX = 24;

export interface LabNames {
  netns: string;
  bridge: string;
  boxIf: string;
  switchPort: string;
}

export function labNames(name: string): LabNames {
  return { netns: `bblab-${name}`, bridge: 'br0', boxIf: `bbl-${name}`, switchPort: 'p0' };
}

function ip(args: string[], netns?: string): string {
  const full = netns ? ['-n', netns, ...args] : args;
  try {
    return execFileSync('ip', full, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; code?: string };
    if (err.code === 'ENOENT') throw new BootboxError('LAB_FAILED', 'the lab needs the "ip" command (iproute2)');
    throw new BootboxError('LAB_FAILED', `ip ${full.join(' ')}: ${(err.stderr ?? String(e)).trim()}`);
  }
}

function netnsExists(ns: string): boolean {
  return existsSync(`/run/netns/${ns}`);
}

function linkExists(name: string, netns?: string): boolean {
  try {
    execFileSync('ip', [...(netns ? ['-n', netns] : []), 'link', 'show', 'dev', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new BootboxError('NO_PRIVILEGE', `${what} needs root (network namespaces)`);
}

export interface LabUpResult {
  interface: string;
  address: string;
  netns: string;
  created: boolean;
}

/** Creates whatever part of the lab is missing. Idempotent. */
export function labUp(name: string, opts: { boxNetns?: string } = {}): LabUpResult {
  requireRoot('lab up');
  const n = labNames(name);
  let created = false;
  if (!netnsExists(n.netns)) {
    ip(['netns', 'add', n.netns]);
    created = true;
  }
  ip(['link', 'set', 'lo', 'up'], n.netns);
  if (!linkExists(n.bridge, n.netns)) {
    ip(
      ['link', 'add', n.bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0'],
      n.netns,
    );
    created = true;
  }
  ip(['link', 'set', n.bridge, 'up'], n.netns);
  if (opts.boxNetns && !netnsExists(opts.boxNetns)) {
    throw new BootboxError('LAB_FAILED', `network namespace "${opts.boxNetns}" does not exist`);
  }
  if (!linkExists(n.boxIf, opts.boxNetns)) {
    // A half-made pair (switch side left over) is removed first.
    if (linkExists(n.switchPort, n.netns)) ip(['link', 'del', n.switchPort], n.netns);
    ip([
      'link',
      'add',
      n.switchPort,
      'netns',
      n.netns,
      'type',
      'veth',
      'peer',
      'name',
      n.boxIf,
      ...(opts.boxNetns ? ['netns', opts.boxNetns] : []),
    ]);
    created = true;
  }
  ip(['link', 'set', n.switchPort, 'master', n.bridge, 'up'], n.netns);
  const addrs = ip(['-4', '-o', 'addr', 'show', 'dev', n.boxIf], opts.boxNetns);
  if (!addrs.includes(`${LAB_ADDRESS}/${LAB_PREFIX}`)) {
    ip(['addr', 'add', `${LAB_ADDRESS}/${LAB_PREFIX}`, 'dev', n.boxIf], opts.boxNetns);
  }
  ip(['link', 'set', n.boxIf, 'up'], opts.boxNetns);
  return { interface: n.boxIf, address: LAB_ADDRESS, netns: n.netns, created };
}

/** Removes the lab: its nodes, its switch namespace and the box port. */
export function labDown(name: string, opts: { boxNetns?: string } = {}): boolean {
  requireRoot('lab down');
  const n = labNames(name);
  const runDir = labRunDir(name);
  // Stop nodes started by `lab node` (their pid files live in the run dir).
  if (existsSync(runDir)) {
    try {
      for (const f of execFileSync('ls', [runDir], { encoding: 'utf8' })
        .split('\n')
        .filter((x) => x.endsWith('.pid'))) {
        try {
          const pid = Number(execFileSync('cat', [path.join(runDir, f)], { encoding: 'utf8' }).trim());
          if (pid > 0) process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
  }
  let removed = false;
  if (linkExists(n.boxIf, opts.boxNetns)) {
    ip(['link', 'del', n.boxIf], opts.boxNetns);
    removed = true;
  }
  if (netnsExists(n.netns)) {
    // Deleting the switch end removes the box end at once, wherever it lives; a namespace
    // deletion alone frees its veths only when the kernel gets round to it.
    if (linkExists(n.switchPort, n.netns)) ip(['link', 'del', n.switchPort], n.netns);
    ip(['netns', 'del', n.netns]);
    removed = true;
  }
  return removed;
}

export function labRunDir(name: string): string {
  return `/run/bootbox-lab/${name}`;
}

/**
 * - `bios`: SeaBIOS with the e1000 iPXE ROM;
 * - `uefi`: OVMF with the e1000 iPXE EFI ROM;
 * - `uefi-pxe`: OVMF's own PXE client (virtio-net, no option ROM);
 * - `uefi-sb`: OVMF with Secure Boot enforced (Microsoft's keys enrolled) and its own PXE
 *   client (an unsigned iPXE ROM would not be run);
 * - `arm64`: an ARM64 UEFI node (qemu-system-aarch64 `virt`, AAVMF and its own PXE client).
 */
export type NodeFirmware = 'bios' | 'uefi' | 'uefi-pxe' | 'uefi-sb' | 'arm64';
export const NODE_FIRMWARES: readonly NodeFirmware[] = ['bios', 'uefi', 'uefi-pxe', 'uefi-sb', 'arm64'];

export interface NodeOptions {
  lab: string;
  nodeName: string;
  firmware: NodeFirmware;
  mac?: string;
  disk?: string;
  memory?: number;
  /** Where the serial console goes (default: this process's stdout). */
  serialFile?: string;
}

/** A MAC in QEMU's 52:54:00 range, stable per node name. */
export function nodeMac(nodeName: string): string {
  const h = createHash('sha256').update(nodeName).digest();
  return `52:54:00:77:${h[0]!.toString(16).padStart(2, '0')}:${h[1]!.toString(16).padStart(2, '0')}`;
}

const OVMF_CODE = ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_CODE.fd'];
const OVMF_VARS = ['/usr/share/OVMF/OVMF_VARS_4M.fd', '/usr/share/OVMF/OVMF_VARS.fd'];
/** Debian's ovmf: the Secure Boot build (needs SMM) and variables with Microsoft's keys enrolled, Secure Boot on. */
const OVMF_SB_CODE = ['/usr/share/OVMF/OVMF_CODE_4M.secboot.fd'];
const OVMF_SB_VARS = ['/usr/share/OVMF/OVMF_VARS_4M.ms.fd'];
/** Debian's qemu-efi-aarch64. */
const AAVMF_CODE = ['/usr/share/AAVMF/AAVMF_CODE.fd'];
const AAVMF_VARS = ['/usr/share/AAVMF/AAVMF_VARS.fd'];

/** The QEMU system emulator a node of this firmware runs in. */
export function qemuBinary(firmware: NodeFirmware): string {
  return firmware === 'arm64' ? 'qemu-system-aarch64' : 'qemu-system-x86_64';
}

/** UEFI flash images: the read-only code and the variables template a node gets a copy of. */
function uefiFlash(firmware: NodeFirmware): { code: string; vars: string } {
  const [codes, varss, pkg] =
    firmware === 'arm64'
      ? [AAVMF_CODE, AAVMF_VARS, 'qemu-efi-aarch64']
      : firmware === 'uefi-sb'
        ? [OVMF_SB_CODE, OVMF_SB_VARS, 'ovmf']
        : [OVMF_CODE, OVMF_VARS, 'ovmf'];
  const code = codes.find((f) => existsSync(f));
  const vars = varss.find((f) => existsSync(f));
  if (!code || !vars) {
    throw new BootboxError('LAB_FAILED', `${firmware} nodes need ${codes[0]} and ${varss[0]} (apt-get install ${pkg})`);
  }
  return { code, vars };
}

/** The QEMU command line for a diskless (or small-disk) PXE node on a tap port. */
export function qemuArgs(o: NodeOptions & { tap: string; workDir: string }): string[] {
  const mac = o.mac ?? nodeMac(o.nodeName);
  const machine =
    o.firmware === 'arm64'
      ? ['-machine', 'virt', '-cpu', 'cortex-a57']
      : o.firmware === 'uefi-sb'
        ? // Secure Boot OVMF keeps its variables safe in SMM: the flash is SMM-only.
          ['-machine', 'q35,smm=on', '-global', 'driver=cfi.pflash01,property=secure,value=on']
        : ['-machine', 'q35'];
  const args = [
    '-accel',
    'tcg',
    ...machine,
    '-m',
    String(o.memory ?? 512),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    ...(o.firmware === 'arm64' ? [] : ['-vga', 'none']),
    '-no-reboot',
    '-netdev',
    `tap,id=n0,ifname=${o.tap},script=no,downscript=no`,
    '-monitor',
    'none',
    '-serial',
    o.serialFile ? `file:${o.serialFile}` : 'stdio',
  ];
  if (o.firmware === 'uefi-pxe' || o.firmware === 'uefi-sb' || o.firmware === 'arm64') {
    // edk2's own PXE client: a NIC without an iPXE option ROM.
    args.push('-device', `virtio-net-pci,netdev=n0,mac=${mac},romfile=,bootindex=1`);
  } else {
    args.push('-device', `e1000,netdev=n0,mac=${mac},bootindex=1`);
  }
  if (o.firmware === 'bios') {
    // Put SeaBIOS and iPXE text on the serial port too.
    const sercon = path.join(o.workDir, 'sercon-port');
    writeFileSync(sercon, Buffer.from([0xf8, 0x03]));
    args.push('-fw_cfg', `name=etc/sercon-port,file=${sercon}`);
    args.push('-boot', 'order=nc,strict=on');
  } else {
    const flash = uefiFlash(o.firmware);
    const vars = path.join(o.workDir, 'VARS.fd');
    copyFileSync(flash.vars, vars);
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${flash.code}`);
    args.push('-drive', `if=pflash,format=raw,unit=1,file=${vars}`);
  }
  if (o.disk) {
    // The arm64 virt machine has no IDE.
    const dev = o.firmware === 'arm64' ? 'virtio-blk-pci' : 'ide-hd';
    args.push('-drive', `file=${o.disk},format=raw,if=none,id=d0`, '-device', `${dev},drive=d0,bootindex=2`);
  }
  return args;
}

/**
 * Starts a QEMU node on the lab switch and resolves with its exit code. The lab must be up.
 * The tap port is removed when the node stops.
 */
export async function labNode(o: NodeOptions): Promise<number> {
  requireRoot('lab node');
  const n = labNames(o.lab);
  if (!netnsExists(n.netns)) throw new BootboxError('LAB_FAILED', `lab "${o.lab}" is not up (run: bootbox lab up)`);
  const tap = `bt-${o.nodeName}`.slice(0, 15);
  if (linkExists(tap, n.netns)) throw new BootboxError('LAB_FAILED', `node "${o.nodeName}" is already running`);
  ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap'], n.netns);
  ip(['link', 'set', tap, 'master', n.bridge, 'up'], n.netns);
  const workDir = mkdtempSync(path.join(os.tmpdir(), `bootbox-node-${o.nodeName}-`));
  const runDir = labRunDir(o.lab);
  mkdirSync(runDir, { recursive: true });
  const pidFile = path.join(runDir, `${o.nodeName}.pid`);
  try {
    const args = ['netns', 'exec', n.netns, qemuBinary(o.firmware), ...qemuArgs({ ...o, tap, workDir })];
    const child = spawn('ip', args, { stdio: ['ignore', 'inherit', 'inherit'] });
    if (child.pid) writeFileSync(pidFile, String(child.pid));
    const stop = () => child.kill('SIGTERM');
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const code = await new Promise<number>((resolve, reject) => {
      child.on('error', (e) => reject(new BootboxError('LAB_FAILED', `cannot start QEMU: ${e.message}`)));
      child.on('exit', (c, sig) => resolve(c ?? (sig ? 0 : 1)));
    });
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    return code;
  } finally {
    rmSync(pidFile, { force: true });
    rmSync(workDir, { recursive: true, force: true });
    if (linkExists(tap, n.netns)) ip(['link', 'del', tap], n.netns);
  }
}
