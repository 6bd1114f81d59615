/**
 * Live TFTP and HTTP transfers and uploads, folded from the box's events (tftp.*,
 * http.request, upload.*). Pure: time comes in with each call.
 */
import type { BoxEvent } from './sse.ts';

export type TransferKind = 'tftp' | 'http' | 'upload';

export interface Transfer {
  key: string;
  kind: TransferKind;
  /** File name, path or upload name. */
  what: string;
  /** Client address (TFTP, HTTP) or upload id. */
  peer: string;
  mac?: string;
  size?: number;
  bytes: number;
  startedAt: number;
  updatedAt: number;
  /** Bytes per second: over the whole transfer when done, recent when active. */
  rate?: number;
  state: 'active' | 'done' | 'failed';
  note?: string;
}

export interface TransferLog {
  active: Map<string, Transfer>;
  /** Newest first, bounded. */
  recent: Transfer[];
  /** [time ms, bytes, kind] of finished pieces, for the moving totals. */
  samples: { at: number; bytes: number; kind: TransferKind }[];
}

export const RECENT_MAX = 200;
/** An active entry with no news for this long is dropped (a TFTP client that vanished). */
export const STALE_MS = 120_000;
const WINDOW_MS = 10_000;

export function emptyLog(): TransferLog {
  return { active: new Map(), recent: [], samples: [] };
}

const str = (v: unknown) => (typeof v === 'string' ? v : '');
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** Ends the running entry `activeKey` (if any) and records `t` as finished. */
function finish(log: TransferLog, activeKey: string, t: Transfer): void {
  log.active.delete(activeKey);
  log.recent.unshift(t);
  if (log.recent.length > RECENT_MAX) log.recent.length = RECENT_MAX;
}

/** Folds one event into the log (mutates it). `now` is ms since the epoch. */
export function applyTransferEvent(log: TransferLog, e: BoxEvent, now: number): void {
  const at = Number.isFinite(Date.parse(e.ts)) ? Date.parse(e.ts) : now;
  switch (e.type) {
    case 'tftp.options': {
      const key = `tftp:${str(e.client)}:${str(e.filename)}`;
      log.active.set(key, {
        key,
        kind: 'tftp',
        what: str(e.filename),
        peer: str(e.address),
        size: num(e.size),
        bytes: 0,
        startedAt: at,
        updatedAt: at,
        state: 'active',
        note: `blksize ${num(e.blksize) || 512}, windowsize ${num(e.windowsize) || 1}`,
      });
      break;
    }
    case 'tftp.complete':
    case 'tftp.aborted':
    case 'tftp.error': {
      const key = `tftp:${str(e.client)}:${str(e.filename)}`;
      const prev = log.active.get(key);
      const b = num(e.bytes);
      const ms = num(e.durationMs);
      if (e.type === 'tftp.aborted' && e.probe === true) {
        // a size probe (edk2): not a transfer
        log.active.delete(key);
        break;
      }
      const ok = e.type === 'tftp.complete';
      finish(log, key, {
        key: `${key}:${at}`,
        kind: 'tftp',
        what: str(e.filename),
        peer: str(e.address),
        size: prev?.size ?? (ok ? b : undefined),
        bytes: b,
        startedAt: prev?.startedAt ?? at - ms,
        updatedAt: at,
        rate: ok ? num(e.rate) : ms > 0 ? (b * 1000) / ms : undefined,
        state: ok ? 'done' : 'failed',
        note: ok ? prev?.note : str(e.message) || str(e.reason),
      });
      log.samples.push({ at, bytes: b, kind: 'tftp' });
      break;
    }
    case 'http.request': {
      const b = num(e.bytes);
      const ms = num(e.ms);
      const status = num(e.status);
      finish(log, '', {
        key: `http:${str(e.peer)}:${str(e.path)}:${at}`,
        kind: 'http',
        what: str(e.path),
        peer: str(e.peer),
        ...(typeof e.mac === 'string' ? { mac: e.mac } : {}),
        bytes: b,
        startedAt: at - ms,
        updatedAt: at,
        rate: ms > 0 ? (b * 1000) / ms : undefined,
        state: status >= 400 ? 'failed' : 'done',
        note: `HTTP ${status}${str(e.range) ? `, range ${str(e.range)}` : ''}`,
      });
      log.samples.push({ at, bytes: b, kind: 'http' });
      break;
    }
    case 'upload.progress': {
      const key = `upload:${str(e.id)}`;
      const prev = log.active.get(key);
      const received = num(e.received);
      const delta = prev ? received - prev.bytes : 0;
      const dt = prev ? at - prev.updatedAt : 0;
      log.active.set(key, {
        key,
        kind: 'upload',
        what: str(e.name),
        peer: str(e.id),
        size: num(e.size),
        bytes: received,
        startedAt: prev?.startedAt ?? at,
        updatedAt: at,
        rate: dt > 0 && delta >= 0 ? (delta * 1000) / dt : prev?.rate,
        state: 'active',
      });
      if (delta > 0) log.samples.push({ at, bytes: delta, kind: 'upload' });
      break;
    }
    case 'upload.complete':
    case 'upload.failed': {
      const key = `upload:${str(e.id)}`;
      const prev = log.active.get(key);
      const size = num(e.size) || prev?.size;
      const ok = e.type === 'upload.complete';
      const startedAt = prev?.startedAt ?? at;
      const b = ok ? (size ?? 0) : (prev?.bytes ?? 0);
      finish(log, key, {
        key: `${key}:${at}`,
        kind: 'upload',
        what: str(e.name),
        peer: str(e.id),
        size,
        bytes: b,
        startedAt,
        updatedAt: at,
        rate: at > startedAt ? (b * 1000) / (at - startedAt) : undefined,
        state: ok ? 'done' : 'failed',
        note: ok ? `in the catalog: ${Array.isArray(e.images) ? e.images.join(', ') : ''}` : str(e.message),
      });
      break;
    }
  }
}

/** Drops stale active entries and old samples. */
export function pruneLog(log: TransferLog, now: number): void {
  for (const [k, t] of log.active) if (now - t.updatedAt > STALE_MS) log.active.delete(k);
  const cut = now - WINDOW_MS;
  let i = 0;
  while (i < log.samples.length && log.samples[i]!.at < cut) i++;
  if (i) log.samples.splice(0, i);
}

/** Bytes per second per kind over the last ten seconds. */
export function throughput(log: TransferLog, now: number): Record<TransferKind, number> {
  const out: Record<TransferKind, number> = { tftp: 0, http: 0, upload: 0 };
  const cut = now - WINDOW_MS;
  for (const s of log.samples) if (s.at >= cut) out[s.kind] += s.bytes;
  for (const k of Object.keys(out) as TransferKind[]) out[k] = out[k] / (WINDOW_MS / 1000);
  return out;
}
