/**
 * What the box asks a node's agent to do, as plain data (`<root>nodes/<name>/cmd`). Pure: the
 * box builds the action with these functions and the agent rebuilds the same plan from the
 * action's `os` and `disk` and refuses any action whose `steps` differ, so a message on the
 * node topic can never make an agent run a command of the sender's choosing.
 *
 * wipe-and-reboot makes the node's disk unbootable and restarts it, so its firmware falls
 * through to the network boot and the box (where the machine is already reimage-requested)
 * deploys it:
 * - Linux: `wipefs --all --force DISK` erases every signature the kernel, the firmware and
 *   partitioners look for on the whole disk: the protective MBR's 0x55AA, the primary GPT header
 *   and the backup GPT header at the disk's end (`--force`: the disk holds the running system,
 *   which wipefs otherwise refuses). Then `dd` zeroes the first MiB (MBR boot code, primary
 *   GPT, the BIOS boot gap), `sync`, `reboot`. `sgdisk --zap-all` would do the same for the
 *   table but gdisk is not on every image; every step here is in util-linux or coreutils, and
 *   each runs without a shell.
 * - Windows: a diskpart script (select disk N, clean, create partition primary, assign
 *   letter=C, exit) run by `diskpart /s`, then `shutdown /r /t 5`. diskpart refuses to clean
 *   the disk the running Windows boots from, so on the OS disk this works from Windows PE
 *   (the box also serves the script as wipe.cmd for that case, see windowsWipeScript).
 */
import type { Transaction } from './command-schemas.ts';

export type NodeOs = 'windows' | 'linux';

export const WIPE_ACTION = 'wipe-and-reboot';
export const NODE_ACTIONS = [WIPE_ACTION] as const;
export type NodeActionName = (typeof NODE_ACTIONS)[number];

/** diskpart's number of the OS disk when none is configured (the first disk the BIOS/UEFI lists). */
export const DEFAULT_WINDOWS_DISK = 0;
/** The OS disk of a Linux node when none is configured. */
export const DEFAULT_LINUX_DISK = '/dev/sda';

/** One step of a plan: a command without a shell, or a diskpart script run as `diskpart /s FILE`. */
export type NodeStep = { run: string[] } | { diskpart: string[] };

export interface WipeAction {
  action: typeof WIPE_ACTION;
  /** The box id of the sender (the agent checks it against the topic). */
  box: string;
  transaction: Transaction;
  /** ISO 8601; the agent refuses an action older (or newer) than a few minutes. */
  ts: string;
  os: NodeOs;
  /** Windows: diskpart disk number; Linux: the block device. */
  disk: number | string;
  steps: NodeStep[];
}

const LINUX_DISK_RE = /^\/dev\/[A-Za-z0-9][A-Za-z0-9/_.:+-]*$/;
const MAX_WINDOWS_DISK = 127;

/** What is wrong with a disk for an OS, or undefined. */
export function diskProblem(os: NodeOs, disk: unknown): string | undefined {
  if (os === 'windows') {
    return typeof disk === 'number' && Number.isInteger(disk) && disk >= 0 && disk <= MAX_WINDOWS_DISK
      ? undefined
      : `a Windows disk is a diskpart disk number from 0 to ${MAX_WINDOWS_DISK} (got ${JSON.stringify(disk)})`;
  }
  return typeof disk === 'string' && LINUX_DISK_RE.test(disk) && !disk.split('/').includes('..')
    ? undefined
    : `a Linux disk is a block device path under /dev (got ${JSON.stringify(disk)})`;
}

export function defaultDisk(os: NodeOs): number | string {
  return os === 'windows' ? DEFAULT_WINDOWS_DISK : DEFAULT_LINUX_DISK;
}

/** The diskpart script that empties disk N and leaves one primary partition as C:. */
export function diskpartWipeLines(disk: number = DEFAULT_WINDOWS_DISK): string[] {
  return [`select disk ${disk}`, 'clean', 'create partition primary', 'assign letter=C', 'exit'];
}

/** The steps of wipe-and-reboot for an OS and disk (checked by diskProblem first). */
export function wipeSteps(os: NodeOs, disk: number | string): NodeStep[] {
  if (os === 'windows') {
    return [{ diskpart: diskpartWipeLines(disk as number) }, { run: ['shutdown', '/r', '/t', '5'] }];
  }
  const dev = disk as string;
  return [
    { run: ['wipefs', '--all', '--force', dev] },
    { run: ['dd', 'if=/dev/zero', `of=${dev}`, 'bs=1M', 'count=1', 'conv=fsync'] },
    { run: ['sync'] },
    { run: ['reboot'] },
  ];
}

export interface WipeActionInput {
  box: string;
  transaction: Transaction;
  ts: string;
  os: NodeOs;
  /** The configured OS disk; the OS's default otherwise. */
  disk?: number | string;
}

/** The wipe-and-reboot message for a node, or what is wrong with its disk. */
export function buildWipeAction(i: WipeActionInput): WipeAction | string {
  const disk = i.disk ?? defaultDisk(i.os);
  const problem = diskProblem(i.os, disk);
  if (problem) return problem;
  return {
    action: WIPE_ACTION,
    box: i.box,
    transaction: i.transaction,
    ts: i.ts,
    os: i.os,
    disk,
    steps: wipeSteps(i.os, disk),
  };
}

const SAFE_ARG = /^[A-Za-z0-9_/.:=@%+,-]+$/;

/** An argument as an admin would type it in a POSIX shell. */
export function quoteArg(a: string): string {
  return SAFE_ARG.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** How a step's command reads in plans and reports (`diskpart /s <script>` for a script). */
export function stepCommand(s: NodeStep): string {
  return 'run' in s ? s.run.map(quoteArg).join(' ') : 'diskpart /s <script>';
}

/**
 * The plan as text, one line each, in a stable format (the agent prints it with --dry-run):
 *
 *   plan wipe-and-reboot box=B transaction=T os=linux disk=/dev/sda
 *   run: wipefs --all --force /dev/sda
 *   diskpart: select disk 0          (each line of a diskpart script, then)
 *   run: diskpart /s <script>
 */
export function formatPlan(a: WipeAction): string[] {
  const lines = [`plan ${a.action} box=${a.box} transaction=${a.transaction} os=${a.os} disk=${a.disk}`];
  for (const s of a.steps) {
    if ('diskpart' in s) for (const l of s.diskpart) lines.push(`diskpart: ${l}`);
    lines.push(`run: ${stepCommand(s)}`);
  }
  return lines;
}

const CMD_SAFE = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * wipe.cmd: a Windows batch file that writes the diskpart script to %TEMP%, runs it and
 * restarts (CRLF line ends, as cmd.exe expects). Served by the box for Windows PE and for
 * admins who run the wipe by hand; `name` and `box` only label the file.
 */
export function windowsWipeScript(opts: { disk?: number; name?: string; box?: string } = {}): string {
  const disk = opts.disk ?? DEFAULT_WINDOWS_DISK;
  const problem = diskProblem('windows', disk);
  if (problem) throw new RangeError(problem);
  const label = [
    opts.name && CMD_SAFE.test(opts.name) ? `for ${opts.name}` : '',
    opts.box && CMD_SAFE.test(opts.box) ? `from bootbox ${opts.box}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  const lines = [
    '@echo off',
    `rem wipe-and-reboot${label ? ` ${label}` : ''}: erases disk ${disk}, then restarts so the node boots from the network.`,
    'set "BOOTBOX_WIPE=%TEMP%\\bootbox-wipe.txt"',
    '(',
    ...diskpartWipeLines(disk).map((l) => `echo ${l}`),
    ') > "%BOOTBOX_WIPE%"',
    'diskpart /s "%BOOTBOX_WIPE%"',
    'if errorlevel 1 exit /b 1',
    'shutdown /r /t 5',
  ];
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * The OS of an image, when the catalog does not say: Windows when its name or title has
 * "win" or "windows" as a word or followed by a version (win11, windows-2022, "Windows
 * Server"), else Linux. An explicit `os` wins.
 */
export function guessImageOs(image: string | undefined, meta: { title?: string; os?: string } = {}): NodeOs {
  if (meta.os === 'windows' || meta.os === 'linux') return meta.os;
  const re = /(^|[^a-z])win(dows)?(?![a-z])/i;
  return re.test(image ?? '') || re.test(meta.title ?? '') ? 'windows' : 'linux';
}
