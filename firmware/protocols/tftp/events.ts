/**
 * The events the TFTP server emits. Telemetry, the boot timeline and the UI
 * subscribe; the server never calls them. Every event names the client as
 * `address:port` and carries `ts` (ISO 8601).
 */
import type { BaseEvent } from '../../domain/events.ts';
import type { TftpOption } from './codec.ts';
import type { RefusalReason } from './file-resolver.ts';
import type { IgnoredOption } from './options.ts';
import type { TransferFailReason, TransferPhase } from './transfer.ts';

interface TftpBase extends BaseEvent {
  /** `address:port` of the client. */
  client: string;
  address: string;
  port: number;
}

/** A well-formed RRQ or WRQ arrived (before any decision). */
export interface TftpRequestEvent extends TftpBase {
  opcode: 'rrq' | 'wrq';
  filename: string;
  mode: string;
  options: TftpOption[];
}

/** The transfer starts with these granted options (`oack` is empty when none were granted). */
export interface TftpOptionsEvent extends TftpBase {
  filename: string;
  /** The real path inside the boot root, or `generated:<name>` for a file the box makes (grub.cfg). */
  path: string;
  size: number;
  blksize: number;
  windowsize: number;
  timeoutS?: number;
  tsize?: number;
  msftWindow: boolean;
  oack: TftpOption[];
  ignored: IgnoredOption[];
  /** Served from the memory cache. */
  cached: boolean;
}

export interface TftpCompleteEvent extends TftpBase {
  filename: string;
  bytes: number;
  durationMs: number;
  retransmits: number;
  timeouts: number;
  blksize: number;
  windowsize: number;
  /** Bytes per second over the transfer. */
  rate: number;
}

/**
 * The client ended the transfer with an ERROR. After the OACK with code 0 or 8
 * it is a size probe (edk2: tsize=0 then ERROR 8 "User aborted the transfer");
 * neither case is a server fault.
 */
export interface TftpAbortedEvent extends TftpBase {
  filename: string;
  phase: TransferPhase;
  probe: boolean;
  code: number;
  message: string;
  bytes: number;
  durationMs: number;
}

export type TftpErrorReason = TransferFailReason | 'endpoint-failed' | 'shutdown';

/** The server gave up on a transfer it had started. */
export interface TftpErrorEvent extends TftpBase {
  filename: string;
  reason: TftpErrorReason;
  message: string;
  bytes: number;
  durationMs: number;
  retransmits: number;
}

export type TftpRefusalReason =
  | RefusalReason
  | 'malformed'
  | 'upload-disabled'
  | 'mode-unsupported'
  | 'bad-option'
  | 'busy-client'
  | 'busy-server';

/** A request was not served. `errorCode` is the TFTP ERROR sent; absent when the request was dropped. */
export interface TftpRefusedEvent extends TftpBase {
  filename?: string;
  reason: TftpRefusalReason;
  errorCode?: number;
  message: string;
}

/** A type alias (not an interface) so that it fits `EventBus<M extends Record<string, unknown>>`. */
export type TftpEvents = {
  'tftp.request': TftpRequestEvent;
  'tftp.options': TftpOptionsEvent;
  'tftp.complete': TftpCompleteEvent;
  'tftp.aborted': TftpAbortedEvent;
  'tftp.error': TftpErrorEvent;
  'tftp.refused': TftpRefusedEvent;
};

/** What the server needs of an event bus (an EventBus over any map that includes TftpEvents). */
export interface TftpEventSink {
  emit<K extends keyof TftpEvents>(type: K, event: TftpEvents[K]): void;
}

/** Running totals, read by health and telemetry. */
export interface TftpCounters {
  requests: number;
  completed: number;
  aborted: number;
  /** Of the aborted: edk2-style size probes. */
  probes: number;
  failed: number;
  refused: number;
  /** Datagrams that did not decode (dropped, or answered with ERROR 4 when they were requests). */
  malformed: number;
  /** Datagrams from a port that is not the transfer's (RFC 1350: answered with ERROR 5). */
  unknownTid: number;
  /** A request repeated while its transfer was being set up or had not progressed. */
  duplicateRequests: number;
  /** Datagrams with no business where they arrived (ACK on port 69, DATA from a reader). */
  stray: number;
  packetsSent: number;
  retransmits: number;
  timeouts: number;
  /** File bytes acknowledged by clients. */
  bytesSent: number;
  cacheHits: number;
  cacheMisses: number;
  /** Transfers running now (gauge). */
  active: number;
}

export function newCounters(): TftpCounters {
  return {
    requests: 0,
    completed: 0,
    aborted: 0,
    probes: 0,
    failed: 0,
    refused: 0,
    malformed: 0,
    unknownTid: 0,
    duplicateRequests: 0,
    stray: 0,
    packetsSent: 0,
    retransmits: 0,
    timeouts: 0,
    bytesSent: 0,
    cacheHits: 0,
    cacheMisses: 0,
    active: 0,
  };
}
