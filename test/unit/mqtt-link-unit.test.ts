import test from 'ava';
import { readTlsFiles } from '../../firmware/config/tls-files.ts';
import { ManualClock } from '../../firmware/core/clock.ts';
import { BootboxError } from '../../firmware/core/errors.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import { encodePayload, MqttLink, protocolAfterFailure, redactUrl } from '../../firmware/telemetry/mqtt/link.ts';

const base = { connacked: false, transportUp: true, silentCloses: 0 };

test('MQTT 5 refused with 3.1.1 return code 1 or v5 reason 0x84: fall back to 3.1.1', (t) => {
  t.is(protocolAfterFailure(5, { ...base, refusedCode: 1 }), 4);
  t.is(protocolAfterFailure(5, { ...base, refusedCode: 0x84 }), 4);
});

test('other refusals and network failures keep MQTT 5', (t) => {
  t.is(protocolAfterFailure(5, { ...base, refusedCode: 4 }), 5, 'bad login');
  t.is(protocolAfterFailure(5, { ...base, refusedCode: 0x86 }), 5, 'bad login (v5)');
  t.is(protocolAfterFailure(5, { ...base, refusedCode: 5 }), 5, 'not authorized');
  t.is(protocolAfterFailure(5, { ...base, transportUp: false, silentCloses: 0 }), 5, 'connection refused');
  t.is(protocolAfterFailure(5, { ...base, connacked: true, silentCloses: 3 }), 5, 'was connected');
});

test('a broker that closes a v5 CONNECT without CONNACK twice in a row gets 3.1.1', (t) => {
  t.is(protocolAfterFailure(5, { ...base, silentCloses: 1 }), 5);
  t.is(protocolAfterFailure(5, { ...base, silentCloses: 2 }), 4);
  t.is(protocolAfterFailure(5, { ...base, transportUp: false, silentCloses: 2 }), 5, 'never reached the broker');
});

test('3.1.1 stays 3.1.1', (t) => {
  t.is(protocolAfterFailure(4, { ...base, refusedCode: 1 }), 4);
});

test('payloads are JSON with a ts added when absent', (t) => {
  const clock = new ManualClock(5000);
  t.deepEqual(JSON.parse(encodePayload({ state: 'online' }, clock).toString()), {
    state: 'online',
    ts: '2026-01-01T00:00:05.000Z',
  });
  t.deepEqual(JSON.parse(encodePayload({ a: 1, ts: '2025-05-05T00:00:00.000Z' }, clock).toString()), {
    a: 1,
    ts: '2025-05-05T00:00:00.000Z',
  });
  t.is(encodePayload([1, 2], clock).toString(), '[1,2]', 'not an object: as is');
  t.is(encodePayload('x', clock).toString(), '"x"');
  t.is(encodePayload({ n: 10n, ts: 't' }, clock).toString(), '{"n":"10","ts":"t"}');
  const loop: Record<string, unknown> = {};
  loop.self = loop;
  t.throws(() => encodePayload(loop, clock));
  t.throws(() => encodePayload(undefined, clock), { message: /not JSON/ });
});

test('an unserialisable payload or a bad topic is dropped and counted, never thrown', async (t) => {
  const link = new MqttLink({
    root: 'bootbox/b/',
    boxId: 'b',
    version: '0',
    url: 'mqtt://127.0.0.1:1',
    keepaliveSec: 30,
    eventBuffer: 10,
    clock: new ManualClock(),
    log: silentLogger,
  });
  const loop: Record<string, unknown> = {};
  loop.self = loop;
  t.notThrows(() => link.publish('bootbox/b/events', loop));
  t.notThrows(() => link.publish('bootbox/b/+', { a: 1 }));
  t.notThrows(() => link.publish('', { a: 1 }));
  link.publish('bootbox/b/events', { ok: true });
  link.publish('bootbox/b/health', { ok: true }, { buffer: false });
  t.like(link.counters, { dropped: 3, buffered: 1, skipped: 1, published: 0 });
  t.false(link.connected);
  const off = link.subscribe('a/#/b', () => {});
  t.is(typeof off, 'function', 'an invalid filter is refused quietly');
});

test('TLS files: unreadable or not PEM is a config error naming the key', (t) => {
  const files: Record<string, string> = {
    '/ca.pem': '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n',
    '/bad.pem': 'hello',
  };
  const read = (f: string) => {
    if (!(f in files)) throw Object.assign(new Error('nope'), { code: 'ENOENT' });
    return Buffer.from(files[f]!);
  };
  t.truthy(readTlsFiles({ ca: '/ca.pem' }, read).ca);
  const missing = t.throws(() => readTlsFiles({ ca: '/ca.pem', cert: '/nope.pem', key: '/ca.pem' }, read), {
    instanceOf: BootboxError,
  });
  t.is(missing?.code, 'CONFIG_UNREADABLE');
  t.is(missing?.message, '"mqtt.cert" /nope.pem cannot be read (ENOENT)');
  t.is(missing?.exitCode, 2);
  const notPem = t.throws(() => readTlsFiles({ key: '/bad.pem', cert: '/ca.pem' }, read), { instanceOf: BootboxError });
  t.regex(notPem!.message, /^"mqtt.key" \/bad.pem is not a PEM file/);
  t.regex(t.throws(() => readTlsFiles({ cert: '/ca.pem' }, read))!.message, /"mqtt.cert" and "mqtt.key" go together/);
  t.deepEqual(readTlsFiles({}, read), {});
});

test('URLs in logs do not show the password', (t) => {
  t.is(redactUrl('mqtts://box:secret@broker.example:8883'), 'mqtts://box:***@broker.example:8883');
  t.is(redactUrl('mqtt://broker.example'), 'mqtt://broker.example');
});
