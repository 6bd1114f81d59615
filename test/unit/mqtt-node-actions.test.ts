/** Node actions (telemetry/mqtt/node-actions.ts): the wipe plans as text fixtures. */
import test from 'ava';
import {
  buildWipeAction,
  diskProblem,
  formatPlan,
  guessImageOs,
  type NodeOs,
  quoteArg,
  type WipeAction,
  windowsWipeScript,
} from '../../firmware/telemetry/mqtt/node-actions.ts';

const TS = '2026-01-01T00:00:00.000Z';

test('Linux plan: wipefs, zero the first MiB, sync, reboot (no shell)', (t) => {
  const a = buildWipeAction({ box: 'b0x', transaction: 't1', ts: TS, os: 'linux' }) as WipeAction;
  t.deepEqual(formatPlan(a), [
    'plan wipe-and-reboot box=b0x transaction=t1 os=linux disk=/dev/sda',
    'run: wipefs --all --force /dev/sda',
    'run: dd if=/dev/zero of=/dev/sda bs=1M count=1 conv=fsync',
    'run: sync',
    'run: reboot',
  ]);
  t.deepEqual(a.steps[0], { run: ['wipefs', '--all', '--force', '/dev/sda'] });
  const nvme = buildWipeAction({ box: 'b0x', transaction: 2, ts: TS, os: 'linux', disk: '/dev/nvme0n1' }) as WipeAction;
  t.is(formatPlan(nvme)[1], 'run: wipefs --all --force /dev/nvme0n1');
});

test('Windows plan: the diskpart script, then shutdown /r /t 5', (t) => {
  const a = buildWipeAction({ box: 'b0x', transaction: 't2', ts: TS, os: 'windows', disk: 1 }) as WipeAction;
  t.deepEqual(formatPlan(a), [
    'plan wipe-and-reboot box=b0x transaction=t2 os=windows disk=1',
    'diskpart: select disk 1',
    'diskpart: clean',
    'diskpart: create partition primary',
    'diskpart: assign letter=C',
    'diskpart: exit',
    'run: diskpart /s <script>',
    'run: shutdown /r /t 5',
  ]);
  t.like(buildWipeAction({ box: 'b', transaction: 1, ts: TS, os: 'windows' }), { disk: 0 });
});

test('wipe.cmd: a batch file with CRLF line ends that writes and runs the diskpart script', (t) => {
  const text = windowsWipeScript({ name: 'NODE007', box: 'aabbccddeeff' });
  t.is(
    text,
    [
      '@echo off',
      'rem wipe-and-reboot for NODE007 from bootbox aabbccddeeff: erases disk 0, then restarts so the node boots from the network.',
      'set "BOOTBOX_WIPE=%TEMP%\\bootbox-wipe.txt"',
      '(',
      'echo select disk 0',
      'echo clean',
      'echo create partition primary',
      'echo assign letter=C',
      'echo exit',
      ') > "%BOOTBOX_WIPE%"',
      'diskpart /s "%BOOTBOX_WIPE%"',
      'if errorlevel 1 exit /b 1',
      'shutdown /r /t 5',
      '',
    ].join('\r\n'),
  );
  t.notRegex(text, /[^\r]\n/, 'every line ends with CRLF');
  t.regex(
    windowsWipeScript({ disk: 2, name: 'a&b' }),
    /^rem wipe-and-reboot: erases disk 2,/m,
    'unsafe labels left out',
  );
  t.throws(() => windowsWipeScript({ disk: -1 }), { instanceOf: RangeError });
});

test('disks are checked: no path tricks, diskpart numbers only', (t) => {
  t.is(diskProblem('linux', '/dev/disk/by-id/nvme-Samsung_SSD_980_S64'), undefined);
  for (const bad of ['/dev/../etc/passwd', 'sda', '/dev/sda; reboot', '/dev/', 7]) {
    t.truthy(diskProblem('linux', bad), String(bad));
  }
  for (const bad of [-1, 1.5, 128, '0']) t.truthy(diskProblem('windows', bad), String(bad));
  t.is(typeof buildWipeAction({ box: 'b', transaction: 1, ts: TS, os: 'linux', disk: '/dev/x y' }), 'string');
});

test('the OS of an image: an explicit os wins, else "win"/"windows" as a word or with a version', (t) => {
  const cases: [string, { title?: string; os?: string }, NodeOs][] = [
    ['win11', {}, 'windows'],
    ['windows-server-2022', {}, 'windows'],
    ['Win-10-LTSC', {}, 'windows'],
    ['corp-image', { title: 'Windows Server 2025' }, 'windows'],
    ['ubuntu-24.04', {}, 'linux'],
    ['winter-release', {}, 'linux'],
    ['darwin-test', {}, 'linux'],
    ['win11', { os: 'linux' }, 'linux'],
  ];
  for (const [image, meta, os] of cases) t.is(guessImageOs(image, meta), os, image);
  t.is(guessImageOs(undefined), 'linux');
});

test('arguments are shown as a POSIX shell would need them', (t) => {
  t.is(quoteArg('of=/dev/sda'), 'of=/dev/sda');
  t.is(quoteArg("it's"), `'it'\\''s'`);
  t.is(quoteArg('a b'), "'a b'");
});
