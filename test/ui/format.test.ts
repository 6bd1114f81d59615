/** The web UI's pure helpers: sizes, durations and times in words, and the settings form's patch. */
import test from 'ava';
import { ago, bytes, duration, percent, rate } from '../../web-ui/src/format.ts';
import { fieldOf, patchOf, valuesOf, withPending } from '../../web-ui/src/settings-values.ts';

test('sizes, rates, durations and percentages', (t) => {
  t.is(bytes(0), '0 B');
  t.is(bytes(1023), '1023 B');
  t.is(bytes(1536), '1.50 KiB');
  t.is(bytes(20 * 1024 * 1024), '20.0 MiB');
  t.is(bytes(5 * 1024 ** 3), '5.00 GiB');
  t.is(bytes(undefined), '–');
  t.is(rate(1_400_000), '1.34 MiB/s');
  t.is(duration(850), '850 ms');
  t.is(duration(12_400), '12.4 s');
  t.is(duration(185_000), '3 min 05 s');
  t.is(duration(2 * 3600_000 + 4 * 60_000), '2 h 04 min');
  t.is(percent(1, 3), 33.3);
  t.is(percent(5, 0), 0);
  t.is(percent(7, 5), 100);
});

test('"ago" counts back from the given now', (t) => {
  const now = Date.UTC(2025, 0, 1, 12, 0, 0);
  const iso = (ms: number) => new Date(now - ms).toISOString();
  t.is(ago(iso(3000), now), 'just now');
  t.is(ago(iso(42_000), now), '42 s ago');
  t.is(ago(iso(5 * 60_000), now), '5 min ago');
  t.is(ago(iso(3 * 3600_000), now), '3 h ago');
  t.is(ago(undefined, now), 'never');
});

test('settings: the form shows pending values; the patch holds only what changed, nested, null for emptied', (t) => {
  const running = {
    boot: { unknown: 'approve', namingPattern: 'NODE%03#', defaultImage: { bios: 'win11' } },
    dhcp: { mode: 'full', range: '10.0.0.100-10.0.0.199' },
    mqtt: { keepaliveSec: 30 },
  };
  const v = withPending(valuesOf(running), { 'boot.unknown': 'auto' });
  t.is(v['boot.unknown'], 'auto');
  t.is(v['mqtt.url'], '');
  const after = {
    ...v,
    'boot.namingPattern': 'HPC-%02#',
    'dhcp.range': '',
    'boot.defaultImage': { bios: 'win11', 'uefi-x64': 'install/default/win11', 'arm64-uefi': '' },
  };
  t.deepEqual(patchOf(v, after), {
    boot: { namingPattern: 'HPC-%02#', defaultImage: { bios: 'win11', 'uefi-x64': 'install/default/win11' } },
    dhcp: { range: null },
  });
  t.deepEqual(patchOf(v, v), {});
});

test('settings: an API error is put next to the field it names', (t) => {
  t.is(fieldOf({ message: '"boot.namingPattern" has no counter' }), 'boot.namingPattern');
  t.is(fieldOf({ message: 'bad', details: { issues: [{ field: 'dhcp.mode', message: 'x' }] } }), 'dhcp.mode');
  t.is(fieldOf({ message: '"boot.defaultImage.bios" must be a string' }), 'boot.defaultImage');
  t.is(fieldOf({ message: 'something else' }), undefined);
});
