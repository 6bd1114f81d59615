import test from 'ava';
import { resolveConfig } from '../../firmware/config/load.ts';
import { BootboxError } from '../../firmware/core/errors.ts';

const fromFile = (obj: unknown) => () => resolveConfig({ configFile: 'box.json', readFile: () => JSON.stringify(obj) });

test('mqtt defaults', (t) => {
  const c = resolveConfig({});
  t.deepEqual(c.mqtt, {
    keepaliveSec: 30,
    healthIntervalSec: 30,
    eventBuffer: 1000,
    broker: { port: 1883, users: {} },
    allow: {},
  });
});

test('every mqtt key is accepted and merged over the defaults', (t) => {
  const c = fromFile({
    mqtt: {
      url: 'mqtts://broker.example:8883',
      username: 'box7',
      password: 'pw',
      ca: '/etc/bootbox/ca.pem',
      cert: '/etc/bootbox/box.pem',
      key: '/etc/bootbox/box.key',
      clientId: 'bootbox-rack7',
      keepaliveSec: 10,
      healthIntervalSec: 60,
      eventBuffer: 5000,
      broker: {
        port: 11883,
        users: {
          alice: 'plain-password',
          'ops.bob@site': 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
        },
      },
      allow: { reimage: ['alice'], '*': ['ops.bob@site'] },
    },
  })();
  t.is(c.mqtt.keepaliveSec, 10);
  t.is(c.mqtt.broker.port, 11883);
  t.is(c.mqtt.broker.users.alice, 'plain-password');
  t.deepEqual(c.mqtt.allow, { reimage: ['alice'], '*': ['ops.bob@site'] });
  t.is(c.mqtt.healthIntervalSec, 60);
});

test('a broker port alone keeps the default users', (t) => {
  const c = fromFile({ mqtt: { broker: { port: 1884 } } })();
  t.deepEqual(c.mqtt.broker, { port: 1884, users: {} });
});

const bad: [string, Record<string, unknown>, RegExp][] = [
  ['mqtt.ca', { ca: '' }, /must not be empty/],
  ['mqtt.cert', { cert: 3 }, /must be a string/],
  ['mqtt.key', { key: [] }, /must be a string/],
  ['mqtt.clientId', { clientId: 'has space' }, /printable characters without spaces/],
  ['mqtt.keepaliveSec', { keepaliveSec: 0 }, /integer from 1 to 3600/],
  ['mqtt.healthIntervalSec', { healthIntervalSec: 0.5 }, /integer/],
  ['mqtt.eventBuffer', { eventBuffer: -1 }, /integer from 0/],
  ['mqtt.broker.port', { broker: { port: 70000 } }, /integer from 1 to 65535/],
  ['mqtt.broker.users', { broker: { users: { 'bad user': 'x' } } }, /key "bad user"/],
  ['mqtt.broker.users', { broker: { users: { alice: '' } } }, /"alice" must not be empty/],
  ['mqtt.broker.users', { broker: { users: { alice: 'scrypt$1$2' } } }, /not a valid scrypt/],
  ['mqtt.allow', { allow: { reimage: 'alice' } }, /"reimage" must be a list/],
  ['mqtt.allow', { allow: { 'Re Image': ['alice'] } }, /must be a command name or "\*"/],
  ['mqtt.allow', { allow: { reimage: [''] } }, /item 1 must not be empty/],
  ['mqtt.broker.host', { broker: { host: 'x' } }, /is not a known configuration key/],
];
for (const [key, mqtt, re] of bad) {
  test(`config key ${key}: ${JSON.stringify(mqtt)} is refused naming the key`, (t) => {
    const e = t.throws(fromFile({ mqtt }), { instanceOf: BootboxError });
    t.is(e?.code, 'CONFIG_INVALID');
    t.true(e!.message.includes(`"${key}"`), e!.message);
    t.regex(e!.message, re);
  });
}
