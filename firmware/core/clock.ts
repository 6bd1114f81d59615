/** Time is injected so state machines can be tested without waiting. */
export interface Clock {
  /** Milliseconds, monotonic within a process. */
  now(): number;
  /** Wall-clock time, for records and timestamps. */
  date(): Date;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  date: () => new Date(),
};

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  private t: number;
  private readonly epoch: number;
  constructor(start = 0, epoch = Date.UTC(2026, 0, 1)) {
    this.t = start;
    this.epoch = epoch;
  }
  now(): number {
    return this.t;
  }
  date(): Date {
    return new Date(this.epoch + this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
}
