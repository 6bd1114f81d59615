/**
 * The MQTT command dispatcher (telemetry/mqtt/commands.ts) over an in-memory port and a real
 * machine registry: answers with the transaction echoed, per-target results, confirm rules,
 * all-or-nothing validation, idempotency, refusals that change nothing, the wipe's node action.
 */
import test, { type ExecutionContext } from 'ava';
import { ManualClock } from '../../firmware/core/clock.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import type { AuditInput } from '../../firmware/services/audit.ts';
import {
  CommandService,
  type CommandServiceOptions,
  wipeScriptHandler,
} from '../../firmware/telemetry/mqtt/commands.ts';
import { windowsWipeScript, wipeSteps } from '../../firmware/telemetry/mqtt/node-actions.ts';
import { FakePort, type MachineSpec, registryWith, snapshot } from '../helpers/mqtt-commands.ts';

const A = '52:54:00:00:00:0a';
const B = '52:54:00:00:00:0b';
const C = '52:54:00:00:00:0c';
const P = '52:54:00:00:00:0d';
const U = '52:54:00:00:00:0e';

const MACHINES: MachineSpec[] = [
  { mac: A, name: 'node-a', state: 'deployed', group: 'rack1' },
  { mac: B, name: 'node-b', state: 'deployed', group: 'rack1', image: 'win11' },
  { mac: C, name: 'node-c', state: 'approved' },
  { mac: P, name: 'node-p', state: 'pending' },
  { mac: U, name: 'unit-x', state: 'rejected' },
];

// biome-ignore lint/suspicious/noExplicitAny: tests read deep into the answers
type Answer = Record<string, any>;

async function setup(t: ExecutionContext, o: Partial<CommandServiceOptions> = {}, machines = MACHINES) {
  const clock = new ManualClock();
  const { registry } = await registryWith(t, machines, clock);
  const port = new FakePort();
  const audit: AuditInput[] = [];
  const svc = new CommandService({
    port,
    registry,
    boxId: 'box1',
    images: () => ['ubuntu-24.04', 'win11', 'rocky-9'],
    audit: { record: (e) => audit.push(e) },
    allow: { '*': ['ops', 'ops2'], approve: ['helpdesk'] },
    clock,
    log: silentLogger,
    ...o,
  });
  await svc.start();
  t.teardown(() => svc.stop());
  const send = async (
    command: string,
    body: unknown,
    identity = 'ops',
    extra: Parameters<FakePort['deliver']>[2] = {},
  ) => {
    port.deliver(`request/${command}`, body, { identity, ...extra });
    await svc.idle();
    const answers = port.on(`response/${command}`);
    return answers.at(-1)?.payload as Answer;
  };
  return { clock, registry, port, audit, svc, send };
}

test('reimage by name: ok, the transaction echoed, per-target result, registry changed, audited', async (t) => {
  const { send, registry, audit } = await setup(t);
  const r = await send('reimage', { transaction: 't1', targets: { name: 'NODE-A' }, mode: 'next-boot' });
  t.is(r.transaction, 't1');
  t.is(r.status, 'ok');
  t.deepEqual(r.data.targets, [{ mac: A, name: 'node-a', from: 'deployed', to: 'reimage-requested', changed: true }]);
  t.is(registry.get(A)!.state, 'reimage-requested');
  t.is(registry.get(A)!.reimage!.by, 'mqtt:ops');
  t.like(audit.at(-1), {
    via: 'mqtt',
    identity: 'ops',
    command: 'reimage',
    transaction: 't1',
    result: 'ok',
    macs: [A],
  });
  t.deepEqual(audit.at(-1)!.targets, { name: 'NODE-A' });
});

test('a numeric transaction is echoed as a number', async (t) => {
  const { send } = await setup(t);
  const r = await send('approve', { transaction: 42, targets: { mac: P.toUpperCase().replace(/:/g, '-') } });
  t.is(r.transaction, 42);
  t.is(r.status, 'ok');
  t.like(r.data.targets[0], { mac: P, from: 'pending', to: 'approved', changed: true });
});

test('reimage of a machine already reimage-requested with the same mode and image: ok, changed false', async (t) => {
  const { send, registry } = await setup(t);
  await send('reimage', { transaction: 'a', targets: { name: 'node-a' }, mode: 'next-boot', image: 'rocky-9' });
  const before = registry.get(A)!.stateSince;
  const r = await send('reimage', {
    transaction: 'b',
    targets: { name: 'node-a' },
    mode: 'next-boot',
    image: 'rocky-9',
  });
  t.is(r.status, 'ok');
  t.like(r.data.targets[0], { changed: false, from: 'reimage-requested', to: 'reimage-requested' });
  t.is(r.data.changed, 0);
  t.is(registry.get(A)!.stateSince, before);
  const other = await send('reimage', {
    transaction: 'c',
    targets: { name: 'node-a' },
    mode: 'wipe',
    image: 'rocky-9',
  });
  t.is(other.status, 'error');
  t.is(other.error.code, 'INVALID_STATE');
  t.regex(other.error.message, /cancel it first/);
});

test('the same transaction from the same identity is answered again without acting', async (t) => {
  const { send, port, registry, audit } = await setup(t);
  const body = { transaction: 'once', targets: { name: 'node-a' }, mode: 'next-boot' };
  const first = await send('reimage', body);
  t.false(registry.apply(A, { type: 'cancel-reimage' }) instanceof Error, 'undone by hand');
  const again = await send('reimage', body);
  t.deepEqual(again, first, 'the very same answer');
  t.is(registry.get(A)!.state, 'deployed', 'not reimaged a second time');
  t.true(audit.at(-1)!.replay);
  // another identity with the same transaction acts
  const other = await send('reimage', body, 'ops2');
  t.like(other.data.targets[0], { changed: true, to: 'reimage-requested' });
  registry.apply(A, { type: 'cancel-reimage' });
  // the same transaction with a different request is a conflict
  const changed = await send('reimage', { ...body, mode: 'wipe' });
  t.is(changed.error.code, 'CONFLICT');
  t.is(port.on('nodes/node-a/cmd').length, 0);
});

test('the idempotency window ends: the transaction acts again after it', async (t) => {
  const { send, registry, clock } = await setup(t, { idempotencyWindowMs: 60_000 });
  const body = { transaction: 'w', targets: { name: 'node-a' }, mode: 'next-boot' };
  await send('reimage', body);
  registry.apply(A, { type: 'cancel-reimage' });
  clock.advance(61_000);
  const r = await send('reimage', body);
  t.is(r.data.targets[0].changed, true);
  t.is(registry.get(A)!.state, 'reimage-requested');
});

test('a refused request is not remembered: fixed and sent again with the same transaction, it runs', async (t) => {
  const { send, registry } = await setup(t);
  const r1 = await send('reimage', { transaction: 'fix', targets: { group: 'rack1' }, mode: 'next-boot' });
  t.is(r1.error.code, 'CONFIRM_REQUIRED');
  const r2 = await send('reimage', {
    transaction: 'fix',
    targets: { group: 'rack1' },
    mode: 'next-boot',
    confirm: true,
  });
  t.is(r2.status, 'ok');
  t.is(registry.get(B)!.state, 'reimage-requested');
});

test('confirm: several machines for a destructive command, and any group or pattern', async (t) => {
  const { send, registry } = await setup(t);
  const before = snapshot(registry);
  const two = await send('reimage', { transaction: 1, targets: { names: ['node-a', 'node-b'] }, mode: 'next-boot' });
  t.is(two.error.code, 'CONFIRM_REQUIRED');
  t.regex(two.error.message, /2 machines.*node-a, node-b/);
  const pattern = await send('cancel', { transaction: 2, targets: { pattern: 'node-?' } });
  t.is(pattern.error.code, 'CONFIRM_REQUIRED', 'a pattern needs confirm even for a harmless command');
  const group = await send('approve', { transaction: 3, targets: { group: 'rack1' } });
  t.is(group.error.code, 'CONFIRM_REQUIRED');
  const setImage = await send('set-image', { transaction: 4, targets: { macs: [A, B] }, image: 'rocky-9' });
  t.is(setImage.error.code, 'CONFIRM_REQUIRED');
  t.deepEqual(snapshot(registry), before, 'nothing changed');
  // several machines by name for a non-destructive command: no confirm needed
  const approve = await send('approve', { transaction: 5, targets: { names: ['node-p', 'node-a'] } });
  t.is(approve.status, 'ok');
  t.deepEqual(
    approve.data.targets.map((x: { name: string; changed: boolean }) => [x.name, x.changed]),
    [
      ['node-a', false],
      ['node-p', true],
    ],
  );
  const confirmed = await send('reimage', {
    transaction: 6,
    targets: { group: 'rack1' },
    mode: 'next-boot',
    confirm: true,
  });
  t.is(confirmed.status, 'ok');
  t.is(confirmed.data.count, 2);
});

test('all or nothing: one target in the wrong state refuses the whole command, nothing changes', async (t) => {
  const { send, registry, audit } = await setup(t);
  const before = snapshot(registry);
  const r = await send('reimage', {
    transaction: 'mix',
    targets: { names: ['node-a', 'node-p', 'node-c'] },
    mode: 'next-boot',
    confirm: true,
  });
  t.is(r.status, 'error');
  t.is(r.error.code, 'INVALID_STATE');
  t.regex(r.error.message, /node-p/);
  const byName = Object.fromEntries(r.data.targets.map((x: { name: string }) => [x.name, x]));
  t.is(byName['node-p'].error.code, 'INVALID_STATE');
  t.false(byName['node-a'].changed);
  t.deepEqual(snapshot(registry), before);
  t.like(audit.at(-1), { result: 'error', code: 'INVALID_STATE' });
});

test('targets that match nothing: NOT_FOUND listing what was asked, nothing changes', async (t) => {
  const { send, registry } = await setup(t);
  const before = snapshot(registry);
  const r = await send('reimage', {
    transaction: 'nf',
    targets: { names: ['node-a', 'ghost'], mac: '02:00:00:00:00:99', group: 'rack9' },
    mode: 'next-boot',
    confirm: true,
  });
  t.is(r.error.code, 'NOT_FOUND');
  t.regex(r.error.message, /mac 02:00:00:00:00:99/);
  t.regex(r.error.message, /name ghost/);
  t.regex(r.error.message, /group rack9/);
  t.deepEqual(r.data.missing, ['mac 02:00:00:00:00:99', 'name ghost', 'group rack9']);
  const p = await send('reimage', { transaction: 'nf2', targets: { pattern: 'gpu-*' }, mode: 'wipe', confirm: true });
  t.is(p.error.code, 'NOT_FOUND');
  t.regex(p.error.message, /pattern gpu-\*/);
  t.deepEqual(snapshot(registry), before);
});

test('images are checked against the catalog', async (t) => {
  const { send, registry } = await setup(t);
  const r = await send('reimage', { transaction: 'i', targets: { name: 'node-a' }, mode: 'next-boot', image: 'nope' });
  t.is(r.error.code, 'NOT_FOUND');
  t.regex(r.error.message, /image "nope"/);
  const s = await send('set-image', { transaction: 'j', targets: { name: 'node-c' }, image: 'nope' });
  t.is(s.error.code, 'NOT_FOUND');
  t.is(registry.get(C)!.image, undefined);
  const ok = await send('set-image', { transaction: 'k', targets: { name: 'node-c' }, image: 'rocky-9' });
  t.like(ok.data.targets[0], { from: null, to: 'rocky-9', changed: true });
  const clear = await send('set-image', { transaction: 'l', targets: { name: 'node-c' }, image: null });
  t.like(clear.data.targets[0], { from: 'rocky-9', to: null, changed: true });
  const same = await send('set-image', { transaction: 'm', targets: { name: 'node-c' }, image: null });
  t.like(same.data.targets[0], { changed: false });
});

test('approve, reject and cancel follow the lifecycle', async (t) => {
  const { send, registry } = await setup(t);
  t.is((await send('reject', { transaction: 1, targets: { name: 'node-p' } })).data.targets[0].to, 'rejected');
  t.is((await send('reject', { transaction: 2, targets: { name: 'node-p' } })).data.targets[0].changed, false);
  const approveRejected = await send('approve', { transaction: 3, targets: { name: 'unit-x' } });
  t.is(approveRejected.error.code, 'INVALID_STATE');
  const rejectDeployed = await send('reject', { transaction: 4, targets: { name: 'node-a' } });
  t.is(rejectDeployed.error.code, 'INVALID_STATE');
  await send('reimage', { transaction: 5, targets: { name: 'node-a' }, mode: 'next-boot' });
  const cancel = await send('cancel', { transaction: 6, targets: { name: 'node-a' } });
  t.like(cancel.data.targets[0], { from: 'reimage-requested', to: 'deployed', changed: true });
  t.is(registry.get(A)!.reimage, undefined);
  const again = await send('cancel', { transaction: 7, targets: { name: 'node-a' } });
  t.like(again.data.targets[0], { changed: false });
  t.regex(again.data.targets[0].note, /no reimage request/);
});

test('wipe: reimage-requested first, then the node action on nodes/<name>/cmd (qos 1, not retained)', async (t) => {
  const { send, registry, port, clock } = await setup(t);
  const r = await send('reimage', { transaction: 'w1', targets: { name: 'node-a' }, mode: 'wipe' });
  t.is(r.status, 'ok');
  t.is(r.data.targets[0].nodeAction, 'bootbox/box1/nodes/node-a/cmd');
  t.is(registry.get(A)!.reimage!.mode, 'wipe');
  const [msg, ...more] = port.on('nodes/node-a/cmd');
  t.is(more.length, 0);
  t.deepEqual(msg!.opts, { qos: 1, retain: false });
  t.deepEqual(msg!.payload, {
    action: 'wipe-and-reboot',
    box: 'box1',
    transaction: 'w1',
    ts: clock.date().toISOString(),
    os: 'linux',
    disk: '/dev/sda',
    steps: wipeSteps('linux', '/dev/sda'),
  });
  // node-b runs a Windows image: diskpart plan, configured disk
  const w = await send('reimage', { transaction: 'w2', targets: { name: 'node-b' }, mode: 'wipe' });
  t.is(w.status, 'ok');
  const b = port.on('nodes/node-b/cmd')[0]!.payload;
  t.is(b.os, 'windows');
  t.is(b.disk, 0);
  t.deepEqual(b.steps, wipeSteps('windows', 0));
  // a wipe requested again (the node may have missed it) is sent again, changed false
  const again = await send('reimage', { transaction: 'w3', targets: { name: 'node-a' }, mode: 'wipe' });
  t.like(again.data.targets[0], { changed: false, nodeAction: 'bootbox/box1/nodes/node-a/cmd' });
  t.is(port.on('nodes/node-a/cmd').length, 2);
});

test('wipe: the image of the request decides the OS; configured disks; injected imageOs', async (t) => {
  const { send, port } = await setup(t, {
    wipeDisk: { linux: '/dev/nvme0n1', windows: 1 },
    imageOs: (i) => (i === 'rocky-9' ? 'windows' : undefined),
  });
  await send('reimage', { transaction: 'x', targets: { name: 'node-a' }, mode: 'wipe', image: 'rocky-9' });
  t.like(port.on('nodes/node-a/cmd')[0]!.payload, { os: 'windows', disk: 1 });
  await send('reimage', { transaction: 'y', targets: { name: 'node-b' }, mode: 'wipe' });
  t.like(port.on('nodes/node-b/cmd')[0]!.payload, { os: 'linux', disk: '/dev/nvme0n1' });
});

test('wipe of a machine without a name is refused, nothing changes', async (t) => {
  const { send, registry, port } = await setup(t, {}, [{ mac: A, state: 'deployed' }]);
  // a machine the naming policy could not name (names used up): its record has no name
  delete (registry.get(A) as { name?: string }).name;
  const r = await send('reimage', { transaction: 'nn', targets: { mac: A }, mode: 'wipe' });
  t.is(r.error.code, 'INVALID_REQUEST');
  t.regex(r.error.message, /has no name/);
  t.is(registry.get(A)!.state, 'deployed');
  t.is(port.published.filter((p) => p.topic.includes('/nodes/')).length, 0);
});

test('bad input: each answered with a clear error, nothing changes', async (t) => {
  const { port, registry, svc, audit } = await setup(t, { maxPayloadBytes: 1024 });
  const before = snapshot(registry);
  const cases: [string, unknown, string, RegExp, Parameters<FakePort['deliver']>[2]?][] = [
    ['reimage', '{not json', 'INVALID_REQUEST', /not JSON/, { raw: true }],
    ['foo', { transaction: 'u' }, 'UNKNOWN_COMMAND', /unknown command "foo".*reimage/],
    ['reimage', { targets: { name: 'node-a' }, mode: 'wipe' }, 'INVALID_REQUEST', /"transaction" is required/],
    [
      'reimage',
      { transaction: 't', targets: { name: 'node-a' }, mode: 'wipe', mdoe: 1, x: 2 },
      'INVALID_REQUEST',
      /unknown fields "mdoe", "x"/,
    ],
    ['reimage', { transaction: 't', targets: { name: 'node-a' }, mode: 'now' }, 'INVALID_REQUEST', /"mode" must be/],
    ['reimage', { transaction: 't', targets: { host: 'node-a' }, mode: 'wipe' }, 'INVALID_REQUEST', /"targets.host"/],
    ['reimage', { transaction: 't', targets: { pattern: 'node-a' }, mode: 'wipe' }, 'CONFIRM_REQUIRED', /confirm/],
    ['reimage', { transaction: 'big', pad: 'x'.repeat(2000) }, 'PAYLOAD_TOO_LARGE', /2\d{3} bytes; the limit is 1024/],
    [
      'reimage',
      { transaction: 'who', targets: { name: 'node-a' }, mode: 'wipe' },
      'FORBIDDEN',
      /"intruder" may not send reimage/,
      { identity: 'intruder' },
    ],
    [
      'reimage',
      { transaction: 'anon', targets: { name: 'node-a' }, mode: 'wipe' },
      'FORBIDDEN',
      /unauthenticated/,
      { identity: '' },
    ],
    ['reimage', [1, 2], 'INVALID_REQUEST', /JSON object/],
  ];
  for (const [command, body, code, re, extra] of cases) {
    port.deliver(`request/${command}`, body, { identity: 'ops', ...extra });
    await svc.idle();
    const r = port.on(`response/${command}`).at(-1)!.payload as Answer;
    t.is(r.status, 'error', `${command} ${JSON.stringify(body).slice(0, 60)}`);
    t.is(r.error.code, code, r.error.message);
    t.regex(r.error.message, re);
    const echo = code !== 'PAYLOAD_TOO_LARGE' && typeof body === 'object' && body !== null && 'transaction' in body;
    if (echo) t.is(r.transaction, (body as { transaction: unknown }).transaction, 'transaction echoed');
  }
  t.deepEqual(snapshot(registry), before);
  t.is(port.published.filter((p) => p.topic.includes('/nodes/')).length, 0);
  t.is(audit.length, cases.length, 'every refusal audited');
  t.true(audit.every((a) => a.result === 'error'));
});

test('mqtt.allow: per command and "*"; an empty allow-list lets nobody command', async (t) => {
  const { send } = await setup(t);
  t.is((await send('approve', { transaction: 1, targets: { name: 'node-p' } }, 'helpdesk')).status, 'ok');
  t.is((await send('reject', { transaction: 2, targets: { name: 'node-c' } }, 'helpdesk')).error.code, 'FORBIDDEN');
  const none = await setup(t, { allow: {} });
  t.is((await none.send('approve', { transaction: 3, targets: { name: 'node-p' } }, 'ops')).error.code, 'FORBIDDEN');
});

test('MQTT 5: answered on the response topic too, with the correlation data; bad response topics refused', async (t) => {
  const { port, svc, registry } = await setup(t);
  const cd = Buffer.from([1, 2, 3, 254]);
  port.deliver(
    'request/approve',
    { transaction: 'v5', targets: { name: 'node-p' } },
    { identity: 'ops', properties: { responseTopic: 'clients/ops/replies', correlationData: cd } },
  );
  await svc.idle();
  const direct = port.published.filter((p) => p.topic === 'clients/ops/replies');
  t.is(direct.length, 1);
  t.deepEqual(direct[0]!.opts?.properties?.correlationData, cd);
  t.like(direct[0]!.payload, { transaction: 'v5', status: 'ok' });
  t.like(port.on('response/approve')[0]!.payload, { transaction: 'v5', status: 'ok' });
  for (const bad of ['bootbox/box1/nodes/node-a/cmd', 'a/+/b', '$SYS/x']) {
    port.deliver(
      'request/reject',
      { transaction: bad, targets: { name: 'node-c' } },
      { identity: 'ops', properties: { responseTopic: bad } },
    );
    await svc.idle();
    t.false(port.published.some((p) => p.topic === bad));
    t.is(port.on('response/reject').at(-1)!.payload.error.code, 'INVALID_REQUEST');
  }
  t.is(registry.get(C)!.state, 'approved');
});

test('a flood: at most one RATE_LIMITED answer per identity per second, the rest counted', async (t) => {
  const { port, svc, registry, clock, audit } = await setup(t, {
    rateLimits: { perIdentity: { ratePerSec: 20, burst: 50 }, global: { ratePerSec: 1000, burst: 1000 } },
  });
  const before = snapshot(registry);
  for (let i = 0; i < 10_000; i++) {
    port.deliver('request/approve', { transaction: i, targets: { name: 'node-a' } }, { identity: 'ops' });
  }
  await svc.idle();
  const answers = port.on('response/approve');
  const limited = answers.filter(
    (a) => a.payload.error && (a.payload.error as { code: string }).code === 'RATE_LIMITED',
  );
  t.is(answers.length - limited.length, 50, 'the burst is served');
  t.is(limited.length, 1, 'one RATE_LIMITED answer for the whole second');
  t.regex((limited[0]!.payload.error as { message: string }).message, /too many requests from "ops": 1 request/);
  t.is(svc.counters.dropped, 10_000 - 50 - 1);
  clock.advance(1000);
  port.deliver('request/approve', { transaction: 'late', targets: { name: 'node-a' } }, { identity: 'ops' });
  for (let i = 0; i < 100; i++) port.deliver('request/approve', { transaction: `x${i}` }, { identity: 'ops' });
  await svc.idle();
  const after = port.on('response/approve').slice(answers.length);
  t.is(after.filter((a) => a.payload.status === 'ok').length, 1);
  const notice = after.find((a) => (a.payload.error as { code?: string } | undefined)?.code === 'RATE_LIMITED');
  // 9,949 dropped silently in the first second, then the one that brings this notice
  t.regex((notice!.payload.error as { message: string }).message, /: 9950 request\(s\) dropped since the last notice/);
  t.is(svc.counters.dropped, 9949 + 80);
  // another identity is not starved by the first
  port.deliver('request/approve', { transaction: 'other', targets: { name: 'node-p' } }, { identity: 'helpdesk' });
  await svc.idle();
  t.is(port.on('response/approve').at(-1)!.payload.status, 'ok');
  t.is(registry.get(P)!.state, 'approved');
  const { [P]: _p, ...rest } = snapshot(registry);
  const { [P]: _q, ...restBefore } = before;
  t.deepEqual(rest, restBefore, 'nothing else changed');
  t.true(audit.length < 200, `audit entries stay few (${audit.length})`);
  t.true(audit.some((a) => a.code === 'RATE_LIMITED' && (a.dropped ?? 0) > 1));
});

test('stop unsubscribes: requests after stop are not answered', async (t) => {
  const { port, svc } = await setup(t);
  t.is(port.subscriptions, 2, 'requests and node reports');
  await svc.stop();
  t.is(port.subscriptions, 0);
  port.deliver('request/approve', { transaction: 1, targets: { name: 'node-p' } }, { identity: 'ops' });
  await svc.idle();
  t.is(port.published.length, 0);
});

test('invoke: the same commands for the REST API, audited as via api, no allow-list', async (t) => {
  const { svc, port, registry, audit } = await setup(t);
  const r = svc.invoke('reimage', { transaction: 'api-1', targets: { mac: A }, mode: 'wipe' }, 'token-7');
  t.like(r, { transaction: 'api-1', status: 'ok' });
  t.is(registry.get(A)!.reimage!.by, 'token-7', 'the API actor, as the REST routes record it');
  t.is(port.on('nodes/node-a/cmd').length, 1);
  t.like(audit.at(-1), { via: 'api', identity: 'token-7', command: 'reimage', result: 'ok', macs: [A] });
  const bad = svc.invoke('approve', { transaction: 'api-2', targets: { mac: A }, extra: 1 }, 'token-7');
  t.is(bad.error!.code, 'INVALID_REQUEST');
  t.like(audit.at(-1), { via: 'api', result: 'error', code: 'INVALID_REQUEST' });
  t.is(port.on('response/reimage').length, 0, 'no MQTT answer for an API call');
});

test('node reports on nodes/<name>/response are counted and audited', async (t) => {
  const { svc, port, audit } = await setup(t);
  port.deliver(
    'nodes/node-a/response',
    {
      transaction: 'w1',
      name: 'node-a',
      status: 'error',
      dryRun: false,
      steps: [],
      error: { code: 'ACTION_FAILED', message: 'step 1 exited 1' },
    },
    { identity: 'node-a' },
  );
  port.deliver('nodes/node-b/response', 'garbage', { identity: 'node-b', raw: true });
  t.is(svc.counters.nodeReports, 2);
  t.deepEqual(audit, [
    {
      via: 'mqtt',
      identity: 'node-a',
      command: 'node-report',
      transaction: 'w1',
      targets: { name: 'node-a' },
      result: 'error',
      code: 'ACTION_FAILED',
    },
  ]);
});

test('remembered answers are bounded: past idempotencyMax the oldest transaction acts again', async (t) => {
  const { send, registry, audit } = await setup(t, { idempotencyMax: 2 });
  const body = (tx: string) => ({ transaction: tx, targets: { name: 'node-c' }, image: 'rocky-9' });
  await send('set-image', body('t1'));
  await send('set-image', body('t2'));
  t.true(audit.at(-1)!.replay === undefined);
  await send('set-image', body('t2'));
  t.true(audit.at(-1)!.replay, 't2 still remembered');
  await send('set-image', body('t3'));
  registry.update(C, { image: null });
  const again = await send('set-image', body('t1'));
  t.like(again.data.targets[0], { changed: true }, 't1 was forgotten: it acts');
  t.is(audit.at(-1)!.replay, undefined);
});

test('GET /actions/<name>/wipe.cmd: the batch file for a known machine, 404 otherwise', async (t) => {
  const { registry } = await setup(t);
  const handler = wipeScriptHandler({ get: (id) => registry.get(id), boxId: 'box1', disk: 1 });
  const ok = handler('NODE-B');
  t.is(ok.status, 200);
  t.is(ok.body, windowsWipeScript({ name: 'node-b', box: 'box1', disk: 1 }));
  t.is(ok.headers['Content-Length'], String(Buffer.byteLength(ok.body)));
  t.regex(ok.headers['Content-Disposition']!, /filename="wipe.cmd"/);
  const missing = handler('ghost');
  t.is(missing.status, 404);
  t.regex(missing.body, /no machine named "ghost"/);
});
