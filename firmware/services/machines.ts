/**
 * The machine registry: every machine the box has seen, keyed by MAC, with its
 * lifecycle state and a bounded boot timeline. Kept in memory (the DHCP planner reads
 * it per packet) and persisted in batches through the JSON store.
 */
import type { Clock } from '../core/clock.ts';
import { BootboxError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { normalizeMac } from '../core/net.ts';
import {
  type BootSeen,
  type Machine,
  type MachineArch,
  type MachineEvent,
  type MachineFirmware,
  newMachine,
  recordBoot,
  type StateChange,
  transition,
  type UefiX86FirstStage,
} from '../domain/machine.ts';
import { type NamingPattern, nameKey, nextName, parseNamingPattern, validateManualName } from '../policy/naming.ts';
import { JsonStore } from '../store/json-store.ts';

export interface TimelineEntry {
  ts: string;
  type: string;
  [k: string]: unknown;
}

interface MachinesFile {
  version: 1;
  /** Next counter of the naming pattern. */
  counter: number;
  machines: Machine[];
  timelines: Record<string, TimelineEntry[]>;
}

/** Client addresses remembered for attributing TFTP and HTTP events (recordEvent). */
const MAX_ADDRESSES = 4096;

export interface MachineEventMap {
  'machine.created': { ts: string; mac: string; name?: string; state: string };
  'machine.state': {
    ts: string;
    mac: string;
    name?: string;
    from: string;
    to: string;
    reason: string;
    by?: string;
    event: string;
  };
}

export interface MachineEventSink {
  emit<K extends keyof MachineEventMap>(type: K, event: MachineEventMap[K]): void;
}

export interface MachineRegistryOptions {
  file: string;
  namingPattern: string;
  clock: Clock;
  log: Logger;
  events: MachineEventSink;
  /** Timeline entries kept per machine. */
  timelineMax?: number;
  flushIntervalMs?: number;
}

export class MachineRegistry {
  private readonly o: MachineRegistryOptions;
  private readonly store: JsonStore<MachinesFile>;
  private readonly byMac = new Map<string, Machine>();
  private readonly byName = new Map<string, string>();
  /** Position of each MAC in the file's array, so an update is O(1). */
  private readonly index = new Map<string, number>();
  /** The MAC each client address was last seen with (see recordEvent); oldest first. */
  private readonly macByAddress = new Map<string, string>();
  private pattern: NamingPattern;

  constructor(o: MachineRegistryOptions) {
    this.o = o;
    this.pattern = namingPatternOf(o.namingPattern);
    this.store = new JsonStore<MachinesFile>({
      file: o.file,
      defaults: () => ({ version: 1, counter: 1, machines: [], timelines: {} }),
      log: o.log,
      flushIntervalMs: o.flushIntervalMs ?? 500,
      validate: (d) => {
        const f = d as MachinesFile;
        return f?.version === 1 && Array.isArray(f.machines) && typeof f.timelines === 'object'
          ? undefined
          : 'not a machines file';
      },
    });
  }

  /** A new naming pattern for machines named from now on (Settings); the counter goes on. */
  setNamingPattern(text: string): void {
    this.pattern = namingPatternOf(text);
  }

  async load(): Promise<void> {
    await this.store.load();
    for (const [i, m] of this.store.data.machines.entries()) {
      this.index.set(m.mac, i);
      this.byMac.set(m.mac, m);
      if (m.name) this.byName.set(nameKey(m.name), m.mac);
    }
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  get size(): number {
    return this.byMac.size;
  }

  /** By MAC (any common notation) or by name (case-insensitive). */
  get(id: string): Machine | undefined {
    const mac = normalizeMac(id);
    if (mac) return this.byMac.get(mac);
    const byName = this.byName.get(nameKey(id));
    return byName ? this.byMac.get(byName) : undefined;
  }

  list(): Machine[] {
    return [...this.byMac.values()];
  }

  timeline(mac: string): TimelineEntry[] {
    return this.store.data.timelines[mac] ?? [];
  }

  /** The name a new machine would get now (without taking it). */
  peekName(mac: string): string | undefined {
    const n = nextName(this.pattern, (k) => this.byName.has(k), this.store.data.counter, mac);
    return n instanceof BootboxError ? undefined : n.name;
  }

  /** Creates the record of a machine seen for the first time, named by the naming policy. */
  create(input: { mac: string; arch: MachineArch; firmware: MachineFirmware; uuid?: string; ip?: string }): Machine {
    const existing = this.byMac.get(input.mac);
    if (existing) return existing;
    const now = this.o.clock.date();
    const n = nextName(this.pattern, (k) => this.byName.has(k), this.store.data.counter, input.mac);
    let name: string | undefined;
    if (n instanceof BootboxError) {
      this.o.log.warn(`no name for ${input.mac}: ${n.message}`);
    } else {
      name = n.name;
      this.store.data.counter = n.counter + 1;
    }
    const m = newMachine({ ...input, ...(name ? { name } : {}) }, now);
    this.put(m);
    this.o.events.emit('machine.created', { ts: now.toISOString(), mac: m.mac, name: m.name, state: m.state });
    return m;
  }

  /** Applies a lifecycle event. Returns the new record, or the error (nothing changes). */
  apply(mac: string, event: MachineEvent): { machine: Machine; change: StateChange } | BootboxError {
    const m = this.byMac.get(mac);
    if (!m) return new BootboxError('NOT_FOUND', `no machine ${mac}`);
    const r = transition(m, event, this.o.clock.date());
    if (r instanceof BootboxError) return r;
    this.put(r.machine);
    const c = r.change;
    this.o.events.emit('machine.state', {
      ts: c.at,
      mac,
      name: r.machine.name,
      from: c.from,
      to: c.to,
      reason: c.reason,
      by: c.by,
      event: c.event,
    });
    return r;
  }

  recordBoot(mac: string, boot: BootSeen): void {
    const m = this.byMac.get(mac);
    if (!m) return;
    this.put(recordBoot(m, boot, this.o.clock.date()));
  }

  /** Sets fields an admin may change: name (checked), image, group. */
  update(
    mac: string,
    patch: {
      name?: string;
      image?: string | null;
      group?: string | null;
      firstStage?: UefiX86FirstStage | null;
    },
  ): Machine | BootboxError {
    const m = this.byMac.get(mac);
    if (!m) return new BootboxError('NOT_FOUND', `no machine ${mac}`);
    const next: Machine = { ...m };
    if (patch.name !== undefined) {
      const v = validateManualName(patch.name, new Set(this.byName.keys()), m.name);
      if (v instanceof BootboxError) return v;
      if (m.name) this.byName.delete(nameKey(m.name));
      next.name = v;
    }
    if (patch.image !== undefined) {
      if (patch.image === null) delete next.image;
      else next.image = patch.image;
    }
    if (patch.group !== undefined) {
      if (patch.group === null) delete next.group;
      else next.group = patch.group;
    }
    if (patch.firstStage !== undefined) {
      if (patch.firstStage === null) delete next.firstStageOverride;
      else next.firstStageOverride = patch.firstStage;
    }
    this.put(next);
    return next;
  }

  /**
   * One event of the box's bus, onto the timeline of the machine it is about (the bus's
   * catch-all listener calls this for every event).
   * - DHCP, boot and machine events name the MAC. TFTP transfers and HTTP file downloads know
   *   only the client's address (`address`, `peer`): they go to the machine last seen at that
   *   address, learned from the box's DHCP ACKs (yiaddr), from requests sent from an address the
   *   client already holds (not relayed; e.g. edk2's port-4011 request in proxy mode) and from
   *   the machine's own script and report requests (iPXE in proxy mode).
   * - The entry's `type` is the event type. Some events have a `type` of their own (DHCP: the
   *   message type, DISCOVER…); it is kept as `messageType`, so that an ignored DISCOVER
   *   (dhcp.ignored) still reads differently from an answered one (dhcp.request).
   */
  recordEvent(type: string, event: object): void {
    const { type: own, ts, ...fields } = event as Record<string, unknown>;
    const mac = typeof fields.mac === 'string' ? fields.mac : undefined;
    if (mac) this.learnAddress(type, own, fields, mac);
    // The address a machine was leased is part of its record (the UI and API list it).
    if (
      mac &&
      type === 'dhcp.reply' &&
      own === 'ACK' &&
      typeof fields.yiaddr === 'string' &&
      fields.yiaddr !== '0.0.0.0'
    ) {
      const m = this.byMac.get(mac);
      if (m && m.ip !== fields.yiaddr) this.put({ ...m, ip: fields.yiaddr });
    }
    const owner = mac ?? this.macAt(fields.address ?? fields.peer);
    if (!owner) return;
    this.appendTimeline(owner, {
      ts: typeof ts === 'string' ? ts : this.o.clock.date().toISOString(),
      type,
      ...(own !== undefined ? { messageType: own } : {}),
      ...fields,
      mac: owner,
    });
  }

  private learnAddress(type: string, own: unknown, f: Record<string, unknown>, mac: string): void {
    let addr: unknown;
    if (type === 'dhcp.reply' && own === 'ACK') addr = f.yiaddr;
    else if (type === 'dhcp.request' && f.relayed === false) addr = f.src;
    else if (type === 'http.request' && typeof f.status === 'number' && f.status < 400) addr = f.peer;
    if (typeof addr !== 'string' || addr === '' || addr === '0.0.0.0') return;
    this.macByAddress.delete(addr);
    this.macByAddress.set(addr, mac);
    if (this.macByAddress.size > MAX_ADDRESSES) this.macByAddress.delete(this.macByAddress.keys().next().value!);
  }

  private macAt(addr: unknown): string | undefined {
    return typeof addr === 'string' ? this.macByAddress.get(addr) : undefined;
  }

  /** Appends to a machine's timeline (bounded); events of unknown MACs are not kept. */
  appendTimeline(mac: string, entry: TimelineEntry): void {
    if (!this.byMac.has(mac)) return;
    const t = this.store.data.timelines;
    const list = t[mac] ?? [];
    list.push(entry);
    const max = this.o.timelineMax ?? 300;
    if (list.length > max) list.splice(0, list.length - max);
    t[mac] = list;
    this.store.markDirty();
  }

  private put(m: Machine): void {
    this.byMac.set(m.mac, m);
    if (m.name) this.byName.set(nameKey(m.name), m.mac);
    const arr = this.store.data.machines;
    const i = this.index.get(m.mac);
    if (i !== undefined) arr[i] = m;
    else this.index.set(m.mac, arr.push(m) - 1);
    this.store.markDirty();
  }

  async flush(): Promise<void> {
    await this.store.flush();
  }
}

function namingPatternOf(text: string): NamingPattern {
  const p = parseNamingPattern(text);
  if (p instanceof BootboxError) throw new BootboxError('CONFIG_INVALID', `"boot.namingPattern" ${p.message}`);
  return p;
}
