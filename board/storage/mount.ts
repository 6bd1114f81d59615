/**
 * Mounting and unmounting the image volume.
 *
 * The kernel's own drivers (exfat, ntfs3; Linux 5.7 / 5.15) are preferred: faster, and no
 * daemon to die. When the kernel lacks them (no module, `modprobe` fails) the FUSE drivers
 * take over: ntfs-3g for NTFS, mount.exfat-fuse (exfat-fuse) for exFAT. Which one served is
 * recorded, because a FUSE mount can fail in a way a kernel mount cannot (its daemon exits
 * and the mount answers ENOTCONN).
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { BootboxError } from '../../firmware/core/errors.ts';
import {
  isReadOnlyMount,
  type MountEntry,
  mountAt,
  parseProcFilesystems,
  readMountinfo,
  resolveDevice,
  runTool,
  ToolError,
  type VolumeFsType,
} from './detect.ts';

export type MountDriver = 'kernel' | 'fuse';

export interface MountOptions {
  /** The volume's label; names the mount directory. */
  label: string;
  fsType: VolumeFsType;
  /** Directory that holds the mount directories. */
  root?: string;
  /** Mount read-only even when the device could be written. */
  readOnly?: boolean;
  /** `auto` (default): the kernel driver when there is one, else FUSE. */
  driver?: 'auto' | MountDriver;
}

export interface MountedVolume {
  device: string;
  fsType: VolumeFsType;
  mountpoint: string;
  driver: MountDriver;
  /** The mount can only be read (asked for, write-protected device, or a driver that fell back). */
  readOnly: boolean;
}

export const DEFAULT_MOUNT_ROOT = '/media/bootbox';

/** How long a mount helper may take (ntfs-3g replays the journal of an unclean volume). */
const MOUNT_TIMEOUT_MS = 120_000;
const UNMOUNT_TIMEOUT_MS = 60_000;

/** The kernel's name for each filesystem's driver (also its module name). */
const KERNEL_FS: Record<VolumeFsType, string> = { exfat: 'exfat', ntfs: 'ntfs3' };

/** Mount options for every image volume: no device files, no set-uid programs, no atime writes. */
const BASE_OPTIONS = ['nosuid', 'nodev', 'noatime'];

/**
 * A safe directory name from a volume label: letters, digits, `.`, `_` and `-` are kept,
 * anything else becomes `_`; no leading dot (so never `.` or `..`); at most 64 characters;
 * `volume` when nothing is left.
 */
export function sanitiseLabel(label: string): string {
  const s = label
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^[._]+/, '')
    .replace(/_+$/, '')
    .slice(0, 64);
  return s === '' ? 'volume' : s;
}

/** Whether the running kernel can mount this filesystem itself (a module is loaded quietly if needed). */
export async function kernelHasDriver(fsType: VolumeFsType): Promise<boolean> {
  const name = KERNEL_FS[fsType];
  const has = async () => {
    try {
      return parseProcFilesystems(await readFile('/proc/filesystems', 'utf8')).has(name);
    } catch {
      return false;
    }
  };
  if (await has()) return true;
  try {
    await runTool('modprobe', ['-q', name], 15_000);
  } catch {
    return false;
  }
  return has();
}

async function mountedHere(mp: string): Promise<MountEntry | undefined> {
  return mountAt(await readMountinfo(), mp);
}

const mountFailed = (dev: string, mp: string, why: string) =>
  new BootboxError('VOLUME_MOUNT_FAILED', `cannot mount ${dev} at ${mp}: ${why}`, { device: dev, mountpoint: mp });

/**
 * Mounts `dev` at `<root>/<sanitised label>` and tells how (driver, read-only or not).
 * Throws VOLUME_MOUNT_FAILED, naming the device, when no driver could mount it or the
 * directory is already a mount point of something else.
 */
export async function mountVolume(dev: string, opts: MountOptions): Promise<MountedVolume> {
  const root = opts.root ?? DEFAULT_MOUNT_ROOT;
  const mp = path.join(root, sanitiseLabel(opts.label));
  const already = await mountedHere(mp);
  if (already) {
    const real = await resolveDevice(dev);
    if (already.source !== dev && already.source !== real) {
      throw mountFailed(dev, mp, `that directory is already a mount point of ${already.source} (${already.fsType})`);
    }
    throw mountFailed(dev, mp, 'it is already mounted there');
  }
  await mkdir(mp, { recursive: true, mode: 0o755 });

  const want = opts.driver ?? 'auto';
  const tried: string[] = [];
  const rwro = opts.readOnly ? 'ro' : 'rw';
  const options = [rwro, ...BASE_OPTIONS].join(',');

  if (want !== 'fuse') {
    if (await kernelHasDriver(opts.fsType)) {
      try {
        // -i: never hand over to /sbin/mount.<type>, which for ntfs and exfat is the FUSE helper.
        // mount(8) retries read-only by itself when the device is write-protected.
        await runTool('mount', ['-i', '-t', KERNEL_FS[opts.fsType], '-o', options, dev, mp], MOUNT_TIMEOUT_MS);
        return await describe(dev, opts.fsType, mp, 'kernel');
      } catch (e) {
        tried.push(`kernel ${KERNEL_FS[opts.fsType]}: ${(e as Error).message}`);
      }
    } else {
      tried.push(`kernel: this kernel has no ${KERNEL_FS[opts.fsType]} driver`);
    }
    if (want === 'kernel') throw mountFailed(dev, mp, tried.join('; '));
  }

  // Both helpers daemonise once the mount is up, and fall back to read-only by themselves
  // when the device is write-protected ("Could not mount read-write, trying read-only";
  // "'<dev>' is write-protected, mounting read-only").
  const helper = opts.fsType === 'ntfs' ? 'ntfs-3g' : 'mount.exfat-fuse';
  try {
    await runTool(helper, ['-o', options, dev, mp], MOUNT_TIMEOUT_MS);
    return await describe(dev, opts.fsType, mp, 'fuse');
  } catch (e) {
    tried.push(`${helper}: ${(e as Error).message}`);
  }
  throw mountFailed(dev, mp, tried.join('; '));
}

async function describe(dev: string, fsType: VolumeFsType, mp: string, driver: MountDriver): Promise<MountedVolume> {
  const m = await mountedHere(mp);
  if (!m) throw mountFailed(dev, mp, `${driver} driver reported success but nothing is mounted there`);
  return { device: dev, fsType, mountpoint: mp, driver, readOnly: isReadOnlyMount(m) };
}

/**
 * Makes a volume mounted at `from` (by hand, by another tool) visible at `to` as well, with
 * a bind mount (mount(8) --bind). A FUSE driver will not mount a device twice; a bind
 * shares the one mount.
 */
export async function bindVolume(from: string, to: string): Promise<MountEntry> {
  if (await mountedHere(to))
    throw new BootboxError('VOLUME_MOUNT_FAILED', `cannot bind ${from} at ${to}: ${to} is already a mount point`);
  await mkdir(to, { recursive: true, mode: 0o755 });
  try {
    await runTool('mount', ['--bind', from, to], MOUNT_TIMEOUT_MS);
  } catch (e) {
    throw new BootboxError('VOLUME_MOUNT_FAILED', `cannot bind ${from} at ${to}: ${(e as Error).message}`);
  }
  const m = await mountedHere(to);
  if (!m)
    throw new BootboxError(
      'VOLUME_MOUNT_FAILED',
      `cannot bind ${from} at ${to}: nothing is mounted there after mount --bind`,
    );
  return m;
}

export type UnmountMethod = 'umount' | 'fusermount' | 'lazy' | 'not-mounted';

/**
 * Unmounts whatever is mounted at `mp`: umount, then `fusermount3 -u` / `fusermount -u`
 * (FUSE mounts), then a lazy umount as the last resort (the mount leaves the tree now and
 * is released when its last user lets go; `lazy` goes there directly). Tells which one did it. Throws
 * VOLUME_MOUNT_FAILED only when all of them fail and the mount is still there.
 */
export async function unmountVolume(mp: string, opts: { lazy?: boolean } = {}): Promise<UnmountMethod> {
  if (!(await mountedHere(mp))) return 'not-mounted';
  const errors: string[] = [];
  const attempts: [UnmountMethod, string, string[]][] = [
    ['umount', 'umount', [mp]],
    ['fusermount', 'fusermount3', ['-u', mp]],
    ['fusermount', 'fusermount', ['-u', mp]],
    ['lazy', 'umount', ['-l', mp]],
  ];
  // A mount whose driver does not answer may make a plain umount wait for it: go lazy at once.
  if (opts.lazy) attempts.splice(0, 3);
  for (const [method, cmd, args] of attempts) {
    try {
      await runTool(cmd, args, UNMOUNT_TIMEOUT_MS);
    } catch (e) {
      if (!(e instanceof ToolError && e.missing)) errors.push((e as Error).message);
    }
    if (!(await mountedHere(mp))) return method;
  }
  throw new BootboxError('VOLUME_MOUNT_FAILED', `cannot unmount ${mp}: ${errors.join('; ')}`, { mountpoint: mp });
}
