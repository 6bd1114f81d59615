/**
 * The image volume on real filesystems: NTFS and exFAT images made here, attached as loop
 * devices, found by a label unique to each test (so no real disk is ever touched), mounted
 * by the FUSE drivers (this kernel has neither exfat nor ntfs3), removed, re-attached,
 * broken (the FUSE process killed) and write-protected.
 * Runs as root, serially: `ava --serial test/lab/volumes.test.ts`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { detectVolumes, parseMountinfo, type VolumeFsType } from '../../board/storage/detect.ts';
import { kernelHasDriver, mountVolume, unmountVolume } from '../../board/storage/mount.ts';
import { type VolumeEventMap, VolumeManager } from '../../board/storage/volumes.ts';
import { systemClock } from '../../firmware/core/clock.ts';
import { BootboxError } from '../../firmware/core/errors.ts';
import { createLogger } from '../../firmware/core/logger.ts';

const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

const mounts = () => parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));

type Recorded = { [K in keyof VolumeEventMap]: { type: K; event: VolumeEventMap[K] } }[keyof VolumeEventMap];

interface Lab {
  dir: string;
  root: string;
  label: string;
  image: string;
  attach(readOnly?: boolean): string;
  /** Loop devices currently backed by the image. */
  loops(): string[];
  events: Recorded[];
  of<K extends keyof VolumeEventMap>(type: K): VolumeEventMap[K][];
  waitFor<K extends keyof VolumeEventMap>(
    type: K,
    n: number,
    what?: (e: VolumeEventMap[K]) => boolean,
  ): Promise<VolumeEventMap[K]>;
  manager(extra?: { pollMs?: number; unmountOnStop?: boolean }): VolumeManager;
}

/** A temp dir with a ~64 MiB NTFS or exFAT image labelled BBT<random>; everything undone in teardown. */
function lab(t: ExecutionContext, fsType: VolumeFsType): Lab {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bbvol-'));
  const root = path.join(dir, 'media');
  mkdirSync(root);
  // exFAT labels hold at most 11 characters.
  const label = `BBT${randomBytes(3).toString('hex').toUpperCase()}`;
  const image = path.join(dir, `${fsType}.img`);
  run('truncate', ['-s', '64M', image]);
  if (fsType === 'ntfs') run('mkntfs', ['-F', '-Q', '-L', label, image]);
  else run('mkfs.exfat', ['-L', label, image]);

  const events: Recorded[] = [];
  const managers: VolumeManager[] = [];
  const logLines: string[] = [];
  const loops = () =>
    run('losetup', ['-j', image])
      .split('\n')
      .map((l) => l.split(':')[0]!)
      .filter((d) => d.startsWith('/dev/'));

  t.teardown(async () => {
    for (const m of managers) await m.stop().catch(() => {});
    // Anything still mounted under the temp dir, deepest first; lazily, so a dead FUSE mount goes too.
    const left = mounts()
      .filter((m) => m.mountpoint.startsWith(dir + path.sep))
      .sort((a, b) => b.mountpoint.length - a.mountpoint.length);
    for (const m of left) {
      try {
        run('umount', ['-l', m.mountpoint]);
      } catch {}
    }
    for (const d of loops()) {
      try {
        run('losetup', ['-d', d]);
      } catch {}
    }
    rmSync(dir, { recursive: true, force: true });
    if (!t.passed) for (const l of logLines) t.log(l);
  });

  const waitFor = async <K extends keyof VolumeEventMap>(
    type: K,
    n: number,
    what: (e: VolumeEventMap[K]) => boolean = () => true,
  ): Promise<VolumeEventMap[K]> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const got = events.filter((e) => e.type === type).map((e) => e.event as VolumeEventMap[K]);
      if (got.length >= n) {
        const e = got[n - 1]!;
        if (!what(e)) throw new Error(`${String(type)} #${n} is not the one expected: ${JSON.stringify(e)}`);
        return e;
      }
      if (Date.now() > deadline) {
        throw new Error(`no ${String(type)} #${n} within 30 s; events: ${JSON.stringify(events)}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  return {
    dir,
    root,
    label,
    image,
    events,
    loops,
    attach: (readOnly = false) => run('losetup', [...(readOnly ? ['-r'] : []), '--find', '--show', image]),
    of: (type) => events.filter((e) => e.type === type).map((e) => e.event as never),
    waitFor,
    manager: (extra = {}) => {
      const m = new VolumeManager({
        label,
        root,
        pollMs: extra.pollMs ?? 100,
        unmountOnStop: extra.unmountOnStop ?? true,
        clock: systemClock,
        log: createLogger('volumes', { level: 'debug', write: (l) => logLines.push(l) }),
        events: { emit: (type, event) => events.push({ type, event } as Recorded) },
      });
      managers.push(m);
      return m;
    },
  };
}

/** The FUSE process serving a device (its command line names the device). */
function fusePid(device: string): number {
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${ent}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (/(ntfs-3g|exfat-fuse)$/.test(argv[0] ?? '') && argv.includes(device)) return Number(ent);
  }
  throw new Error(`no FUSE process serves ${device}`);
}

async function waitUntil(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

for (const fsType of ['ntfs', 'exfat'] as const) {
  test(`${fsType}: found by label and mounted by FUSE; removed, then back with its files`, async (t) => {
    const l = lab(t, fsType);
    const dev = l.attach();
    const mgr = l.manager();
    await mgr.start();

    const mp = path.join(l.root, l.label);
    const attached = await l.waitFor('volume.attached', 1);
    t.like(attached, { label: l.label, device: dev, fsType, mountpoint: mp, driver: 'fuse', readOnly: false });
    t.deepEqual(mgr.state(), { state: 'attached' });
    t.is(l.of('volume.readonly').length, 0);

    // What the board sees of the real device.
    const seen = (await detectVolumes()).find((v) => v.device === dev);
    t.like(seen, { fsType, label: l.label, size: 64 << 20, readOnly: false, mountedAt: mp });
    t.truthy(seen?.uuid);
    t.is(attached.uuid, seen!.uuid);

    const payload = randomBytes(300_000);
    await writeFile(path.join(mp, 'image.wim'), payload);
    t.deepEqual(await readFile(path.join(mp, 'image.wim')), payload);
    const cur = await mgr.current();
    t.truthy(cur);
    t.true(cur!.total > 32 << 20 && cur!.total <= 64 << 20, `total ${cur!.total}`);
    t.true(cur!.free > 0 && cur!.free < cur!.total - payload.length, `free ${cur!.free}`);

    // Pulled: unmounted and detached.
    run('umount', [mp]);
    run('losetup', ['-d', dev]);
    const removed = await l.waitFor('volume.removed', 1);
    t.like(removed, { label: l.label, device: dev, mountpoint: mp, state: 'missing' });
    t.regex(removed.reason, /was removed|unmounted outside the box/);
    await waitUntil('the loop device is gone', () => l.loops().length === 0);
    await waitUntil('state() says no volume has the label', () => {
      const s = mgr.state();
      return s.state === 'missing' && s.reason.includes(`labelled "${l.label}"`);
    });
    t.is(mgr.volume(), undefined);
    t.is(await mgr.current(), undefined);

    // Plugged in again.
    const dev2 = l.attach();
    const back = await l.waitFor('volume.attached', 2);
    t.like(back, { device: dev2, mountpoint: mp, driver: 'fuse', readOnly: false });
    t.deepEqual(mgr.state(), { state: 'attached' });
    t.deepEqual(await readFile(path.join(mp, 'image.wim')), payload);

    await mgr.stop();
    t.is(
      mounts().find((m) => m.mountpoint === mp),
      undefined,
      'stop() unmounts what the manager mounted',
    );
  });

  test(`${fsType}: the FUSE process dies under an open file -> unavailable (ENOTCONN), then mounted again`, async (t) => {
    const l = lab(t, fsType);
    const dev = l.attach();
    const mgr = l.manager();
    await mgr.start();
    const mp = (await l.waitFor('volume.attached', 1)).mountpoint;

    const fh = await open(path.join(mp, 'kept.txt'), 'w');
    // Closed before the lab's own teardown (registered first, run last) releases the loop device.
    t.teardown(() => fh.close().catch(() => {}));
    await fh.write('still here');
    await fh.sync();
    process.kill(fusePid(dev), 'SIGKILL');

    const removed = await l.waitFor('volume.removed', 1);
    t.is(removed.state, 'unavailable');
    t.regex(removed.reason, /ENOTCONN/);
    t.truthy(l.of('volume.state').find((s) => s.state === 'unavailable' && /ENOTCONN/.test(s.reason ?? '')));
    await fh.close().catch(() => {});

    // The dead mount is cleared (lazily, as a file was open on it) and the device mounted again.
    const back = await l.waitFor('volume.attached', 2);
    t.like(back, { device: dev, mountpoint: mp, driver: 'fuse' });
    t.deepEqual(mgr.state(), { state: 'attached' });
    t.is(await readFile(path.join(mp, 'kept.txt'), 'utf8'), 'still here');
    t.is(mounts().filter((m) => m.mountpoint === mp).length, 1, 'one live mount, the dead one is gone');
  });

  test(`${fsType}: a write-protected device is mounted read-only and says so`, async (t) => {
    const l = lab(t, fsType);
    const dev = l.attach(true);
    const mgr = l.manager();
    await mgr.start();
    const attached = await l.waitFor('volume.attached', 1);
    t.like(attached, { device: dev, readOnly: true, driver: 'fuse' });
    const ro = await l.waitFor('volume.readonly', 1);
    t.regex(ro.reason, /write-protected/);
    t.true(mgr.volume()?.readOnly);
    const err = await t.throwsAsync(writeFile(path.join(attached.mountpoint, 'x'), 'x'));
    t.is((err as NodeJS.ErrnoException).code, 'EROFS');
  });
}

test('unmounted by hand: left alone while the drive stays, mounted again on rescan()', async (t) => {
  const l = lab(t, 'ntfs');
  const dev = l.attach();
  const mgr = l.manager();
  await mgr.start();
  const mp = (await l.waitFor('volume.attached', 1)).mountpoint;

  run('umount', [mp]);
  const removed = await l.waitFor('volume.removed', 1);
  t.like(removed, { state: 'missing', device: dev });
  t.regex(removed.reason, /unmounted outside the box/);
  // The next look finds the same drive and leaves it alone, saying why.
  await waitUntil('state() names the drive unmounted by hand', () => {
    const s = mgr.state();
    return s.state === 'missing' && s.reason.includes(`${dev} was unmounted by hand`);
  });
  t.is(l.of('volume.attached').length, 1);

  await mgr.rescan();
  t.like(await l.waitFor('volume.attached', 2), { device: dev, mountpoint: mp });
});

test('a mount made by hand elsewhere is adopted and bound under the root; stop() leaves it', async (t) => {
  const l = lab(t, 'ntfs');
  const dev = l.attach();
  const byHand = path.join(l.dir, 'by-hand');
  mkdirSync(byHand);
  run('ntfs-3g', [dev, byHand]);
  await writeFile(path.join(byHand, 'before.txt'), 'written by hand');
  const mgr = l.manager();
  await mgr.start();
  const mp = path.join(l.root, l.label);
  t.is(mgr.mountpoint, mp);
  t.like(await l.waitFor('volume.attached', 1), { device: dev, mountpoint: mp, driver: 'fuse', adopted: true });
  t.is(await readFile(path.join(mp, 'before.txt'), 'utf8'), 'written by hand');
  await mgr.stop();
  t.is(
    mounts().find((m) => m.mountpoint === mp),
    undefined,
    'the bind under the root is gone',
  );
  t.truthy(
    mounts().find((m) => m.mountpoint === byHand),
    'the mount made by hand stays',
  );
  t.is(await unmountVolume(byHand), 'umount');
  t.is(await unmountVolume(byHand), 'not-mounted');
});

test('a mount left by an earlier run is used where it is', async (t) => {
  const l = lab(t, 'exfat');
  const dev = l.attach();
  const first = l.manager({ unmountOnStop: false });
  await first.start();
  const mp = (await l.waitFor('volume.attached', 1)).mountpoint;
  await writeFile(path.join(mp, 'kept.txt'), 'from the first run');
  await first.stop();
  t.truthy(mounts().find((m) => m.mountpoint === mp));
  const second = l.manager();
  await second.start();
  t.like(await l.waitFor('volume.attached', 2), { device: dev, mountpoint: mp, adopted: true, driver: 'fuse' });
  t.is(await readFile(path.join(mp, 'kept.txt'), 'utf8'), 'from the first run');
  t.is(mounts().filter((m) => m.mountpoint === mp).length, 1, 'not mounted twice');
});

test('a label picked up by nothing: missing, with the label in the reason', async (t) => {
  const l = lab(t, 'exfat');
  const mgr = l.manager();
  await mgr.start();
  t.deepEqual(mgr.state(), { state: 'missing', reason: `no NTFS or exFAT volume labelled "${l.label}" is attached` });
  t.is(l.of('volume.attached').length, 0);
  // The image exists but is not attached: attaching it is what makes it appear.
  const dev = l.attach();
  t.like(await l.waitFor('volume.attached', 1), { device: dev, label: l.label });
});

for (const fsType of ['ntfs', 'exfat'] as const) {
  test(`${fsType}: the kernel driver is used when the kernel has one, and its absence is a clear error`, async (t) => {
    const l = lab(t, fsType);
    const dev = l.attach();
    const root = path.join(l.dir, 'kernel');
    if (await kernelHasDriver(fsType)) {
      const m = await mountVolume(dev, { label: l.label, fsType, root, driver: 'kernel' });
      t.is(m.driver, 'kernel');
      await unmountVolume(m.mountpoint);
    } else {
      const err = await t.throwsAsync(mountVolume(dev, { label: l.label, fsType, root, driver: 'kernel' }), {
        instanceOf: BootboxError,
      });
      t.is((err as BootboxError).code, 'VOLUME_MOUNT_FAILED');
      t.regex(err!.message, new RegExp(`no ${fsType === 'ntfs' ? 'ntfs3' : 'exfat'} driver`));
      t.true(err!.message.includes(dev));
      // auto falls back to FUSE.
      const m = await mountVolume(dev, { label: l.label, fsType, root });
      t.is(m.driver, 'fuse');
      t.is(m.mountpoint, path.join(root, l.label));
      await t.throwsAsync(mountVolume(dev, { label: l.label, fsType, root }), { message: /already mounted there/ });
      t.is(await unmountVolume(m.mountpoint), 'umount');
    }
  });
}
