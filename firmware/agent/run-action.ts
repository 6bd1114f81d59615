/**
 * The node agent's side of a node action: decide whether to trust it, then run (or, in a
 * dry run, print) its plan. The check is pure; running goes through an injected runner.
 *
 * An action is run only when all of these hold:
 * - it came on the topic of the box the agent serves (`--box`, when given) and its `box`
 *   field names that same box;
 * - the action is one the agent knows (wipe-and-reboot);
 * - its `ts` is within MAX_ACTION_AGE_MS of the node's clock (a stale or replayed message is
 *   refused);
 * - its `steps` are exactly the plan the agent builds itself from `os` and `disk`
 *   (telemetry/mqtt/node-actions.ts): the message chooses among known plans, never the commands.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { BootboxError } from '../core/errors.ts';
import {
  diskProblem,
  formatPlan,
  type NodeOs,
  stepCommand,
  WIPE_ACTION,
  type WipeAction,
  wipeSteps,
} from '../telemetry/mqtt/node-actions.ts';

/** Largest clock difference between box and node accepted for an action's `ts`. */
export const MAX_ACTION_AGE_MS = 5 * 60_000;

export interface CheckContext {
  /** The box id in the topic the action arrived on. */
  topicBox: string;
  /** `--box`: the only box the agent takes orders from, when given. */
  expectedBox?: string;
  now: Date;
}

const refuse = (msg: string) => new BootboxError('ACTION_REFUSED', msg);

/** The action, or ACTION_REFUSED saying why it will not be run. */
export function checkAction(payload: unknown, c: CheckContext): WipeAction | BootboxError {
  if (c.expectedBox !== undefined && c.topicBox !== c.expectedBox) {
    return refuse(`the action came from box ${c.topicBox}; this agent serves box ${c.expectedBox}`);
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    return refuse('the action is not a JSON object');
  }
  const a = payload as Record<string, unknown>;
  if (a.action !== WIPE_ACTION) return refuse(`unknown action ${JSON.stringify(a.action)} (known: ${WIPE_ACTION})`);
  if (a.box !== c.topicBox) {
    return refuse(`the action names box ${JSON.stringify(a.box)} but came on the topic of box ${c.topicBox}`);
  }
  const t = a.transaction;
  if (
    !((typeof t === 'string' && t.length > 0 && t.length <= 128) || (typeof t === 'number' && Number.isSafeInteger(t)))
  ) {
    return refuse('the action has no valid "transaction"');
  }
  const ts = typeof a.ts === 'string' ? Date.parse(a.ts) : Number.NaN;
  if (Number.isNaN(ts)) return refuse('the action has no valid "ts" (ISO 8601)');
  const skew = c.now.getTime() - ts;
  if (Math.abs(skew) > MAX_ACTION_AGE_MS) {
    const when = skew > 0 ? `${Math.round(skew / 1000)} s old` : `${Math.round(-skew / 1000)} s in the future`;
    return refuse(`the action is ${when} (limit ${MAX_ACTION_AGE_MS / 1000} s): stale, replayed, or a clock is wrong`);
  }
  if (a.os !== 'windows' && a.os !== 'linux') return refuse(`unknown os ${JSON.stringify(a.os)} (windows or linux)`);
  const os: NodeOs = a.os;
  const disk = diskProblem(os, a.disk);
  if (disk) return refuse(disk);
  const plan = wipeSteps(os, a.disk as number | string);
  if (!isDeepStrictEqual(a.steps, plan)) {
    return refuse(
      `the action's steps are not the ${os} wipe plan for disk ${a.disk}; refusing commands chosen by the message`,
    );
  }
  return {
    action: WIPE_ACTION,
    box: c.topicBox,
    transaction: t,
    ts: a.ts as string,
    os,
    disk: a.disk as number | string,
    steps: plan,
  };
}

/** Runs one command without a shell; resolves with its exit code (127 when it cannot start). */
export type StepRunner = (argv: string[]) => Promise<number>;

export interface StepReport {
  cmd: string;
  /** null: not run (dry run, an earlier step failed, or the final restart begins after the report). */
  exit: number | null;
}

export interface ActionReport {
  transaction: string | number;
  name: string;
  status: 'ok' | 'error';
  dryRun: boolean;
  steps: StepReport[];
  error?: { code: string; message: string };
}

export interface RunOptions {
  name: string;
  dryRun: boolean;
  runner: StepRunner;
  /** Where plan lines go (stdout): one per line, see formatPlan. */
  print: (line: string) => void;
  /** Directory for the diskpart script (os.tmpdir()). */
  tmpDir: string;
  /**
   * Called with the report before the final restart step runs, since nothing runs after it;
   * the restart's exit is left null in that report.
   */
  beforeRestart: (r: ActionReport) => Promise<void>;
}

/**
 * Runs a checked action's steps in order, stopping at the first failure. The last step (the
 * restart) runs after `beforeRestart` has sent the report. With dryRun it only prints.
 * Returns the report when no restart was started (dry run or failure).
 */
export async function runAction(a: WipeAction, o: RunOptions): Promise<ActionReport | undefined> {
  const report: ActionReport = {
    transaction: a.transaction,
    name: o.name,
    status: 'ok',
    dryRun: o.dryRun,
    steps: a.steps.map((s) => ({ cmd: stepCommand(s), exit: null })),
  };
  for (const line of formatPlan(a)) o.print(line);
  if (o.dryRun) {
    o.print(`dry-run: ${a.steps.length} step(s) not run`);
    return report;
  }
  let dir: string | undefined;
  try {
    for (const [i, step] of a.steps.entries()) {
      const last = i === a.steps.length - 1;
      if (last) {
        await o.beforeRestart(report);
      }
      let argv: string[];
      if ('diskpart' in step) {
        dir ??= mkdtempSync(path.join(o.tmpDir, 'bootbox-wipe-'));
        const file = path.join(dir, 'wipe.txt');
        writeFileSync(file, `${step.diskpart.join('\r\n')}\r\n`);
        argv = ['diskpart', '/s', file];
      } else {
        argv = step.run;
      }
      const exit = await o.runner(argv);
      report.steps[i]!.exit = exit;
      if (exit !== 0) {
        report.status = 'error';
        report.error = { code: 'ACTION_FAILED', message: `step ${i + 1} (${stepCommand(step)}) exited with ${exit}` };
        return report;
      }
      if (last) return undefined;
    }
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  return report;
}
