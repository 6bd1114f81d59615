import test from 'ava';
import {
  type DetectedVolume,
  isReadOnlyMount,
  mergeVolumes,
  mountAt,
  mountsOf,
  normaliseFsType,
  parseBlkidExport,
  parseLsblk,
  parseMountinfo,
  parseProcFilesystems,
  pickVolume,
} from '../../board/storage/detect.ts';
import { sanitiseLabel } from '../../board/storage/mount.ts';
import { DecodeError } from '../../firmware/core/errors.ts';

// ---------------------------------------------------------------------------------------
// Captured on a Debian 12 VM (util-linux 2.38.1, no udev): two loop devices, an NTFS one
// mounted by ntfs-3g at a path with a space and an exFAT one attached read-only
// (`losetup -r`) and mounted by mount.exfat-fuse. Without udev lsblk knows no FSTYPE,
// LABEL or UUID: blkid has them.

const REAL_LSBLK = `{
   "blockdevices": [
      {"name": "loop0", "path": "/dev/loop0", "maj:min": "7:0", "type": "loop", "fstype": null, "label": null, "uuid": null,
       "size": 67108864, "rm": false, "hotplug": false, "ro": false, "mountpoint": "/tmp/vt/my vol", "pkname": null},
      {"name": "loop1", "path": "/dev/loop1", "maj:min": "7:1", "type": "loop", "fstype": null, "label": null, "uuid": null,
       "size": 67108864, "rm": false, "hotplug": false, "ro": true, "mountpoint": "/tmp/vt/m2", "pkname": null},
      {"name": "zram0", "path": "/dev/zram0", "maj:min": "253:0", "type": "disk", "fstype": null, "label": null,
       "uuid": null, "size": 0, "rm": false, "hotplug": false, "ro": false, "mountpoint": null, "pkname": null},
      {"name": "vda", "path": "/dev/vda", "maj:min": "254:0", "type": "disk", "fstype": null, "label": null,
       "uuid": null, "size": 274877906944, "rm": false, "hotplug": false, "ro": false, "mountpoint": "/", "pkname": null}
   ]
}`;

const REAL_BLKID = `DEVNAME=/dev/loop1
LABEL=BBTEST2
UUID=FF07-CEE8
BLOCK_SIZE=512
TYPE=exfat
PTTYPE=dos

DEVNAME=/dev/loop0
LABEL=BBTEST1
BLOCK_SIZE=512
UUID=69ED449E4D98788C
TYPE=ntfs
`;

const REAL_MOUNTINFO = `27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
43 27 7:0 / /tmp/vt/my\\040vol rw,relatime - fuseblk /dev/loop0 rw,user_id=0,group_id=0,allow_other,blksize=4096
44 27 7:1 / /tmp/vt/m2 ro,nosuid,nodev,relatime - fuseblk /dev/loop1 ro,user_id=0,group_id=0,default_permissions,allow_other,blksize=4096
`;

// ---------------------------------------------------------------------------------------
// Static: a board with udev and util-linux 2.33 (every JSON value a string), an SD card
// (boot + root) and a USB drive whose only partition is NTFS "BOOTBOX", mounted by the
// kernel's ntfs3 driver.

const OLD_LSBLK_WITH_UDEV = `{
   "blockdevices": [
      {"name": "sda", "path": "/dev/sda", "maj:min": "8:0", "type": "disk", "fstype": null, "label": null, "uuid": null,
       "size": "1000204886016", "rm": "0", "hotplug": "1", "ro": "0", "mountpoint": null, "pkname": null,
         "children": [
            {"name": "sda1", "path": "/dev/sda1", "maj:min": "8:1", "type": "part", "fstype": "ntfs", "label": "BOOTBOX",
             "uuid": "7A3C5E2B3C5DE3F1", "size": "1000202788864", "rm": "0", "hotplug": "1", "ro": "0",
             "mountpoint": "/media/bootbox/BOOTBOX", "pkname": "sda"}
         ]
      },
      {"name": "mmcblk0", "path": "/dev/mmcblk0", "maj:min": "179:0", "type": "disk", "fstype": null, "label": null,
       "uuid": null, "size": "31914983424", "rm": "0", "hotplug": "0", "ro": "0", "mountpoint": null, "pkname": null,
         "children": [
            {"name": "mmcblk0p1", "path": "/dev/mmcblk0p1", "maj:min": "179:1", "type": "part", "fstype": "vfat",
             "label": "bootfs", "uuid": "5DF9-E225", "size": "536870912", "rm": "0", "hotplug": "0", "ro": "0",
             "mountpoint": "/boot/firmware", "pkname": "mmcblk0"},
            {"name": "mmcblk0p2", "path": "/dev/mmcblk0p2", "maj:min": "179:2", "type": "part", "fstype": "ext4",
             "label": "rootfs", "uuid": "3b614a3f-4a65-4480-876a-8a998e01ac9b", "size": "31373918208", "rm": "0",
             "hotplug": "0", "ro": "0", "mountpoint": "/", "pkname": "mmcblk0"}
         ]
      }
   ]
}`;

const OLD_MOUNTINFO = `22 1 179:2 / / rw,noatime - ext4 /dev/mmcblk0p2 rw
25 22 179:1 / /boot/firmware rw,relatime - vfat /dev/mmcblk0p1 rw,fmask=0022,dmask=0022
31 22 8:1 / /media/bootbox/BOOTBOX rw,nosuid,nodev,noatime - ntfs3 /dev/sda1 rw,uid=0,gid=0,iocharset=utf8
`;

// Static: an SD card reader (RM=1) holding an exFAT card with no label and no partition
// table, and an empty reader slot (size 0). Numbers and booleans (util-linux 2.37+).
const CARD_READER_LSBLK = `{"blockdevices": [
  {"name": "sdb", "path": "/dev/sdb", "maj:min": "8:16", "type": "disk", "fstype": "exfat", "label": null,
   "uuid": "1234-ABCD", "size": 63864569856, "rm": true, "hotplug": true, "ro": false, "mountpoint": null, "pkname": null},
  {"name": "sdc", "path": "/dev/sdc", "maj:min": "8:32", "type": "disk", "fstype": null, "label": null, "uuid": null,
   "size": 0, "rm": true, "hotplug": true, "ro": false, "mountpoint": null, "pkname": null}
]}`;

test('real lsblk output without udev: devices, sizes and flags, no filesystem fields', (t) => {
  const devs = parseLsblk(REAL_LSBLK);
  t.deepEqual(
    devs.map((d) => d.name),
    ['loop0', 'loop1', 'zram0', 'vda'],
  );
  const loop1 = devs.find((d) => d.name === 'loop1')!;
  t.is(loop1.path, '/dev/loop1');
  t.is(loop1.majMin, '7:1');
  t.is(loop1.size, 67108864);
  t.true(loop1.readOnly);
  t.false(loop1.removable);
  t.is(loop1.fsType, undefined);
  t.is(loop1.label, undefined);
  t.is(devs.find((d) => d.name === 'loop0')!.mountpoint, '/tmp/vt/my vol');
});

test('real blkid -o export output, keyed by device', (t) => {
  const p = parseBlkidExport(REAL_BLKID);
  t.deepEqual([...p.keys()], ['/dev/loop1', '/dev/loop0']);
  t.is(p.get('/dev/loop0')!.TYPE, 'ntfs');
  t.is(p.get('/dev/loop0')!.LABEL, 'BBTEST1');
  t.is(p.get('/dev/loop1')!.UUID, 'FF07-CEE8');
  t.is(p.get('/dev/loop1')!.PTTYPE, 'dos');
});

test('blkid export values lose their shell escapes', (t) => {
  const p = parseBlkidExport('DEVNAME=/dev/sdb1\nLABEL=My\\ Images\\\\2\nTYPE=exfat\n');
  t.is(p.get('/dev/sdb1')!.LABEL, 'My Images\\2');
});

test('real mountinfo: escaped mount points, FUSE mounts, read-only flags', (t) => {
  const m = parseMountinfo(REAL_MOUNTINFO);
  t.is(m.length, 3);
  const ntfs = m[1]!;
  t.is(ntfs.mountpoint, '/tmp/vt/my vol');
  t.is(ntfs.fsType, 'fuseblk');
  t.is(ntfs.source, '/dev/loop0');
  t.is(ntfs.majMin, '7:0');
  t.false(isReadOnlyMount(ntfs));
  t.true(isReadOnlyMount(m[2]!));
  t.is(mountAt(m, '/tmp/vt/m2'), m[2]);
  t.is(mountAt(m, '/tmp/vt'), undefined);
});

test('mountinfo with optional fields and a filesystem that went read-only underneath', (t) => {
  const m = parseMountinfo(
    '36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 shared:2 - exfat /dev/sdb1 ro,errors=remount-ro\nbroken line\n',
  );
  t.is(m.length, 1);
  t.is(m[0]!.root, '/mnt1');
  t.is(m[0]!.fsType, 'exfat');
  t.deepEqual(m[0]!.options, ['rw', 'noatime']);
  t.true(isReadOnlyMount(m[0]!), 'superblock ro counts');
});

test('real capture merged: both volumes with blkid labels and their FUSE mounts', (t) => {
  const vols = mergeVolumes(parseLsblk(REAL_LSBLK), parseBlkidExport(REAL_BLKID), parseMountinfo(REAL_MOUNTINFO));
  t.deepEqual(vols, [
    {
      device: '/dev/loop0',
      name: 'loop0',
      majMin: '7:0',
      fsType: 'ntfs',
      label: 'BBTEST1',
      uuid: '69ED449E4D98788C',
      size: 67108864,
      removable: false,
      readOnly: false,
      type: 'loop',
      mountedAt: '/tmp/vt/my vol',
    },
    {
      device: '/dev/loop1',
      name: 'loop1',
      majMin: '7:1',
      fsType: 'exfat',
      label: 'BBTEST2',
      uuid: 'FF07-CEE8',
      size: 67108864,
      removable: false,
      readOnly: true,
      type: 'loop',
      mountedAt: '/tmp/vt/m2',
    },
  ]);
});

test('util-linux 2.33 strings with udev: partitions inherit hotplug, lsblk fields used without blkid', (t) => {
  const devs = parseLsblk(OLD_LSBLK_WITH_UDEV);
  t.deepEqual(
    devs.map((d) => d.name),
    ['sda', 'sda1', 'mmcblk0', 'mmcblk0p1', 'mmcblk0p2'],
  );
  const sda1 = devs[1]!;
  t.is(sda1.parent, 'sda');
  t.is(sda1.size, 1000202788864);
  t.true(sda1.removable);
  t.false(sda1.readOnly);
  t.false(devs[3]!.removable);
  const vols = mergeVolumes(devs, new Map(), parseMountinfo(OLD_MOUNTINFO));
  t.is(vols.length, 1, 'vfat and ext4 are not image volumes');
  t.like(vols[0], {
    device: '/dev/sda1',
    fsType: 'ntfs',
    label: 'BOOTBOX',
    uuid: '7A3C5E2B3C5DE3F1',
    removable: true,
    mountedAt: '/media/bootbox/BOOTBOX',
  });
});

test('a card reader: whole-disk exFAT without a label is found, an empty slot is not', (t) => {
  const vols = mergeVolumes(parseLsblk(CARD_READER_LSBLK), new Map(), []);
  t.is(vols.length, 1);
  t.like(vols[0], { device: '/dev/sdb', fsType: 'exfat', label: '', removable: true, type: 'disk' });
  t.is(vols[0]!.mountedAt, undefined);
});

test('blkid wins over a stale lsblk (udev) view of a reformatted drive', (t) => {
  const probes = parseBlkidExport('DEVNAME=/dev/sdb\nLABEL=BOOTBOX\nUUID=AAAA-BBBB\nTYPE=exfat\n');
  const vols = mergeVolumes(parseLsblk(CARD_READER_LSBLK), probes, []);
  t.like(vols[0], { label: 'BOOTBOX', uuid: 'AAAA-BBBB' });
  const reformatted = parseBlkidExport('DEVNAME=/dev/sdb\nTYPE=ext4\n');
  t.deepEqual(mergeVolumes(parseLsblk(CARD_READER_LSBLK), reformatted, []), []);
});

test('mounts of a device match by MAJ:MIN or by source path (plain fuse mounts have 0:N)', (t) => {
  const m = parseMountinfo(
    '50 27 0:48 / /a rw - fuse /dev/sdb1 rw\n51 27 8:17 / /b rw - fuseblk /dev/sdb1 rw\n52 27 8:18 / /c rw - ntfs3 /dev/sdb2 rw\n',
  );
  t.deepEqual(
    mountsOf(m, { path: '/dev/sdb1', majMin: '8:17' }).map((x) => x.mountpoint),
    ['/a', '/b'],
  );
  t.deepEqual(
    mountsOf(m, { path: '/dev/sdb2' }).map((x) => x.mountpoint),
    ['/c'],
  );
});

test('lsblk output that is not JSON or has no device list is a DecodeError', (t) => {
  t.throws(() => parseLsblk('lsblk: unknown column: PATH'), { instanceOf: DecodeError });
  t.throws(() => parseLsblk('{"devices": []}'), { instanceOf: DecodeError });
  t.deepEqual(parseLsblk('{"blockdevices": [null, 3, {"size": 5}]}'), []);
});

test('filesystem names: NTFS and exFAT in their spellings, nothing else', (t) => {
  t.is(normaliseFsType('ntfs'), 'ntfs');
  t.is(normaliseFsType('NTFS'), 'ntfs');
  t.is(normaliseFsType('ntfs3'), 'ntfs');
  t.is(normaliseFsType('exfat'), 'exfat');
  t.is(normaliseFsType('vfat'), undefined);
  t.is(normaliseFsType(null), undefined);
});

const vol = (device: string, label: string): DetectedVolume => ({
  device,
  name: device.slice(5),
  fsType: 'ntfs',
  label,
  uuid: '',
  size: 1,
  removable: true,
  readOnly: false,
  type: 'part',
});

test('picking the image volume: exact label first, then any case, else by device', (t) => {
  const vols = [vol('/dev/sdc1', 'bootbox'), vol('/dev/sdb1', 'BOOTBOX'), vol('/dev/sda1', 'DATA')];
  t.is(pickVolume(vols, { label: 'BOOTBOX' })?.device, '/dev/sdb1');
  t.is(pickVolume([vols[0]!, vols[2]!], { label: 'BOOTBOX' })?.device, '/dev/sdc1');
  t.is(pickVolume(vols, { label: 'NOPE' }), undefined);
  t.is(pickVolume(vols, { label: 'BOOTBOX', device: '/dev/sda1' })?.device, '/dev/sda1', 'a device wins over a label');
  t.is(
    pickVolume(vols, { device: '/dev/disk/by-label/DATA', deviceRealPath: '/dev/sda1' })?.device,
    '/dev/sda1',
    'a symlink to the device',
  );
  t.is(pickVolume(vols, { device: '/dev/sdz1' }), undefined);
});

test('/proc/filesystems: nodev and block filesystems alike', (t) => {
  const fs = parseProcFilesystems('nodev\tsysfs\n\text4\nnodev\tfuse\n\tfuseblk\n\texfat\n');
  t.true(fs.has('exfat'));
  t.true(fs.has('fuseblk'));
  t.false(fs.has('ntfs3'));
  t.false(fs.has('nodev'));
});

test('labels become safe directory names', (t) => {
  t.is(sanitiseLabel('BOOTBOX'), 'BOOTBOX');
  t.is(sanitiseLabel('My Images'), 'My_Images');
  t.is(sanitiseLabel('../../etc'), 'etc');
  t.is(sanitiseLabel('..'), 'volume');
  t.is(sanitiseLabel(''), 'volume');
  t.is(sanitiseLabel('Café/Ünïcode'), 'Cafe_Unicode');
  t.is(sanitiseLabel('a'.repeat(200)).length, 64);
  for (const l of ['x/y', 'a\0b', '.hidden', 'C:\\Images']) {
    const s = sanitiseLabel(l);
    t.regex(s, /^[A-Za-z0-9][A-Za-z0-9._-]*$/, `"${l}" -> "${s}"`);
  }
});
