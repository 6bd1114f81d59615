/**
 * Finding the image volume: block devices that carry an NTFS or exFAT filesystem, with
 * their label, UUID, size, whether they are removable or write-protected, and where they
 * are mounted.
 *
 * Sources, each parsed by a pure function here:
 * - `lsblk -J -b` (util-linux): the device tree, sizes, RM/HOTPLUG/RO flags, MAJ:MIN.
 *   systeminformation's `blockDevices()` is a thinner view of the same lsblk call (no RO,
 *   no MAJ:MIN), so the board asks lsblk directly.
 * - `blkid -c /dev/null -o export`: filesystem type, label and UUID read from the devices
 *   themselves. lsblk takes those from the udev database, and a board without udev (a
 *   minimal root filesystem, a container) gets nulls there; blkid always answers.
 * - `/proc/self/mountinfo`: what is mounted where, including FUSE mounts (`fuseblk`).
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { DecodeError } from '../../firmware/core/errors.ts';

/** The filesystems an image volume may have. */
export type VolumeFsType = 'ntfs' | 'exfat';

/** One node of lsblk's device tree, flattened. */
export interface BlockDevice {
  /** Kernel name: `sda1`, `mmcblk0p1`, `loop0`. */
  name: string;
  /** Device node: `/dev/sda1`. */
  path: string;
  /** `major:minor`, e.g. `8:1`. */
  majMin?: string;
  /** lsblk TYPE: disk, part, loop, rom, crypt … */
  type: string;
  /** Filesystem type as lsblk (udev) knows it; undefined without udev. */
  fsType?: string;
  label?: string;
  uuid?: string;
  /** Bytes. */
  size: number;
  /** RM or HOTPLUG: a USB stick or drive, an SD card in a reader. */
  removable: boolean;
  /** The device itself is write-protected (RO). */
  readOnly: boolean;
  /** The kernel name of the disk a partition belongs to. */
  parent?: string;
  mountpoint?: string;
}

/** One line of /proc/self/mountinfo (proc(5), "/proc/pid/mountinfo"). */
export interface MountEntry {
  mountId: number;
  parentId: number;
  majMin: string;
  root: string;
  mountpoint: string;
  /** Per-mount options (`rw`/`ro`, `nosuid` …). */
  options: string[];
  fsType: string;
  source: string;
  /** Per-superblock options (`ro` when the filesystem itself went read-only). */
  superOptions: string[];
}

/** An NTFS or exFAT filesystem on a block device. */
export interface DetectedVolume {
  device: string;
  name: string;
  majMin?: string;
  fsType: VolumeFsType;
  /** Empty when the filesystem has no label. */
  label: string;
  /** Empty when unknown. */
  uuid: string;
  size: number;
  removable: boolean;
  /** The device is write-protected (a mount of it can only be read-only). */
  readOnly: boolean;
  type: string;
  /** Where it is mounted now (the first mount when there are several). */
  mountedAt?: string;
}

/** lsblk columns the board asks for (lsblk(8), "--output"). */
export const LSBLK_COLUMNS = 'NAME,PATH,MAJ:MIN,TYPE,FSTYPE,LABEL,UUID,SIZE,RM,HOTPLUG,RO,MOUNTPOINT,PKNAME';

/** blkid TYPE / lsblk FSTYPE values that are an image volume's filesystem. */
export function normaliseFsType(s: string | undefined | null): VolumeFsType | undefined {
  switch ((s ?? '').toLowerCase()) {
    case 'ntfs':
    case 'ntfs3':
    case 'ntfs-3g':
      return 'ntfs';
    case 'exfat':
    case 'exfat-fuse':
      return 'exfat';
    default:
      return undefined;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

// util-linux before 2.37 prints every JSON value as a string ("size":"67108864", "rm":"0");
// later versions print numbers and booleans. Both are accepted.
const flag = (v: unknown): boolean => v === true || v === 1 || v === '1' || v === 'true';
const num = (v: unknown): number => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : Number.NaN;
  return Number.isFinite(n) ? n : 0;
};

/** Parses `lsblk -J -b -o <LSBLK_COLUMNS>` into a flat list (children after their parent). */
export function parseLsblk(json: string): BlockDevice[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (e) {
    throw new DecodeError('lsblk-json', `lsblk output is not JSON: ${(e as Error).message}`);
  }
  const top = (doc as { blockdevices?: unknown })?.blockdevices;
  if (!Array.isArray(top)) throw new DecodeError('lsblk-shape', 'lsblk output has no "blockdevices" array');
  const out: BlockDevice[] = [];
  const walk = (nodes: unknown[], parent: BlockDevice | undefined) => {
    for (const n of nodes) {
      if (typeof n !== 'object' || n === null) continue;
      const o = n as Record<string, unknown>;
      const name = str(o.name);
      if (!name) continue;
      const dev: BlockDevice = {
        name,
        path: str(o.path) ?? `/dev/${name}`,
        type: str(o.type) ?? 'unknown',
        size: num(o.size),
        removable: flag(o.rm) || flag(o.hotplug) || (parent?.removable ?? false),
        readOnly: flag(o.ro),
      };
      const majMin = str(o['maj:min']);
      if (majMin) dev.majMin = majMin;
      const fsType = str(o.fstype);
      if (fsType) dev.fsType = fsType;
      const label = str(o.label);
      if (label) dev.label = label;
      const uuid = str(o.uuid);
      if (uuid) dev.uuid = uuid;
      const pk = str(o.pkname) ?? parent?.name;
      if (pk) dev.parent = pk;
      const mp = str(o.mountpoint);
      if (mp) dev.mountpoint = mp;
      out.push(dev);
      if (Array.isArray(o.children)) walk(o.children, dev);
    }
  };
  walk(top, undefined);
  return out;
}

/**
 * Parses `blkid -o export` output: one block of KEY=value lines per device, blocks
 * separated by blank lines, each starting with DEVNAME. Keyed by DEVNAME.
 */
export function parseBlkidExport(text: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') {
      cur = undefined;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const k = line.slice(0, eq);
    // blkid(8) -o export: values are escaped for a shell (`\ ` for a space, `\\`).
    const v = line.slice(eq + 1).replace(/\\(.)/g, '$1');
    if (k === 'DEVNAME') {
      cur = { DEVNAME: v };
      out.set(v, cur);
    } else if (cur) {
      cur[k] = v;
    }
  }
  return out;
}

// proc(5): mountinfo escapes space, tab, newline and backslash as \040, \011, \012, \134.
const unescapeMount = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Parses /proc/<pid>/mountinfo (proc(5)). Malformed lines are skipped. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    // <id> <parent> <maj:min> <root> <mountpoint> <options> [optional fields…] - <fstype> <source> <super options>
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const a = line.slice(0, sep).split(' ');
    const b = line.slice(sep + 3).split(' ');
    if (a.length < 6 || b.length < 2) continue;
    out.push({
      mountId: Number(a[0]),
      parentId: Number(a[1]),
      majMin: a[2]!,
      root: unescapeMount(a[3]!),
      mountpoint: unescapeMount(a[4]!),
      options: a[5]!.split(','),
      fsType: b[0]!,
      source: unescapeMount(b[1]!),
      superOptions: (b[2] ?? '').split(',').filter((x) => x !== ''),
    });
  }
  return out;
}

/** Whether a mount can only be read: per-mount `ro`, or the filesystem itself went read-only. */
export function isReadOnlyMount(m: MountEntry): boolean {
  return m.options.includes('ro') || m.superOptions.includes('ro');
}

/** The mounts of a device: same MAJ:MIN (kernel and fuseblk mounts), or the device path as source. */
export function mountsOf(mounts: MountEntry[], dev: { path: string; majMin?: string }): MountEntry[] {
  return mounts.filter((m) => (dev.majMin !== undefined && m.majMin === dev.majMin) || m.source === dev.path);
}

/** The last mount at a directory (the one that is visible there), if any. */
export function mountAt(mounts: MountEntry[], dir: string): MountEntry | undefined {
  let found: MountEntry | undefined;
  for (const m of mounts) if (m.mountpoint === dir) found = m;
  return found;
}

/** Filesystem names the kernel can mount (/proc/filesystems, proc(5)). */
export function parseProcFilesystems(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const name = line.split('\t').pop()?.trim();
    if (name) out.add(name);
  }
  return out;
}

/**
 * Joins lsblk's devices with blkid's probe results and the mount table, and keeps the
 * NTFS and exFAT filesystems. blkid wins for type, label and UUID (it reads the device);
 * lsblk fills in what blkid did not report.
 */
export function mergeVolumes(
  devices: BlockDevice[],
  probes: Map<string, Record<string, string>>,
  mounts: MountEntry[],
): DetectedVolume[] {
  const out: DetectedVolume[] = [];
  const seen = new Set<string>();
  for (const d of devices) {
    if (seen.has(d.path)) continue;
    seen.add(d.path);
    const p = probes.get(d.path);
    const fsType = normaliseFsType(p?.TYPE ?? d.fsType);
    if (!fsType) continue;
    const mine = mountsOf(mounts, d);
    const v: DetectedVolume = {
      device: d.path,
      name: d.name,
      fsType,
      label: p?.LABEL ?? d.label ?? '',
      uuid: p?.UUID ?? d.uuid ?? '',
      size: d.size,
      removable: d.removable,
      readOnly: d.readOnly,
      type: d.type,
    };
    if (d.majMin) v.majMin = d.majMin;
    const mountedAt = mine[0]?.mountpoint ?? d.mountpoint;
    if (mountedAt) v.mountedAt = mountedAt;
    out.push(v);
  }
  return out;
}

/**
 * Picks the image volume: by device when one is configured (path or its real path), else
 * by label. Labels compare exactly first, then case-insensitively (Windows shows and
 * matches labels without regard to case). Several matches: the first by device name.
 */
export function pickVolume(
  volumes: DetectedVolume[],
  want: { label?: string; device?: string; deviceRealPath?: string },
): DetectedVolume | undefined {
  const byName = [...volumes].sort((a, b) => a.device.localeCompare(b.device));
  if (want.device !== undefined) {
    return byName.find((v) => v.device === want.device || v.device === want.deviceRealPath);
  }
  const label = want.label ?? '';
  return byName.find((v) => v.label === label) ?? byName.find((v) => v.label.toLowerCase() === label.toLowerCase());
}

// ---------------------------------------------------------------------------------------
// I/O

/** Where the system tools live, whatever PATH the service was started with. */
const TOOL_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':');

export interface ToolResult {
  stdout: string;
  stderr: string;
}

/** A failed tool run: the command, its exit code (or signal) and what it printed. */
export class ToolError extends Error {
  readonly exitCode: number | undefined;
  readonly stderr: string;
  readonly stdout: string;
  readonly missing: boolean;
  constructor(
    cmd: string,
    e: { code?: unknown; signal?: unknown; stderr?: unknown; stdout?: unknown; message: string },
  ) {
    const stderr = typeof e.stderr === 'string' ? e.stderr.trim() : '';
    const missing = e.code === 'ENOENT';
    const how = missing
      ? 'is not installed'
      : typeof e.code === 'number'
        ? `exited with ${e.code}`
        : e.signal
          ? `was killed (${String(e.signal)})`
          : `failed (${e.message})`;
    super(`${cmd} ${how}${stderr ? `: ${stderr.split('\n').slice(-3).join(' / ')}` : ''}`);
    this.name = 'ToolError';
    this.exitCode = typeof e.code === 'number' ? e.code : undefined;
    this.stderr = stderr;
    this.stdout = typeof e.stdout === 'string' ? e.stdout : '';
    this.missing = missing;
  }
}

/** Runs a system tool without a shell. Rejects with a ToolError on a non-zero exit or timeout. */
export function runTool(cmd: string, args: string[], timeoutMs = 15_000): Promise<ToolResult> {
  const env = { ...process.env, PATH: `${process.env.PATH ? `${process.env.PATH}:` : ''}${TOOL_PATH}`, LC_ALL: 'C' };
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', env, maxBuffer: 4 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) reject(new ToolError(cmd, { ...err, message: err.message, stdout, stderr }));
        else resolve({ stdout, stderr });
      },
    );
  });
}

export async function readMountinfo(): Promise<MountEntry[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** lsblk's device tree. */
export async function listBlockDevices(): Promise<BlockDevice[]> {
  const { stdout } = await runTool('lsblk', ['-J', '-b', '-o', LSBLK_COLUMNS]);
  return parseLsblk(stdout);
}

/** blkid's view of every device in /proc/partitions, read afresh (no cache file). */
export async function probeFilesystems(): Promise<Map<string, Record<string, string>>> {
  try {
    const { stdout } = await runTool('blkid', ['-c', '/dev/null', '-o', 'export']);
    return parseBlkidExport(stdout);
  } catch (e) {
    // blkid(8): exit code 2 means no device has any tag (nothing to report).
    if (e instanceof ToolError && e.exitCode === 2) return new Map();
    throw e;
  }
}

/** Every NTFS or exFAT filesystem on a block device of this machine. */
export async function detectVolumes(): Promise<DetectedVolume[]> {
  const [devices, probes, mounts] = await Promise.all([listBlockDevices(), probeFilesystems(), readMountinfo()]);
  return mergeVolumes(devices, probes, mounts);
}

/** The real path of a device node (symlinks such as /dev/disk/by-label/X resolved), or the path itself. */
export async function resolveDevice(dev: string): Promise<string> {
  try {
    return await realpath(dev);
  } catch {
    return dev;
  }
}

/**
 * What identifies this insertion of a device: its size in sectors and the disk sequence
 * number, which the kernel (5.15+) bumps whenever the disk or its medium changes (a loop
 * device re-attached, a card swapped in a reader). Undefined when the device is gone or
 * has no medium (size 0).
 */
export async function deviceInsertion(device: string): Promise<{ sectors: number; diskseq?: number } | undefined> {
  const real = await resolveDevice(device);
  const sys = `/sys/class/block/${path.basename(real)}`;
  const read = async (f: string) => {
    try {
      return (await readFile(f, 'utf8')).trim();
    } catch {
      return undefined;
    }
  };
  const sectors = Number((await read(`${sys}/size`)) ?? 0);
  if (!Number.isFinite(sectors) || sectors <= 0) return undefined;
  // A partition's directory sits inside its disk's, which holds diskseq.
  const seq = (await read(`${sys}/diskseq`)) ?? (await read(`${sys}/../diskseq`));
  const diskseq = seq !== undefined && /^\d+$/.test(seq) ? Number(seq) : undefined;
  return diskseq === undefined ? { sectors } : { sectors, diskseq };
}

/**
 * A cheap fingerprint of the block devices present: /proc/partitions plus every disk's
 * diskseq. It changes when a drive or medium comes or goes, so a caller waiting for a
 * volume can skip the full (lsblk + blkid) look while it stays the same. It does not
 * change when a present drive is reformatted or relabelled.
 */
export async function blockDevicesFingerprint(): Promise<string> {
  const parts: string[] = [];
  try {
    parts.push(await readFile('/proc/partitions', 'utf8'));
  } catch {
    parts.push('-');
  }
  let disks: string[] = [];
  try {
    disks = (await readdir('/sys/block')).sort();
  } catch {}
  for (const d of disks) {
    try {
      parts.push(`${d}=${(await readFile(`/sys/block/${d}/diskseq`, 'utf8')).trim()}`);
    } catch {
      parts.push(`${d}=?`);
    }
  }
  return parts.join('\n');
}
