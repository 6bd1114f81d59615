/**
 * The address pool of full-mode DHCP. Pure: time comes from an injected Clock, and
 * persistence is snapshot()/restore() of plain JSON, written in batches by the server
 * (`generation`/`dirty`/`markClean`), never per packet.
 *
 * Rules:
 * - A client is its MAC (chaddr). Option 61 is recorded and can be looked up, but two
 *   client ids on one MAC are one machine (a PXE ROM, iPXE and the installed OS on the
 *   same NIC must keep one address).
 * - No address is handed out twice: an address offered or leased to one MAC is never
 *   offered or acknowledged to another until the offer or lease has expired, been
 *   released, or been given up (a REQUEST naming another server).
 * - A returning client gets its previous address if nobody else holds it: expired and
 *   released addresses remember their last owner and are reused oldest-first.
 * - Reservations (MAC -> address) win; a reserved address is never given to another MAC.
 * - A DECLINEd address (RFC 2131 §3.1 step 5: in use by something else) is quarantined.
 *
 * Allocation is O(1) amortised for a 64k range: a cursor walks never-used addresses,
 * then a FIFO of freed ones; expiries come off a min-heap.
 */
import type { Clock } from '../../core/clock.ts';
import { formatIPv4, parseIPv4 } from '../../core/net.ts';

export type LeaseState = 'offered' | 'leased' | 'declined' | 'free';

export interface Lease {
  ip: number;
  /** Owner; for 'free' the last owner (for a returning client), for 'declined' undefined. */
  mac: string | undefined;
  clientId: string | undefined;
  state: LeaseState;
  /** Clock.now() milliseconds when the offer/lease/quarantine ends (for 'free': when it was freed). */
  expiresAt: number;
}

export interface LeaseClient {
  mac: string;
  /** Option 61 as hex. */
  clientId?: string | undefined;
}

export interface LeasePoolConfig {
  /** Inclusive, as core/net.ts parseRange gives it. */
  range: { start: number; end: number };
  /** MAC (aa:bb:cc:dd:ee:ff) -> address; the address may lie outside the range. */
  reservations?: Iterable<readonly [string, number]>;
  /** Addresses inside the range never to hand out (the server's own, a router). */
  exclude?: Iterable<number>;
  /** How long an OFFER holds its address (default 30 s). */
  offerHoldMs?: number;
  /** How long a declined address stays out of use (default 10 min). */
  declineHoldMs?: number;
}

export type CommitResult =
  | { ok: true; lease: Readonly<Lease> }
  | { ok: false; reason: 'not-in-pool' | 'address-taken' | 'reserved-for-other' };

export interface PoolStats {
  size: number;
  offered: number;
  leased: number;
  declined: number;
  available: number;
}

export interface LeaseSnapshot {
  version: 1;
  savedAt: string;
  range: { start: string; end: string };
  leases: {
    ip: string;
    mac: string | null;
    clientId: string | null;
    state: LeaseState;
    /** Wall-clock ISO time (Clock.now() does not survive a restart). */
    expiresAt: string;
  }[];
}

const MAX_POOL = 1 << 24;

/** A min-heap of (time, ip) with lazy deletion: stale entries are checked against the record. */
class ExpiryHeap {
  private t: number[] = [];
  private a: number[] = [];
  get size(): number {
    return this.t.length;
  }
  push(time: number, ip: number): void {
    let i = this.t.length;
    this.t.push(time);
    this.a.push(ip);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.t[p]! <= time) break;
      this.t[i] = this.t[p]!;
      this.a[i] = this.a[p]!;
      i = p;
    }
    this.t[i] = time;
    this.a[i] = ip;
  }
  peekTime(): number {
    return this.t.length ? this.t[0]! : Number.POSITIVE_INFINITY;
  }
  pop(): [number, number] {
    const top: [number, number] = [this.t[0]!, this.a[0]!];
    const lt = this.t.pop()!;
    const la = this.a.pop()!;
    const n = this.t.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && this.t[r]! < this.t[l]! ? r : l;
        if (this.t[c]! >= lt) break;
        this.t[i] = this.t[c]!;
        this.a[i] = this.a[c]!;
        i = c;
      }
      this.t[i] = lt;
      this.a[i] = la;
    }
    return top;
  }
  clear(): void {
    this.t = [];
    this.a = [];
  }
}

export class LeasePool {
  readonly start: number;
  readonly end: number;
  private readonly clock: Clock;
  private readonly offerHoldMs: number;
  private readonly declineHoldMs: number;
  private readonly records = new Map<number, Lease>();
  private readonly byMac = new Map<string, number>();
  private readonly byClientId = new Map<string, number>();
  private readonly reservedByMac = new Map<string, number>();
  private readonly reservedOwner = new Map<number, string>();
  private readonly excluded = new Set<number>();
  private readonly heap = new ExpiryHeap();
  private freeQueue: number[] = [];
  private freeHead = 0;
  private cursor = 0;
  private counts = { offered: 0, leased: 0, declined: 0 };
  private gen = 0;
  private cleanGen = 0;

  constructor(config: LeasePoolConfig, clock: Clock) {
    const { start, end } = config.range;
    if (!(end >= start) || end - start + 1 > MAX_POOL) throw new RangeError('lease range is empty or too large');
    this.start = start >>> 0;
    this.end = end >>> 0;
    this.clock = clock;
    this.offerHoldMs = config.offerHoldMs ?? 30_000;
    this.declineHoldMs = config.declineHoldMs ?? 600_000;
    for (const [mac, ip] of config.reservations ?? []) this.reserve(mac, ip);
    for (const ip of config.exclude ?? []) this.excluded.add(ip >>> 0);
  }

  /** Bumped by every change; the server persists when it differs from the last saved one. */
  get generation(): number {
    return this.gen;
  }
  get dirty(): boolean {
    return this.gen !== this.cleanGen;
  }
  /** Call with the generation read just before snapshot() once that snapshot is written. */
  markClean(generation: number): void {
    this.cleanGen = generation;
  }

  get size(): number {
    return this.end - this.start + 1;
  }

  inRange(ip: number): boolean {
    return ip >= this.start && ip <= this.end;
  }

  /** An address this pool may hand out to someone: in range and not excluded, or reserved. */
  contains(ip: number): boolean {
    return this.reservedOwner.has(ip) || (this.inRange(ip) && !this.excluded.has(ip));
  }

  reserve(mac: string, ip: number): void {
    const m = mac.toLowerCase();
    const prev = this.reservedByMac.get(m);
    if (prev !== undefined) this.reservedOwner.delete(prev);
    this.reservedByMac.set(m, ip >>> 0);
    this.reservedOwner.set(ip >>> 0, m);
    this.touch();
  }

  unreserve(mac: string): void {
    const m = mac.toLowerCase();
    const ip = this.reservedByMac.get(m);
    if (ip === undefined) return;
    this.reservedByMac.delete(m);
    this.reservedOwner.delete(ip);
    if (this.inRange(ip) && !this.records.has(ip)) this.pushFree(ip);
    this.touch();
  }

  /** The client's active offer or lease (by client id first, then MAC), or undefined. */
  lookup(client: { mac?: string; clientId?: string | undefined }): Readonly<Lease> | undefined {
    this.reap();
    let ip = client.clientId ? this.byClientId.get(client.clientId) : undefined;
    if (ip === undefined && client.mac) ip = this.byMac.get(client.mac.toLowerCase());
    if (ip === undefined) return undefined;
    const r = this.records.get(ip);
    return r && (r.state === 'offered' || r.state === 'leased') ? { ...r } : undefined;
  }

  /** The record of one address (any state), or undefined if never used. */
  get(ip: number): Readonly<Lease> | undefined {
    this.reap();
    const r = this.records.get(ip);
    return r ? { ...r } : undefined;
  }

  /**
   * Chooses and holds an address for a DISCOVER: the reservation, else the client's
   * current or previous address, else the requested one (option 50) if free, else a
   * never-used one, else the oldest freed one. Undefined when the pool is exhausted.
   * An address the client already leases stays leased (the offer does not shorten it).
   */
  offer(client: LeaseClient & { requestedIp?: number | undefined }): number | undefined {
    this.reap();
    const mac = client.mac.toLowerCase();
    const reserved = this.reservedByMac.get(mac);
    if (reserved !== undefined && this.availableTo(reserved, mac)) return this.hold(reserved, mac, client.clientId);
    // A reserved address held by another MAC (a reservation added while it was leased)
    // is not taken from that client: this one gets a dynamic address until it expires.
    const prev = (client.clientId ? this.byClientId.get(client.clientId) : undefined) ?? this.byMac.get(mac);
    if (prev !== undefined && this.contains(prev) && this.availableTo(prev, mac))
      return this.hold(prev, mac, client.clientId);
    const req = client.requestedIp;
    if (req !== undefined && this.inRange(req) && this.availableTo(req, mac))
      return this.hold(req, mac, client.clientId);
    const fresh = this.nextFresh();
    if (fresh !== undefined) return this.hold(fresh, mac, client.clientId);
    const freed = this.nextFreed(mac);
    if (freed !== undefined) return this.hold(freed, mac, client.clientId);
    return undefined;
  }

  /**
   * Binds `ip` to the client for `leaseMs` (DHCPREQUEST in any state). Fails if the
   * address is not ours to give or someone else holds it.
   */
  commit(client: LeaseClient, ip: number, leaseMs: number): CommitResult {
    this.reap();
    const mac = client.mac.toLowerCase();
    if (!this.contains(ip)) return { ok: false, reason: 'not-in-pool' };
    const owner = this.reservedOwner.get(ip);
    if (owner !== undefined && owner !== mac) return { ok: false, reason: 'reserved-for-other' };
    if (!this.availableTo(ip, mac)) return { ok: false, reason: 'address-taken' };
    const lease = this.bind(ip, mac, client.clientId, 'leased', this.clock.now() + leaseMs);
    return { ok: true, lease: { ...lease } };
  }

  /** DHCPRELEASE: frees the client's address (keeping it as its previous one). */
  release(client: LeaseClient, ip: number): boolean {
    this.reap();
    const r = this.records.get(ip);
    if (!r || r.mac !== client.mac.toLowerCase() || (r.state !== 'leased' && r.state !== 'offered')) return false;
    this.setFree(r);
    return true;
  }

  /** A REQUEST naming another server: our offer to this client is released (RFC 2131 §4.3.2). */
  cancelOffer(client: LeaseClient): boolean {
    this.reap();
    const ip = this.byMac.get(client.mac.toLowerCase());
    const r = ip === undefined ? undefined : this.records.get(ip);
    if (r?.state !== 'offered') return false;
    this.setFree(r);
    return true;
  }

  /**
   * DHCPDECLINE: the client found `ip` in use. The address is quarantined for
   * declineHoldMs and forgets its owner. Only the client it was given to can decline it.
   */
  decline(client: LeaseClient, ip: number): boolean {
    this.reap();
    const mac = client.mac.toLowerCase();
    const r = this.records.get(ip);
    if (!r || r.mac !== mac || (r.state !== 'leased' && r.state !== 'offered')) return false;
    this.count(r.state, -1);
    if (this.byMac.get(mac) === ip) this.byMac.delete(mac);
    if (r.clientId && this.byClientId.get(r.clientId) === ip) this.byClientId.delete(r.clientId);
    r.state = 'declined';
    r.mac = undefined;
    r.clientId = undefined;
    r.expiresAt = this.clock.now() + this.declineHoldMs;
    this.count('declined', 1);
    this.heap.push(r.expiresAt, ip);
    this.touch();
    return true;
  }

  stats(): PoolStats {
    this.reap();
    let reservedInRange = 0;
    for (const ip of this.reservedOwner.keys()) if (this.inRange(ip) && !this.records.has(ip)) reservedInRange++;
    let excludedInRange = 0;
    for (const ip of this.excluded) if (this.inRange(ip) && !this.reservedOwner.has(ip)) excludedInRange++;
    const { offered, leased, declined } = this.counts;
    const busyInRange = [...this.records.values()].filter((r) => r.state !== 'free' && this.inRange(r.ip)).length;
    return {
      size: this.size,
      offered,
      leased,
      declined,
      available: this.size - busyInRange - reservedInRange - excludedInRange,
    };
  }

  // -- persistence ----------------------------------------------------------

  snapshot(): LeaseSnapshot {
    this.reap();
    const nowMono = this.clock.now();
    const nowWall = this.clock.date().getTime();
    const leases: LeaseSnapshot['leases'] = [];
    for (const r of this.records.values()) {
      leases.push({
        ip: formatIPv4(r.ip),
        mac: r.mac ?? null,
        clientId: r.clientId ?? null,
        state: r.state,
        expiresAt: new Date(nowWall + (r.expiresAt - nowMono)).toISOString(),
      });
    }
    return {
      version: 1,
      savedAt: new Date(nowWall).toISOString(),
      range: { start: formatIPv4(this.start), end: formatIPv4(this.end) },
      leases,
    };
  }

  /**
   * Replaces the pool's state with a snapshot. Entries that are malformed, or whose
   * address this pool no longer serves (the range changed), are skipped and counted.
   */
  restore(snap: LeaseSnapshot): { restored: number; skipped: number } {
    this.records.clear();
    this.byMac.clear();
    this.byClientId.clear();
    this.heap.clear();
    this.freeQueue = [];
    this.freeHead = 0;
    this.cursor = 0;
    this.counts = { offered: 0, leased: 0, declined: 0 };
    const nowMono = this.clock.now();
    const nowWall = this.clock.date().getTime();
    let restored = 0;
    let skipped = 0;
    const frees: Lease[] = [];
    for (const e of Array.isArray(snap?.leases) ? snap.leases : []) {
      const ip = typeof e?.ip === 'string' ? parseIPv4(e.ip) : undefined;
      const wall = typeof e?.expiresAt === 'string' ? Date.parse(e.expiresAt) : Number.NaN;
      const state = e?.state;
      const ok =
        ip !== undefined &&
        this.contains(ip) &&
        !this.records.has(ip) &&
        Number.isFinite(wall) &&
        (state === 'offered' || state === 'leased' || state === 'declined' || state === 'free') &&
        (state === 'declined' || typeof e.mac === 'string');
      if (!ok) {
        skipped++;
        continue;
      }
      const r: Lease = {
        ip,
        mac: typeof e.mac === 'string' ? e.mac.toLowerCase() : undefined,
        clientId: typeof e.clientId === 'string' ? e.clientId : undefined,
        state,
        expiresAt: nowMono + (wall - nowWall),
      };
      this.records.set(ip, r);
      if (r.state === 'free') frees.push(r);
      else {
        this.count(r.state, 1);
        this.heap.push(r.expiresAt, ip);
      }
      if (r.mac) {
        const cur = this.byMac.get(r.mac);
        // An active binding wins over a remembered free one for the same MAC.
        if (cur === undefined || this.records.get(cur)!.state === 'free') this.byMac.set(r.mac, ip);
      }
      if (r.clientId && r.mac && this.byMac.get(r.mac) === ip) this.byClientId.set(r.clientId, ip);
      restored++;
    }
    frees.sort((a, b) => a.expiresAt - b.expiresAt);
    for (const r of frees) this.pushFree(r.ip);
    this.reap();
    this.touch();
    this.cleanGen = this.gen;
    return { restored, skipped };
  }

  // -- internals ------------------------------------------------------------

  private touch(): void {
    this.gen++;
  }

  private count(state: LeaseState, d: number): void {
    if (state !== 'free') this.counts[state] += d;
  }

  /** Free, or already this MAC's (offered/leased/previous), and not reserved or excluded for another. */
  private availableTo(ip: number, mac: string): boolean {
    const owner = this.reservedOwner.get(ip);
    if (owner !== undefined) {
      if (owner !== mac) return false;
    } else if (this.excluded.has(ip) || !this.inRange(ip)) return false;
    const r = this.records.get(ip);
    if (!r || r.state === 'free') return true;
    return r.state !== 'declined' && r.mac === mac;
  }

  private hold(ip: number, mac: string, clientId: string | undefined): number {
    const r = this.records.get(ip);
    if (r && r.state === 'leased' && r.mac === mac) {
      if (clientId && r.clientId !== clientId) this.bind(ip, mac, clientId, 'leased', r.expiresAt);
      return ip;
    }
    this.bind(ip, mac, clientId, 'offered', this.clock.now() + this.offerHoldMs);
    return ip;
  }

  private bind(
    ip: number,
    mac: string,
    clientId: string | undefined,
    state: 'offered' | 'leased',
    expiresAt: number,
  ): Lease {
    // The client moves: what it held elsewhere is freed.
    const prevIp = this.byMac.get(mac);
    if (prevIp !== undefined && prevIp !== ip) {
      const p = this.records.get(prevIp);
      if (p && p.mac === mac && (p.state === 'offered' || p.state === 'leased')) this.setFree(p);
      if (p && p.mac === mac) p.mac = undefined; // no longer its previous address either
    }
    let r = this.records.get(ip);
    if (!r) {
      r = { ip, mac, clientId, state, expiresAt };
      this.records.set(ip, r);
    } else {
      if (r.mac && r.mac !== mac && this.byMac.get(r.mac) === ip) this.byMac.delete(r.mac);
      if (r.clientId && r.clientId !== clientId && this.byClientId.get(r.clientId) === ip)
        this.byClientId.delete(r.clientId);
      this.count(r.state, -1);
      r.mac = mac;
      r.clientId = clientId;
      r.state = state;
      r.expiresAt = expiresAt;
    }
    this.count(state, 1);
    this.byMac.set(mac, ip);
    if (clientId) this.byClientId.set(clientId, ip);
    this.heap.push(expiresAt, ip);
    // Renewals leave stale heap entries behind; rebuild when they dominate.
    if (this.heap.size > 4 * this.records.size + 1024) this.rebuildHeap();
    this.touch();
    return r;
  }

  private rebuildHeap(): void {
    this.heap.clear();
    for (const r of this.records.values()) if (r.state !== 'free') this.heap.push(r.expiresAt, r.ip);
  }

  private setFree(r: Lease): void {
    this.count(r.state, -1);
    r.state = 'free';
    r.expiresAt = this.clock.now();
    if (this.inRange(r.ip) && !this.reservedOwner.has(r.ip)) this.pushFree(r.ip);
    this.touch();
  }

  private pushFree(ip: number): void {
    this.freeQueue.push(ip);
  }

  private nextFresh(): number | undefined {
    const size = this.size;
    while (this.cursor < size) {
      const ip = this.start + this.cursor++;
      if (!this.records.has(ip) && !this.reservedOwner.has(ip) && !this.excluded.has(ip)) return ip;
    }
    return undefined;
  }

  private nextFreed(mac: string): number | undefined {
    while (this.freeHead < this.freeQueue.length) {
      const ip = this.freeQueue[this.freeHead++]!;
      if (this.freeHead > 4096 && this.freeHead * 2 > this.freeQueue.length) {
        this.freeQueue = this.freeQueue.slice(this.freeHead);
        this.freeHead = 0;
      }
      const r = this.records.get(ip);
      if ((!r || r.state === 'free') && this.availableTo(ip, mac)) return ip;
    }
    return undefined;
  }

  /** Ends every offer, lease and quarantine whose time has come. */
  private reap(): void {
    const now = this.clock.now();
    while (this.heap.size > 0 && this.heap.peekTime() <= now) {
      const [t, ip] = this.heap.pop();
      const r = this.records.get(ip);
      if (!r || r.state === 'free' || r.expiresAt !== t) continue; // stale heap entry
      if (r.state === 'declined') {
        this.count('declined', -1);
        this.records.delete(ip);
        if (this.inRange(ip) && !this.reservedOwner.has(ip)) this.pushFree(ip);
        this.touch();
      } else {
        this.setFree(r);
      }
    }
  }
}
