/**
 * What the box reports over MQTT, from its event bus (protocols and services never call
 * MQTT themselves):
 *
 * - every event → `<root>events` as `{type, ...event}` (an event's own `type` field
 *   becomes `subtype`);
 * - `machine.created` / `machine.state` (services/machines.ts MachineEventMap) and any
 *   event with a `mac` and a `progress` → retained `<root>machines/<mac>/state`
 *   `{mac, name, state, from, reason, ts, progress?}`;
 * - health (health.ts) every `healthIntervalMs` and after each connect;
 * - after each (re)connect, every machine's state again from the registry snapshot, so
 *   the retained states are right after an outage and after a box restart.
 */
import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../core/logger.ts';
import type { MqttPort } from './port.ts';
import { type Topics, topicsFor } from './topics.ts';

/** A machine as the registry knows it now (main maps MachineRegistry.list() to this). */
export interface MachineSnapshot {
  mac: string;
  name?: string;
  state: string;
  /** Why it is in this state (Machine.stateReason). */
  reason?: string;
  /** When it entered this state, ISO 8601 (Machine.stateSince). */
  since?: string;
}

export interface MachineStatePayload {
  mac: string;
  name?: string;
  state: string;
  from?: string;
  reason?: string;
  by?: string;
  /** When the machine entered this state. */
  ts: string;
  progress?: unknown;
}

/** The part of the event bus telemetry needs (EventBus.onAny). */
export interface EventSource {
  onAny(fn: (type: PropertyKey, event: unknown) => void): () => void;
}

export interface TelemetryOptions {
  port: MqttPort;
  events: EventSource;
  machines: () => MachineSnapshot[];
  /** Collects the health document (health.ts collectHealth with the box's sources). */
  health: () => Promise<object>;
  healthIntervalMs: number;
  /** Events per second sent to `events`; the rest are counted and dropped (an event storm must not flood the broker). */
  maxEventsPerSec?: number;
  /** Shortest time between two progress updates of one machine's state. */
  progressIntervalMs?: number;
  clock: Clock;
  log: Logger;
}

export interface TelemetryCounters {
  events: number;
  eventsDropped: number;
  states: number;
  health: number;
  healthErrors: number;
}

export class Telemetry {
  readonly name = 'mqtt-telemetry';
  private readonly o: TelemetryOptions;
  private readonly topics: Topics;
  private readonly states = new Map<string, MachineStatePayload>();
  private readonly progressTimers = new Map<string, NodeJS.Timeout>();
  private readonly lastProgress = new Map<string, number>();
  private readonly offs: (() => void)[] = [];
  private healthTimer: NodeJS.Timeout | undefined;
  private collecting = false;
  private window = { start: 0, count: 0, dropped: 0 };
  readonly counters: TelemetryCounters = { events: 0, eventsDropped: 0, states: 0, health: 0, healthErrors: 0 };

  constructor(o: TelemetryOptions) {
    this.o = o;
    this.topics = topicsFor(o.port.root);
  }

  async start(): Promise<void> {
    if (this.offs.length) return;
    this.offs.push(this.o.events.onAny((type, event) => this.onEvent(String(type), event)));
    // The link republishes every retained state it holds on (re)connect; from the registry
    // (the truth) only what differs from that goes out again (a rename, a missed change), so
    // a reconnect does not double the burst.
    const offConnect = this.o.port.onConnect?.(() => {
      this.republishStates(true);
      void this.publishHealth();
    });
    if (offConnect) this.offs.push(offConnect);
    this.republishStates();
    this.healthTimer = setInterval(() => void this.publishHealth(), this.o.healthIntervalMs);
    this.healthTimer.unref();
  }

  async stop(): Promise<void> {
    for (const off of this.offs.splice(0)) off();
    clearInterval(this.healthTimer);
    this.healthTimer = undefined;
    for (const t of this.progressTimers.values()) clearTimeout(t);
    this.progressTimers.clear();
  }

  status(): Record<string, unknown> {
    return { machines: this.states.size, counters: { ...this.counters } };
  }

  /** Publishes every machine's state (retained), the registry being the truth. */
  republishStates(onlyChanged = false): void {
    let list: MachineSnapshot[];
    try {
      list = this.o.machines();
    } catch (e) {
      this.o.log.error(`machine snapshot failed: ${(e as Error).message}`);
      return;
    }
    for (const m of list) {
      const live = this.states.get(m.mac);
      const p: MachineStatePayload =
        live && live.state === m.state
          ? { ...live, ...(m.name !== undefined ? { name: m.name } : {}) }
          : {
              mac: m.mac,
              ...(m.name !== undefined ? { name: m.name } : {}),
              state: m.state,
              ...(m.reason !== undefined ? { reason: m.reason } : {}),
              ts: m.since ?? this.o.clock.date().toISOString(),
            };
      if (onlyChanged && live && JSON.stringify(live) === JSON.stringify(p)) continue;
      this.states.set(m.mac, p);
      this.publishState(p);
    }
  }

  /** Collects and publishes health once (not buffered while the broker is away). */
  async publishHealth(): Promise<void> {
    if (this.collecting) return;
    this.collecting = true;
    try {
      const h = await this.o.health();
      this.o.port.publish(this.topics.health, h, { qos: 0, buffer: false });
      this.counters.health++;
    } catch (e) {
      this.counters.healthErrors++;
      this.o.log.warn(`health collection failed: ${(e as Error).message}`);
    } finally {
      this.collecting = false;
    }
  }

  private onEvent(type: string, event: unknown): void {
    const e = (typeof event === 'object' && event !== null ? event : { value: event }) as Record<string, unknown>;
    if (type === 'machine.created' || type === 'machine.state') this.onMachineEvent(type, e);
    else if (typeof e.mac === 'string' && e.progress !== undefined) this.onProgress(e.mac, e.progress);
    if (this.admitEvent()) {
      this.counters.events++;
      // An event's own `type` field (a DHCP message type …) must not hide the event type.
      const { type: subtype, ...rest } = e;
      this.o.port.publish(
        this.topics.events,
        { type, ...rest, ...(subtype !== undefined ? { subtype } : {}) },
        { qos: 1 },
      );
    }
  }

  private onMachineEvent(type: string, e: Record<string, unknown>): void {
    if (typeof e.mac !== 'string' || typeof e.ts !== 'string') return;
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const name = str(e.name);
    const p: MachineStatePayload =
      type === 'machine.created'
        ? { mac: e.mac, ...(name ? { name } : {}), state: String(e.state), reason: 'first seen', ts: e.ts }
        : {
            mac: e.mac,
            ...(name ? { name } : {}),
            state: String(e.to),
            from: String(e.from),
            ...(str(e.reason) ? { reason: str(e.reason) } : {}),
            ...(str(e.by) ? { by: str(e.by) } : {}),
            ts: e.ts,
          };
    this.states.set(e.mac, p);
    this.cancelProgress(e.mac);
    this.publishState(p);
  }

  /** Progress updates the retained state at most once per progressIntervalMs per machine (the last one wins). */
  private onProgress(mac: string, progress: unknown): void {
    const s = this.states.get(mac);
    if (!s) return;
    s.progress = progress;
    if (this.progressTimers.has(mac)) return;
    const gap = this.o.progressIntervalMs ?? 1000;
    const wait = Math.max(0, (this.lastProgress.get(mac) ?? -Infinity) + gap - this.o.clock.now());
    if (wait === 0) {
      this.lastProgress.set(mac, this.o.clock.now());
      this.publishState(s);
      return;
    }
    const t = setTimeout(() => {
      this.progressTimers.delete(mac);
      const cur = this.states.get(mac);
      if (!cur) return;
      this.lastProgress.set(mac, this.o.clock.now());
      this.publishState(cur);
    }, wait);
    t.unref();
    this.progressTimers.set(mac, t);
  }

  private cancelProgress(mac: string): void {
    clearTimeout(this.progressTimers.get(mac));
    this.progressTimers.delete(mac);
  }

  private publishState(p: MachineStatePayload): void {
    let topic: string;
    try {
      topic = this.topics.machineState(p.mac);
    } catch (e) {
      this.o.log.warn(`no state topic for ${p.mac}: ${(e as Error).message}`);
      return;
    }
    this.counters.states++;
    this.o.port.publish(topic, p, { retain: true, qos: 1 });
  }

  /** A one-second window: at most maxEventsPerSec events, the rest counted (and logged once per window). */
  private admitEvent(): boolean {
    const now = this.o.clock.now();
    const max = this.o.maxEventsPerSec ?? 500;
    if (now - this.window.start >= 1000) {
      if (this.window.dropped > 0) {
        this.o.log.warn(`event storm: ${this.window.dropped} events not sent to MQTT in one second`);
      }
      this.window = { start: now, count: 0, dropped: 0 };
    }
    if (this.window.count < max) {
      this.window.count++;
      return true;
    }
    this.window.dropped++;
    this.counters.eventsDropped++;
    return false;
  }
}
