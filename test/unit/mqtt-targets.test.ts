/** Target specs of MQTT commands (telemetry/mqtt/targets.ts): parsing, globs, resolution. */
import test from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import type { Machine } from '../../firmware/domain/machine.ts';
import { globToRegExp, parseTargets, resolveTargets } from '../../firmware/telemetry/mqtt/targets.ts';

const at = '2026-01-01T00:00:00.000Z';
const m = (mac: string, name?: string, group?: string): Machine => ({
  mac,
  ...(name !== undefined && { name }),
  ...(group !== undefined && { group }),
  arch: 'uefi-x64',
  firmware: 'uefi',
  firstSeen: at,
  lastSeen: at,
  state: 'deployed',
  stateSince: at,
  stateReason: 'test',
  bootCount: 1,
});

const FLEET = [
  m('52:54:00:00:00:03', 'gpu-10', 'gpu'),
  m('52:54:00:00:00:01', 'node-01', 'rack1'),
  m('52:54:00:00:00:02', 'node-02', 'rack1'),
  m('52:54:00:00:00:04', 'NODE-1a'),
  m('52:54:00:00:00:05'),
];

const names = (r: ReturnType<typeof resolveTargets>) =>
  r instanceof BootboxError ? r.message : r.machines.map((x) => x.name ?? x.mac);

test('glob: * and ? only, anchored, case-insensitive; regex characters are literal', (t) => {
  t.true(globToRegExp('node-0?').test('NODE-01'));
  t.false(globToRegExp('node-0?').test('node-010'), 'anchored at the end');
  t.false(globToRegExp('ode-01').test('node-01'), 'anchored at the start');
  t.true(globToRegExp('*').test(''));
  t.true(globToRegExp('a.b').test('a.b'));
  t.false(globToRegExp('a.b').test('axb'), 'a dot is a dot');
  t.true(globToRegExp('g*-1?').test('gpu-10'));
});

test('resolve: MAC in any notation, names case-insensitive, union sorted by name, each once', (t) => {
  const r = resolveTargets({ macs: ['525400000002', '52-54-00-00-00-01'], name: 'node-01', names: ['GPU-10'] }, FLEET);
  t.deepEqual(names(r), ['gpu-10', 'node-01', 'node-02']);
  t.false((r as { wide: boolean }).wide);
});

test('resolve: group is exact, pattern matches names; both make the result wide', (t) => {
  t.deepEqual(names(resolveTargets({ group: 'rack1' }, FLEET)), ['node-01', 'node-02']);
  t.is((resolveTargets({ group: 'RACK1' }, FLEET) as BootboxError).code, 'NOT_FOUND', 'groups are case-sensitive');
  const p = resolveTargets({ pattern: 'node-*' }, FLEET);
  t.deepEqual(names(p), ['node-01', 'node-02', 'NODE-1a']);
  t.true((p as { wide: boolean }).wide);
});

test('resolve: every selector must match; NOT_FOUND lists each miss in the sender spelling', (t) => {
  const r = resolveTargets({ names: ['node-01', 'nope'], mac: 'AA:BB:CC:DD:EE:FF', pattern: 'x*' }, FLEET);
  t.true(r instanceof BootboxError);
  const e = r as BootboxError;
  t.is(e.code, 'NOT_FOUND');
  t.deepEqual(e.details, { missing: ['mac AA:BB:CC:DD:EE:FF', 'name nope', 'pattern x*'] });
  t.is(e.message, 'no machine matches mac AA:BB:CC:DD:EE:FF, name nope, pattern x*');
});

test('parse: unknown keys named, types checked, MACs and patterns validated', (t) => {
  const bad = (v: unknown) => (parseTargets(v) as BootboxError).message;
  t.regex(bad({ hosts: ['a'], nam: 'b' }), /unknown fields "targets.hosts", "targets.nam"/);
  t.regex(bad({}), /empty/);
  t.regex(bad('node-01'), /must be an object/);
  t.regex(bad({ names: [] }), /"targets.names" must be a list of 1-1024/);
  t.regex(bad({ names: ['a', 7] }), /item 2/);
  t.regex(bad({ mac: 'node-01' }), /"node-01" in "targets" is not a MAC/);
  t.regex(bad({ pattern: 'node[0-9]' }), /only letters, digits/);
  t.regex(bad({ group: '' }), /"targets.group" must be a string of 1-64/);
  t.deepEqual(parseTargets({ pattern: 'a*', macs: ['52:54:00:00:00:01'] }), {
    pattern: 'a*',
    macs: ['52:54:00:00:00:01'],
  });
});
