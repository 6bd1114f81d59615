/**
 * MQTT commands through a real aedes broker on loopback (port 0), with mqtt.js and mosquitto
 * clients: the round trip with the transaction echoed, every bad input answered with a clear
 * error and nothing changed, and a flood of 10,000 requests that neither starves the event
 * loop nor changes more than the requests allowed. MQTT 5 response topics go through
 * mosquitto (aedes speaks 3.1.1 only).
 */
import { spawn } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import test, { type ExecutionContext } from 'ava';
import type { MqttClient } from 'mqtt';
import { systemClock } from '../../firmware/core/clock.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import type { AuditInput } from '../../firmware/services/audit.ts';
import { CommandService, type CommandServiceOptions } from '../../firmware/telemetry/mqtt/commands.ts';
import type { MqttPort } from '../../firmware/telemetry/mqtt/port.ts';
import {
  clientPort,
  connect,
  nextMessage,
  startAedes,
  startAedesWorker,
  startMosquitto,
} from '../helpers/mqtt-brokers.ts';
import { type MachineSpec, registryWith, snapshot } from '../helpers/mqtt-commands.ts';

const ROOT = 'bootbox/box1/';
const USERS = { ops: 'ops-pw', flood: 'flood-pw', guest: 'guest-pw' };
const A = '52:54:00:00:10:0a';
const B = '52:54:00:00:10:0b';
const P = '52:54:00:00:10:0d';
const MACHINES: MachineSpec[] = [
  { mac: A, name: 'node-a', state: 'deployed', group: 'rack1' },
  { mac: B, name: 'node-b', state: 'deployed', group: 'rack1' },
  { mac: P, name: 'node-p', state: 'pending' },
];

// biome-ignore lint/suspicious/noExplicitAny: tests read deep into the answers
type Answer = Record<string, any>;

async function box(t: ExecutionContext, port: MqttPort, o: Partial<CommandServiceOptions> = {}) {
  const { registry } = await registryWith(t, MACHINES, systemClock);
  const audit: AuditInput[] = [];
  const svc = new CommandService({
    port,
    registry,
    boxId: 'box1',
    images: () => ['ubuntu-24.04'],
    audit: { record: (e) => audit.push(e) },
    allow: { '*': ['ops', 'flood'] },
    clock: systemClock,
    log: silentLogger,
    ...o,
  });
  await svc.start();
  t.teardown(() => svc.stop());
  return { registry, audit, svc };
}

async function withAedes(t: ExecutionContext, o: Partial<CommandServiceOptions> = {}, inWorker = false) {
  const broker = inWorker ? await startAedesWorker(USERS) : await startAedes(USERS);
  t.teardown(() => broker.close());
  const b = await box(t, broker.boxPort(ROOT), o);
  const clients: MqttClient[] = [];
  t.teardown(() => {
    for (const c of clients) c.end(true);
  });
  const client = async (user?: keyof typeof USERS) => {
    const c = await connect(broker.url, user ? { username: user, password: USERS[user] } : {});
    clients.push(c);
    await c.subscribeAsync(`${ROOT}response/#`);
    return c;
  };
  return { broker, client, ...b };
}

/**
 * Publishes a request and waits for its answer on response/<command>: the one echoing its
 * transaction, or (a request without a usable one) the first sent after it. Every client sees
 * every answer, and a client's first delivery may come a little late.
 */
async function ask(c: MqttClient, command: string, payload: string | Buffer | object) {
  const json = typeof payload === 'object' && !Buffer.isBuffer(payload);
  const transaction = json ? (payload as { transaction?: unknown }).transaction : undefined;
  const sentAt = Date.now();
  const answer = nextMessage(
    c,
    `${ROOT}response/${command}`,
    (b) => Date.parse(String(b.ts)) >= sentAt && (transaction === undefined || b.transaction === transaction),
  );
  await c.publishAsync(`${ROOT}request/${command}`, json ? JSON.stringify(payload) : (payload as string | Buffer));
  return (await answer).body as Answer;
}

function run(
  cmd: string,
  args: string[],
  input?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => {
      stdout += d;
    });
    p.stderr.on('data', (d) => {
      stderr += d;
    });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(input ?? '');
  });
}

test('round trip over aedes with mqtt.js: the transaction echoed, the registry changed', async (t) => {
  const { client, registry, audit } = await withAedes(t);
  const ops = await client('ops');
  const r = await ask(ops, 'reimage', { transaction: 'rt-1', targets: { name: 'node-a' }, mode: 'next-boot' });
  t.like(r, { transaction: 'rt-1', status: 'ok' });
  t.deepEqual(r.data.targets, [{ mac: A, name: 'node-a', from: 'deployed', to: 'reimage-requested', changed: true }]);
  t.is(typeof r.ts, 'string');
  t.is(registry.get(A)!.state, 'reimage-requested');
  t.like(audit.at(-1), { via: 'mqtt', identity: 'ops', command: 'reimage', transaction: 'rt-1', result: 'ok' });
});

test('round trip with mosquitto_pub and mosquitto_sub', async (t) => {
  const { broker, registry } = await withAedes(t);
  const sub = spawn('mosquitto_sub', [
    '-h',
    '127.0.0.1',
    '-p',
    String(broker.port),
    '-u',
    'ops',
    '-P',
    USERS.ops,
    '-t',
    `${ROOT}response/approve`,
    '-C',
    '1',
    '-W',
    '20',
  ]);
  let out = '';
  sub.stdout.on('data', (d) => {
    out += d;
  });
  const done = new Promise<number | null>((resolve) => sub.on('exit', resolve));
  // wait until the subscriber is in (aedes reports each subscription)
  await new Promise((r) => setTimeout(r, 300));
  const pub = await run('mosquitto_pub', [
    '-h',
    '127.0.0.1',
    '-p',
    String(broker.port),
    '-u',
    'ops',
    '-P',
    USERS.ops,
    '-t',
    `${ROOT}request/approve`,
    '-m',
    JSON.stringify({ transaction: 'cli-1', targets: { name: 'node-p' } }),
  ]);
  t.is(pub.code, 0, pub.stderr);
  t.is(await done, 0);
  const answer = JSON.parse(out);
  t.like(answer, { transaction: 'cli-1', status: 'ok' });
  t.like(answer.data.targets[0], { name: 'node-p', from: 'pending', to: 'approved' });
  t.is(registry.get(P)!.state, 'approved');
});

test('bad input over the broker: each answered with a clear error, nothing changed', async (t) => {
  const { client, registry, audit } = await withAedes(t);
  const before = snapshot(registry);
  const ops = await client('ops');
  const guest = await client('guest');
  const anon = await client();
  const cases: [MqttClient, string, string | Buffer | object, string, RegExp][] = [
    [ops, 'reimage', '{"transaction": "nj", ', 'INVALID_REQUEST', /not JSON/],
    [ops, 'foo', { transaction: 'u1' }, 'UNKNOWN_COMMAND', /unknown command "foo"/],
    [ops, 'reimage', { targets: { name: 'node-a' }, mode: 'wipe' }, 'INVALID_REQUEST', /"transaction" is required/],
    [
      ops,
      'reimage',
      { transaction: 'nf', targets: { names: ['node-a', 'ghost'] }, mode: 'wipe', confirm: true },
      'NOT_FOUND',
      /name ghost/,
    ],
    [
      ops,
      'reimage',
      { transaction: 'pc', targets: { pattern: 'node-*' }, mode: 'wipe' },
      'CONFIRM_REQUIRED',
      /confirm/,
    ],
    [ops, 'reimage', Buffer.alloc(70 * 1024, 0x20), 'PAYLOAD_TOO_LARGE', /71680 bytes; the limit is 65536/],
    [
      guest,
      'reimage',
      { transaction: 'g', targets: { name: 'node-a' }, mode: 'wipe' },
      'FORBIDDEN',
      /"guest" may not send reimage/,
    ],
    [anon, 'reimage', { transaction: 'an', targets: { name: 'node-a' }, mode: 'wipe' }, 'FORBIDDEN', /unauthenticated/],
  ];
  for (const [c, command, payload, code, re] of cases) {
    const r = await ask(c, command, payload);
    t.is(r.status, 'error');
    t.is(r.error.code, code, r.error.message);
    t.regex(r.error.message, re);
  }
  t.deepEqual(snapshot(registry), before);
  t.is(audit.length, cases.length);
});

/** mosquitto_pub -l: one message per line, from another process, as fast as TCP goes. */
async function flood(t: ExecutionContext, port: number, lines: string[]) {
  const pub = await run(
    'mosquitto_pub',
    [
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-u',
      'flood',
      '-P',
      USERS.flood,
      '-t',
      `${ROOT}request/reimage`,
      '-q',
      '0',
      '-l',
    ],
    `${lines.join('\n')}\n`,
  );
  t.is(pub.code, 0, pub.stderr);
}

/**
 * Event-loop delay while `work` runs, sampled every 5 ms. The bound asserted is against
 * starvation (10,000 requests handled in one go hold the loop for a second or more), not
 * speed. The flood tests run aedes in a worker thread: its parsing of a flooded socket alone
 * holds a loop for tens to hundreds of ms per 64 KiB read, which is the broker's cost, not
 * the dispatcher's.
 */
async function loopDelay(work: () => Promise<void>): Promise<{ p99: number; max: number; seconds: number }> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  const started = Date.now();
  h.enable();
  await work();
  h.disable();
  return { p99: h.percentile(99) / 1e6, max: h.max / 1e6, seconds: (Date.now() - started) / 1000 };
}

/**
 * p99 of the event-loop delay during a flood. On an idle host it measures 16-40 ms here; the
 * bound leaves room for a CI host shared with other jobs (up to ~150 ms seen at load 7 on 2
 * cores), while a dispatcher that handles a backlog in one go stalls the loop for ~1 s. The
 * slice count (at most 32 requests per slice) checks the slicing itself, independent of speed.
 */
const LAG_P99_MS = 250;

async function untilReceived(svc: CommandService, n: number) {
  const started = Date.now();
  while (svc.counters.received < n && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 20));
  await svc.idle();
}

test.serial(
  'a flood of 10,000 requests from one identity: one RATE_LIMITED a second, the rest dropped, only allowed changes',
  async (t) => {
    const { broker, client, registry, svc, audit } = await withAedes(t, {}, true);
    const before = snapshot(registry);
    const watcher = await client('ops');
    const limited: number[] = [];
    const flooderAnswers: Answer[] = [];
    watcher.on('message', (topic, payload) => {
      if (topic !== `${ROOT}response/reimage`) return;
      const b = JSON.parse(payload.toString());
      if (b.error?.code === 'RATE_LIMITED') limited.push(Date.now());
      else if (String(b.transaction).startsWith('f')) flooderAnswers.push(b);
    });
    const lines = Array.from({ length: 10_000 }, (_, i) =>
      JSON.stringify({ transaction: `f${i}`, targets: { name: 'node-a' }, mode: 'next-boot' }),
    );
    let other: Answer = {};
    const lag = await loopDelay(async () => {
      await flood(t, broker.port, lines);
      await untilReceived(svc, 10_000);
      // while flooded, another identity is still served
      other = await ask(watcher, 'approve', { transaction: 'during', targets: { name: 'node-p' } });
    });
    await new Promise((r) => setTimeout(r, 200)); // the last answers reach the watcher
    t.log(
      `${lines.length} requests in ${lag.seconds.toFixed(2)} s; event-loop delay p99 ${lag.p99.toFixed(1)} ms, max ${lag.max.toFixed(1)} ms; longest slice ${svc.counters.longestSliceMs} ms`,
    );
    t.log(`answered ${flooderAnswers.length}, RATE_LIMITED answers ${limited.length}, dropped ${svc.counters.dropped}`);

    t.is(svc.counters.received, 10_000 + 1);
    t.true(lag.p99 < LAG_P99_MS, `event-loop delay p99 ${lag.p99} ms`);
    t.like(other, { transaction: 'during', status: 'ok' });
    // accepted: the burst plus the refill over the time it took; every other request dropped
    const accepted = flooderAnswers.length;
    t.true(accepted >= 50 && accepted <= 50 + 20 * (lag.seconds + 1), `accepted ${accepted}`);
    t.true(
      limited.length >= 1 && limited.length <= Math.ceil(lag.seconds) + 1,
      `${limited.length} RATE_LIMITED answers`,
    );
    t.is(accepted + limited.length + svc.counters.dropped, 10_000);
    t.is(flooderAnswers.filter((a) => a.data?.targets?.[0]?.changed).length, 1, 'node-a reimaged once');
    t.is(registry.get(A)!.state, 'reimage-requested');
    t.is(registry.get(P)!.state, 'approved');
    t.deepEqual(snapshot(registry)[B], before[B], 'node-b untouched');
    t.true(audit.length <= accepted + limited.length + 1, `${audit.length} audit entries`);
  },
);

test.serial(
  'a flood of 10,000 requests all let through: handled in slices, the event loop keeps turning',
  async (t) => {
    const unlimited = { ratePerSec: 1e6, burst: 1e6 };
    const { broker, registry, svc, audit } = await withAedes(
      t,
      { rateLimits: { perIdentity: unlimited, global: unlimited }, queueMax: 20_000 },
      true,
    );
    const before = snapshot(registry);
    // half valid (node-a, once changed), half refused in different ways; none may touch node-b
    const lines = Array.from({ length: 10_000 }, (_, i) => {
      switch (i % 4) {
        case 0:
          return JSON.stringify({ transaction: `f${i}`, targets: { name: 'node-a' }, mode: 'next-boot' });
        case 1:
          return JSON.stringify({ transaction: `f${i}`, targets: { pattern: 'node-*' }, mode: 'wipe' });
        case 2:
          return `{"transaction": "f${i}", broken`;
        default:
          return JSON.stringify({
            transaction: `f${i}`,
            targets: { name: 'node-a' },
            mode: 'next-boot',
            image: 'nope',
          });
      }
    });
    const lag = await loopDelay(async () => {
      await flood(t, broker.port, lines);
      await untilReceived(svc, 10_000);
    });
    t.log(
      `${lines.length} requests processed in ${lag.seconds.toFixed(2)} s; event-loop delay p99 ${lag.p99.toFixed(1)} ms, max ${lag.max.toFixed(1)} ms; ${svc.counters.slices} slices, longest ${svc.counters.longestSliceMs} ms`,
    );
    t.is(svc.counters.processed, 10_000);
    t.true(svc.counters.slices >= 10_000 / 32, 'at most 32 requests per slice');
    t.true(lag.p99 < LAG_P99_MS, `event-loop delay p99 ${lag.p99} ms`);
    t.is(svc.counters.ok, 2500);
    t.deepEqual(svc.counters.byCode, { CONFIRM_REQUIRED: 2500, INVALID_REQUEST: 2500, NOT_FOUND: 2500 });
    t.is(audit.length, 10_000);
    t.is(registry.get(A)!.state, 'reimage-requested');
    const after = snapshot(registry);
    t.deepEqual(after[B], before[B]);
    t.deepEqual(after[P], before[P]);
  },
);

test('MQTT 5 through mosquitto: the answer also goes to the response topic with the correlation data', async (t) => {
  const mosq = await startMosquitto();
  t.teardown(() => mosq.close());
  const boxClient = await connect(mosq.clientOptions({ protocolVersion: 5, clientId: 'box1' }));
  t.teardown(() => boxClient.end(true));
  const { registry } = await box(t, clientPort(boxClient, ROOT, 'ops'));
  await new Promise((r) => setTimeout(r, 100)); // the box's subscription reaches the broker
  const requester = await connect(mosq.clientOptions({ protocolVersion: 5 }));
  t.teardown(() => requester.end(true));
  await requester.subscribeAsync('clients/ops/replies');
  const cd = Buffer.from('corr-\u0001-42');
  const answer = nextMessage(requester, 'clients/ops/replies');
  await requester.publishAsync(
    `${ROOT}request/approve`,
    JSON.stringify({ transaction: 'v5-1', targets: { name: 'node-p' } }),
    {
      qos: 1,
      properties: { responseTopic: 'clients/ops/replies', correlationData: cd },
    },
  );
  const { body, packet } = await answer;
  t.like(body, { transaction: 'v5-1', status: 'ok' });
  t.deepEqual(Buffer.from(packet.properties!.correlationData!), cd);
  t.is(registry.get(P)!.state, 'approved');

  // mosquitto_rr: the stock MQTT 5 request/response client
  const rr = await run('mosquitto_rr', [
    '--unix',
    mosq.socket,
    '-t',
    `${ROOT}request/reimage`,
    '-e',
    'clients/rr/replies',
    '-W',
    '10',
    '-m',
    JSON.stringify({ transaction: 'rr-1', targets: { name: 'node-b' }, mode: 'next-boot' }),
  ]);
  t.is(rr.code, 0, rr.stderr);
  t.like(JSON.parse(rr.stdout), { transaction: 'rr-1', status: 'ok' });
  t.is(registry.get(B)!.state, 'reimage-requested');
});
