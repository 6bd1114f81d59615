import test from 'ava';
import { ManualClock } from '../../firmware/core/clock.ts';
import { EventBus } from '../../firmware/core/event-bus.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import type { BoxEvents } from '../../firmware/domain/events.ts';
import type { MachineEventMap } from '../../firmware/services/machines.ts';
import type { MqttMessage, MqttPort, PublishOptions } from '../../firmware/telemetry/mqtt/port.ts';
import { type MachineSnapshot, Telemetry } from '../../firmware/telemetry/mqtt/telemetry.ts';

/** A port that records what is published (payloads as the link would send them, minus serialisation). */
class RecordingPort implements MqttPort {
  readonly root = 'bootbox/b1/';
  connected = true;
  readonly sent: { topic: string; payload: Record<string, unknown>; opts: PublishOptions }[] = [];
  private readonly listeners = new Set<() => void>();
  publish(topic: string, payload: unknown, opts: PublishOptions = {}): void {
    this.sent.push({ topic, payload: payload as Record<string, unknown>, opts });
  }
  subscribe(_filter: string, _handler: (msg: MqttMessage) => void): () => void {
    return () => {};
  }
  onConnect(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  reconnect(): void {
    for (const fn of this.listeners) fn();
  }
  on(topic: string) {
    return this.sent.filter((s) => s.topic === topic);
  }
}

const MAC = 'aa:bb:cc:00:00:01';
const STATE = `bootbox/b1/machines/${MAC}/state`;

function setup(opts: { machines?: MachineSnapshot[]; maxEventsPerSec?: number; health?: () => Promise<object> } = {}) {
  const port = new RecordingPort();
  const bus = new EventBus<BoxEvents & MachineEventMap>(silentLogger);
  const clock = new ManualClock();
  let snapshot = opts.machines ?? [];
  const tel = new Telemetry({
    port,
    events: bus,
    machines: () => snapshot,
    health: opts.health ?? (async () => ({ cpu: { percent: 1 } })),
    healthIntervalMs: 3_600_000,
    maxEventsPerSec: opts.maxEventsPerSec,
    progressIntervalMs: 1000,
    clock,
    log: silentLogger,
  });
  return { port, bus, clock, tel, setSnapshot: (s: MachineSnapshot[]) => (snapshot = s) };
}

test('machine events become the retained machine state', async (t) => {
  const { port, bus, tel } = setup();
  await tel.start();
  bus.emit('machine.created', { ts: '2026-01-01T00:00:01.000Z', mac: MAC, name: 'NODE001', state: 'pending' });
  bus.emit('machine.state', {
    ts: '2026-01-01T00:00:02.000Z',
    mac: MAC,
    name: 'NODE001',
    from: 'pending',
    to: 'approved',
    reason: 'approved by alice',
    by: 'alice',
    event: 'approve',
  });
  const states = port.on(STATE);
  t.deepEqual(
    states.map((s) => s.payload),
    [
      { mac: MAC, name: 'NODE001', state: 'pending', reason: 'first seen', ts: '2026-01-01T00:00:01.000Z' },
      {
        mac: MAC,
        name: 'NODE001',
        state: 'approved',
        from: 'pending',
        reason: 'approved by alice',
        by: 'alice',
        ts: '2026-01-01T00:00:02.000Z',
      },
    ],
  );
  t.true(states.every((s) => s.opts.retain === true && s.opts.qos === 1));
  await tel.stop();
});

test('every event goes to events as {type, ...event}; an own type field becomes subtype', async (t) => {
  const { port, bus, tel } = setup();
  await tel.start();
  bus.emit('dhcp.request', { ts: 't1', mac: MAC, type: 'DISCOVER', arch: 'bios' } as never);
  bus.emit('machine.created', { ts: 't2', mac: MAC, name: 'N', state: 'pending' });
  const events = port.on('bootbox/b1/events');
  t.deepEqual(
    events.map((e) => e.payload),
    [
      { type: 'dhcp.request', ts: 't1', mac: MAC, subtype: 'DISCOVER', arch: 'bios' },
      { type: 'machine.created', ts: 't2', mac: MAC, name: 'N', state: 'pending' },
    ],
  );
  t.true(events.every((e) => !e.opts.retain));
  await tel.stop();
  bus.emit('tftp.complete', { ts: 't3' } as never);
  t.is(port.on('bootbox/b1/events').length, 2, 'nothing after stop');
});

test('a (re)connect republishes from the registry snapshot what changed (renames, missed changes)', async (t) => {
  const { port, bus, tel, setSnapshot } = setup({
    machines: [
      { mac: MAC, name: 'NODE001', state: 'deployed', reason: 'deploy finished', since: '2025-12-31T10:00:00Z' },
    ],
  });
  await tel.start();
  t.deepEqual(port.on(STATE).at(-1)?.payload, {
    mac: MAC,
    name: 'NODE001',
    state: 'deployed',
    reason: 'deploy finished',
    ts: '2025-12-31T10:00:00Z',
  });
  // During an outage: the state changes (the link buffers these), and a machine is renamed.
  bus.emit('machine.state', {
    ts: '2026-01-01T00:00:09.000Z',
    mac: MAC,
    name: 'NODE001',
    from: 'deployed',
    to: 'reimage-requested',
    reason: 'reimage (wipe)',
    by: 'bob',
    event: 'reimage',
  });
  setSnapshot([
    { mac: MAC, name: 'RACK1-01', state: 'reimage-requested', reason: 'reimage (wipe)', since: '2026-01-01T00:00:09Z' },
    { mac: 'aa:bb:cc:00:00:02', state: 'pending', reason: 'first netboot', since: '2026-01-01T00:00:08Z' },
  ]);
  const before = port.sent.length;
  port.reconnect();
  const after = port.sent.slice(before);
  const states = after.filter((s) => s.topic.includes('/machines/'));
  t.deepEqual(
    states.map((s) => s.payload),
    [
      {
        mac: MAC,
        name: 'RACK1-01',
        state: 'reimage-requested',
        from: 'deployed',
        reason: 'reimage (wipe)',
        by: 'bob',
        ts: '2026-01-01T00:00:09.000Z',
      },
      { mac: 'aa:bb:cc:00:00:02', state: 'pending', reason: 'first netboot', ts: '2026-01-01T00:00:08Z' },
    ],
    'the live record where it agrees with the registry (it knows from/by), the registry otherwise',
  );
  await new Promise((r) => setImmediate(r));
  t.is(port.on('bootbox/b1/health').length, 1, 'fresh health after a connect');
  await tel.stop();
});

test('health is published without buffering', async (t) => {
  const { port, tel } = setup({ health: async () => ({ temperature: null }) });
  await tel.publishHealth();
  const h = port.on('bootbox/b1/health');
  t.is(h.length, 1);
  t.deepEqual(h[0]!.payload, { temperature: null });
  t.is(h[0]!.opts.buffer, false);
  t.is(h[0]!.opts.retain, undefined);
});

test('a failing health collection is counted, not thrown', async (t) => {
  const { port, tel } = setup({
    health: async () => {
      throw new Error('no sensors');
    },
  });
  await t.notThrowsAsync(() => tel.publishHealth());
  t.is(port.on('bootbox/b1/health').length, 0);
  t.is(tel.counters.healthErrors, 1);
});

test('an event storm is capped per second and counted', async (t) => {
  const { port, bus, clock, tel } = setup({ maxEventsPerSec: 5 });
  await tel.start();
  for (let i = 0; i < 12; i++) bus.emit('dhcp.dropped', { ts: `t${i}` } as never);
  t.is(port.on('bootbox/b1/events').length, 5);
  t.is(tel.counters.eventsDropped, 7);
  clock.advance(1000);
  bus.emit('dhcp.dropped', { ts: 'later' } as never);
  t.is(port.on('bootbox/b1/events').length, 6, 'a new second, new budget');
  await tel.stop();
});

test('progress updates the retained state, at most once per interval, the last value winning', async (t) => {
  const { port, bus, clock, tel } = setup();
  await tel.start();
  bus.emit('machine.state', {
    ts: 't0',
    mac: MAC,
    from: 'approved',
    to: 'deploying',
    reason: 'deploy started',
    event: 'deploy-started',
  });
  bus.emit('deploy.progress', { ts: 't1', mac: MAC, progress: { percent: 10 } } as never);
  t.deepEqual(port.on(STATE).at(-1)?.payload.progress, { percent: 10 }, 'the first at once');
  const n = port.on(STATE).length;
  bus.emit('deploy.progress', { ts: 't2', mac: MAC, progress: { percent: 20 } } as never);
  bus.emit('deploy.progress', { ts: 't3', mac: MAC, progress: { percent: 30 } } as never);
  t.is(port.on(STATE).length, n, 'the next ones wait for the interval');
  clock.advance(1000);
  await new Promise((r) => setTimeout(r, 1100));
  t.is(port.on(STATE).length, n + 1);
  t.deepEqual(port.on(STATE).at(-1)?.payload.progress, { percent: 30 });
  bus.emit('machine.state', {
    ts: 't4',
    mac: MAC,
    from: 'deploying',
    to: 'deployed',
    reason: 'done',
    event: 'deployed',
  });
  t.is(port.on(STATE).at(-1)?.payload.progress, undefined, 'a new state starts without progress');
  await tel.stop();
});

test('a reconnect with nothing changed republishes no state from telemetry (the link replays its retained ones)', async (t) => {
  const { port, tel } = setup({
    machines: [
      { mac: MAC, name: 'NODE001', state: 'deployed', reason: 'deploy finished', since: '2025-12-31T10:00:00Z' },
    ],
  });
  await tel.start();
  const before = port.sent.length;
  port.reconnect();
  t.deepEqual(
    port.sent.slice(before).filter((s) => s.topic.includes('/machines/')),
    [],
  );
});
