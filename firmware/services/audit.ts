/**
 * The audit log: one entry for every command the box was sent, accepted or refused, over
 * MQTT or the REST API: who (identity), what (command, transaction, targets), and how it
 * ended (result and error code). Kept in `<dataDir>/audit.json` through the JSON store
 * (batched writes, never in the request path), bounded to the newest `max` entries.
 *
 * A flood is not written entry by entry: requests dropped by the rate limiter are recorded
 * once per RATE_LIMITED answer, with how many were dropped (`dropped`).
 */
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import { JsonStore } from '../store/json-store.ts';

export interface AuditEntry {
  ts: string;
  via: 'mqtt' | 'api';
  identity: string;
  command: string;
  transaction?: string | number;
  /** The targets as asked (an object), or their JSON cut to MAX_TARGETS_TEXT characters. */
  targets?: unknown;
  /** The MACs the command resolved to (the first MAX_MACS). */
  macs?: string[];
  result: 'ok' | 'error';
  code?: string;
  /** The same transaction answered again from the cache, without acting. */
  replay?: true;
  /** Requests dropped by the rate limiter that this entry stands for. */
  dropped?: number;
}

export type AuditInput = Omit<AuditEntry, 'ts'> & { ts?: string };

interface AuditFile {
  version: 1;
  entries: AuditEntry[];
}

export const MAX_TARGETS_TEXT = 512;
export const MAX_MACS = 64;

export interface AuditLogOptions {
  file: string;
  clock: Clock;
  log?: Logger;
  /** Entries kept; the oldest go first. */
  max?: number;
  flushIntervalMs?: number;
}

export class AuditLog {
  private readonly store: JsonStore<AuditFile>;
  private readonly clock: Clock;
  private readonly max: number;

  constructor(o: AuditLogOptions) {
    this.clock = o.clock;
    this.max = o.max ?? 10_000;
    this.store = new JsonStore<AuditFile>({
      file: o.file,
      defaults: () => ({ version: 1, entries: [] }),
      log: o.log,
      flushIntervalMs: o.flushIntervalMs ?? 2000,
      validate: (d) => {
        const f = d as AuditFile;
        return f?.version === 1 && Array.isArray(f.entries) ? undefined : 'not an audit file';
      },
    });
  }

  async load(): Promise<void> {
    await this.store.load();
    this.trim();
  }

  async flush(): Promise<void> {
    await this.store.flush();
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  get size(): number {
    return this.store.data.entries.length;
  }

  /** Appends one entry (bounded sizes) and schedules a write. Returns the entry as kept. */
  record(input: AuditInput): AuditEntry {
    const { ts, ...rest } = input;
    const e: AuditEntry = { ts: ts ?? this.clock.date().toISOString(), ...rest };
    if (e.targets !== undefined) e.targets = compactTargets(e.targets);
    if (e.macs && e.macs.length > MAX_MACS) e.macs = e.macs.slice(0, MAX_MACS);
    this.store.data.entries.push(e);
    this.trim();
    this.store.markDirty();
    return e;
  }

  /** Newest first, optionally filtered. */
  list(q: { limit?: number; identity?: string; command?: string; via?: 'mqtt' | 'api' } = {}): AuditEntry[] {
    const out: AuditEntry[] = [];
    const all = this.store.data.entries;
    for (let i = all.length - 1; i >= 0 && out.length < (q.limit ?? 100); i--) {
      const e = all[i]!;
      if (q.identity !== undefined && e.identity !== q.identity) continue;
      if (q.command !== undefined && e.command !== q.command) continue;
      if (q.via !== undefined && e.via !== q.via) continue;
      out.push(e);
    }
    return out;
  }

  private trim(): void {
    const all = this.store.data.entries;
    if (all.length > this.max) all.splice(0, all.length - this.max);
  }
}

/** Targets as given when small, else their JSON cut short (a 64 KiB list must not fill the log). */
export function compactTargets(t: unknown): unknown {
  if (typeof t === 'string') return t.length > MAX_TARGETS_TEXT ? `${t.slice(0, MAX_TARGETS_TEXT)}…` : t;
  let s: string;
  try {
    s = JSON.stringify(t) ?? String(t);
  } catch {
    return '(unserialisable)';
  }
  return s.length <= MAX_TARGETS_TEXT ? t : `${s.slice(0, MAX_TARGETS_TEXT)}…`;
}
