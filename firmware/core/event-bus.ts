import type { Logger } from './logger.ts';

/**
 * A typed event bus. Protocol servers emit; telemetry, the timeline and the UI
 * subscribe. A listener that throws is logged and never breaks the emitter.
 */
export type Listener<T> = (event: T) => void;

export class EventBus<M extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof M, Set<Listener<never>>>();
  private readonly any = new Set<(type: keyof M, event: M[keyof M]) => void>();
  private readonly log: Logger | undefined;

  constructor(log?: Logger) {
    this.log = log;
  }

  on<K extends keyof M>(type: K, fn: Listener<M[K]>): () => void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(fn as Listener<never>);
    return () => set.delete(fn as Listener<never>);
  }

  /** Every event, whatever its type (timeline, SSE, MQTT `events`). */
  onAny(fn: (type: keyof M, event: M[keyof M]) => void): () => void {
    this.any.add(fn);
    return () => this.any.delete(fn);
  }

  emit<K extends keyof M>(type: K, event: M[K]): void {
    const set = this.listeners.get(type);
    if (set) {
      for (const fn of set) this.call(type, () => (fn as Listener<M[K]>)(event));
    }
    for (const fn of this.any) this.call(type, () => fn(type, event));
  }

  private call(type: keyof M, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log?.error('event listener failed', { type: String(type), error: (e as Error).message });
    }
  }
}
