/**
 * Whether busy-polling pays for one lock-step transfer. After answering an ACK the server may
 * keep the event loop polling instead of sleeping, so the client's next ACK is read as it
 * lands rather than after the wake-up of a sleeping process (on a VM that wake-up costs about
 * as much as the rest of a lock-step exchange). It pays only when the client answers quickly
 * and a CPU is free for the spinning; when the client shares a busy CPU with the server,
 * spinning slows it down instead. So this measures rather than guesses: it times the
 * ACK-to-ACK cycle over a batch without polling and, if that cycle is short enough for
 * polling to matter, over a batch with it; it keeps the faster way for a while, then
 * measures again. Pure: time comes from the caller (ms, a monotonic clock).
 */

/** ACKs per measuring batch. */
const BATCH = 64;
/** Batches run in the chosen way before measuring again. */
const RUN_BATCHES = 16;
/** Polling must make the cycle at least this much shorter to be chosen (it costs CPU). */
const MIN_GAIN = 0.95;
/** Cycles longer than this many budgets are not worth a polling probe (slow or busy). */
const PROBE_BELOW = 2;

type Phase = 'probe-sleep' | 'probe-poll' | 'run';

export class BusyPollChooser {
  /** Polling budget per ACK, ms. */
  private readonly budgetMs: number;
  private phase: Phase = 'probe-sleep';
  private poll = false;
  private last: number;
  private n = 0;
  private sum = 0;
  private sleepMean = 0;
  private runLeft = 0;

  constructor(budgetMs: number, now: number) {
    this.budgetMs = budgetMs;
    this.last = now;
  }

  /** An ACK was just answered at `now`: whether to poll for the next one. */
  onAck(now: number): boolean {
    // Clamped, so one retransmission timeout does not decide a whole batch.
    const cycle = Math.min(now - this.last, 4 * this.budgetMs);
    this.last = now;
    this.sum += cycle;
    if (++this.n === BATCH) this.endBatch(this.sum / BATCH);
    return this.poll;
  }

  private endBatch(mean: number): void {
    this.n = 0;
    this.sum = 0;
    if (this.phase === 'probe-sleep') {
      this.sleepMean = mean;
      if (mean < PROBE_BELOW * this.budgetMs) {
        this.phase = 'probe-poll';
        this.poll = true;
      } else {
        this.run(false);
      }
    } else if (this.phase === 'probe-poll') {
      // A poll that outlasts the budget ends before the ACK: no gain then either.
      this.run(mean < this.budgetMs && mean < this.sleepMean * MIN_GAIN);
    } else if (--this.runLeft === 0) {
      this.phase = 'probe-sleep';
      this.poll = false;
    }
  }

  private run(poll: boolean): void {
    this.phase = 'run';
    this.poll = poll;
    this.runLeft = RUN_BATCHES;
  }
}
