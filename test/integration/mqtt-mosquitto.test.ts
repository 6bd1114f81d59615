/**
 * The box's link against Debian's mosquitto as the site broker: password file, no
 * anonymous access, TLS with a CA, a server certificate and a client certificate made
 * here with openssl. Last will after kill -9, health, and a broker outage: events
 * buffered in order and retained machine states right afterwards.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { readTlsFiles } from '../../firmware/config/tls-files.ts';
import { systemClock } from '../../firmware/core/clock.ts';
import { EventBus } from '../../firmware/core/event-bus.ts';
import { createLogger } from '../../firmware/core/logger.ts';
import type { BoxEvents } from '../../firmware/domain/events.ts';
import { MqttLink } from '../../firmware/telemetry/mqtt/link.ts';
import type { MqttMessage } from '../../firmware/telemetry/mqtt/port.ts';
import { type MachineSnapshot, Telemetry } from '../../firmware/telemetry/mqtt/telemetry.ts';
import { makePki, type Pki } from '../helpers/pki.ts';
import {
  brokerOutage,
  Collector,
  freePort,
  LOCALHOST,
  Mosquitto,
  runTool,
  sleep,
  spawnBoxChild,
  subscribeOnce,
  waitFor,
} from './mqtt-support.ts';

const BOX = 'b0c0ffee0002';
const ROOT = `bootbox/${BOX}/`;
const USERS = { box: 'box-secret', ops: 'ops-secret' };
/** How long the broker is away in the outage tests (the lab runs the same scenario with 30 s). */
const OUTAGE_MS = 3000;

const work = mkdtempSync(path.join(os.tmpdir(), 'bootbox-mosquitto-'));
let pki: Pki;
test.before(() => {
  pki = makePki(path.join(work, 'pki'));
});
test.after.always(() => rmSync(work, { recursive: true, force: true }));

async function startMosquitto(t: { teardown(fn: () => Promise<void>): void }, persistence = false): Promise<Mosquitto> {
  const dir = mkdtempSync(path.join(work, 'broker-'));
  const m = new Mosquitto({ dir, port: await freePort(), users: USERS, tls: pki, persistence });
  await m.start();
  t.teardown(() => m.stop());
  return m;
}

/** mosquitto_sub/pub arguments for this broker: TLS with the client certificate, as `ops`. */
const cli = (m: Mosquitto, user = 'ops', pw = USERS.ops) => [
  '-h',
  LOCALHOST,
  '-p',
  String(m.o.port),
  '--cafile',
  pki.ca,
  '--cert',
  pki.clientCert,
  '--key',
  pki.clientKey,
  '-u',
  user,
  '-P',
  pw,
];

const watcherTls = () => ({
  ca: readFileSync(pki.ca),
  cert: readFileSync(pki.clientCert),
  key: readFileSync(pki.clientKey),
  username: 'ops',
  password: USERS.ops,
});

interface BoxSide {
  link: MqttLink;
  bus: EventBus<BoxEvents>;
  tel: Telemetry;
  logs: string[];
  machines: Map<string, MachineSnapshot>;
  /** Changes a machine's state as the registry would: snapshot and event. */
  change(mac: string, to: string): void;
}

function boxSide(
  t: { teardown(fn: () => Promise<void>): void },
  m: Mosquitto,
  over: Partial<ConstructorParameters<typeof MqttLink>[0]> = {},
): BoxSide {
  const logs: string[] = [];
  const log = createLogger('box', { level: 'debug', write: (l) => logs.push(l) });
  const link = new MqttLink({
    root: ROOT,
    boxId: BOX,
    version: '9.9.9',
    url: m.url,
    username: 'box',
    password: USERS.box,
    tls: readTlsFiles({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey }),
    keepaliveSec: 5,
    eventBuffer: 1000,
    backoff: { initialMs: 200, maxMs: 1000 },
    clock: systemClock,
    log: log.child('link'),
    ...over,
  });
  const bus = new EventBus<BoxEvents>(log);
  const machines = new Map<string, MachineSnapshot>();
  const tel = new Telemetry({
    port: link,
    events: bus,
    machines: () => [...machines.values()],
    health: async () => ({ cpu: { percent: 3 }, temperature: null }),
    healthIntervalMs: 300,
    clock: systemClock,
    log: log.child('telemetry'),
  });
  t.teardown(async () => {
    await tel.stop();
    await link.stop();
  });
  return {
    link,
    bus,
    tel,
    logs,
    machines,
    change(mac, to) {
      const ts = new Date().toISOString();
      const prev = machines.get(mac);
      machines.set(mac, { mac, name: prev?.name ?? mac.slice(-2), state: to, reason: `now ${to}`, since: ts });
      if (prev) {
        bus.emit('machine.state', {
          ts,
          mac,
          name: prev.name,
          from: prev.state,
          to,
          reason: `now ${to}`,
          event: to,
        } as never);
      } else {
        bus.emit('machine.created', { ts, mac, name: mac.slice(-2), state: to } as never);
      }
    },
  };
}

test('TLS with a client certificate and a password: online status retained, health, MQTT 5 identity', async (t) => {
  const m = await startMosquitto(t);
  const box = boxSide(t, m);
  const requests: MqttMessage[] = [];
  box.link.subscribe(`${ROOT}request/+`, (msg) => requests.push(msg));
  await box.link.start();
  await box.tel.start();
  await waitFor(() => box.link.connected, 'the link to connect');
  t.like(box.link.status(), { connected: true, protocol: '5' });

  const status = await subscribeOnce(cli(m), `${ROOT}status`);
  t.like(status, { state: 'online', boxId: BOX, version: '9.9.9', protocol: '5' });

  const health = await subscribeOnce(cli(m), `${ROOT}health`);
  t.like(health, { cpu: { percent: 3 }, temperature: null });

  // A v5 client's request reaches the box with the user property "identity".
  const ops = await Collector.open(m.url, [], { ...watcherTls(), protocolVersion: 5 });
  t.teardown(() => ops.close());
  await ops.client.publishAsync(`${ROOT}request/approve`, '{"transaction":"x1"}', {
    qos: 1,
    properties: {
      userProperties: { identity: 'ops' },
      responseTopic: 'site/replies',
      correlationData: Buffer.from('c1'),
    },
  });
  const [req] = await waitFor(() => requests.length > 0 && requests, 'the request');
  t.is(req!.identity, 'ops');
  t.is(req!.properties?.responseTopic, 'site/replies');
  t.deepEqual(req!.properties?.correlationData, Buffer.from('c1'));
});

test('a wrong password: the link keeps trying, says why, and never throws', async (t) => {
  const m = await startMosquitto(t);
  const box = boxSide(t, m, { password: 'wrong' });
  box.link.publish(`${ROOT}events`, { type: 'kept' });
  await box.link.start();
  await waitFor(() => box.link.counters.attempts >= 2, 'a second attempt');
  t.false(box.link.connected);
  t.true(
    box.logs.some((l) => /refused the login of "box" \(code 135\): check mqtt.username and mqtt.password/.test(l)),
    box.logs.join('\n'),
  );
  t.like(box.link.counters, { buffered: 1, published: 0 });
});

test('an untrusted server certificate is refused with the TLS reason', async (t) => {
  const m = await startMosquitto(t);
  const box = boxSide(t, m, { tls: { cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) } });
  await box.link.start();
  await waitFor(() => box.link.counters.attempts >= 1 && box.link.status().lastError, 'the failure');
  t.false(box.link.connected);
  t.regex(String(box.link.status().lastError), /self[- ]signed|unable to (get|verify)/i);
});

test('the last will: a box process killed with -9 leaves {"state":"offline"} within the keepalive', async (t) => {
  const m = await startMosquitto(t);
  const watcher = await Collector.open(m.url, [`${ROOT}status`], watcherTls());
  t.teardown(() => watcher.close());
  const child = await spawnBoxChild({
    url: m.url,
    root: ROOT,
    boxId: BOX,
    username: 'box',
    password: USERS.box,
    ca: pki.ca,
    cert: pki.clientCert,
    key: pki.clientKey,
    keepaliveSec: 2,
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await watcher.waitFor((msg) => msg.json.state === 'online', 'online from the child');
  child.kill('SIGKILL');
  const offline = await watcher.waitFor((msg) => msg.json.state === 'offline', 'the last will', 2 * 1500 + 2000);
  t.like(offline.json, { state: 'offline', reason: 'connection lost', boxId: BOX });
  const retained = await subscribeOnce(cli(m), `${ROOT}status`);
  t.like(retained, { state: 'offline' });
});

test('a broker outage: events buffered and delivered in order, retained machine states right afterwards', async (t) => {
  const m = await startMosquitto(t, true);
  // A site subscriber with a persistent session (3.1.1, clean=false): the broker queues for it.
  const watcher = await Collector.open(m.url, [`${ROOT}events`, `${ROOT}machines/+/state`], {
    ...watcherTls(),
    protocolVersion: 4,
    clean: false,
    clientId: `watcher-${process.pid}`,
  });
  t.teardown(() => watcher.close());
  const box = boxSide(t, m);
  await box.link.start();
  await box.tel.start();
  await waitFor(() => box.link.connected, 'the link');
  const macs = ['aa:bb:cc:00:00:01', 'aa:bb:cc:00:00:02', 'aa:bb:cc:00:00:03'];
  for (const mac of macs) box.change(mac, 'pending');
  let seq = 0;
  const tick = () => box.bus.emit('test.tick', { ts: new Date().toISOString(), seq: seq++ } as never);
  for (let i = 0; i < 5; i++) tick();
  const ticks = () => watcher.on(`${ROOT}events`).filter((e) => e.json.type === 'test.tick');
  await waitFor(() => ticks().length === 5, 'the events before the outage');

  await brokerOutage(m, OUTAGE_MS, async () => {
    await waitFor(() => !box.link.connected, 'the link to notice');
    for (let i = 0; i < 20; i++) {
      tick();
      if (i === 5) box.change(macs[0]!, 'approved');
      if (i === 10) box.change(macs[1]!, 'rejected');
      if (i === 15) box.change(macs[0]!, 'deploying');
      await sleep(20);
    }
    t.false(box.link.connected);
    t.true(box.link.counters.buffered >= 20);
  });

  await waitFor(() => box.link.connected, 'the link to reconnect', 15000);
  const firsts = () => [...new Set(ticks().map((e) => e.json.seq as number))];
  await waitFor(() => firsts().length >= 25, 'the buffered events', 15000);
  t.deepEqual(
    firsts(),
    Array.from({ length: 25 }, (_, i) => i),
    'every event, in order',
  );
  // QoS 1 is at least once: the broker may deliver again what it had sent the watcher but
  // not yet seen acknowledged when it stopped, i.e. only events from before the outage.
  const again = ticks().length - firsts().length;
  const repeated = ticks()
    .map((e) => e.json.seq as number)
    .filter((n, i, all) => all.indexOf(n) !== i);
  t.true(
    repeated.every((n) => n < 5),
    `only events from before the outage come again (${again} repeated: ${repeated.join(', ')})`,
  );
  t.like(box.link.counters, { dropped: 0, reconnects: 1 });

  // A new subscriber sees the retained states as they are now.
  const states = await runTool('mosquitto_sub', [...cli(m), '-t', `${ROOT}machines/+/state`, '-C', '3', '-W', '10']);
  t.is(states.code, 0, states.stderr);
  const byMac = Object.fromEntries(
    states.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { mac: string; state: string })
      .map((s) => [s.mac, s.state]),
  );
  t.deepEqual(byMac, { [macs[0]!]: 'deploying', [macs[1]!]: 'rejected', [macs[2]!]: 'pending' });
  const status = await subscribeOnce(cli(m), `${ROOT}status`);
  t.like(status, { state: 'online' });
});

test('a broker that comes back empty gets the status and every machine state again from the box', async (t) => {
  const m = await startMosquitto(t, true);
  const box = boxSide(t, m);
  await box.link.start();
  await box.tel.start();
  await waitFor(() => box.link.connected, 'the link');
  const macs = ['aa:bb:cc:00:01:01', 'aa:bb:cc:00:01:02'];
  box.change(macs[0]!, 'pending');
  box.change(macs[1]!, 'pending');
  box.change(macs[1]!, 'approved');
  await sleep(300);
  await brokerOutage(m, 1000, () => m.wipe());
  await waitFor(() => box.link.connected, 'the link to reconnect', 15000);
  const states = await runTool('mosquitto_sub', [...cli(m), '-t', `${ROOT}machines/+/state`, '-C', '2', '-W', '10']);
  t.is(states.code, 0, states.stderr);
  const byMac = Object.fromEntries(
    states.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { mac: string; state: string; from?: string })
      .map((s) => [s.mac, [s.state, s.from]]),
  );
  t.deepEqual(byMac, { [macs[0]!]: ['pending', undefined], [macs[1]!]: ['approved', 'pending'] });
  const status = await subscribeOnce(cli(m), `${ROOT}status`);
  t.like(status, { state: 'online', boxId: BOX });
});
