/**
 * The box's health document (MQTT `<root>health`): CPU, memory, temperature, free space
 * of the data and image volumes, the network interfaces with their link state and
 * counters, and the services' own counters. A value the board cannot tell is `null`,
 * never a guess; one failing probe never hides the others.
 */
import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import si from 'systeminformation';
import type { Clock } from '../../core/clock.ts';

/** The board measurements (systeminformation by default; tests may pass fixed ones). */
export interface HealthProbes {
  /** CPU busy share since the previous call, 0-100. */
  cpuPercent(): Promise<number | null>;
  memory(): Promise<{ total: number; available: number } | null>;
  /** Main CPU/SoC temperature in °C. */
  temperature(): Promise<number | null>;
}

const PROBE_TIMEOUT_MS = 5000;

export const systemProbes: HealthProbes = {
  async cpuPercent() {
    const l = await si.currentLoad();
    return finite(l.currentLoad);
  },
  async memory() {
    const m = await si.mem();
    return finite(m.total) === null ? null : { total: m.total, available: m.available };
  },
  async temperature() {
    const t = await si.cpuTemperature();
    // systeminformation reports an unknown temperature as null or -1.
    const v = finite(t.main);
    return v === null || v <= -1 ? null : v;
  },
};

export interface HealthSources {
  version: string;
  /** Clock.now() when the box started. */
  startedAt: number;
  /** Directories whose volume's space is reported, e.g. data and images. */
  dirs: { name: string; path: string }[];
  interfaces: { name: string; role: string }[];
  /** The services' status() by name (listening addresses and counters). */
  servicesStatus: () => Record<string, unknown>;
  probes?: HealthProbes;
  /** /sys/class/net by default. */
  sysfsNet?: string;
}

export interface DiskHealth {
  name: string;
  path: string;
  total: number | null;
  free: number | null;
  available: number | null;
  usedPercent: number | null;
  error?: string;
}

export interface InterfaceHealth {
  name: string;
  role: string;
  /** Kernel operstate: up, down, dormant, unknown … (null when the interface is gone). */
  state: string | null;
  carrier: boolean | null;
  /** Mbit/s; null when the driver does not say (virtual links). */
  speed: number | null;
  rx: { bytes: number | null; packets: number | null; errors: number | null; dropped: number | null };
  tx: { bytes: number | null; packets: number | null; errors: number | null; dropped: number | null };
}

export interface Health {
  version: string;
  uptimeSec: number;
  cpu: { percent: number | null; load: number[]; cores: number };
  memory: { total: number; available: number; usedPercent: number } | null;
  temperature: number | null;
  disks: DiskHealth[];
  interfaces: InterfaceHealth[];
  services: Record<string, unknown>;
  ts: string;
}

export async function collectHealth(src: HealthSources, clock: Clock): Promise<Health> {
  const probes = src.probes ?? systemProbes;
  const [cpuPercent, memory, temperature, disks, interfaces] = await Promise.all([
    probe(() => probes.cpuPercent()),
    probe(() => probes.memory()),
    probe(() => probes.temperature()),
    Promise.all(src.dirs.map((d) => diskHealth(d.name, d.path))),
    Promise.all(src.interfaces.map((i) => interfaceHealth(i.name, i.role, src.sysfsNet))),
  ]);
  let services: Record<string, unknown>;
  try {
    services = src.servicesStatus();
  } catch (e) {
    services = { error: (e as Error).message };
  }
  return {
    version: src.version,
    uptimeSec: Math.max(0, Math.round((clock.now() - src.startedAt) / 1000)),
    cpu: { percent: round1(cpuPercent), load: os.loadavg().map((l) => round2(l)), cores: os.availableParallelism() },
    memory: memory
      ? {
          total: memory.total,
          available: memory.available,
          usedPercent: round1(memory.total > 0 ? (100 * (memory.total - memory.available)) / memory.total : 0)!,
        }
      : null,
    temperature: round1(temperature),
    disks,
    interfaces,
    services,
    ts: clock.date().toISOString(),
  };
}

/** Space of the volume holding `dir` (statfs(2)); a missing volume is reported, not thrown. */
export async function diskHealth(name: string, dir: string): Promise<DiskHealth> {
  try {
    const s = await statfs(dir);
    const total = s.blocks * s.bsize;
    const free = s.bfree * s.bsize;
    const available = s.bavail * s.bsize;
    return {
      name,
      path: dir,
      total,
      free,
      available,
      // df's rule: used / (used + available to unprivileged users).
      usedPercent: total > 0 ? round1((100 * (total - free)) / (total - free + available)) : null,
    };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    return { name, path: dir, total: null, free: null, available: null, usedPercent: null, error: code };
  }
}

/** Link state and counters from sysfs (Documentation/ABI/testing/sysfs-class-net*). */
export async function interfaceHealth(
  name: string,
  role: string,
  sysfsNet = '/sys/class/net',
): Promise<InterfaceHealth> {
  const dir = path.join(sysfsNet, path.basename(name));
  const text = async (f: string) => {
    try {
      return (await readFile(path.join(dir, f), 'utf8')).trim();
    } catch {
      return null;
    }
  };
  const num = async (f: string) => {
    const t = await text(f);
    if (t === null || !/^-?\d+$/.test(t)) return null;
    return Number(t);
  };
  const stat = (f: string) => num(`statistics/${f}`);
  const [state, carrier, speed, rb, rp, re, rd, tb, tp, te, td] = await Promise.all([
    text('operstate'),
    num('carrier'),
    num('speed'),
    stat('rx_bytes'),
    stat('rx_packets'),
    stat('rx_errors'),
    stat('rx_dropped'),
    stat('tx_bytes'),
    stat('tx_packets'),
    stat('tx_errors'),
    stat('tx_dropped'),
  ]);
  return {
    name,
    role,
    state,
    // Reading carrier of a down interface fails (EINVAL): null, not false.
    carrier: carrier === null ? null : carrier === 1,
    // Virtual and down links report -1 (or nothing).
    speed: speed === null || speed < 0 ? null : speed,
    rx: { bytes: rb, packets: rp, errors: re, dropped: rd },
    tx: { bytes: tb, packets: tp, errors: te, dropped: td },
  };
}

async function probe<T>(fn: () => Promise<T | null>): Promise<T | null> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<null>((resolve) => {
        t = setTimeout(() => resolve(null), PROBE_TIMEOUT_MS);
      }),
    ]);
  } catch {
    return null;
  } finally {
    clearTimeout(t);
  }
}

function finite(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function round1(v: number | null): number | null {
  return v === null ? null : Math.round(v * 10) / 10;
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}
