/**
 * The embedded broker on 127.0.0.1:0 with the box's own link in-process, read and
 * driven by MQTT.js clients and Debian's mosquitto_pub / mosquitto_sub.
 */
import test from 'ava';
import { resolveConfig } from '../../firmware/config/load.ts';
import { systemClock } from '../../firmware/core/clock.ts';
import { BootboxError } from '../../firmware/core/errors.ts';
import { EventBus } from '../../firmware/core/event-bus.ts';
import { createLogger } from '../../firmware/core/logger.ts';
import { hashPassword } from '../../firmware/core/password.ts';
import type { BoxEvents } from '../../firmware/domain/events.ts';
import { EmbeddedBroker } from '../../firmware/telemetry/mqtt/broker.ts';
import { MqttLink } from '../../firmware/telemetry/mqtt/link.ts';
import type { MqttMessage } from '../../firmware/telemetry/mqtt/port.ts';
import { setupMqtt } from '../../firmware/telemetry/mqtt/setup.ts';
import { type MachineSnapshot, Telemetry } from '../../firmware/telemetry/mqtt/telemetry.ts';
import { Collector, LOCALHOST, runTool, sleep, spawnBoxChild, subscribeOnce, waitFor } from './mqtt-support.ts';

const BOX = 'b0c0ffee0001';
const ROOT = `bootbox/${BOX}/`;
const MAC = 'aa:bb:cc:dd:ee:01';
const USERS = { alice: hashPassword('alice-pw', { N: 1024 }), carol: 'carol-plain-pw' };

interface Box {
  broker: EmbeddedBroker;
  link: MqttLink;
  bus: EventBus<BoxEvents>;
  logs: string[];
  port: number;
  url: string;
  requests: MqttMessage[];
}

async function startBox(t: { teardown(fn: () => Promise<void>): void }, opts: { link?: boolean } = {}): Promise<Box> {
  const logs: string[] = [];
  const log = createLogger('box', { level: 'debug', write: (l) => logs.push(l) });
  const broker = new EmbeddedBroker({
    root: ROOT,
    hosts: [LOCALHOST],
    port: 0,
    users: USERS,
    log: log.child('broker'),
  });
  await broker.start();
  const link = new MqttLink({
    root: ROOT,
    boxId: BOX,
    version: '9.9.9',
    connectStream: () => broker.connectInternal(),
    inbound: broker.inbound,
    protocolVersion: 4,
    keepaliveSec: 30,
    eventBuffer: 100,
    clock: systemClock,
    log: log.child('link'),
  });
  const bus = new EventBus<BoxEvents>(log);
  const machines: MachineSnapshot[] = [{ mac: MAC, name: 'NODE001', state: 'deployed', reason: 'deploy finished' }];
  const tel = new Telemetry({
    port: link,
    events: bus,
    machines: () => machines,
    health: async () => ({ cpu: { percent: 1 }, temperature: null }),
    healthIntervalMs: 200,
    clock: systemClock,
    log: log.child('telemetry'),
  });
  const requests: MqttMessage[] = [];
  link.subscribe(`${ROOT}request/+`, (m) => requests.push(m));
  if (opts.link !== false) {
    await link.start();
    await tel.start();
    await waitFor(() => link.connected, 'the in-process link');
  }
  t.teardown(async () => {
    await tel.stop();
    await link.stop();
    await broker.stop();
  });
  const port = broker.addresses()[0]!.port;
  return { broker, link, bus, logs, port, url: `mqtt://${LOCALHOST}:${port}`, requests };
}

const hp = (b: Box) => ['-h', LOCALHOST, '-p', String(b.port)];

test('anonymous clients read the retained status and machine states, and health', async (t) => {
  const box = await startBox(t);
  // mosquitto_sub, anonymous: the retained status from the box's in-process link.
  const status = await subscribeOnce(hp(box), `${ROOT}status`);
  t.like(status, { state: 'online', boxId: BOX, version: '9.9.9', protocol: '3.1.1' });
  const state = await subscribeOnce(hp(box), `${ROOT}machines/+/state`);
  t.like(state, { mac: MAC, name: 'NODE001', state: 'deployed' });

  const anon = await Collector.open(box.url, [`${ROOT}health`, `${ROOT}events`]);
  t.teardown(() => anon.close());
  await anon.waitFor((m) => m.topic === `${ROOT}health`, 'health');
  box.bus.emit('service.state', { ts: new Date().toISOString(), service: 'tftp', state: 'started' });
  const ev = await anon.waitFor((m) => m.topic === `${ROOT}events`, 'an event');
  t.like(ev.json, { type: 'service.state', service: 'tftp', state: 'started' });
  t.false(ev.retain);
});

test('anonymous clients cannot publish a request nor status, nor subscribe to requests', async (t) => {
  const box = await startBox(t);
  const pub = await runTool('mosquitto_pub', [
    ...hp(box),
    '-q',
    '1',
    '-t',
    `${ROOT}request/reimage`,
    '-m',
    '{"transaction":"anon"}',
  ]);
  t.not(pub.code, 0, 'the broker closes the connection instead of acknowledging (MQTT 3.1.1 §3.3.5)');
  const spoof = await runTool('mosquitto_pub', [
    ...hp(box),
    '-q',
    '1',
    '-r',
    '-t',
    `${ROOT}status`,
    '-m',
    '{"state":"offline"}',
  ]);
  t.not(spoof.code, 0);
  t.is(box.broker.counters.publishesRefused, 2);
  t.true(box.logs.some((l) => l.includes(`refused publish to ${ROOT}request/reimage by anonymous`)));

  const status = await subscribeOnce(hp(box), `${ROOT}status`);
  t.like(status, { state: 'online' }, 'the retained status is still the box');

  const sub = await runTool('mosquitto_sub', [...hp(box), '-t', `${ROOT}request/+`, '-C', '1', '-W', '3']);
  t.regex(sub.stderr, /All subscription requests were denied/, 'SUBACK 0x80');
  t.is(sub.stdout, '');
  t.is(box.broker.counters.subscriptionsRefused, 1);

  // An authenticated request after them: it is the only one the box saw.
  const ok = await runTool('mosquitto_pub', [
    ...hp(box),
    '-u',
    'carol',
    '-P',
    'carol-plain-pw',
    '-q',
    '1',
    '-t',
    `${ROOT}request/reimage`,
    '-m',
    '{"transaction":"carol"}',
  ]);
  t.is(ok.code, 0, ok.stderr);
  await waitFor(() => box.requests.length > 0, 'the request');
  await sleep(100);
  t.deepEqual(
    box.requests.map((r) => [r.topic, r.identity, r.payload.toString()]),
    [[`${ROOT}request/reimage`, 'carol', '{"transaction":"carol"}']],
  );
});

test('an authenticated user publishes a request and the box sees its user name as identity', async (t) => {
  const box = await startBox(t);
  const pub = await runTool('mosquitto_pub', [
    ...hp(box),
    '-u',
    'alice',
    '-P',
    'alice-pw',
    '-i',
    'carol',
    '-q',
    '1',
    '-t',
    `${ROOT}request/approve`,
    '-m',
    '{"transaction":"t1","machine":"NODE001"}',
  ]);
  t.is(pub.code, 0, pub.stderr);
  const [req] = await waitFor(() => box.requests.length > 0 && box.requests, 'the request');
  t.is(req!.topic, `${ROOT}request/approve`);
  t.is(req!.identity, 'alice', 'the login name, not the client id the client chose');
  t.deepEqual(JSON.parse(req!.payload.toString()), { transaction: 't1', machine: 'NODE001' });

  // MQTT.js with a plain-text password.
  const carol = await Collector.open(box.url, [`${ROOT}response/+`], { username: 'carol', password: 'carol-plain-pw' });
  t.teardown(() => carol.close());
  await carol.client.publishAsync(`${ROOT}request/reject`, '{"transaction":"t2"}', { qos: 1 });
  await waitFor(() => box.requests.length === 2, 'the second request');
  t.is(box.requests[1]!.identity, 'carol');
  // The box answers on response/<command>, which users may read.
  box.link.publish(`${ROOT}response/reject`, { transaction: 't2', status: 'ok' });
  const resp = await carol.waitFor((m) => m.topic === `${ROOT}response/reject`, 'the response');
  t.like(resp.json, { transaction: 't2', status: 'ok' });
});

test('users cannot publish telemetry or retained requests; a wrong password is refused and logged', async (t) => {
  const box = await startBox(t);
  const auth = ['-u', 'alice', '-P', 'alice-pw', '-q', '1'];
  const status = await runTool('mosquitto_pub', [...hp(box), ...auth, '-r', '-t', `${ROOT}status`, '-m', '{}']);
  t.not(status.code, 0);
  const retained = await runTool('mosquitto_pub', [
    ...hp(box),
    ...auth,
    '-r',
    '-t',
    `${ROOT}request/reimage`,
    '-m',
    '{}',
  ]);
  t.not(retained.code, 0);
  const state = await runTool('mosquitto_pub', [...hp(box), ...auth, '-t', `${ROOT}machines/${MAC}/state`, '-m', '{}']);
  t.not(state.code, 0);
  t.is(box.broker.counters.publishesRefused, 3);
  t.is(box.requests.length, 0);

  const wrong = await runTool('mosquitto_pub', [
    ...hp(box),
    '-u',
    'alice',
    '-P',
    'nope',
    '-t',
    `${ROOT}request/x`,
    '-m',
    '{}',
  ]);
  t.not(wrong.code, 0);
  t.regex(wrong.stderr, /not authori[sz]ed|bad user name or password/i);
  const unknown = await runTool('mosquitto_pub', [...hp(box), '-u', 'mallory', '-P', 'x', '-t', 'a', '-m', '{}']);
  t.not(unknown.code, 0);
  t.is(box.broker.counters.loginsRefused, 2);
  t.true(box.logs.some((l) => /refused MQTT login from 127\.0\.0\.1:\d+ .*wrong password for "alice"/.test(l)));
  t.true(box.logs.some((l) => /refused MQTT login .*unknown user "mallory"/.test(l)));
});

test('the last will: a box process killed with -9 leaves {"state":"offline"} within the keepalive', async (t) => {
  const box = await startBox(t, { link: false });
  const watcher = await Collector.open(box.url, [`${ROOT}status`]);
  t.teardown(() => watcher.close());
  const cred = box.broker.issueInternalCredential();
  const child = await spawnBoxChild({ url: box.url, root: ROOT, boxId: BOX, ...cred, keepaliveSec: 2 });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await watcher.waitFor((m) => m.json.state === 'online', 'online from the child');
  child.kill('SIGKILL');
  const offline = await watcher.waitFor((m) => m.json.state === 'offline', 'the last will', 2 * 1500 + 2000);
  t.like(offline.json, { state: 'offline', reason: 'connection lost', boxId: BOX });
  t.is(typeof offline.json.ts, 'string');
  const retained = await subscribeOnce(hp(box), `${ROOT}status`);
  t.like(retained, { state: 'offline' }, 'the will is retained');
});

test('a link to a broker without MQTT 5 falls back to 3.1.1 (aedes refuses 5)', async (t) => {
  const box = await startBox(t, { link: false });
  const logs: string[] = [];
  const cred = box.broker.issueInternalCredential();
  const link = new MqttLink({
    root: ROOT,
    boxId: BOX,
    version: '1',
    url: box.url,
    ...cred,
    keepaliveSec: 10,
    eventBuffer: 10,
    clock: systemClock,
    log: createLogger('link', { write: (l) => logs.push(l) }),
  });
  t.teardown(() => link.stop());
  link.publish(`${ROOT}events`, { type: 'early' });
  await link.start();
  await waitFor(() => link.connected, 'the link');
  t.like(link.status(), { protocol: '3.1.1', connected: true });
  t.like(link.counters, { attempts: 2, connects: 1 });
  t.true(logs.some((l) => l.includes('does not speak MQTT 5: using MQTT 3.1.1')));
  const status = await subscribeOnce(hp(box), `${ROOT}status`);
  t.like(status, { state: 'online', protocol: '3.1.1' });
  await link.stop();
  const after = await subscribeOnce(hp(box), `${ROOT}status`);
  t.like(after, { state: 'offline', reason: 'stopped' }, 'a clean stop says offline too');
});

test('setupMqtt from the config: embedded broker, link and telemetry as services', async (t) => {
  const config = resolveConfig({
    overrides: { mqtt: { broker: { port: 1883, users: { alice: 'pw-alice' } }, healthIntervalSec: 1 } },
  });
  config.mqtt.broker.port = 0; // tests listen on ephemeral ports only
  const logs: string[] = [];
  const bus = new EventBus<BoxEvents>();
  const setup = setupMqtt({
    mqtt: config.mqtt,
    boxId: BOX,
    version: '1.0.0',
    brokerHosts: [LOCALHOST],
    events: bus,
    machines: () => [{ mac: MAC, name: 'NODE001', state: 'approved' }],
    health: {
      startedAt: systemClock.now(),
      dirs: [{ name: 'data', path: '/tmp' }],
      interfaces: [{ name: 'lo', role: 'private' }],
      servicesStatus: () => ({ tftp: { counters: { sent: 1 } } }),
    },
    clock: systemClock,
    log: createLogger('box', { write: (l) => logs.push(l) }),
  });
  t.deepEqual(
    setup.services.map((s) => s.name),
    ['mqtt-broker', 'mqtt', 'mqtt-telemetry'],
  );
  for (const s of setup.services) await s.start();
  t.teardown(async () => {
    for (const s of [...setup.services].reverse()) await s.stop();
  });
  await waitFor(() => setup.link.connected, 'the link');
  const port = setup.broker!.addresses()[0]!.port;
  const anon = await Collector.open(`mqtt://${LOCALHOST}:${port}`, [`${ROOT}status`, `${ROOT}health`]);
  t.teardown(() => anon.close());
  const status = await anon.waitFor((m) => m.topic === `${ROOT}status`, 'status');
  t.like(status.json, { state: 'online', broker: 'embedded', version: '1.0.0' });
  const health = await anon.waitFor((m) => m.topic === `${ROOT}health`, 'health');
  t.like(health.json, { version: '1.0.0', services: { tftp: { counters: { sent: 1 } } } });
  t.is((health.json.interfaces as { name: string }[])[0]!.name, 'lo');
  t.like(setup.services[0]!.status(), { users: 1 });
});

test('setupMqtt with a site broker: an unreadable TLS file is a config error naming the key', (t) => {
  const config = resolveConfig({
    overrides: { mqtt: { url: 'mqtts://broker.example:8883', ca: '/nonexistent/ca.pem' } },
  });
  const e = t.throws(
    () =>
      setupMqtt({
        mqtt: config.mqtt,
        boxId: BOX,
        version: '1',
        brokerHosts: [],
        events: new EventBus<BoxEvents>(),
        machines: () => [],
        health: { startedAt: 0, dirs: [], interfaces: [], servicesStatus: () => ({}) },
        clock: systemClock,
        log: createLogger('box', { write: () => {} }),
      }),
    { instanceOf: BootboxError },
  );
  t.is(e?.message, '"mqtt.ca" /nonexistent/ca.pem cannot be read (ENOENT)');
  t.is(e?.exitCode, 2);
});

test('a port in use: the broker says so and the box works on in-process, or start fails when asked to', async (t) => {
  const first = await startBox(t);
  const logs: string[] = [];
  const log = createLogger('second', { write: (l) => logs.push(l) });
  const second = new EmbeddedBroker({ root: ROOT, hosts: [LOCALHOST], port: first.port, users: {}, log });
  await second.start();
  t.teardown(() => second.stop());
  t.deepEqual(second.addresses(), []);
  const errors = second.status().errors as string[];
  t.regex(
    errors[0]!,
    new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port} \\(mqtt\\.broker\\.port\\): EADDRINUSE`),
  );
  t.true(logs.some((l) => l.includes('EADDRINUSE')));
  const link = new MqttLink({
    root: ROOT,
    boxId: BOX,
    version: '1',
    connectStream: () => second.connectInternal(),
    inbound: second.inbound,
    protocolVersion: 4,
    keepaliveSec: 30,
    eventBuffer: 10,
    clock: systemClock,
    log,
  });
  t.teardown(() => link.stop());
  await link.start();
  await waitFor(() => link.connected, 'the in-process link');

  const strict = new EmbeddedBroker({
    root: ROOT,
    hosts: [LOCALHOST],
    port: first.port,
    users: {},
    log,
    failOnListenError: true,
  });
  const e = await t.throwsAsync(() => strict.start(), { instanceOf: BootboxError });
  t.is(e?.code, 'ADDRESS_IN_USE');
});
