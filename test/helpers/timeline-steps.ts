/**
 * Checking a machine's boot timeline (GET /api/v1/machines/{id}) in e2e tests: named steps
 * found in order, and a readable summary of the timeline for failure messages.
 */
import type { ExecutionContext } from 'ava';

// biome-ignore lint/suspicious/noExplicitAny: timeline entries are JSON of many event types
export type Entry = Record<string, any>;

export interface Step {
  what: string;
  is(e: Entry): boolean;
}

export const step = (what: string, is: (e: Entry) => boolean): Step => ({ what, is });

/**
 * Finds the steps in this order, each after the previous one; a group ([a, b]) is steps that
 * happen together, in either order (one exchange's events, e.g. the state change and the
 * decision of one script request). Returns the index of each step (a group's last one).
 */
export function inOrder(
  t: ExecutionContext,
  who: string,
  timeline: Entry[],
  steps: (Step | Step[])[],
  from = 0,
): number[] {
  const idx: number[] = [];
  let i = from;
  for (const s of steps) {
    let last = -1;
    for (const one of Array.isArray(s) ? s : [s]) {
      const j = timeline.findIndex((e, k) => k >= i && one.is(e));
      if (j < 0) {
        t.fail(
          `${who}: no "${one.what}" on the timeline after entry ${i - 1} (${timeline[i - 1]?.type ?? 'its start'})`,
        );
        return idx;
      }
      last = Math.max(last, j);
    }
    idx.push(last);
    i = last + 1;
  }
  t.pass();
  return idx;
}

/** One line per entry: seconds since the first, type, and its fields. */
export function summary(timeline: Entry[]): string {
  const t0 = Date.parse(timeline[0]?.ts ?? '');
  return timeline
    .map((e) => {
      const dt = ((Date.parse(e.ts) - t0) / 1000).toFixed(2).padStart(7);
      const detail = Object.entries(e)
        .filter(([k]) => !['ts', 'type', 'mac', 'name'].includes(k))
        .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
        .join(' ');
      return `${dt}s ${e.type} ${detail}`.slice(0, 200);
    })
    .join('\n');
}
