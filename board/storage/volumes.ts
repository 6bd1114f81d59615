/**
 * The image volume: the NTFS or exFAT drive someone plugs into the box.
 *
 * A VolumeManager finds it (by label, or by device), mounts it (or adopts a mount that is
 * already there), and then watches it every `pollMs`:
 * - the drive goes away (the device has no medium, or another medium is in it);
 * - the mount goes away (someone unmounted it by hand: the drive is then left alone
 *   until it is plugged in again, or until `rescan()`);
 * - the mount stops answering (ENOTCONN when a FUSE driver's process dies, EIO, or no
 *   answer at all): the dead mount is cleared and the drive mounted again;
 * - the filesystem turns read-only (a driver's reaction to an error).
 * Each change is an event and a new `state()`. Nothing thrown inside the loop escapes it:
 * failures are logged, reported in `state()`, and retried with a growing delay.
 */
import { rmdir, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../../firmware/core/clock.ts';
import type { Logger } from '../../firmware/core/logger.ts';
import {
  blockDevicesFingerprint,
  type DetectedVolume,
  detectVolumes,
  deviceInsertion,
  isReadOnlyMount,
  type MountEntry,
  mountAt,
  mountsOf,
  pickVolume,
  readMountinfo,
  resolveDevice,
  type VolumeFsType,
} from './detect.ts';
import {
  bindVolume,
  DEFAULT_MOUNT_ROOT,
  type MountDriver,
  mountVolume,
  sanitiseLabel,
  unmountVolume,
} from './mount.ts';

export type VolumeStateName = 'attached' | 'missing' | 'unavailable';

/** For the catalog and the UI: is the image volume there, and if not, why. */
export type VolumeStatus = { state: 'attached' } | { state: 'missing' | 'unavailable'; reason: string };

export interface VolumeEventMap {
  /** The image volume is mounted and answering. */
  'volume.attached': {
    ts: string;
    label: string;
    device: string;
    fsType: VolumeFsType;
    uuid: string;
    mountpoint: string;
    driver: MountDriver;
    readOnly: boolean;
    /** It was already mounted (by an earlier run of the box, or by hand elsewhere, then bound here). */
    adopted: boolean;
  };
  /** The image volume went away; `state` is what `state()` says now. */
  'volume.removed': {
    ts: string;
    label: string;
    device: string;
    mountpoint: string;
    reason: string;
    state: 'missing' | 'unavailable';
  };
  /** The image volume can only be read (from the start, or since a filesystem error). */
  'volume.readonly': { ts: string; label: string; device: string; mountpoint: string; reason: string };
  /** `state()` changed (every transition, including mount failures that never attached). */
  'volume.state': { ts: string; state: VolumeStateName; reason?: string };
}

export interface VolumeEventSink {
  emit<K extends keyof VolumeEventMap>(type: K, event: VolumeEventMap[K]): void;
}

export interface VolumeManagerOptions {
  /** The filesystem label of the image volume (default `BOOTBOX`). */
  label?: string;
  /** Use this device instead of looking for the label (`/dev/sda1`, `/dev/disk/by-uuid/…`). */
  device?: string;
  /** Directory holding the mount directory `<root>/<label>` (default /media/bootbox). */
  root?: string;
  /** How often the volume is checked, ms (default 2000). */
  pollMs?: number;
  /** How long the mount may take to answer a statfs before it counts as not answering, ms (default 10000). */
  probeTimeoutMs?: number;
  /** Mount read-only. */
  readOnly?: boolean;
  /** `auto` (default): the kernel's driver when it has one, else FUSE. */
  driver?: 'auto' | MountDriver;
  /**
   * Unmount the volume on stop() (default true). Only the mount at `<root>/<label>` goes: a
   * mount made elsewhere by hand, which the manager bound there, stays.
   */
  unmountOnStop?: boolean;
  clock: Clock;
  log: Logger;
  events?: VolumeEventSink;
}

export interface AttachedVolume {
  label: string;
  device: string;
  fsType: VolumeFsType;
  uuid: string;
  /** Size of the device, bytes. */
  size: number;
  removable: boolean;
  mountpoint: string;
  driver: MountDriver;
  readOnly: boolean;
  adopted: boolean;
  /** When it was attached (ISO 8601). */
  since: string;
}

export interface SpaceInfo {
  /** Bytes an unprivileged writer can still use. */
  free: number;
  total: number;
}

/** Free and total bytes of the filesystem holding `dir` (statfs(2)). */
export async function freeSpace(dir: string): Promise<SpaceInfo> {
  const s = await statfs(dir);
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
}

export const DEFAULT_VOLUME_LABEL = 'BOOTBOX';
const MAX_BACKOFF_MS = 60_000;
/** While nothing changes in the device list, a full look (lsblk + blkid) happens this often, ms. */
const FULL_LOOK_MS = 30_000;

/** errno codes that mean a mount is there but no longer works. */
const DEAD_MOUNT_CODES = new Set(['ENOTCONN', 'EIO', 'ESTALE', 'ENXIO', 'ENODEV', 'ECONNABORTED', 'ETIMEDOUT']);

interface Current {
  vol: AttachedVolume;
  majMin?: string;
  insertion: string;
}

type Insertion = Awaited<ReturnType<typeof deviceInsertion>>;
const insertionKey = (i: NonNullable<Insertion>) => `${i.sectors}/${i.diskseq ?? '-'}`;

export class VolumeManager {
  private readonly o: VolumeManagerOptions;
  private cur: Current | undefined;
  private status: VolumeStatus = { state: 'missing', reason: 'the volume has not been looked for yet' };
  /** A drive unmounted by hand: left alone while this insertion of it stays. */
  private ejected: { device: string; insertion: string } | undefined;
  private failures = 0;
  private nextAttemptAt = 0;
  /** The device fingerprint when a full look last found nothing to mount, and when. */
  private idle: { fingerprint: string; at: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private started = false;
  private stopped = false;

  constructor(o: VolumeManagerOptions) {
    this.o = o;
  }

  private get label(): string {
    return this.o.label ?? DEFAULT_VOLUME_LABEL;
  }

  private get root(): string {
    return this.o.root ?? DEFAULT_MOUNT_ROOT;
  }

  /**
   * Where the volume is whenever it is attached: `<root>/<label>` (the configured label,
   * made safe as a directory name), also when it was picked by device or was already
   * mounted elsewhere. The image store lives here.
   */
  get mountpoint(): string {
    return path.join(this.root, sanitiseLabel(this.label));
  }

  private get pollMs(): number {
    return this.o.pollMs ?? 2000;
  }

  /** Looks for the volume once (so `state()` means something when this resolves), then keeps watching. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopped = false;
    await this.enqueue();
    this.schedule();
  }

  /** Stops watching; unmounts what this manager mounted unless told not to. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.chain;
    if (this.cur && (this.o.unmountOnStop ?? true)) {
      await this.lose('unavailable', 'the box stopped using the volume', { unmount: true });
    }
  }

  /** Looks again now, and forgets a drive that was unmounted by hand (it is mounted again if present). */
  async rescan(): Promise<void> {
    this.ejected = undefined;
    this.nextAttemptAt = 0;
    this.idle = undefined;
    await this.enqueue();
  }

  state(): VolumeStatus {
    return this.status;
  }

  /** The attached volume, without touching it. */
  volume(): AttachedVolume | undefined {
    return this.cur ? { ...this.cur.vol } : undefined;
  }

  /**
   * The attached volume with its free and total bytes, or undefined when there is none or
   * it does not answer (then it is checked again at once).
   */
  async current(): Promise<(AttachedVolume & SpaceInfo) | undefined> {
    const c = this.cur;
    if (!c) return undefined;
    try {
      return { ...c.vol, ...(await freeSpace(c.vol.mountpoint)) };
    } catch (e) {
      this.o.log.debug('statfs of the image volume failed', { mountpoint: c.vol.mountpoint, code: errCode(e) });
      void this.enqueue();
      return undefined;
    }
  }

  // ------------------------------------------------------------------------------------

  private schedule(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.enqueue().then(() => this.schedule());
    }, this.pollMs);
    this.timer.unref();
  }

  /** One check at a time, in order; never rejects. */
  private enqueue(): Promise<void> {
    this.chain = this.chain.then(async () => {
      if (this.stopped) return;
      try {
        if (this.cur) await this.watch(this.cur);
        else await this.find();
      } catch (e) {
        this.o.log.error('image volume check failed', { error: (e as Error).message });
      }
    });
    return this.chain;
  }

  private ts(): string {
    return this.o.clock.date().toISOString();
  }

  private setStatus(s: VolumeStatus): void {
    const prev = this.status;
    const reason = s.state === 'attached' ? undefined : s.reason;
    const prevReason = prev.state === 'attached' ? undefined : prev.reason;
    if (prev.state === s.state && prevReason === reason) return;
    this.status = s;
    // Attaching logs its own details.
    if (s.state !== 'attached') this.o.log.warn(`image volume ${s.state}`, { reason });
    const e: VolumeEventMap['volume.state'] = { ts: this.ts(), state: s.state };
    if (reason) e.reason = reason;
    this.o.events?.emit('volume.state', e);
  }

  private wanted(): string {
    return this.o.device
      ? `no NTFS or exFAT filesystem on ${this.o.device}`
      : `no NTFS or exFAT volume labelled "${this.label}" is attached`;
  }

  /** Not attached: look for the volume and mount it. */
  private async find(): Promise<void> {
    const now = this.o.clock.now();
    if (now < this.nextAttemptAt) return;
    // Nothing plugged in or pulled since the last look found nothing: no need to look again yet.
    const fingerprint = await blockDevicesFingerprint();
    if (this.idle && this.idle.fingerprint === fingerprint && now - this.idle.at < FULL_LOOK_MS) return;
    this.idle = undefined;
    let found: DetectedVolume | undefined;
    try {
      const volumes = await detectVolumes();
      const want: { label: string; device?: string; deviceRealPath?: string } = { label: this.label };
      if (this.o.device) {
        want.device = this.o.device;
        want.deviceRealPath = await resolveDevice(this.o.device);
      }
      found = pickVolume(volumes, want);
    } catch (e) {
      this.failed(`cannot list the block devices: ${(e as Error).message}`);
      return;
    }
    if (!found) {
      this.ejected = undefined;
      this.failures = 0;
      this.idle = { fingerprint, at: now };
      this.setStatus({ state: 'missing', reason: this.wanted() });
      return;
    }
    const ins = await deviceInsertion(found.device);
    if (!ins) {
      this.setStatus({ state: 'missing', reason: this.wanted() });
      return;
    }
    const insertion = insertionKey(ins);
    if (this.ejected) {
      if (this.ejected.device === found.device && this.ejected.insertion === insertion) {
        this.idle = { fingerprint, at: now };
        this.setStatus({
          state: 'missing',
          reason: `${found.device} was unmounted by hand; unplug and plug in the drive again to use it`,
        });
        return;
      }
      this.ejected = undefined;
    }

    const mp = this.mountpoint;
    const existing = await this.usableMount(found);
    if (existing) {
      // Mounted already: by an earlier run of the box (here), or by hand somewhere else,
      // which is then bound here too, so the images are always under the same path.
      let at = existing;
      if (existing.mountpoint !== mp) {
        try {
          at = await bindVolume(existing.mountpoint, mp);
        } catch (e) {
          this.failed(`the volume on ${found.device} is mounted at ${existing.mountpoint}: ${(e as Error).message}`);
          return;
        }
      }
      const driver: MountDriver = existing.fsType.startsWith('fuse') ? 'fuse' : 'kernel';
      this.attach(found, insertion, mp, driver, isReadOnlyMount(at), { adopted: true });
      return;
    }
    // Something else mounted where the volume goes: cleared when it is dead (an old drive's
    // FUSE mount); a live one makes mountVolume refuse, saying what is there.
    if (mountAt(await readMountinfo(), mp)) {
      const code = await this.probe(mp);
      if (code !== undefined) await this.clear(mp, code === 'ETIMEDOUT');
    }
    try {
      const m = await mountVolume(found.device, {
        label: this.label,
        fsType: found.fsType,
        root: this.root,
        readOnly: this.o.readOnly ?? false,
        driver: this.o.driver ?? 'auto',
      });
      this.attach(found, insertion, m.mountpoint, m.driver, m.readOnly, { adopted: false });
    } catch (e) {
      this.failed(`the volume "${found.label}" on ${found.device} could not be mounted: ${(e as Error).message}`);
    }
  }

  /** A mount of this device that answers, if there is one; dead ones are cleared away. */
  private async usableMount(v: DetectedVolume): Promise<MountEntry | undefined> {
    const dev: { path: string; majMin?: string } = { path: v.device };
    if (v.majMin) dev.majMin = v.majMin;
    const mp = this.mountpoint;
    const mounts = mountsOf(await readMountinfo(), dev).sort(
      (a, b) => Number(b.mountpoint === mp) - Number(a.mountpoint === mp),
    );
    for (const m of mounts) {
      const code = await this.probe(m.mountpoint);
      if (code === undefined) return m;
      this.o.log.warn('clearing a dead mount of the image volume', { mountpoint: m.mountpoint, code });
      await this.clear(m.mountpoint, code === 'ETIMEDOUT');
    }
    return undefined;
  }

  private attach(
    v: DetectedVolume,
    insertion: string,
    mountpoint: string,
    driver: MountDriver,
    readOnly: boolean,
    how: { adopted: boolean },
  ): void {
    const ts = this.ts();
    const vol: AttachedVolume = {
      label: v.label || this.label,
      device: v.device,
      fsType: v.fsType,
      uuid: v.uuid,
      size: v.size,
      removable: v.removable,
      mountpoint,
      driver,
      readOnly,
      adopted: how.adopted,
      since: ts,
    };
    const cur: Current = { vol, insertion };
    if (v.majMin) cur.majMin = v.majMin;
    this.cur = cur;
    this.failures = 0;
    this.nextAttemptAt = 0;
    this.idle = undefined;
    this.o.log.info('image volume mounted', {
      label: vol.label,
      device: vol.device,
      fsType: vol.fsType,
      mountpoint,
      driver,
      readOnly,
      adopted: how.adopted,
    });
    this.o.events?.emit('volume.attached', {
      ts,
      label: vol.label,
      device: vol.device,
      fsType: vol.fsType,
      uuid: vol.uuid,
      mountpoint,
      driver,
      readOnly,
      adopted: how.adopted,
    });
    this.setStatus({ state: 'attached' });
    if (readOnly) {
      const why = v.readOnly
        ? 'the drive is write-protected'
        : this.o.readOnly
          ? 'it is configured to be mounted read-only'
          : 'the driver would only mount it read-only (unclean or hibernated NTFS, or a damaged filesystem)';
      this.emitReadOnly(vol, why);
    }
  }

  private emitReadOnly(vol: AttachedVolume, reason: string): void {
    this.o.log.warn('image volume is read-only', { mountpoint: vol.mountpoint, reason });
    this.o.events?.emit('volume.readonly', {
      ts: this.ts(),
      label: vol.label,
      device: vol.device,
      mountpoint: vol.mountpoint,
      reason,
    });
  }

  /** Attached: is it still there and answering? */
  private async watch(c: Current): Promise<void> {
    const { device, mountpoint } = c.vol;
    const ins = await deviceInsertion(device);
    if (!ins) {
      await this.lose('missing', `the drive ${device} was removed`, { unmount: true });
      return;
    }
    if (insertionKey(ins) !== c.insertion) {
      await this.lose('missing', `the drive in ${device} was replaced`, { unmount: true });
      return;
    }
    const m = mountAt(await readMountinfo(), mountpoint);
    if (!m || !(m.majMin === c.majMin || m.source === device)) {
      this.ejected = { device, insertion: c.insertion };
      await this.lose(
        'missing',
        `${mountpoint} was unmounted outside the box; the drive stays unused until it is plugged in again`,
        { unmount: false },
      );
      return;
    }
    const code = await this.probe(mountpoint);
    if (code !== undefined) {
      const why =
        code === 'ENOTCONN'
          ? c.vol.driver === 'fuse'
            ? 'its FUSE driver process has exited'
            : 'the driver dropped the connection'
          : code === 'ETIMEDOUT'
            ? 'no answer in time'
            : code === 'EIO'
              ? 'the drive returns I/O errors'
              : 'the filesystem is gone';
      await this.lose('unavailable', `the mount at ${mountpoint} stopped answering (${code}: ${why})`, {
        unmount: true,
        lazy: code === 'ETIMEDOUT',
      });
      return;
    }
    const ro = isReadOnlyMount(m);
    if (ro && !c.vol.readOnly) {
      c.vol.readOnly = true;
      this.emitReadOnly(c.vol, 'the filesystem went read-only (the driver remounted it after an error)');
    } else if (!ro && c.vol.readOnly) {
      c.vol.readOnly = false;
      this.o.log.info('image volume is writable again', { mountpoint });
    }
  }

  /** statfs with a deadline: undefined when the mount answers, else the error code. */
  private async probe(dir: string): Promise<string | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve('ETIMEDOUT'), this.o.probeTimeoutMs ?? 10_000);
    });
    const answer = statfs(dir).then(
      () => undefined,
      (e: unknown) => errCode(e) ?? 'EIO',
    );
    try {
      const r = await Promise.race([answer, deadline]);
      return r !== undefined && (DEAD_MOUNT_CODES.has(r) || r === 'ENOENT') ? r : undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  private async lose(
    state: 'missing' | 'unavailable',
    reason: string,
    how: { unmount: boolean; lazy?: boolean },
  ): Promise<void> {
    const c = this.cur;
    if (!c) return;
    this.cur = undefined;
    if (how.unmount) await this.clear(c.vol.mountpoint, how.lazy ?? false);
    else await this.removeDir(c.vol.mountpoint);
    this.o.events?.emit('volume.removed', {
      ts: this.ts(),
      label: c.vol.label,
      device: c.vol.device,
      mountpoint: c.vol.mountpoint,
      reason,
      state,
    });
    this.setStatus({ state, reason });
  }

  /** Unmounts (lazily when the mount may hang) and removes the empty directory; logs, never throws. */
  private async clear(mp: string, lazy: boolean): Promise<void> {
    try {
      const how = await unmountVolume(mp, { lazy });
      if (how !== 'not-mounted') this.o.log.info('unmounted the image volume', { mountpoint: mp, how });
    } catch (e) {
      this.o.log.error('cannot unmount the image volume', { mountpoint: mp, error: (e as Error).message });
    }
    await this.removeDir(mp);
  }

  /**
   * Removes an empty mount directory under the root, so nothing is written to the board's
   * own filesystem in the volume's place while it is away.
   */
  private async removeDir(mp: string): Promise<void> {
    if (!this.isUnderRoot(mp)) return;
    try {
      await rmdir(mp);
    } catch {
      // still a mount point, or not empty: leave it
    }
  }

  private isUnderRoot(mp: string): boolean {
    const rel = path.relative(this.root, mp);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
  }

  private failed(reason: string): void {
    this.failures++;
    const delay = Math.min(MAX_BACKOFF_MS, this.pollMs * 2 ** Math.min(this.failures - 1, 10));
    this.nextAttemptAt = this.o.clock.now() + delay;
    this.setStatus({ state: 'unavailable', reason });
  }
}

function errCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}
