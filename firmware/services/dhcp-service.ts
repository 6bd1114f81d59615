/**
 * DHCP as a box service: picks the mode (auto probes the link), builds the subnets and
 * their address pools from the config and the private interface, restores leases, runs
 * the server, and persists leases from a timer (batched, atomic, never per packet).
 */

import type { EndpointFactory } from '../../board/udp-endpoint.ts';
import type { Service } from '../app.ts';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { BootboxError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import {
  broadcastOf,
  formatIPv4,
  inSubnet,
  normalizeMac,
  parseCidr,
  parseIPv4,
  parseRange,
  type Subnet,
  subnetOf,
} from '../core/net.ts';
import { LeasePool, type LeaseSnapshot } from '../protocols/dhcp/leases.ts';
import { probeForDhcpServer } from '../protocols/dhcp/probe.ts';
import type { BootPlanner, SubnetConfig } from '../protocols/dhcp/responder.ts';
import { type DhcpEventSink, DhcpServer } from '../protocols/dhcp/server.ts';
import { JsonStore } from '../store/json-store.ts';

export interface DhcpServiceOptions {
  dhcp: Config['dhcp'];
  endpoints: EndpointFactory;
  privateAddress: string;
  privatePrefix: number;
  privateMac: string;
  dataDir: string;
  planner: BootPlanner;
  events: DhcpEventSink & { emit(type: 'dhcp.mode', e: { ts: string; mode: string; reason: string }): void };
  clock: Clock;
  log: Logger;
  persistIntervalMs?: number;
}

interface LeaseFile {
  version: 1;
  pools: Record<string, LeaseSnapshot>;
}

/**
 * The default pool of a subnet: its upper half, up to the last address before the
 * broadcast. For a /24 that is .128-.254. The server's own address is excluded.
 */
export function defaultRange(s: Subnet): { start: number; end: number } {
  const size = 2 ** (32 - s.prefix);
  if (size < 4) throw new BootboxError('CONFIG_INVALID', `"dhcp.range": subnet /${s.prefix} is too small for a pool`);
  return { start: (s.network + Math.max(1, Math.floor(size / 2))) >>> 0, end: (broadcastOf(s) - 1) >>> 0 };
}

export class DhcpService implements Service {
  readonly name = 'dhcp';
  private readonly o: DhcpServiceOptions;
  private server: DhcpServer | undefined;
  private store: JsonStore<LeaseFile> | undefined;
  private pools = new Map<string, LeasePool>();
  private ranges = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private mode: 'full' | 'proxy' | undefined;
  private modeReason = '';

  constructor(o: DhcpServiceOptions) {
    this.o = o;
  }

  async start(): Promise<void> {
    const o = this.o;
    const ts = () => o.clock.date().toISOString();
    if (o.dhcp.mode === 'auto') {
      const probe = await probeForDhcpServer(o.endpoints, o.privateMac);
      this.mode = probe.found ? 'proxy' : 'full';
      this.modeReason = probe.found
        ? `another DHCP server (${probe.server}) answers on this link`
        : 'no other DHCP server answered on this link';
    } else if (o.dhcp.mode === 'full' || o.dhcp.mode === 'proxy') {
      this.mode = o.dhcp.mode;
      this.modeReason = 'configured';
    } else {
      return;
    }
    o.log.info(`DHCP mode ${this.mode}: ${this.modeReason}`);
    o.events.emit('dhcp.mode', { ts: ts(), mode: this.mode, reason: this.modeReason });

    const server = parseIPv4(o.privateAddress)!;
    const own = subnetOf(server, o.privatePrefix);
    const full = this.mode === 'full';
    const subnet = this.subnetConfig(
      'private',
      own,
      full ? (o.dhcp.range ? parseRange(o.dhcp.range)! : defaultRange(own)) : undefined,
      [server],
    );
    const relaySubnets = o.dhcp.relayNetworks.map((cidr) => {
      const s = parseCidr(cidr)!;
      return this.subnetConfig(
        cidr,
        s,
        full ? { start: (s.network + 10) >>> 0, end: (broadcastOf(s) - 1) >>> 0 } : undefined,
        [],
      );
    });
    if (full) {
      this.store = new JsonStore<LeaseFile>({
        file: `${o.dataDir}/leases.json`,
        defaults: () => ({ version: 1, pools: {} }),
        log: o.log,
        flushIntervalMs: 200,
        validate: (d) =>
          (d as LeaseFile)?.version === 1 && typeof (d as LeaseFile).pools === 'object'
            ? undefined
            : 'not a lease file',
      });
      await this.store.load();
      for (const [key, pool] of this.pools) {
        const snap = this.store.data.pools[key];
        if (!snap) continue;
        const r = pool.restore(snap);
        o.log.info(
          `restored ${r.restored} leases for ${key}` + (r.skipped ? ` (${r.skipped} outside the pool skipped)` : ''),
        );
      }
      this.timer = setInterval(() => this.persist(), this.o.persistIntervalMs ?? 250);
      this.timer.unref();
    }
    this.server = new DhcpServer({
      endpoints: o.endpoints,
      mode: this.mode,
      serverAddr: o.privateAddress,
      subnet,
      relaySubnets,
      planner: o.planner,
      events: o.events,
      clock: o.clock,
      log: o.log.child('dhcp'),
    });
    await this.server.start();
  }

  private subnetConfig(
    key: string,
    s: Subnet,
    range: { start: number; end: number } | undefined,
    exclude: number[],
  ): SubnetConfig {
    const d = this.o.dhcp;
    let pool: LeasePool | undefined;
    if (range) {
      // Reservations of this subnet (an address may lie outside the dynamic range).
      const reservations = Object.entries(d.reservations)
        .map(([mac, ip]) => [normalizeMac(mac)!, parseIPv4(ip)!] as const)
        .filter(([, ip]) => inSubnet(ip, s));
      pool = new LeasePool({ range, exclude, reservations }, this.o.clock);
      this.pools.set(key, pool);
      this.ranges.set(key, `${formatIPv4(range.start)}-${formatIPv4(range.end)}`);
    }
    return {
      subnet: s,
      router: key === 'private' && d.router ? parseIPv4(d.router) : undefined,
      dns: d.dns.map((x) => parseIPv4(x)!),
      domainName: d.domain,
      leaseTimeSec: d.leaseTime,
      pool,
    };
  }

  /** Writes pools that changed. Runs from a timer, never in the reply path. */
  private persist(): void {
    if (!this.store) return;
    let changed = false;
    for (const [key, pool] of this.pools) {
      if (!pool.dirty) continue;
      const gen = pool.generation;
      this.store.data.pools[key] = pool.snapshot();
      pool.markClean(gen);
      changed = true;
    }
    if (changed) {
      this.store.markDirty();
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.server?.stop();
    this.persist();
    await this.store?.close();
  }

  status(): Record<string, unknown> {
    return {
      mode: this.mode ?? 'off',
      modeReason: this.modeReason,
      pools: Object.fromEntries([...this.pools].map(([k, p]) => [k, { ...p.stats(), range: this.ranges.get(k) }])),
      ...(this.server?.status() ?? {}),
      leaseStore: this.store ? { writes: this.store.writes, lastError: this.store.lastError ?? null } : undefined,
    };
  }

  get counters() {
    return this.server?.counters;
  }
}
