import test from 'ava';
import { canPublish, canSubscribe, type Principal } from '../../firmware/telemetry/mqtt/acl.ts';

const root = 'bootbox/b1/';
const box: Principal = { kind: 'box' };
const alice: Principal = { kind: 'user', name: 'alice' };
const anon: Principal = { kind: 'anonymous' };

// [who, topic, retain, allowed]
const publishes: [Principal, string, boolean, boolean][] = [
  [box, `${root}status`, true, true],
  [box, `${root}machines/aa:bb:cc:dd:ee:ff/state`, true, true],
  [box, `${root}nodes/NODE1/cmd`, false, true],
  [alice, `${root}request/reimage`, false, true],
  [alice, `${root}request/reimage`, true, false], // a retained command would run again on restart
  [alice, `${root}request/a/b`, false, false],
  [alice, `${root}status`, true, false],
  [alice, `${root}status`, false, false],
  [alice, `${root}health`, false, false],
  [alice, `${root}events`, false, false],
  [alice, `${root}machines/aa:bb:cc:dd:ee:ff/state`, true, false],
  [alice, `${root}response/reimage`, false, false],
  [alice, `${root}nodes/NODE1/cmd`, false, false],
  // a node agent reports on its own response topic only (logged in as its machine's name)
  [alice, `${root}nodes/alice/response`, false, true],
  [alice, `${root}nodes/alice/response`, true, false],
  [alice, `${root}nodes/bob/response`, false, false],
  [anon, `${root}nodes/alice/response`, false, false],
  [alice, 'bootbox/other/request/reimage', false, false],
  [alice, 'site/lights/1', false, true],
  [alice, '$SYS/x', false, false],
  [anon, `${root}request/reimage`, false, false],
  [anon, `${root}status`, true, false],
  [anon, 'site/lights/1', false, false],
];
for (const [who, topic, retain, want] of publishes) {
  test(`publish ${topic}${retain ? ' (retained)' : ''} by ${who.kind}: ${want ? 'allowed' : 'refused'}`, (t) => {
    const d = canPublish(who, topic, retain, root);
    t.is(d.allow, want);
    if (!d.allow) t.true(d.reason.length > 10, 'a refusal says why');
  });
}

// [who, filter, allowed]
const subscriptions: [Principal, string, boolean][] = [
  [anon, `${root}status`, true],
  [anon, `${root}health`, true],
  [anon, `${root}events`, true],
  [anon, `${root}machines/+/state`, true],
  [anon, `${root}machines/aa:bb:cc:dd:ee:ff/state`, true],
  [anon, `${root}machines/#`, false],
  [anon, `${root}#`, false],
  [anon, `${root}request/+`, false],
  [anon, `${root}response/+`, false],
  [anon, `${root}nodes/+/cmd`, false],
  [anon, '#', false],
  [anon, 'bootbox/+/status', false],
  [anon, 'site/x', false],
  [alice, `${root}status`, true],
  [alice, `${root}response/+`, true],
  [alice, `${root}response/reimage`, true],
  [alice, `${root}nodes/NODE7/cmd`, true],
  [alice, 'bootbox/+/nodes/node7/cmd', true], // an agent started without --box
  [anon, 'bootbox/+/nodes/+/cmd', false],
  [alice, `${root}request/+`, false],
  [alice, `${root}#`, false],
  [alice, '#', false],
  [alice, '+/x', false],
  [alice, 'site/#', true],
  [alice, '$SYS/#', false],
  [box, '#', true],
  [box, `${root}request/+`, true],
  [alice, 'a/#/b', false], // not a valid filter at all
];
for (const [who, filter, want] of subscriptions) {
  test(`subscribe ${filter} by ${who.kind}: ${want ? 'allowed' : 'refused'}`, (t) => {
    t.is(canSubscribe(who, filter, root).allow, want);
  });
}
