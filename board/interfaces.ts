/**
 * Network interfaces and their roles. The private interface carries every boot
 * service and nothing else; the uplink carries the UI/API and MQTT and never a
 * boot service (../../shared/ARCHITECTURE.md, "The two networks").
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import si from 'systeminformation';
import { BootboxError } from '../firmware/core/errors.ts';

export type InterfaceRole = 'private' | 'uplink' | 'other';

export interface NetInterface {
  name: string;
  mac: string;
  ipv4?: string;
  /** Prefix length of ipv4. */
  prefix?: number;
  mtu: number;
  up: boolean;
  role: InterfaceRole;
}

export interface PrivateInterface extends NetInterface {
  ipv4: string;
  prefix: number;
}

export interface InterfaceRoles {
  private: PrivateInterface;
  uplink?: NetInterface;
}

function maskBits(mask: string): number {
  return mask.split('.').reduce((n, o) => n + (Number(o) >>> 0).toString(2).replace(/0/g, '').length, 0);
}

function sysfs(name: string, attr: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${name}/${attr}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Every interface with its first IPv4 address, via systeminformation (the board inventory). */
export async function listInterfaces(roles: { private?: string; uplink?: string } = {}): Promise<NetInterface[]> {
  const list = await si.networkInterfaces(undefined as never, true);
  const arr = Array.isArray(list) ? list : [list];
  const osIfs = os.networkInterfaces();
  return arr.map((i) => {
    // systeminformation reports one address per interface; prefer node's view, which has all of them.
    const v4 = (osIfs[i.iface] ?? []).find((a) => a.family === 'IPv4');
    const ipv4 = v4?.address ?? (i.ip4 || undefined);
    const prefix = v4 ? Number(v4.cidr?.split('/')[1]) : i.ip4subnet ? maskBits(i.ip4subnet) : undefined;
    const role: InterfaceRole = i.iface === roles.private ? 'private' : i.iface === roles.uplink ? 'uplink' : 'other';
    return {
      name: i.iface,
      mac: i.mac,
      ipv4,
      prefix,
      mtu: i.mtu ?? Number(sysfs(i.iface, 'mtu') ?? 1500),
      up: i.operstate === 'up' || sysfs(i.iface, 'operstate') === 'up' || sysfs(i.iface, 'operstate') === 'unknown',
      role,
    };
  });
}

/**
 * Resolves the private (and optional uplink) interface. Throws a BootboxError that names
 * the problem: INTERFACE_MISSING, INTERFACE_NO_IPV4.
 */
export async function resolveRoles(privateName: string, uplinkName?: string): Promise<InterfaceRoles> {
  for (const [name, what] of [
    [privateName, 'private'],
    [uplinkName, 'uplink'],
  ] as const) {
    if (name && !existsSync(`/sys/class/net/${name}`)) {
      const known = existsSync('/sys/class/net') ? ` (interfaces here: ${listSysNet().join(', ')})` : '';
      throw new BootboxError('INTERFACE_MISSING', `${what} interface "${name}" does not exist${known}`);
    }
  }
  const all = await listInterfaces({ private: privateName, uplink: uplinkName });
  const priv = all.find((i) => i.name === privateName) ?? fallbackInterface(privateName, 'private');
  if (!priv.ipv4 || priv.prefix === undefined) {
    throw new BootboxError(
      'INTERFACE_NO_IPV4',
      `private interface "${privateName}" has no IPv4 address; give it one (e.g. ip addr add 10.77.0.1/24 dev ${privateName})`,
    );
  }
  const uplink = uplinkName
    ? (all.find((i) => i.name === uplinkName) ?? fallbackInterface(uplinkName, 'uplink'))
    : undefined;
  return { private: priv as PrivateInterface, uplink };
}

function listSysNet(): string[] {
  try {
    return readdirSync('/sys/class/net').sort();
  } catch {
    return [];
  }
}

/** An interface systeminformation did not list (down, or no address): read sysfs directly. */
function fallbackInterface(name: string, role: InterfaceRole): NetInterface {
  const v4 = (os.networkInterfaces()[name] ?? []).find((a) => a.family === 'IPv4');
  return {
    name,
    mac: sysfs(name, 'address') ?? '00:00:00:00:00:00',
    ipv4: v4?.address,
    prefix: v4 ? Number(v4.cidr?.split('/')[1]) : undefined,
    mtu: Number(sysfs(name, 'mtu') ?? 1500),
    up: sysfs(name, 'operstate') === 'up',
    role,
  };
}
