/**
 * What the link holds for the broker while it is away (pure, bounded):
 *
 * - non-retained publishes (events) in a FIFO of at most `limit` entries; when full the
 *   oldest is dropped and counted, so the newest history survives an outage;
 * - retained publishes (status, machine states) as the latest payload per topic, kept
 *   always (connected or not) and replayed after every (re)connect, so the broker's
 *   retained view is right after an outage even if it lost its own state.
 *
 * Every message carries a sequence number; messages that were sent but not acknowledged
 * when the connection dropped come back with `requeue` and regain their place, so the
 * order of delivered events stays the order of publishing.
 */
import type { PublishOptions } from './port.ts';

export interface OutMessage {
  seq: number;
  topic: string;
  payload: Buffer;
  opts: PublishOptions;
}

export interface OutboxCounters {
  /** Events dropped because the buffer was full (oldest first). */
  dropped: number;
  /** Retained topics forgotten because there were more than `retainedLimit`. */
  retainedDropped: number;
}

export class Outbox {
  private readonly limit: number;
  private readonly retainedLimit: number;
  private queue: OutMessage[] = [];
  private readonly latest = new Map<string, OutMessage>();
  readonly counters: OutboxCounters = { dropped: 0, retainedDropped: 0 };

  constructor(limit: number, retainedLimit = 100000) {
    this.limit = Math.max(0, limit);
    this.retainedLimit = Math.max(1, retainedLimit);
  }

  /** Events waiting for the broker. */
  get size(): number {
    return this.queue.length;
  }

  get retainedCount(): number {
    return this.latest.size;
  }

  /** Buffers a non-retained message; drops the oldest when full. */
  enqueue(m: OutMessage): void {
    if (this.limit === 0) {
      this.counters.dropped++;
      return;
    }
    this.queue.push(m);
    this.trim();
  }

  /** Puts back messages that were sent but not acknowledged, in sequence order. */
  requeue(ms: OutMessage[]): void {
    if (ms.length === 0) return;
    this.queue.push(...ms);
    this.queue.sort((a, b) => a.seq - b.seq);
    this.trim();
  }

  /** Takes every buffered event, oldest first. */
  drain(): OutMessage[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }

  /** Records the latest retained payload of a topic (most recently updated last). */
  remember(m: OutMessage): void {
    this.latest.delete(m.topic);
    this.latest.set(m.topic, m);
    if (this.latest.size > this.retainedLimit) {
      const oldest = this.latest.keys().next().value as string;
      this.latest.delete(oldest);
      this.counters.retainedDropped++;
    }
  }

  /** The retained messages to replay after a connect, least recently updated first. */
  retained(): OutMessage[] {
    return [...this.latest.values()];
  }

  private trim(): void {
    const over = this.queue.length - this.limit;
    if (over > 0) {
      this.queue.splice(0, over);
      this.counters.dropped += over;
    }
  }
}
