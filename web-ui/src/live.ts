/**
 * What the UI knows live: the machines, the recent events and the transfers, kept
 * current from the box's event stream (GET /api/v1/events) plus periodic refreshes.
 *
 * Events are queued as they arrive and applied once per animation frame; each page
 * subscribes to the topics it shows and re-renders at most once per frame, however many
 * events came (a boot storm of 1,000 machines sends thousands per second).
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, readHeaders, seg, sessionEnded } from './api.ts';
import { type BoxEvent, SseParser, toBoxEvent } from './sse.ts';
import { applyTransferEvent, emptyLog, pruneLog, type TransferLog } from './transfer-log.ts';

export interface Machine {
  id: string;
  mac: string;
  name?: string;
  uuid?: string;
  arch: string;
  firmware: string;
  ip?: string;
  firstSeen: string;
  lastSeen: string;
  state: string;
  stateSince: string;
  stateReason: string;
  image?: string;
  group?: string;
  firstStageOverride?: string;
  reimage?: { from: string; mode: string; image?: string; requestedAt: string; by?: string };
  bootCount: number;
  lastBoot?: { at: string; action: string; file?: string; image?: string; ip?: string };
}

export type Topic = 'machines' | 'events' | 'transfers' | 'connection' | 'catalog';
export type Connection = 'connecting' | 'live' | 'retrying' | 'stopped';

/** Events kept for the Events page. */
export const EVENTS_MAX = 2000;
/** More stale machines than this at once: reload the whole list instead of each. */
const REFRESH_EACH_MAX = 20;
const LIST_REFRESH_MS = 60_000;

const nextFrame = (fn: () => void) => {
  if (typeof document !== 'undefined' && !document.hidden && typeof requestAnimationFrame === 'function') {
    requestAnimationFrame(fn);
  } else {
    // a hidden tab gets no animation frames: keep applying, less often
    setTimeout(fn, 250);
  }
};

/**
 * The record keeps the address its DHCP ACK gave (seen on the event stream) when the box's
 * record has none yet.
 */
function withKnownIp(m: Machine, before: Machine | undefined): Machine {
  return m.ip || !before?.ip ? m : { ...m, ip: before.ip };
}

export class Live {
  readonly machines = new Map<string, Machine>();
  machinesLoaded = false;
  machinesError: string | undefined;
  /** Oldest first. */
  readonly events: BoxEvent[] = [];
  /** Count of events ever received (the Events page shows what arrived while paused). */
  received = 0;
  readonly transfers: TransferLog = emptyLog();
  connection: Connection = 'stopped';

  private queue: BoxEvent[] = [];
  private readonly listeners = new Map<Topic, Set<() => void>>();
  private readonly batchListeners = new Set<(batch: BoxEvent[]) => void>();
  private readonly dirty = new Set<Topic>();
  private scheduled = false;
  private running = false;
  /** Bumped by each start and stop: work begun under an older one is dropped. */
  private generation = 0;
  private abort: AbortController | undefined;
  private readonly stale = new Set<string>();
  private staleTimer: ReturnType<typeof setTimeout> | undefined;
  private timers: ReturnType<typeof setInterval>[] = [];
  private listLoading: Promise<void> | undefined;

  subscribe(topic: Topic, fn: () => void): () => void {
    const set = this.listeners.get(topic) ?? new Set<() => void>();
    this.listeners.set(topic, set);
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Every applied batch of events, after the state is updated (pages that refetch on news). */
  onEvents(fn: (batch: BoxEvent[]) => void): () => void {
    this.batchListeners.add(fn);
    return () => this.batchListeners.delete(fn);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const gen = ++this.generation;
    void this.refreshMachines();
    void this.stream(gen);
    this.timers.push(setInterval(() => void this.refreshMachines(), LIST_REFRESH_MS));
    this.timers.push(
      setInterval(() => {
        const before = this.transfers.active.size + this.transfers.samples.length;
        pruneLog(this.transfers, Date.now());
        if (this.transfers.active.size + this.transfers.samples.length !== before) this.changed('transfers');
      }, 2000),
    );
  }

  stop(): void {
    this.running = false;
    this.generation++;
    this.abort?.abort();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.machines.clear();
    this.machinesLoaded = false;
    this.events.length = 0;
    this.setConnection('stopped');
  }

  /** A record the API just returned (after an action): shown at once. */
  putMachine(m: Machine): void {
    this.machines.set(m.mac, withKnownIp(m, this.machines.get(m.mac)));
    this.changed('machines');
  }

  refreshMachines(): Promise<void> {
    const gen = this.generation;
    this.listLoading ??= (async () => {
      try {
        const r = await api.get<{ machines: Machine[] }>('/api/v1/machines');
        if (gen !== this.generation) return;
        const before = new Map(this.machines);
        this.machines.clear();
        for (const m of r.machines) this.machines.set(m.mac, withKnownIp(m, before.get(m.mac)));
        this.machinesLoaded = true;
        this.machinesError = undefined;
      } catch (e) {
        this.machinesError = (e as Error).message;
      } finally {
        this.listLoading = undefined;
        this.changed('machines');
      }
    })();
    return this.listLoading;
  }

  private changed(topic: Topic): void {
    this.dirty.add(topic);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    nextFrame(() => this.flush());
  }

  private enqueue(e: BoxEvent): void {
    this.queue.push(e);
    this.schedule();
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length) {
      const now = Date.now();
      for (const e of batch) this.apply(e, now);
      this.received += batch.length;
      this.events.push(...batch);
      if (this.events.length > EVENTS_MAX) this.events.splice(0, this.events.length - EVENTS_MAX);
      this.dirty.add('events');
    }
    const topics = [...this.dirty];
    this.dirty.clear();
    for (const t of topics) for (const fn of this.listeners.get(t) ?? []) fn();
    if (batch.length) for (const fn of this.batchListeners) fn(batch);
  }

  private apply(e: BoxEvent, now: number): void {
    const t = e.type;
    const mac = typeof e.mac === 'string' ? e.mac : undefined;
    if (t.startsWith('tftp.') || t === 'http.request' || t.startsWith('upload.')) {
      applyTransferEvent(this.transfers, e, now);
      this.dirty.add('transfers');
    }
    if (t.startsWith('catalog.') || t === 'upload.complete' || t === 'volume.state') this.dirty.add('catalog');
    if (!mac) return;
    const m = this.machines.get(mac);
    if (t === 'machine.created') {
      if (!m) {
        this.machines.set(mac, {
          id: mac,
          mac,
          ...(typeof e.name === 'string' ? { name: e.name } : {}),
          arch: 'unknown',
          firmware: 'unknown',
          firstSeen: e.ts,
          lastSeen: e.ts,
          state: typeof e.state === 'string' ? e.state : 'unknown',
          stateSince: e.ts,
          stateReason: 'first netboot',
          bootCount: 0,
        });
      }
      this.markStale(mac);
    } else if (t === 'machine.state' && m) {
      this.machines.set(mac, {
        ...m,
        state: typeof e.to === 'string' ? e.to : m.state,
        stateSince: e.ts,
        stateReason: typeof e.reason === 'string' ? e.reason : m.stateReason,
        ...(typeof e.name === 'string' ? { name: e.name } : {}),
      });
      this.markStale(mac);
    } else if (t === 'dhcp.request' && m) {
      this.machines.set(mac, { ...m, lastSeen: e.ts });
    } else if (
      t === 'dhcp.reply' &&
      m &&
      e.messageType === 'ACK' &&
      typeof e.yiaddr === 'string' &&
      e.yiaddr !== '0.0.0.0'
    ) {
      if (m.ip !== e.yiaddr) this.machines.set(mac, { ...m, ip: e.yiaddr });
    } else if ((t === 'boot.decision' || t === 'boot.report') && m) {
      this.markStale(mac);
    } else {
      return;
    }
    this.dirty.add('machines');
  }

  /** The record changed in ways the event does not carry (last boot, reimage): fetch it soon. */
  private markStale(mac: string): void {
    this.stale.add(mac);
    this.staleTimer ??= setTimeout(() => void this.refreshStale(), 400);
  }

  private async refreshStale(): Promise<void> {
    this.staleTimer = undefined;
    const macs = [...this.stale];
    this.stale.clear();
    if (macs.length > REFRESH_EACH_MAX) return this.refreshMachines();
    const gen = this.generation;
    await Promise.all(
      macs.map(async (mac) => {
        try {
          const r = await api.get<{ machine: Machine }>(`/api/v1/machines/${seg(mac)}`);
          if (gen !== this.generation) return;
          this.machines.set(r.machine.mac, withKnownIp(r.machine, this.machines.get(r.machine.mac)));
        } catch {
          // gone or unreachable: the next list refresh settles it
        }
      }),
    );
    this.changed('machines');
  }

  private setConnection(c: Connection): void {
    if (this.connection === c) return;
    this.connection = c;
    this.changed('connection');
  }

  /** The event stream, reconnected with backoff; a reconnect reloads the list (events were missed). */
  private async stream(gen: number): Promise<void> {
    let backoff = 1000;
    let connectedBefore = false;
    const current = () => this.running && gen === this.generation;
    while (current()) {
      this.setConnection(connectedBefore ? 'retrying' : 'connecting');
      const ac = new AbortController();
      this.abort = ac;
      try {
        const res = await fetch('/api/v1/events', {
          credentials: 'same-origin',
          headers: { Accept: 'text/event-stream', ...readHeaders() },
          signal: ac.signal,
        });
        if (res.status === 401) {
          sessionEnded('your session has ended');
          return;
        }
        if (!res.ok || !res.body) throw new ApiError(res.status, `HTTP_${res.status}`, 'event stream refused');
        this.setConnection('live');
        if (connectedBefore) void this.refreshMachines();
        connectedBefore = true;
        backoff = 1000;
        const parser = new SseParser();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          if (!current()) break;
          for (const msg of parser.push(value)) {
            const e = toBoxEvent(msg);
            if (e) this.enqueue(e);
          }
        }
      } catch {
        // dropped, refused or aborted: retry below unless stopped
      }
      if (!current()) return;
      this.setConnection('retrying');
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 15_000);
    }
  }
}

export const live = new Live();

/** Re-renders the calling component when any of `topics` changes (at most once per frame). */
export function useLive(...topics: Topic[]): Live {
  const [, setTick] = useState(0);
  useEffect(() => {
    const offs = topics.map((t) => live.subscribe(t, () => setTick((x) => x + 1)));
    return () => {
      for (const off of offs) off();
    };
  }, []);
  return live;
}

/** The current time, updated every `ms` (for "5 min ago" labels and uptimes). */
export function useNow(ms = 5000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
