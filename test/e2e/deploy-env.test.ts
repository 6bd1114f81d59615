/**
 * The TEST deploy environment (image-build/deploy-env) booted for real: QEMU (TCG) runs
 * its kernel and initramfs directly (-kernel/-initrd/-append, as iPXE would hand them
 * over), on a private switch:
 *
 *   [srv 10.77.0.1: dnsmasq (DHCP only) + report-sink.ts on :8080] ── br0 ── tap ── QEMU node
 *
 * The node must print BOOTBOX-DEPLOY-ENV START, get a lease from dnsmasq, POST
 *   /api/v1/nodes/<mac>/report  {"state":"deployed","image":...,"token":...}
 * print BOOTBOX-DEPLOY-ENV DONE <mac> and power off, so that QEMU (-no-reboot) exits by
 * itself. Both lab NICs: e1000 and virtio-net-pci. Also the failure paths: no
 * bootbox.url, a box that answers 500 (retried) or 403 (not retried), and one that
 * never answers (the watchdog).
 * BOOTBOX_E2E_SERIAL=1 logs the serial console of passing boots too.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { type DeployEnv, ensureDeployEnv } from '../../image-build/deploy-env/build.ts';
import { Netns, NODE, ROOT, uniqueId, waitForLine } from '../helpers/netns.ts';
import type { SinkRequest } from '../helpers/report-sink.ts';
import { startDnsmasq } from '../helpers/switch.ts';

const SRV = '10.77.0.1';
const PORT = 8080;
const URL_BASE = `http://${SRV}:${PORT}`;
/** The guest's own watchdog is 120 s; QEMU is killed a little later. */
const QEMU_KILL_MS = 150_000;

let env: DeployEnv;

test.before(async () => {
  env = await ensureDeployEnv();
});

interface Rig {
  sw: Netns;
  srv: Netns;
  dir: string;
  requests: SinkRequest[];
  dhcpLog: string[];
  addTap(): string;
  destroy(): Promise<void>;
}

/** The switch, the server namespace with dnsmasq and the report sink. */
async function makeRig(sinkStatus: number | 'hang' = 200): Promise<Rig> {
  const id = uniqueId();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-deploy-env-'));
  const sw = new Netns(`bbde-${id}-sw`);
  let srv: Netns | undefined;
  try {
    sw.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0');
    sw.ip('link', 'set', 'br0', 'up');
    srv = new Netns(`bbde-${id}-srv`);
    sw.ip('link', 'add', 'p-srv', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', srv.name);
    sw.ip('link', 'set', 'p-srv', 'master', 'br0', 'up');
    srv.ip('addr', 'add', `${SRV}/24`, 'dev', 'eth0');
    srv.ip('link', 'set', 'eth0', 'up');
    const dhcpLog = (await startDnsmasq(srv, dir)).log;
    const sink = srv.spawn(NODE, [
      path.join(ROOT, 'test/helpers/report-sink.ts'),
      SRV,
      String(PORT),
      String(sinkStatus),
    ]);
    const requests = sinkRequests(sink);
    await waitForLine(sink, /^listening/, 10_000);
    let taps = 0;
    const s = srv;
    return {
      sw,
      srv: s,
      dir,
      requests,
      dhcpLog,
      addTap() {
        const tap = `tap${++taps}`;
        sw.ip('tuntap', 'add', 'dev', tap, 'mode', 'tap');
        sw.ip('link', 'set', tap, 'master', 'br0', 'up');
        return tap;
      },
      async destroy() {
        await s.destroy();
        await sw.destroy();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await srv?.destroy();
    await sw.destroy();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

function sinkRequests(sink: ChildProcess): SinkRequest[] {
  const out: SinkRequest[] = [];
  let rest = '';
  sink.stdout?.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n');
    rest = lines.pop()!;
    for (const l of lines) if (l.startsWith('{')) out.push(JSON.parse(l) as SinkRequest);
  });
  return out;
}

interface Boot {
  /** Serial console text, \r and ANSI escapes removed. */
  serial: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Seconds after QEMU started: when each marker appeared, and when QEMU exited. */
  at: { start?: number; done?: number; failed?: number; exit: number };
  serialFile: string;
}

const strip = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');

/** Runs the node until QEMU exits (or is killed after QEMU_KILL_MS). */
async function bootNode(rig: Rig, nic: 'e1000' | 'virtio-net-pci', mac: string, append: string): Promise<Boot> {
  const tap = rig.addTap();
  const serialFile = path.join(rig.dir, `serial-${nic}.log`);
  const args = [
    ...['-accel', 'tcg', '-machine', 'q35', '-m', '512', '-nodefaults', '-no-user-config'],
    ...['-display', 'none', '-vga', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot'],
    ...['-kernel', env.kernel, '-initrd', env.initrd, '-append', append],
    ...['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', `${nic},netdev=n0,mac=${mac}`],
  ];
  const t0 = performance.now();
  const secs = () => Number(((performance.now() - t0) / 1000).toFixed(1));
  const qemu = rig.sw.spawn('qemu-system-x86_64', args);
  const at: Boot['at'] = { exit: 0 };
  let raw = '';
  const onData = (d: Buffer) => {
    raw += d.toString();
    const text = strip(raw);
    if (at.start === undefined && /^BOOTBOX-DEPLOY-ENV START$/m.test(text)) at.start = secs();
    if (at.done === undefined && /^BOOTBOX-DEPLOY-ENV DONE /m.test(text)) at.done = secs();
    if (at.failed === undefined && /^BOOTBOX-DEPLOY-ENV FAILED /m.test(text)) at.failed = secs();
  };
  qemu.stdout?.on('data', onData);
  qemu.stderr?.on('data', onData);
  const killer = setTimeout(() => qemu.kill('SIGKILL'), QEMU_KILL_MS);
  const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    qemu.once('exit', (c, s) => resolve([c, s])),
  );
  clearTimeout(killer);
  at.exit = secs();
  const serial = strip(raw);
  writeFileSync(serialFile, serial);
  return { serial, exitCode, signal, at, serialFile };
}

function markers(serial: string): string[] {
  return serial.split('\n').filter((l) => l.startsWith('BOOTBOX-DEPLOY-ENV '));
}

function explain(t: ExecutionContext, rig: Rig, b: Boot): void {
  t.log(`serial console (${b.serialFile}):\n${b.serial.split('\n').slice(-60).join('\n')}`);
  t.log(`dnsmasq:\n${rig.dhcpLog.join('').split('\n').slice(-20).join('\n')}`);
}

const macOf = (n: number) => `52:54:00:77:de:${n.toString(16).padStart(2, '0')}`;

test('the initramfs holds /init, busybox with its applets and the NIC modules; a second build is skipped', async (t) => {
  t.true(statSync(env.kernel).size > 4 << 20, 'a kernel of some MiB');
  t.regex(env.version, /^\d+\.\d+\.\d+-\d+-amd64$/);
  t.deepEqual(
    ['e1000', 'virtio_pci', 'virtio_net', 'net_failover', 'failover'].filter((m) => !env.modules.includes(m)),
    [],
  );
  t.true(env.modules.indexOf('failover') < env.modules.indexOf('net_failover'), 'dependencies load first');
  t.true(env.modules.indexOf('net_failover') < env.modules.indexOf('virtio_net'));
  // An independent reader: busybox cpio lists what the kernel will unpack.
  const listing = execFileSync('sh', ['-c', `zcat '${env.initrd}' | busybox cpio -tv`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const entry = (name: string) => listing.split('\n').find((l) => l.endsWith(` ${name}`) || l.includes(` ${name} -> `));
  t.regex(entry('init') ?? '', /^-rwxr-xr-x/);
  t.regex(entry('bin/busybox') ?? '', /^-rwxr-xr-x/);
  t.regex(entry('sbin/udhcpc') ?? '', /^lrwxrwxrwx.* -> \/bin\/busybox$/);
  t.regex(entry('usr/bin/wget') ?? '', /-> \/bin\/busybox$/);
  t.regex(entry('dev/console') ?? '', /^crw-------/);
  t.truthy(entry(`lib/modules/${env.version}/kernel/drivers/net/virtio_net.ko`));
  t.truthy(entry(`lib/modules/${env.version}/modules.dep`));
  const t0 = performance.now();
  const again = await ensureDeployEnv();
  t.false(again.built, 'up to date: nothing rebuilt');
  t.is(again.sha256.initrd, env.sha256.initrd);
  t.log(
    `kernel ${env.version} ${(env.size.kernel / 2 ** 20).toFixed(1)} MiB, initrd ${(env.size.initrd / 2 ** 20).toFixed(2)} MiB; ` +
      `up-to-date check ${Math.round(performance.now() - t0)} ms`,
  );
});

for (const [n, nic] of [
  [1, 'e1000'],
  [2, 'virtio-net-pci'],
] as const) {
  test(`${nic}: DHCP, reports "deployed" to the box, prints DONE and powers off`, async (t) => {
    t.timeout(QEMU_KILL_MS + 30_000);
    const rig = await makeRig();
    try {
      const mac = macOf(n);
      const append = `console=ttyS0 bootbox.url=${URL_BASE} bootbox.mac=${mac} bootbox.image=test bootbox.token=tok-${n}`;
      const b = await bootNode(rig, nic, mac, append);
      if (b.at.done === undefined || b.exitCode !== 0 || process.env.BOOTBOX_E2E_SERIAL) explain(t, rig, b);
      t.deepEqual(markers(b.serial), [
        'BOOTBOX-DEPLOY-ENV START',
        `BOOTBOX-DEPLOY-ENV CMDLINE ${append}`,
        `BOOTBOX-DEPLOY-ENV DONE ${mac}`,
      ]);
      t.is(b.exitCode, 0, 'QEMU exited by itself (guest poweroff)');
      t.is(b.signal, null);
      t.true((b.at.done ?? Infinity) <= b.at.exit);
      t.regex(rig.dhcpLog.join(''), new RegExp(`DHCPACK\\(eth0\\) 10\\.77\\.0\\.\\d+ ${mac}`));
      t.is(rig.requests.length, 1);
      const r = rig.requests[0];
      t.is(r.method, 'POST');
      t.is(r.url, `/api/v1/nodes/${mac}/report`);
      t.is(r.headers['content-type'], 'application/json');
      t.deepEqual(JSON.parse(r.body), { state: 'deployed', image: 'test', token: `tok-${n}` });
      t.regex(r.from, /^10\.77\.0\.(1[5-9]\d)$/, 'from the address dnsmasq leased');
      t.log(`${nic}: START at ${b.at.start} s, DONE at ${b.at.done} s, QEMU exited at ${b.at.exit} s`);
    } finally {
      await rig.destroy();
    }
  });
}

test('without bootbox.url: says so, prints FAILED and powers off', async (t) => {
  t.timeout(QEMU_KILL_MS + 30_000);
  const rig = await makeRig();
  try {
    const mac = macOf(3);
    const b = await bootNode(rig, 'e1000', mac, 'console=ttyS0');
    if (b.at.failed === undefined || b.exitCode !== 0) explain(t, rig, b);
    const said = (what: string) => new RegExp(`^deploy-env: \\[[\\d.]+\\] ${what}`, 'm');
    t.regex(b.serial, said('no bootbox\\.url= on the kernel command line: nowhere to report to'));
    t.regex(b.serial, said("no bootbox\\.mac= on the kernel command line: using the NIC's own address"));
    t.regex(b.serial, said('no bootbox\\.image= on the kernel command line: reporting an empty image'));
    t.regex(b.serial, said('no bootbox\\.token= on the kernel command line: reporting an empty token'));
    t.deepEqual(markers(b.serial).slice(-1), ['BOOTBOX-DEPLOY-ENV FAILED no bootbox.url= on the kernel command line']);
    t.regex(rig.dhcpLog.join(''), new RegExp(`DHCPACK\\(eth0\\) 10\\.77\\.0\\.\\d+ ${mac}`), 'DHCP still done');
    t.is(rig.requests.length, 0);
    t.is(b.exitCode, 0);
    t.log(`no url: FAILED at ${b.at.failed} s, QEMU exited at ${b.at.exit} s`);
  } finally {
    await rig.destroy();
  }
});

test('a box answering 500: retries, prints FAILED and powers off', async (t) => {
  t.timeout(QEMU_KILL_MS + 30_000);
  const rig = await makeRig(500);
  try {
    const mac = macOf(4);
    const b = await bootNode(
      rig,
      'e1000',
      mac,
      `console=ttyS0 bootbox.url=${URL_BASE}/ bootbox.mac=${mac.toUpperCase()}`,
    );
    if (b.at.failed === undefined || b.exitCode !== 0) explain(t, rig, b);
    const endpoint = `${URL_BASE}/api/v1/nodes/${mac}/report`;
    t.deepEqual(markers(b.serial).slice(-1), [`BOOTBOX-DEPLOY-ENV FAILED report to ${endpoint} failed 5 times`]);
    t.is(rig.requests.length, 5);
    for (const r of rig.requests) {
      t.is(r.url, `/api/v1/nodes/${mac}/report`, 'MAC lower-cased, no double slash');
      t.deepEqual(JSON.parse(r.body), { state: 'deployed', image: '', token: '' });
    }
    t.is(b.exitCode, 0);
    t.log(`box 500: FAILED at ${b.at.failed} s, QEMU exited at ${b.at.exit} s`);
  } finally {
    await rig.destroy();
  }
});

test('a box that never answers: the watchdog prints FAILED and powers off', async (t) => {
  t.timeout(QEMU_KILL_MS + 30_000);
  const rig = await makeRig('hang');
  try {
    const mac = macOf(5);
    const b = await bootNode(rig, 'e1000', mac, `console=ttyS0 bootbox.url=${URL_BASE} bootbox.watchdog=20`);
    if (b.at.failed === undefined || b.exitCode !== 0) explain(t, rig, b);
    t.regex(b.serial, /deploy-env: .*report failed: timed out or killed/);
    t.deepEqual(markers(b.serial).slice(-1), ['BOOTBOX-DEPLOY-ENV FAILED watchdog: not done after 20 s']);
    t.true(rig.requests.length >= 1);
    t.is(b.exitCode, 0);
    t.log(`box hangs: FAILED at ${b.at.failed} s, QEMU exited at ${b.at.exit} s`);
  } finally {
    await rig.destroy();
  }
});

test('a box answering 403: no retry, prints FAILED with the status and powers off', async (t) => {
  t.timeout(QEMU_KILL_MS + 30_000);
  const rig = await makeRig(403);
  try {
    const mac = macOf(6);
    const b = await bootNode(rig, 'virtio-net-pci', mac, `console=ttyS0 bootbox.url=${URL_BASE} bootbox.mac=${mac}`);
    if (b.at.failed === undefined || b.exitCode !== 0) explain(t, rig, b);
    t.deepEqual(markers(b.serial).slice(-1), ['BOOTBOX-DEPLOY-ENV FAILED report refused: HTTP/1.1 403 Forbidden']);
    t.is(rig.requests.length, 1);
    t.is(b.exitCode, 0);
    t.log(`box 403: FAILED at ${b.at.failed} s, QEMU exited at ${b.at.exit} s`);
  } finally {
    await rig.destroy();
  }
});
