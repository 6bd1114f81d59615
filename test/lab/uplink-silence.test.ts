/**
 * The rule that keeps a corporate network safe: no DHCP, ProxyDHCP or TFTP packet ever
 * leaves by the uplink, whatever arrives there. An uplink peer tries every boot service
 * (broadcast, unicast to the uplink address, and unicast to the private address routed
 * through the box); a capture on the box's uplink must show no UDP from the box at all.
 * The same requests from the private side are answered, so the services were running.
 */

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { boxLab } from '../helpers/box.ts';
import { readEvents, writeClientScript } from '../helpers/dhcp-clients.ts';
import { capture, NODE, ROOT } from '../helpers/netns.ts';

const tool = path.join(ROOT, 'test/helpers/udp-tool.ts');

test('no boot service answers on, or leaks to, the uplink', async (t) => {
  const lab = await boxLab();
  t.teardown(() => lab.destroy());
  const bootDir = path.join(lab.dataDir, 'boot');
  await lab.start({ bootDir, dhcp: { mode: 'full', range: '10.77.0.100-10.77.0.120' } });
  writeFileSync(path.join(bootDir, 'hello.txt'), 'hello from the boot tree\n');
  // Let the uplink peer reach the private subnet through the box (a routed, "wrong side" path).
  lab.up.ip('route', 'add', '10.77.0.0/24', 'via', '10.78.0.1');
  lab.box.ip('route', 'add', 'default', 'via', '10.78.0.50');
  const cap = await capture(lab.box, 'upl', 'udp');

  // DHCP and ProxyDHCP: unicast datagrams to both box addresses on 67 and 4011.
  for (const addr of ['10.78.0.1', '10.77.0.1']) {
    for (const port of ['67', '4011']) {
      await lab.up.exec(NODE, [tool, 'send', addr, port, 'not a dhcp packet but a probe', '68']);
    }
  }
  // TFTP: to the private address (routed through the uplink) and to the uplink address.
  for (const addr of ['10.77.0.1', '10.78.0.1']) {
    const r = await lab.up
      .exec('curl', ['-sS', '-m', '4', '-o', '/dev/null', `tftp://${addr}/hello.txt`], { timeoutMs: 10_000 })
      .then(() => 'got it')
      .catch(() => 'refused');
    t.is(r, 'refused', `TFTP via the uplink to ${addr}`);
  }

  // DHCP: a real client's broadcast DISCOVER (last: on failure it deconfigures the peer's address).
  const s = writeClientScript(lab.dataDir, 'udhcpc');
  const dhcp = await lab.up
    .exec('busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '2', '-T', '1', '-s', s.script], {
      timeoutMs: 20_000,
    })
    .then(() => 0)
    .catch(() => 1);
  t.is(dhcp, 1, 'no lease on the uplink');
  lab.up.ip('addr', 'replace', '10.78.0.50/24', 'dev', 'eth0');
  // The private side is served.
  lab.cli.ip('addr', 'add', '10.77.0.50/24', 'dev', 'eth0');
  const { stdout } = await lab.cli.exec('curl', ['-sS', '-m', '5', 'tftp://10.77.0.1/hello.txt']);
  t.is(stdout, 'hello from the boot tree\n');
  const p = writeClientScript(lab.dataDir, 'udhcpc');
  await lab.cli.exec('busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', p.script], {
    timeoutMs: 20_000,
  });
  t.truthy(readEvents(p.out).find((e) => e.reason === 'bound'));

  const lines = await cap.stop();
  const fromBox = lines.filter((l) => /IP 10\.7[78]\.0\.1\.\d+ >/.test(l));
  t.deepEqual(fromBox, [], `UDP from the box on the uplink:\n${fromBox.join('\n')}`);
  t.true(
    lines.some((l) => l.includes('10.78.0.50')),
    'the capture saw the uplink requests',
  );
  const h = await lab.health();
  t.true(h.services.dhcp.counters.received >= 1, 'DHCP did receive (on the private side)');
});
