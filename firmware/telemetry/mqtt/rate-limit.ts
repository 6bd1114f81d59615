/**
 * Token buckets for MQTT commands: one per publisher identity and one for everyone.
 *
 * A bucket holds up to `burst` tokens and gains `ratePerSec` per second; a request takes one.
 * When it is empty the request is refused and counted. The box answers refusals with at most one
 * RATE_LIMITED response per identity per `noticeIntervalMs` (a flood of 10,000 requests gets a
 * handful of answers, not 10,000), carrying how many were dropped since the last notice.
 * Pure apart from the injected clock; O(1) per request.
 */
import type { Clock } from '../../core/clock.ts';

export interface BucketSpec {
  /** Tokens added per second. */
  ratePerSec: number;
  /** Bucket size: the most requests accepted at once after a quiet period. */
  burst: number;
}

export class TokenBucket {
  private readonly spec: BucketSpec;
  private tokens: number;
  private last: number;

  constructor(spec: BucketSpec, now: number) {
    this.spec = spec;
    this.tokens = spec.burst;
    this.last = now;
  }

  /** Refills for the time since the last call, then takes one token if there is one. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** True when the bucket is full again (an idle identity's bucket can be forgotten). */
  full(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.spec.burst;
  }

  private refill(now: number): void {
    const dt = Math.max(0, now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.spec.burst, this.tokens + dt * this.spec.ratePerSec);
  }
}

export interface RateLimitOptions {
  perIdentity: BucketSpec;
  global: BucketSpec;
  /** At most one RATE_LIMITED notice per identity per this interval (ms). */
  noticeIntervalMs: number;
  /** Identities tracked at once; beyond it, full (idle) buckets are dropped first. */
  maxIdentities: number;
}

export const DEFAULT_RATE_LIMITS: RateLimitOptions = {
  perIdentity: { ratePerSec: 20, burst: 50 },
  global: { ratePerSec: 200, burst: 400 },
  noticeIntervalMs: 1000,
  maxIdentities: 4096,
};

export type RateDecision =
  | { ok: true }
  /** `notify`: send a RATE_LIMITED answer now; `dropped`: refusals since the last notice, this one included. */
  | { ok: false; scope: 'identity' | 'global'; notify: boolean; dropped: number };

interface IdentityState {
  bucket: TokenBucket;
  lastNotice: number | undefined;
  dropped: number;
}

export class RateLimiter {
  private readonly o: RateLimitOptions;
  private readonly clock: Clock;
  private readonly global: TokenBucket;
  private readonly ids = new Map<string, IdentityState>();
  /** Requests refused since start, by scope. */
  readonly counters = { accepted: 0, limitedIdentity: 0, limitedGlobal: 0, notices: 0 };

  constructor(clock: Clock, o: Partial<RateLimitOptions> = {}) {
    this.o = { ...DEFAULT_RATE_LIMITS, ...o };
    this.clock = clock;
    this.global = new TokenBucket(this.o.global, clock.now());
  }

  /** One request from `identity`: take a token from its bucket, then from the global one. */
  check(identity: string): RateDecision {
    const now = this.clock.now();
    const s = this.state(identity, now);
    let scope: 'identity' | 'global' | undefined;
    if (!s.bucket.take(now)) scope = 'identity';
    else if (!this.global.take(now)) scope = 'global';
    if (scope === undefined) {
      this.counters.accepted++;
      return { ok: true };
    }
    if (scope === 'identity') this.counters.limitedIdentity++;
    else this.counters.limitedGlobal++;
    s.dropped++;
    const notify = s.lastNotice === undefined || now - s.lastNotice >= this.o.noticeIntervalMs;
    const dropped = s.dropped;
    if (notify) {
      s.lastNotice = now;
      s.dropped = 0;
      this.counters.notices++;
    }
    return { ok: false, scope, notify, dropped };
  }

  /** Identities currently tracked. */
  get tracked(): number {
    return this.ids.size;
  }

  private state(identity: string, now: number): IdentityState {
    let s = this.ids.get(identity);
    if (s) return s;
    if (this.ids.size >= this.o.maxIdentities) this.evict(now);
    s = { bucket: new TokenBucket(this.o.perIdentity, now), lastNotice: undefined, dropped: 0 };
    this.ids.set(identity, s);
    return s;
  }

  /** Drops idle identities (full bucket, no pending drops); if none is idle, the oldest. */
  private evict(now: number): void {
    for (const [id, s] of this.ids) {
      if (s.dropped === 0 && s.bucket.full(now)) this.ids.delete(id);
    }
    if (this.ids.size >= this.o.maxIdentities) this.ids.delete(this.ids.keys().next().value!);
  }
}
