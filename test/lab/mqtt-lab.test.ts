/**
 * MQTT with real peers in the lab: `bootbox serve` (bin/bootbox.mjs) in a box namespace on
 * a private switch, real DHCP clients (busybox udhcpc playing a PXE ROM) on switch ports,
 * and on the site side a Debian mosquitto (password file, TLS with a CA made here), the
 * mosquitto_sub / mosquitto_pub clients, an MQTT.js client and `bootbox agent` processes.
 *
 * - a site broker: retained online status, the last will after kill -9, health, the retained
 *   state and the events of a machine created by a real DHCP request, a command round trip;
 * - the embedded broker: the same telemetry for anonymous readers; a command needs a login
 *   that mqtt.allow lists, an anonymous one is refused by the broker and changes nothing;
 * - a 30 s site broker outage: a machine boots meanwhile, and afterwards its retained state
 *   is right and the buffered events arrive in order;
 * - the wipe flow: REST reimage "wipe" reaches only the named machine's agent.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import {
  api,
  apiToken,
  BIN,
  BOX_PRIVATE,
  BOX_UPLINK,
  defaultBoxId,
  type Json,
  type LabMessage,
  LabMosquitto,
  mosquittoPub,
  mosquittoSub,
  mosquittoSubOnce,
  mqttJs,
  pxeLease,
  SITE_HOST,
  serveBox,
  stopBox,
  until,
} from '../helpers/mqtt-lab.ts';
import { collectLines, type Netns, NODE, sleep, waitForLine } from '../helpers/netns.ts';
import { makePki } from '../helpers/pki.ts';
import { type SwitchLab, switchLab } from '../helpers/switch.ts';
import { brokerOutage } from '../integration/mqtt-support.ts';

const KEEPALIVE_SEC = 2;
const DHCP = { mode: 'full', range: '10.77.0.100-10.77.0.150', router: BOX_PRIVATE, leaseTime: 600 };
const SITE_USERS = { box: 'box-secret', ops: 'ops-secret' };
const BROKER_PORT = 11883;

interface Lab {
  s: SwitchLab;
  dir: string;
  root: string;
}

/** A switch lab plus a temp dir for peers; everything is removed at teardown, even on failure. */
async function lab(t: ExecutionContext, timeoutMs: number): Promise<Lab> {
  t.timeout(timeoutMs);
  const s = await switchLab();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-mqtt-lab-'));
  t.teardown(async () => {
    await stopBox(s.lab);
    await s.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  return { s, dir, root: `bootbox/${defaultBoxId(s.lab)}/` };
}

async function siteBroker(l: Lab, persistence = false): Promise<LabMosquitto> {
  const pki = makePki(path.join(l.dir, 'pki'), SITE_HOST);
  const m = new LabMosquitto({
    ns: l.s.lab.up,
    dir: path.join(l.dir, 'mosquitto'),
    host: SITE_HOST,
    port: 8883,
    users: SITE_USERS,
    tls: pki,
    persistence,
  });
  await m.start();
  return m;
}

function siteMqttConfig(m: LabMosquitto) {
  return {
    url: m.url,
    username: 'box',
    password: SITE_USERS.box,
    ca: m.o.tls!.ca,
    keepaliveSec: KEEPALIVE_SEC,
    healthIntervalSec: 1,
    allow: { approve: ['ops'] },
  };
}

/** Polls with fresh mosquitto_sub runs until the retained message on `topic` passes `pred`. */
async function retained(
  ns: Netns,
  conn: string[],
  topic: string,
  pred: (m: LabMessage) => boolean,
  what: string,
): Promise<LabMessage> {
  let last: LabMessage | undefined;
  return until(
    async () => {
      last = await mosquittoSubOnce(ns, conn, topic, 3).catch(() => undefined);
      return last?.retain && pred(last) ? last : undefined;
    },
    () => `${what} (last: ${JSON.stringify(last)})`,
    20_000,
  );
}

const eventOf = (mac: string, type: string, subtype?: string) => (m: LabMessage) =>
  m.json.mac === mac && m.json.type === type && (subtype === undefined || m.json.subtype === subtype);

test('site mosquitto over TLS with a password: online, health, a DHCP-created machine, a command, and the last will', async (t) => {
  const l = await lab(t, 100_000);
  const mosq = await siteBroker(l);
  const ops = mosq.clientArgs('ops');
  const { root } = l;
  const status = await mosquittoSub(l.s.lab.up, ops, [`${root}status`]);
  const events = await mosquittoSub(l.s.lab.up, ops, [`${root}events`]);
  const states = await mosquittoSub(l.s.lab.up, ops, [`${root}machines/+/state`]);
  const health = await mosquittoSub(l.s.lab.up, ops, [`${root}health`]);
  const box = await serveBox(l.s.lab, { dhcp: DHCP, mqtt: siteMqttConfig(mosq) });

  await status.waitFor((m) => m.json.state === 'online', 'the online status');
  const online = await mosquittoSubOnce(l.s.lab.up, ops, `${root}status`);
  t.true(online.retain, 'the status is retained');
  t.is(online.json.state, 'online');
  t.is(online.json.broker, 'site');
  t.is(online.json.boxId, defaultBoxId(l.s.lab));
  t.regex(String(online.json.ts), /^\d{4}-\d\d-\d\dT/);

  const h = (await health.waitFor((m) => m.json.cpu !== undefined, 'a health message')).json;
  t.true(typeof h.cpu.cores === 'number' && h.cpu.cores >= 1, JSON.stringify(h.cpu));
  t.true('percent' in h.cpu && Array.isArray(h.cpu.load), JSON.stringify(h.cpu));
  t.true(h.memory.total > 0 && h.memory.available > 0, JSON.stringify(h.memory));
  const dataDisk = h.disks.find((d: { name: string }) => d.name === 'data');
  t.true(dataDisk?.total > 0 && dataDisk?.available >= 0, JSON.stringify(h.disks));
  await health.waitFor((m) => m !== health.messages[0], 'a second health message (healthIntervalSec 1)');

  // A real PXE DHCP exchange creates the machine.
  const mac = '52:54:00:77:10:01';
  const host = l.s.addHost('c1');
  const lease = await pxeLease(host, l.dir, mac);
  t.is(lease.server, BOX_PRIVATE);
  await states.waitFor((m) => m.json.mac === mac, 'the machine state');
  const st = await mosquittoSubOnce(l.s.lab.up, ops, `${root}machines/${mac}/state`);
  t.true(st.retain, 'machine states are retained');
  t.is(st.json.state, 'pending', 'boot.unknown "approve": a new machine waits for approval');
  t.is(st.json.name, 'NODE001');
  const order = [
    eventOf(mac, 'dhcp.request', 'DISCOVER'),
    eventOf(mac, 'dhcp.reply', 'OFFER'),
    eventOf(mac, 'dhcp.request', 'REQUEST'),
    eventOf(mac, 'dhcp.reply', 'ACK'),
  ];
  for (const [i, p] of order.entries()) await events.waitFor(p, `DHCP event ${i}`);
  const idx = order.map((p) => events.messages.findIndex(p));
  t.deepEqual(
    [...idx].sort((a, b) => a - b),
    idx,
    'DHCP events in exchange order',
  );
  const created = await events.waitFor(eventOf(mac, 'machine.created'), 'machine.created');
  t.is(created.json.name, 'NODE001');
  const seen = await events.waitFor(eventOf(mac, 'machine.state'), 'machine.state');
  t.like(seen.json, { from: 'unknown', to: 'pending' });
  t.is(events.messages.find(eventOf(mac, 'dhcp.reply', 'ACK'))!.json.yiaddr, lease.ip);

  // The command round trip: mosquitto_pub (MQTT 5, identity as a user property), answer on response/approve.
  const responses = await mosquittoSub(l.s.lab.up, ops, [`${root}response/approve`]);
  const pub = await mosquittoPub(
    l.s.lab.up,
    ops,
    `${root}request/approve`,
    { transaction: 'lab-approve-1', targets: { mac } },
    ['-V', '5', '-D', 'publish', 'user-property', 'identity', 'ops'],
  );
  t.is(pub.code, 0, pub.output);
  const res = await responses.waitFor((m) => m.json.transaction === 'lab-approve-1', 'the approve response');
  t.is(res.json.status, 'ok', res.text);
  t.like(res.json.data.targets[0], { mac, from: 'pending', to: 'approved', changed: true });
  await states.waitFor((m) => m.json.mac === mac && m.json.state === 'approved', 'the approved state');
  const approved = await mosquittoSubOnce(l.s.lab.up, ops, `${root}machines/${mac}/state`);
  t.true(approved.retain);
  t.is(approved.json.state, 'approved');
  t.is(approved.json.by, 'mqtt:ops');
  const viaApi = await api(l.s.lab, 'GET', `/api/v1/machines/${mac}`);
  t.is(viaApi.status, 200);
  t.is(viaApi.json.machine.state, 'approved');

  // kill -9: the broker publishes the last will, retained.
  box.kill('SIGKILL');
  await status.waitFor((m) => m.json.state === 'offline', 'the last will', (KEEPALIVE_SEC * 1.5 + 3) * 1000);
  const offline = await mosquittoSubOnce(l.s.lab.up, ops, `${root}status`);
  t.true(offline.retain);
  t.is(offline.json.state, 'offline');
  t.is(offline.json.reason, 'connection lost');
});

test('the embedded broker: anonymous readers get status and states; a command needs an allowed login', async (t) => {
  const l = await lab(t, 100_000);
  const { root } = l;
  const up = l.s.lab.up;
  await serveBox(l.s.lab, {
    dhcp: DHCP,
    mqtt: {
      keepaliveSec: KEEPALIVE_SEC,
      healthIntervalSec: 1,
      broker: { port: BROKER_PORT, users: { ops: 'ops-pw', viewer: 'viewer-pw' } },
      allow: { approve: ['ops'] },
    },
  });
  const anon = ['-h', BOX_UPLINK, '-p', String(BROKER_PORT)];
  const opsConn = [...anon, '-u', 'ops', '-P', 'ops-pw'];
  const online = await retained(up, anon, `${root}status`, (m) => m.json.state === 'online', 'the online status');
  t.is(online.json.broker, 'embedded');
  const js = await mqttJs(up, {
    url: `mqtt://${BOX_UPLINK}:${BROKER_PORT}`,
    subscribe: [`${root}status`, `${root}machines/+/state`],
  });
  const jsStatus = await js.waitFor((m) => m.topic === `${root}status`, 'MQTT.js: the status');
  t.true(jsStatus.retain);
  t.is(jsStatus.json.state, 'online');

  const mac = '52:54:00:77:20:01';
  await pxeLease(l.s.addHost('c1'), l.dir, mac);
  const stateTopic = `${root}machines/${mac}/state`;
  const pending = await retained(up, anon, stateTopic, (m) => m.json.state === 'pending', 'the pending state');
  t.is(pending.json.name, 'NODE001');
  await js.waitFor((m) => m.topic === stateTopic && m.json.state === 'pending', 'MQTT.js: the pending state');

  const responses = await mosquittoSub(up, opsConn, [`${root}response/approve`]);
  const counters = async () => {
    const h = await api(l.s.lab, 'GET', '/api/v1/health');
    return {
      refused: h.json.services['mqtt-broker'].counters.publishesRefused as number,
      received: h.json.services['mqtt-commands'].counters.received as number,
    };
  };
  const before = await counters();
  t.is(before.received, 0);

  // Anonymous: the broker refuses the publish; the box never sees it, nothing changes.
  await mosquittoPub(up, anon, `${root}request/approve`, { transaction: 'anon-1', targets: { mac } });
  await until(async () => (await counters()).refused === before.refused + 1, 'the broker to refuse the publish');
  await sleep(1500);
  t.is((await counters()).received, 0, 'the command service received nothing');
  t.deepEqual(
    responses.messages.map((m) => m.json.transaction),
    [],
  );
  t.is((await api(l.s.lab, 'GET', `/api/v1/machines/${mac}`)).json.machine.state, 'pending');

  // A login that mqtt.allow does not list: delivered, answered FORBIDDEN, nothing changes.
  await mosquittoPub(up, [...anon, '-u', 'viewer', '-P', 'viewer-pw'], `${root}request/approve`, {
    transaction: 'viewer-1',
    targets: { mac },
  });
  const forbidden = await responses.waitFor((m) => m.json.transaction === 'viewer-1', 'the FORBIDDEN answer');
  t.is(forbidden.json.status, 'error');
  t.is(forbidden.json.error.code, 'FORBIDDEN');
  t.is((await api(l.s.lab, 'GET', `/api/v1/machines/${mac}`)).json.machine.state, 'pending');

  // With credentials that mqtt.allow lists: it works.
  const pub = await mosquittoPub(up, opsConn, `${root}request/approve`, { transaction: 'ops-1', targets: { mac } });
  t.is(pub.code, 0, pub.output);
  const ok = await responses.waitFor((m) => m.json.transaction === 'ops-1', 'the approve answer');
  t.is(ok.json.status, 'ok', ok.text);
  t.like(ok.json.data.targets[0], { mac, to: 'approved', changed: true });
  const approved = await retained(up, anon, stateTopic, (m) => m.json.state === 'approved', 'the approved state');
  t.is(approved.json.by, 'mqtt:ops');
  await js.waitFor((m) => m.topic === stateTopic && m.json.state === 'approved', 'MQTT.js: the approved state');
  t.is((await api(l.s.lab, 'GET', `/api/v1/machines/${mac}`)).json.machine.state, 'approved');
  t.deepEqual(
    responses.messages.map((m) => m.json.transaction),
    ['viewer-1', 'ops-1'],
  );
});

test('a 30 s site broker outage: a machine boots meanwhile; its retained state is right and the buffered events arrive in order', async (t) => {
  const l = await lab(t, 120_000);
  const { root } = l;
  const up = l.s.lab.up;
  const mosq = await siteBroker(l, true);
  const ops = mosq.clientArgs('ops');
  // A persistent session (clean: false) on a persistent broker: what the box sends after the
  // restart waits for this reader even if the box reconnects first.
  const reader = await mqttJs(up, {
    url: mosq.url,
    username: 'ops',
    password: SITE_USERS.ops,
    ca: mosq.o.tls!.ca,
    clientId: 'lab-outage-reader',
    clean: false,
    reconnectMs: 300,
    subscribe: [`${root}status`, `${root}events`, `${root}machines/+/state`],
  });
  await serveBox(l.s.lab, { dhcp: DHCP, mqtt: siteMqttConfig(mosq) });
  await reader.waitFor((m) => m.topic === `${root}status` && m.json.state === 'online', 'the online status');
  const token = apiToken(l.s.lab);
  const mac = '52:54:00:77:30:01';
  const host = l.s.addHost('c1');
  let during: { ip: string; health: Json } | undefined;
  const outageStart = Date.now();
  let brokerBack = 0;

  await brokerOutage(mosq, 30_000, async () => {
    t.false(mosq.running);
    // The boot does not wait for MQTT: the lease comes while the broker is away.
    const lease = await pxeLease(host, l.dir, mac);
    const ok = await api(l.s.lab, 'POST', `/api/v1/machines/${mac}/approve`, token);
    t.is(ok.status, 200, JSON.stringify(ok.json));
    const h = await until(async () => {
      const r = (await api(l.s.lab, 'GET', '/api/v1/health')).json;
      return r.services.mqtt.connected === false && r.services.mqtt.counters.buffered > 0 ? r : undefined;
    }, 'the link to notice the outage and buffer events');
    during = { ip: lease.ip, health: h };
  });
  brokerBack = Date.now();
  t.truthy(during, 'the DHCP client got its lease during the outage');
  t.true(brokerBack - outageStart >= 30_000);

  // After the box is back online, the buffered events arrive, in order.
  await reader.waitFor(
    (m) => m.topic === `${root}status` && m.json.state === 'online' && Date.parse(m.json.since) >= brokerBack - 1000,
    'the box online again',
    30_000,
  );
  const expected = [
    eventOf(mac, 'dhcp.request', 'DISCOVER'),
    eventOf(mac, 'dhcp.reply', 'OFFER'),
    eventOf(mac, 'dhcp.request', 'REQUEST'),
    eventOf(mac, 'dhcp.reply', 'ACK'),
    // approved through the API after the lease
    (m: LabMessage) => eventOf(mac, 'machine.state')(m) && m.json.to === 'approved',
    eventOf(mac, 'machine.created'),
  ];
  const evs = () => reader.messages.filter((m) => m.topic === `${root}events`);
  for (const [i, p] of expected.entries())
    await reader.waitFor((m) => m.topic === `${root}events` && p(m), `event ${i}`);
  const ofMac = evs().filter((m) => m.json.mac === mac);
  const ts = ofMac.map((m) => Date.parse(m.json.ts));
  t.deepEqual(
    [...ts].sort((a, b) => a - b),
    ts,
    `events of ${mac} in the order they happened: ${ofMac.map((m) => `${m.json.type}/${m.json.subtype ?? ''}`).join(', ')}`,
  );
  t.true(
    ts.every((x) => x >= outageStart && x < brokerBack),
    'every event of the machine happened during the outage',
  );
  const [discover, offer, request, ack, approvedAt, createdAt] = expected.map((p) => ofMac.findIndex(p)) as number[];
  t.true(discover! >= 0 && createdAt! >= 0, 'DISCOVER and machine.created arrived');
  t.true(discover! < offer! && offer! < request! && request! < ack! && ack! < approvedAt!, 'in exchange order');
  t.true(createdAt! < approvedAt!, 'created before approved');
  t.is(ofMac.find(eventOf(mac, 'dhcp.reply', 'ACK'))!.json.yiaddr, during!.ip);

  // The retained state is the latest one, for a reader that connects now.
  const st = await retained(
    up,
    ops,
    `${root}machines/${mac}/state`,
    (m) => m.json.state === 'approved',
    'the retained approved state',
  );
  t.is(st.json.mac, mac);
  t.is(st.json.from, 'pending');
  const h = (await api(l.s.lab, 'GET', '/api/v1/health')).json;
  t.true(h.services.mqtt.connected);
  t.is(h.services.mqtt.counters.buffered, 0);
  t.is(h.services.mqtt.counters.dropped, 0);
  t.true(h.services.mqtt.counters.reconnects >= 1);
});

test('the wipe flow: REST reimage "wipe" reaches only the named machine\'s agent, which reports back', async (t) => {
  const l = await lab(t, 100_000);
  const up = l.s.lab.up;
  const users = { ops: 'ops-pw', 'lab-01': 'pw-01', 'lab-02': 'pw-02' };
  await serveBox(l.s.lab, {
    dhcp: DHCP,
    boot: { namingPattern: 'LAB-%02#' },
    mqtt: { keepaliveSec: KEEPALIVE_SEC, broker: { port: BROKER_PORT, users } },
  });
  const token = apiToken(l.s.lab);
  const macs = ['52:54:00:77:40:01', '52:54:00:77:40:02'];
  const hosts = [l.s.addHost('c1'), l.s.addHost('c2')];
  for (const [i, h] of hosts.entries()) await pxeLease(h, l.dir, macs[i]!);
  const m1 = (await api(l.s.lab, 'GET', `/api/v1/machines/${macs[0]}`)).json.machine;
  const m2 = (await api(l.s.lab, 'GET', `/api/v1/machines/${macs[1]}`)).json.machine;
  t.is(m1.name, 'LAB-01');
  t.is(m2.name, 'LAB-02');
  const ok = await api(l.s.lab, 'POST', `/api/v1/machines/${macs[0]}/approve`, token);
  t.is(ok.json.machine?.state, 'approved', JSON.stringify(ok.json));

  // Each node runs the agent under its machine's name, logged in as the user of that name.
  const agent = (host: Netns, name: string, user: keyof typeof users) => {
    const p = host.spawn(NODE, [
      BIN,
      'agent',
      '--mqtt',
      `mqtt://${BOX_PRIVATE}:${BROKER_PORT}`,
      '--name',
      name,
      '--username',
      user,
      '--password',
      users[user],
      '--dry-run',
    ]);
    const err: string[] = [];
    p.stderr?.on('data', (d) => err.push(String(d)));
    return { p, out: collectLines(p), err };
  };
  const a1 = agent(hosts[0]!, 'LAB-01', 'lab-01');
  const a2 = agent(hosts[1]!, 'LAB-02', 'lab-02');
  const boxId = defaultBoxId(l.s.lab);
  await Promise.all([
    waitForLine(a1.p, /^bootbox agent ready: bootbox\/\+\/nodes\/lab-01\/cmd$/),
    waitForLine(a2.p, /^bootbox agent ready: bootbox\/\+\/nodes\/lab-02\/cmd$/),
  ]);

  const r = await api(l.s.lab, 'POST', `/api/v1/machines/${macs[0]}/reimage`, token, { mode: 'wipe' });
  t.is(r.status, 200, JSON.stringify(r.json));
  t.like(r.json.targets[0], {
    mac: macs[0],
    name: 'LAB-01',
    to: 'reimage-requested',
    nodeAction: `bootbox/${boxId}/nodes/lab-01/cmd`,
  });
  t.is((await api(l.s.lab, 'GET', `/api/v1/machines/${macs[0]}`)).json.machine.state, 'reimage-requested');

  const plan = await until(
    () => (a1.out.some((x) => x.startsWith('run: reboot')) ? a1.out : undefined),
    `agent LAB-01's plan\n${a1.out.join('\n')}\n${a1.err.join('')}`,
  );
  t.regex(
    plan.find((x) => x.startsWith('plan '))!,
    new RegExp(`^plan wipe-and-reboot box=${boxId} transaction=\\S+ os=linux`),
  );
  t.truthy(
    plan.find((x) => /^run: wipefs --all --force \/dev\/\S+$/.test(x)),
    plan.join('\n'),
  );
  const report = await until(
    () => l.s.lab.log.find((x) => /node lab-01 reports ok for transaction/.test(x)),
    `the box to log LAB-01's report\n${l.s.lab.log.slice(-30).join('\n')}`,
  );
  t.regex(report, /"dryRun":true/);
  await sleep(1000);
  t.deepEqual(a2.out, ['bootbox agent ready: bootbox/+/nodes/lab-02/cmd'], 'the other agent got nothing');
  t.false(l.s.lab.log.some((x) => /node lab-02 reports/.test(x)));

  // LAB-02's login cannot report for LAB-01: the broker refuses it.
  const before = (await api(l.s.lab, 'GET', '/api/v1/health')).json.services['mqtt-broker'].counters.publishesRefused;
  await mosquittoPub(
    up,
    ['-h', BOX_UPLINK, '-p', String(BROKER_PORT), '-u', 'lab-02', '-P', users['lab-02']],
    `bootbox/${boxId}/nodes/lab-01/response`,
    { transaction: 'forged', status: 'ok' },
  );
  await until(
    async () =>
      (await api(l.s.lab, 'GET', '/api/v1/health')).json.services['mqtt-broker'].counters.publishesRefused ===
      before + 1,
    'the broker to refuse the forged report',
  );
  t.false(l.s.lab.log.some((x) => /transaction "forged"/.test(x)));
});

test('mqtt.enabled false: no broker and no telemetry, machines still boot, and a REST wipe says MQTT is off', async (t) => {
  const l = await lab(t, 60_000);
  await serveBox(l.s.lab, {
    dhcp: DHCP,
    mqtt: { enabled: false, broker: { port: BROKER_PORT, users: { ops: 'ops-pw' } } },
  });
  const h = (await api(l.s.lab, 'GET', '/api/v1/health')).json;
  for (const s of ['mqtt', 'mqtt-broker', 'mqtt-telemetry', 'mqtt-commands']) t.false(s in h.services, s);
  t.true('dhcp' in h.services);
  const sub = await mosquittoSubOnce(l.s.lab.up, ['-h', BOX_UPLINK, '-p', String(BROKER_PORT)], '#', 2).then(
    (m) => JSON.stringify(m),
    (e: Error) => e.message,
  );
  t.regex(sub, /Connection refused/, 'nothing listens on the broker port');
  const mac = '52:54:00:77:50:01';
  await pxeLease(l.s.addHost('c1'), l.dir, mac);
  const m = await api(l.s.lab, 'GET', `/api/v1/machines/${mac}`);
  t.is(m.json.machine?.state, 'pending', `${JSON.stringify(m.json)}\n${l.s.lab.log.join('\n')}`);
  const ok = await api(l.s.lab, 'POST', `/api/v1/machines/${mac}/approve`, apiToken(l.s.lab));
  t.is(ok.json.machine?.state, 'approved', JSON.stringify(ok.json));
  const wipe = await api(l.s.lab, 'POST', `/api/v1/machines/${mac}/reimage`, apiToken(l.s.lab), { mode: 'wipe' });
  t.is(wipe.status, 400, JSON.stringify(wipe.json));
  t.is(wipe.json.error.code, 'INVALID_REQUEST');
  t.regex(wipe.json.error.message, /needs MQTT .* which is off/);
});
