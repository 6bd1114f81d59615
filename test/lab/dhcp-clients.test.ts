/**
 * Full-mode DHCP with real clients: dhclient and busybox udhcpc get leases with the
 * right address, mask, router and lease time; renewal keeps the address; release frees
 * it; leases survive a restart; and nothing answers (or leaks) on the uplink.
 */
import test from 'ava';
import { boxLab } from '../helpers/box.ts';
import { readEvents, waitForEvent, writeClientScript } from '../helpers/dhcp-clients.ts';
import { capture, sleep } from '../helpers/netns.ts';

const CONFIG = { dhcp: { mode: 'full', range: '10.77.0.100-10.77.0.120', router: '10.77.0.1', leaseTime: 600 } };
const inRange = (ip: string) =>
  /^10\.77\.0\.(\d+)$/.test(ip) && Number(ip.split('.')[3]) >= 100 && Number(ip.split('.')[3]) <= 120;

test('dhclient gets a lease, keeps it on reboot and releases it', async (t) => {
  const lab = await boxLab();
  t.teardown(() => lab.destroy());
  await lab.start(CONFIG);
  const { script, out } = writeClientScript(lab.dataDir, 'dhclient');
  const lf = `${lab.dataDir}/dhclient.leases`;
  const pf = `${lab.dataDir}/dhclient.pid`;
  await lab.cli.exec('dhclient', ['-1', '-4', '-lf', lf, '-pf', pf, '-sf', script, 'eth0'], { timeoutMs: 30_000 });
  const bound = readEvents(out).find((e) => e.reason === 'BOUND')!;
  t.truthy(bound, JSON.stringify(readEvents(out)));
  t.true(inRange(bound.ip), bound.ip);
  t.is(bound.mask, '255.255.255.0');
  t.is(bound.routers, '10.77.0.1');
  t.is(bound.lease, '600');
  t.is(bound.server, '10.77.0.1');
  let h = await lab.health();
  t.is(h.services.dhcp.pools.private.leased, 1);

  // A second run with the lease file does INIT-REBOOT (REQUEST for the known address).
  await lab.cli.exec('dhclient', ['-x', '-lf', lf, '-pf', pf, '-sf', script, 'eth0']).catch(() => undefined);
  await lab.cli.exec('dhclient', ['-1', '-4', '-lf', lf, '-pf', pf, '-sf', script, 'eth0'], { timeoutMs: 30_000 });
  const again = readEvents(out)
    .filter((e) => ['BOUND', 'REBOOT'].includes(e.reason))
    .at(-1)!;
  t.is(again.ip, bound.ip, 'same address after reboot');

  await lab.cli.exec('dhclient', ['-r', '-lf', lf, '-pf', pf, '-sf', script, 'eth0'], { timeoutMs: 30_000 });
  await sleep(300);
  h = await lab.health();
  t.is(h.services.dhcp.pools.private.leased, 0, 'release freed the address');
});

test('udhcpc gets a lease, renews it (unicast) and releases it', async (t) => {
  const lab = await boxLab();
  t.teardown(() => lab.destroy());
  await lab.start(CONFIG);
  const { script, out } = writeClientScript(lab.dataDir, 'udhcpc');
  const client = lab.cli.spawn('busybox', ['udhcpc', '-i', 'eth0', '-f', '-t', '5', '-T', '1', '-s', script]);
  const bound = await waitForEvent(out, ['bound'], 0, 20_000);
  t.true(inRange(bound.ip), bound.ip);
  t.is(bound.mask, '255.255.255.0');
  t.is(bound.routers, '10.77.0.1');
  t.is(bound.lease, '600');
  // SIGUSR1: renew now (RENEWING: unicast REQUEST with ciaddr).
  const seen = readEvents(out).length;
  client.kill('SIGUSR1');
  const renew = await waitForEvent(out, ['renew', 'bound'], seen, 20_000);
  t.is(renew.ip, bound.ip);
  // SIGUSR2: release.
  client.kill('SIGUSR2');
  await sleep(800);
  const h = await lab.health();
  t.is(h.services.dhcp.pools.private.leased, 0);
  t.is(h.services.dhcp.counters.byType.RELEASE, 1, JSON.stringify(h.services.dhcp.counters.byType));
  t.is(h.services.dhcp.counters.byType.REQUEST, 2, 'selecting, then renewing');
  client.kill('SIGTERM');
});

test('leases survive a restart: the same client keeps its address, another never gets it', async (t) => {
  const lab = await boxLab();
  t.teardown(() => lab.destroy());
  await lab.start(CONFIG);
  const a = writeClientScript(lab.dataDir, 'udhcpc');
  await lab.cli.exec('busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', a.script], {
    timeoutMs: 20_000,
  });
  const first = readEvents(a.out).find((e) => e.reason === 'bound')!;
  t.is(await lab.stop(), 0);
  await lab.start(CONFIG);
  // Another client (new MAC) asks: it must not get the first client's address.
  lab.cli.ip('link', 'set', 'eth0', 'down');
  const origMac = lab.cli.ip('link', 'show', 'eth0').match(/link\/ether (\S+)/)![1]!;
  lab.cli.ip('link', 'set', 'eth0', 'address', '02:00:00:77:00:99');
  lab.cli.ip('link', 'set', 'eth0', 'up');
  lab.cli.ip('addr', 'flush', 'dev', 'eth0');
  const b = writeClientScript(lab.dataDir, 'udhcpc');
  await lab.cli.exec('busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', b.script], {
    timeoutMs: 20_000,
  });
  const other = readEvents(b.out).find((e) => e.reason === 'bound')!;
  t.not(other.ip, first.ip);
  // The first client comes back and gets its address again.
  lab.cli.ip('link', 'set', 'eth0', 'down');
  lab.cli.ip('link', 'set', 'eth0', 'address', origMac);
  lab.cli.ip('link', 'set', 'eth0', 'up');
  lab.cli.ip('addr', 'flush', 'dev', 'eth0');
  const c = writeClientScript(lab.dataDir, 'udhcpc');
  await lab.cli.exec('busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', c.script], {
    timeoutMs: 20_000,
  });
  t.is(readEvents(c.out).find((e) => e.reason === 'bound')!.ip, first.ip);
});

test('a DISCOVER on the uplink gets no answer and no DHCP packet leaves by the uplink', async (t) => {
  const lab = await boxLab();
  t.teardown(() => lab.destroy());
  await lab.start(CONFIG);
  const cap = await capture(lab.box, 'upl', 'udp port 67 or udp port 68 or udp port 4011');
  const { script, out } = writeClientScript(lab.dataDir, 'udhcpc');
  const r = await lab.up
    .exec('busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '3', '-T', '1', '-s', script], {
      timeoutMs: 20_000,
    })
    .then(() => 0)
    .catch((e: { code?: number }) => e.code ?? 1);
  t.not(r, 0, 'udhcpc on the uplink found no server');
  t.deepEqual(
    readEvents(out).filter((e) => e.reason === 'bound'),
    [],
  );
  // The same request on the private side is answered, so the box was listening all along.
  const p = writeClientScript(lab.dataDir, 'udhcpc');
  await lab.cli.exec('busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', p.script], {
    timeoutMs: 20_000,
  });
  t.truthy(readEvents(p.out).find((e) => e.reason === 'bound'));
  const lines = await cap.stop();
  const fromBox = lines.filter((l) => /10\.78\.0\.1\.(67|4011) >|> .*\.68:/.test(l) && !l.includes('10.78.0.50.68 >'));
  t.deepEqual(fromBox, [], lines.join('\n'));
  t.true(lines.length >= 3, 'the capture saw the uplink DISCOVERs');
});

test('a reservation gives a machine its fixed address, even outside the range', async (t) => {
  const lab = await boxLab();
  t.teardown(() => lab.destroy());
  const mac = '02:00:00:77:00:42';
  lab.cli.ip('link', 'set', 'eth0', 'address', mac);
  await lab.start({ dhcp: { ...CONFIG.dhcp, reservations: { [mac.toUpperCase()]: '10.77.0.42' } } });
  const { script, out } = writeClientScript(lab.dataDir, 'udhcpc');
  await lab.cli.exec('busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', script], {
    timeoutMs: 20_000,
  });
  t.is(readEvents(out).find((e) => e.reason === 'bound')?.ip, '10.77.0.42');
});
