/**
 * Reconnect delays: capped exponential backoff with jitter, so a fleet of boxes that
 * lost the same broker does not reconnect in lock-step. MQTT.js's own reconnectPeriod
 * is a fixed interval, so the link drives reconnects itself with this.
 *
 * "Equal jitter": the delay is half the capped exponential plus a random share of the
 * other half, so it never collapses to zero. A connection that stayed up at least
 * `stableMs` resets the sequence; one the broker drops at once (a duplicate client id,
 * a refused login that still completes the handshake) keeps backing off.
 */
import type { Clock } from '../../core/clock.ts';

export interface BackoffOptions {
  /** First delay (ms) before jitter. */
  initialMs: number;
  /** Cap (ms). */
  maxMs: number;
  /** A connection up at least this long (ms) resets the backoff. */
  stableMs: number;
  /** Uniform in [0, 1); injected so tests can pin it. */
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 15000, stableMs: 10000 };

export class Backoff {
  private readonly o: BackoffOptions;
  private readonly clock: Clock;
  private failures = 0;
  private upSince: number | undefined;

  constructor(clock: Clock, o: Partial<BackoffOptions> = {}) {
    this.clock = clock;
    this.o = { ...DEFAULT_BACKOFF, ...o };
  }

  /** Consecutive attempts that did not lead to a stable connection. */
  get attempts(): number {
    return this.failures;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const exp = Math.min(this.o.maxMs, this.o.initialMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    const random = this.o.random ?? Math.random;
    return Math.round(exp / 2 + random() * (exp / 2));
  }

  connected(): void {
    this.upSince = this.clock.now();
  }

  disconnected(): void {
    if (this.upSince !== undefined && this.clock.now() - this.upSince >= this.o.stableMs) this.failures = 0;
    this.upSince = undefined;
  }

  reset(): void {
    this.failures = 0;
    this.upSince = undefined;
  }
}
