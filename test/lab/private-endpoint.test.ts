/**
 * The board's promise: boot services hear and speak on the private interface only.
 * Topology (all namespaces made here and removed after):
 *   [cli eth0 10.77.0.50] ── [priv 10.77.0.1  box  upl 10.78.0.1] ── [up eth0 10.78.0.50]
 */

import path from 'node:path';
import test from 'ava';
import { capture, collectLines, Netns, NODE, ROOT, sleep, uniqueId, vethPair, waitForLine } from '../helpers/netns.ts';

const tool = path.join(ROOT, 'test/helpers/udp-tool.ts');
const agentScript = path.join(ROOT, 'test/helpers/endpoint-agent.ts');

async function topology() {
  const id = uniqueId();
  const box = new Netns(`bbt-${id}-box`);
  const cli = new Netns(`bbt-${id}-cli`);
  const up = new Netns(`bbt-${id}-up`);
  vethPair(box, 'priv', '10.77.0.1/24', cli, 'eth0', '10.77.0.50/24');
  vethPair(box, 'upl', '10.78.0.1/24', up, 'eth0', '10.78.0.50/24');
  cli.ip('route', 'add', 'default', 'dev', 'eth0');
  up.ip('route', 'add', 'default', 'via', '10.78.0.1');
  box.ip('route', 'add', 'default', 'via', '10.78.0.50');
  const agent = box.spawn(NODE, [agentScript, 'priv', 'upl', '67'], { stdio: ['pipe', 'pipe', 'pipe'] });
  await waitForLine(agent, /^ready/);
  const lines = collectLines(agent);
  const destroy = async () => {
    agent.stdin?.end();
    await Promise.all([box.destroy(), cli.destroy(), up.destroy()]);
  };
  return { box, cli, up, agent, lines, destroy };
}

const received = (lines: string[]) =>
  lines
    .filter((l) => l.startsWith('{"data"'))
    .map((l) => JSON.parse(l) as { data: string; ifname: string; dstAddr: string; srcAddr: string });

test('the private endpoint hears broadcasts from the private link and nothing from the uplink', async (t) => {
  const { cli, up, lines, destroy } = await topology();
  t.teardown(destroy);
  await up.exec(NODE, [tool, 'send', '255.255.255.255', '67', 'uplink-broadcast', '68']);
  await up.exec(NODE, [tool, 'send', '10.77.0.1', '67', 'uplink-unicast-to-private-address', '68']);
  await up.exec(NODE, [tool, 'send', '10.78.0.1', '67', 'uplink-unicast-to-uplink-address', '68']);
  await cli.exec(NODE, [tool, 'send', '255.255.255.255', '67', 'private-broadcast', '68']);
  await cli.exec(NODE, [tool, 'send', '10.77.0.1', '67', 'private-unicast', '68']);
  await sleep(500);
  const got = received(lines);
  t.deepEqual(got.map((g) => g.data).sort(), ['private-broadcast', 'private-unicast']);
  const bc = got.find((g) => g.data === 'private-broadcast')!;
  t.is(bc.ifname, 'priv');
  t.is(bc.dstAddr, '255.255.255.255');
  t.is(bc.srcAddr, '10.77.0.50');
});

test('broadcast and unicast replies leave by the private link only', async (t) => {
  const { box, cli, up, agent, lines, destroy } = await topology();
  t.teardown(destroy);
  const cliListen = cli.spawn(NODE, [tool, 'listen', '68']);
  const upListen = up.spawn(NODE, [tool, 'listen', '68']);
  await Promise.all([waitForLine(cliListen, /listening/), waitForLine(upListen, /listening/)]);
  const cliGot = collectLines(cliListen);
  const upGot = collectLines(upListen);
  const uplinkCapture = await capture(box, 'upl', 'udp');
  const privateCapture = await capture(box, 'priv', 'udp');

  agent.stdin!.write('raw 255.255.255.255 68 reply-broadcast\n');
  agent.stdin!.write('raw 10.77.0.50 68 reply-unicast\n');
  // A destination only reachable through the uplink: the device-bound socket must not route it there.
  agent.stdin!.write('raw 10.78.0.50 68 must-not-leave-raw\n');
  // The guarded dgram endpoint refuses peers that are not on the private network.
  agent.stdin!.write('unicast 10.78.0.50 68 must-not-leave-dgram\n');
  agent.stdin!.write('unicast 10.77.0.50 68 reply-dgram\n');
  await sleep(800);

  t.deepEqual(cliGot.map((l) => JSON.parse(l).data).sort(), ['reply-broadcast', 'reply-dgram', 'reply-unicast']);
  t.deepEqual(upGot, [], 'nothing reached the uplink peer');
  const sent = lines.filter((l) => l.startsWith('{"sent"')).map((l) => JSON.parse(l));
  t.is(sent.length, 5);
  // The device-bound raw send to an uplink-only address may "succeed" into the private link (the kernel
  // assumes on-link for a bound device); the guarded dgram send is refused outright.
  t.true(sent.filter((s) => s.sent === 'unicast' && s.error).length === 1, JSON.stringify(sent));
  const upl = await uplinkCapture.stop();
  const priv = await privateCapture.stop();
  t.deepEqual(upl, [], `the uplink capture saw: ${upl.join('\n')}`);
  t.true(
    priv.some((l) => l.includes('10.77.0.1.67 > 255.255.255.255.68')),
    priv.join('\n'),
  );
  t.true(
    priv.some((l) => l.includes('10.77.0.1.67 > 10.77.0.50.68')),
    priv.join('\n'),
  );
});
