import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ManualClock } from '../../firmware/core/clock.ts';
import {
  collectHealth,
  diskHealth,
  type HealthProbes,
  interfaceHealth,
  systemProbes,
} from '../../firmware/telemetry/mqtt/health.ts';

/** A fake /sys/class/net with one interface, laid out as the kernel does. */
function fakeSysfs(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-sysfs-'));
  for (const [f, v] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), `${v}\n`);
  }
  return dir;
}

test('interface link state and counters come from sysfs', async (t) => {
  const sys = fakeSysfs({
    'eth1/operstate': 'up',
    'eth1/carrier': '1',
    'eth1/speed': '1000',
    'eth1/statistics/rx_bytes': '123456789012',
    'eth1/statistics/rx_packets': '1000',
    'eth1/statistics/rx_errors': '0',
    'eth1/statistics/rx_dropped': '3',
    'eth1/statistics/tx_bytes': '42',
    'eth1/statistics/tx_packets': '7',
    'eth1/statistics/tx_errors': '1',
    'eth1/statistics/tx_dropped': '0',
    'veth0/operstate': 'down',
    'veth0/speed': '-1',
  });
  t.teardown(() => rmSync(sys, { recursive: true, force: true }));
  t.deepEqual(await interfaceHealth('eth1', 'private', sys), {
    name: 'eth1',
    role: 'private',
    state: 'up',
    carrier: true,
    speed: 1000,
    rx: { bytes: 123456789012, packets: 1000, errors: 0, dropped: 3 },
    tx: { bytes: 42, packets: 7, errors: 1, dropped: 0 },
  });
  t.like(await interfaceHealth('veth0', 'uplink', sys), {
    state: 'down',
    carrier: null, // unreadable while down
    speed: null, // -1: unknown
    rx: { bytes: null, packets: null, errors: null, dropped: null },
  });
  t.like(await interfaceHealth('gone0', 'uplink', sys), { state: null, carrier: null });
  t.like(await interfaceHealth('../etc', 'x', sys), { state: null }, 'a name never leaves the sysfs directory');
});

test('the loopback interface of this machine has real counters', async (t) => {
  const lo = await interfaceHealth('lo', 'loopback');
  t.is(typeof lo.rx.bytes, 'number');
  t.is(typeof lo.tx.packets, 'number');
  t.truthy(lo.state);
});

test('disk space of a directory, and a missing volume reported, not thrown', async (t) => {
  const d = await diskHealth('data', os.tmpdir());
  t.true(d.total! > 0);
  t.true(d.available! <= d.free!);
  t.true(d.free! <= d.total!);
  t.true(d.usedPercent! >= 0 && d.usedPercent! <= 100);
  t.deepEqual(await diskHealth('images', '/nonexistent/bootbox-images'), {
    name: 'images',
    path: '/nonexistent/bootbox-images',
    total: null,
    free: null,
    available: null,
    usedPercent: null,
    error: 'ENOENT',
  });
});

test('the health document: probes, disks, interfaces, services; unknown values are null', async (t) => {
  const probes: HealthProbes = {
    cpuPercent: async () => 12.345,
    memory: async () => ({ total: 1000, available: 250 }),
    temperature: async () => null,
  };
  const clock = new ManualClock(0);
  clock.advance(90_400);
  const h = await collectHealth(
    {
      version: '1.2.3',
      startedAt: 0,
      dirs: [{ name: 'data', path: os.tmpdir() }],
      interfaces: [{ name: 'lo', role: 'loopback' }],
      servicesStatus: () => ({ tftp: { counters: { sent: 5 } } }),
      probes,
    },
    clock,
  );
  t.is(h.version, '1.2.3');
  t.is(h.uptimeSec, 90);
  t.is(h.cpu.percent, 12.3);
  t.is(h.cpu.load.length, 3);
  t.deepEqual(h.memory, { total: 1000, available: 250, usedPercent: 75 });
  t.is(h.temperature, null);
  t.is(h.disks[0]!.name, 'data');
  t.is(h.interfaces[0]!.name, 'lo');
  t.deepEqual(h.services, { tftp: { counters: { sent: 5 } } });
  t.is(h.ts, '2026-01-01T00:01:30.400Z');
});

test('a failing probe or services callback does not hide the rest', async (t) => {
  const h = await collectHealth(
    {
      version: 'x',
      startedAt: 0,
      dirs: [],
      interfaces: [],
      servicesStatus: () => {
        throw new Error('boom');
      },
      probes: {
        cpuPercent: async () => {
          throw new Error('no /proc');
        },
        memory: async () => null,
        temperature: async () => 48.04,
      },
    },
    new ManualClock(),
  );
  t.is(h.cpu.percent, null);
  t.is(h.memory, null);
  t.is(h.temperature, 48);
  t.deepEqual(h.services, { error: 'boom' });
});

test('the systeminformation probes answer with numbers or null', async (t) => {
  const cpu = await systemProbes.cpuPercent();
  t.true(cpu === null || (cpu >= 0 && cpu <= 100));
  const mem = await systemProbes.memory();
  t.truthy(mem);
  t.true(mem!.total > 0 && mem!.available <= mem!.total);
  const temp = await systemProbes.temperature();
  t.true(temp === null || typeof temp === 'number');
});
