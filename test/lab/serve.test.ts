/**
 * `bootbox serve` as a user runs it: flags, config, the ready line, clean stop, and a
 * clear one-line error with exit 2 for each kind of bad start.
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { Netns, NODE, ROOT, sh, uniqueId, vethPair, waitForLine } from '../helpers/netns.ts';

const MAIN = path.join(ROOT, 'firmware/main.ts');

function tmpDir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'bootbox-serve-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function boxNs(t: { teardown(fn: () => Promise<void>): void }, withAddress = true) {
  const id = uniqueId();
  const box = new Netns(`bbt-${id}-box`);
  const peer = new Netns(`bbt-${id}-peer`);
  t.teardown(async () => {
    await Promise.all([box.destroy(), peer.destroy()]);
  });
  vethPair(box, 'priv', withAddress ? '10.77.0.1/24' : undefined, peer, 'eth0', '10.77.0.2/24');
  vethPair(box, 'upl', '10.78.0.1/24', peer, 'eth1', '10.78.0.2/24');
  box.ip('link', 'add', 'noaddr', 'type', 'veth', 'peer', 'name', 'noaddr-p');
  box.ip('link', 'set', 'noaddr', 'up');
  return { box, peer };
}

/** Runs `bootbox …` in a namespace to completion. */
async function runIn(ns: Netns | undefined, args: string[], opts: { user?: string } = {}) {
  const base = [NODE, MAIN, ...args];
  const cmd = opts.user
    ? ['setpriv', `--reuid=${opts.user}`, `--regid=${opts.user}`, '--clear-groups', '--inh-caps=-all', ...base]
    : base;
  const full = ns ? ['ip', 'netns', 'exec', ns.name, ...cmd] : cmd;
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('serve starts on the private interface, answers health, and stops cleanly on SIGTERM', async (t) => {
  const { box, peer } = await boxNs(t);
  const data = tmpDir(t);
  const child = box.spawn(NODE, [
    MAIN,
    'serve',
    '--private',
    'priv',
    '--uplink',
    'upl',
    '--data',
    data,
    '--ui-port',
    '8080',
    '--dhcp',
    'off',
  ]);
  await waitForLine(child, /^bootbox ready/);
  const { stdout } = await peer.exec('curl', ['-sS', '-m', '5', 'http://10.78.0.1:8080/api/v1/health']);
  const health = JSON.parse(stdout);
  t.is(health.interfaces.find((i: { role: string }) => i.role === 'private').name, 'priv');
  t.is(health.interfaces.find((i: { role: string }) => i.role === 'uplink').name, 'upl');
  t.truthy(health.version);
  const exit = new Promise<number | null>((r) => child.once('exit', r));
  child.kill('SIGTERM');
  t.is(await exit, 0);
  // Sockets are closed: the port is free again.
  await t.throwsAsync(peer.exec('curl', ['-sS', '-m', '2', 'http://10.78.0.1:8080/api/v1/health']));
});

test('a missing interface, one without IPv4, and an uplink equal to private: exit 2 naming the problem', async (t) => {
  const { box } = await boxNs(t);
  const data = tmpDir(t);
  const missing = await runIn(box, ['serve', '--private', 'eth9', '--data', data]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /^bootbox: private interface "eth9" does not exist/);
  const noAddr = await runIn(box, ['serve', '--private', 'noaddr', '--data', data]);
  t.is(noAddr.code, 2);
  t.regex(noAddr.stderr, /private interface "noaddr" has no IPv4 address/);
  const same = await runIn(box, ['serve', '--private', 'priv', '--uplink', 'priv', '--data', data]);
  t.is(same.code, 2);
  t.regex(same.stderr, /--uplink must differ from the private interface/);
  t.is(missing.stderr.trim().split('\n').length, 1, 'one line');
});

test('bad config files and flags: exit 2 naming the key or flag', async (t) => {
  const dir = tmpDir(t);
  const write = (name: string, text: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const cases: [string[], RegExp][] = [
    [['serve', '--config', write('a.json', '{ "dhcp": ')], /not valid JSON/],
    [['serve', '--config', write('b.json', '{"colour":"red"}')], /"colour" is not a known configuration key/],
    [['serve', '--config', write('c.json', '{"http":{"port":"80"}}')], /"http.port" must be an integer/],
    [['serve', '--config', path.join(dir, 'missing.json')], /missing.json: ENOENT/],
    [['serve', '--http-port', 'x'], /--http-port: must be a whole number/],
    [['serve', '--dhcp', 'sometimes'], /--dhcp must be one of/],
    [['serve', '--nope'], /unknown option '--nope'/i],
    [['serve'], /"privateInterface" is required/],
  ];
  for (const [args, re] of cases) {
    const r = await runIn(undefined, args);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, re);
  }
});

test('an unwritable data dir and a missing privilege: exit 2, nothing left listening', async (t) => {
  const { box } = await boxNs(t);
  const r = await runIn(box, ['serve', '--private', 'priv', '--data', '/etc/hostname/state']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--data \(dataDir\) \/etc\/hostname\/state is not a writable directory/);
  const data = tmpDir(t);
  sh('chmod', ['0777', data]);
  const unpriv = await runIn(box, ['serve', '--private', 'priv', '--data', data, '--ui-port', '18080'], {
    user: '65534',
  });
  t.is(unpriv.code, 2, unpriv.stderr);
  t.regex(unpriv.stderr, /need root or CAP_NET_RAW/);
  const ss = await box.exec('ss', ['-lntu']);
  t.notRegex(ss.stdout, /:18080|:67\b/);
});

test('version prints version, architecture and commit', async (t) => {
  const r = await runIn(undefined, ['version']);
  t.is(r.code, 0);
  t.regex(r.stdout, /^bootbox \d+\.\d+\.\d+ linux-x64 commit [0-9a-f]{7,}/);
});
