/**
 * A private switch for lab and e2e tests: the box lab's client namespace becomes a
 * switch (a bridge, with the box's link as one port), and more hosts and QEMU tap ports
 * join it. Other DHCP servers (dnsmasq, ISC dhcpd) run on hosts of their own.
 *
 *   [box priv 10.77.0.1/24] ── eth0 ┐
 *   [host eth0] ───────────── p-<h> ├ br0   (namespace "sw")
 *   [QEMU NIC] ──────────────── tap ┘
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { type BoxLab, boxLab } from './box.ts';
import { Netns, sh, uniqueId, waitForLine } from './netns.ts';

export interface SwitchLab {
  lab: BoxLab;
  /** The switch namespace (holds br0 and the tap ports). */
  sw: Netns;
  /** A new namespace whose eth0 is a port of the switch, with an optional address (CIDR). */
  addHost(tag: string, addr?: string): Netns;
  /** A new tap port on the switch (for QEMU, run in `sw`); returns its name. */
  addTap(): string;
  destroy(): Promise<void>;
}

export async function switchLab(): Promise<SwitchLab> {
  const lab = await boxLab();
  const sw = lab.cli;
  const hosts: Netns[] = [];
  let ports = 0;
  try {
    sw.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0');
    sw.ip('link', 'set', 'eth0', 'master', 'br0');
    sw.ip('link', 'set', 'br0', 'up');
  } catch (e) {
    await lab.destroy();
    throw e;
  }
  return {
    lab,
    sw,
    addHost(tag, addr) {
      const h = new Netns(`bbt-${uniqueId()}-${tag}`.slice(0, 30));
      hosts.push(h);
      const port = `p${++ports}`;
      sw.ip('link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.name);
      sw.ip('link', 'set', port, 'master', 'br0', 'up');
      if (addr) h.ip('addr', 'add', addr, 'dev', 'eth0');
      h.ip('link', 'set', 'eth0', 'up');
      return h;
    },
    addTap() {
      const tap = `tap${++ports}`;
      sw.ip('tuntap', 'add', 'dev', tap, 'mode', 'tap');
      sw.ip('link', 'set', tap, 'master', 'br0', 'up');
      return tap;
    },
    async destroy() {
      await Promise.all(hosts.map((h) => h.destroy()));
      await lab.destroy();
    },
  };
}

/**
 * dnsmasq as the network's address server (no DNS: --port=0; no PXE of its own), on
 * eth0 of `host`. Leases and pid go to `dir`. Resolves once it is serving.
 */
export async function startDnsmasq(
  host: Netns,
  dir: string,
  range = '10.77.0.150,10.77.0.199,255.255.255.0,10m',
): Promise<{ proc: ChildProcess; log: string[] }> {
  const proc = host.spawn('dnsmasq', [
    '--no-daemon',
    '--conf-file=/dev/null',
    '--port=0',
    '--interface=eth0',
    '--bind-interfaces',
    `--dhcp-range=${range}`,
    `--dhcp-leasefile=${path.join(dir, 'dnsmasq.leases')}`,
    `--pid-file=${path.join(dir, 'dnsmasq.pid')}`,
    '--user=root',
    '--group=root',
    '--log-dhcp',
    '--log-facility=-',
    // NOTES-lab: dnsmasq pings an address for ~3 s before offering it; not what we test.
    '--no-ping',
  ]);
  const log: string[] = [];
  proc.stderr?.on('data', (d) => log.push(String(d)));
  proc.stdout?.on('data', (d) => log.push(String(d)));
  await waitForLine(proc, /DHCP, IP range/, 10_000);
  return { proc, log };
}

/** ISC dhcpd as the network's address server, on eth0 of `host` (10.77.0.0/24). */
export async function startDhcpd(
  host: Netns,
  dir: string,
  range = '10.77.0.150 10.77.0.199',
): Promise<{ proc: ChildProcess; log: string[] }> {
  const conf = path.join(dir, 'dhcpd.conf');
  const leases = path.join(dir, 'dhcpd.leases');
  writeFileSync(
    conf,
    [
      'authoritative;',
      'ping-check false;',
      'default-lease-time 600;',
      'max-lease-time 600;',
      'subnet 10.77.0.0 netmask 255.255.255.0 {',
      `  range ${range};`,
      '  option routers 10.77.0.2;',
      '}',
      '',
    ].join('\n'),
  );
  writeFileSync(leases, '');
  sh('chmod', ['a+rw', leases]);
  const proc = host.spawn('dhcpd', [
    '-4',
    '-f',
    '-d',
    '-cf',
    conf,
    '-lf',
    leases,
    '-pf',
    path.join(dir, 'dhcpd.pid'),
    'eth0',
  ]);
  const log: string[] = [];
  proc.stderr?.on('data', (d) => log.push(String(d)));
  proc.stdout?.on('data', (d) => log.push(String(d)));
  await waitForLine(proc, /Sending on\s+Socket\/fallback|Server starting service/, 10_000);
  return { proc, log };
}
