import test from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import {
  filterCovered,
  isValidTopicFilter,
  isValidTopicName,
  requestCommand,
  rootFor,
  topicMatches,
  topicsFor,
} from '../../firmware/telemetry/mqtt/topics.ts';

test('the contract topics under bootbox/<boxId>/', (t) => {
  const root = rootFor('0242ac110002');
  t.is(root, 'bootbox/0242ac110002/');
  const topics = topicsFor(root);
  t.is(topics.status, 'bootbox/0242ac110002/status');
  t.is(topics.health, 'bootbox/0242ac110002/health');
  t.is(topics.events, 'bootbox/0242ac110002/events');
  t.is(topics.machineState('aa:bb:cc:dd:ee:01'), 'bootbox/0242ac110002/machines/aa:bb:cc:dd:ee:01/state');
  t.is(topics.machineStates, 'bootbox/0242ac110002/machines/+/state');
  t.is(topics.request('reimage'), 'bootbox/0242ac110002/request/reimage');
  t.is(topics.requests, 'bootbox/0242ac110002/request/+');
  t.is(topics.response('set-image'), 'bootbox/0242ac110002/response/set-image');
  t.is(topics.nodeCmd('NODE007'), 'bootbox/0242ac110002/nodes/NODE007/cmd');
});

test('a name that would change the topic shape is refused, not escaped', (t) => {
  const topics = topicsFor('bootbox/b/');
  for (const bad of ['', 'a/b', 'x+', '#', 'nul\u0000']) {
    const e = t.throws(() => topics.nodeCmd(bad), { instanceOf: BootboxError });
    t.is(e?.code, 'INVALID_REQUEST');
    t.regex(e!.message, /machine name/);
  }
  t.throws(() => rootFor('a/b'), { message: /boxId/ });
});

test('requestCommand reads the command of a request topic only', (t) => {
  const root = 'bootbox/b/';
  t.is(requestCommand(root, 'bootbox/b/request/reimage'), 'reimage');
  t.is(requestCommand(root, 'bootbox/b/request/'), undefined);
  t.is(requestCommand(root, 'bootbox/b/request/a/b'), undefined);
  t.is(requestCommand(root, 'bootbox/c/request/reimage'), undefined);
  t.is(requestCommand(root, 'bootbox/b/response/reimage'), undefined);
});

// MQTT 3.1.1 §4.7: [filter, topic, matches]
const matches: [string, string, boolean][] = [
  ['sport/tennis/player1/#', 'sport/tennis/player1', true], // §4.7.1.2: # includes the parent level
  ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
  ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
  ['sport/#', 'sport', true],
  ['#', 'sport/tennis', true],
  ['sport/tennis/+', 'sport/tennis/player1', true],
  ['sport/tennis/+', 'sport/tennis/player1/ranking', false], // §4.7.1.3: one level only
  ['sport/+', 'sport', false],
  ['sport/+', 'sport/', true], // an empty level is a level
  ['+/+', '/finance', true],
  ['/+', '/finance', true],
  ['+', '/finance', false],
  ['#', '$SYS/broker', false], // §4.7.2: wildcards first do not match $ topics
  ['+/monitor/Clients', '$SYS/monitor/Clients', false],
  ['$SYS/#', '$SYS/monitor/Clients', true],
  ['$SYS/monitor/+', '$SYS/monitor/Clients', true],
  ['bootbox/b/machines/+/state', 'bootbox/b/machines/aa:bb:cc:dd:ee:ff/state', true],
  ['bootbox/b/status', 'bootbox/b/status/x', false],
];
for (const [filter, topic, want] of matches) {
  test(`topicMatches(${filter}, ${topic}) is ${want}`, (t) => {
    t.is(topicMatches(filter, topic), want);
  });
}

// [pattern, filter, covered]
const covers: [string, string, boolean][] = [
  ['bootbox/b/status', 'bootbox/b/status', true],
  ['bootbox/b/machines/+/state', 'bootbox/b/machines/+/state', true],
  ['bootbox/b/machines/+/state', 'bootbox/b/machines/aa:bb/state', true],
  ['bootbox/b/machines/+/state', 'bootbox/b/machines/#', false],
  ['bootbox/b/machines/+/state', 'bootbox/b/machines/+/+', false],
  ['bootbox/b/status', 'bootbox/b/+', false],
  ['bootbox/b/status', 'bootbox/+/status', false],
  ['bootbox/b/status', '#', false],
  ['bootbox/b/#', 'bootbox/b', true],
  ['bootbox/b/#', 'bootbox/b/x/y', true],
  ['bootbox/b/#', 'bootbox/+/x', false],
  ['a/+', 'a/+/b', false],
];
for (const [pattern, filter, want] of covers) {
  test(`filterCovered(${pattern}, ${filter}) is ${want}`, (t) => {
    t.is(filterCovered(pattern, filter), want);
  });
}

test('valid topic names and filters (§4.7.1, §4.7.3)', (t) => {
  for (const f of ['a', 'a/b', '#', 'a/#', '+', '+/+/x', '/', 'a//b']) t.true(isValidTopicFilter(f), f);
  for (const f of ['', 'a#', 'a/#/b', 'a/b+', '++', 'a\u0000']) t.false(isValidTopicFilter(f), f);
  t.true(isValidTopicName('bootbox/b/events'));
  for (const n of ['', 'a/+', 'a/#', 'x\u0000']) t.false(isValidTopicName(n), JSON.stringify(n));
});
