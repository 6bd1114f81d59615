/**
 * The board: what the firmware gets from the hardware. Interfaces with their roles,
 * and endpoint factories that can only ever reach the private network.
 */
import { BootboxError } from '../firmware/core/errors.ts';
import { formatIPv4, inSubnet, parseCidr, parseIPv4, type Subnet, subnetOf } from '../firmware/core/net.ts';
import { DgramEndpoint } from './dgram-endpoint.ts';
import { type InterfaceRoles, resolveRoles } from './interfaces.ts';
import { canRawSocket } from './privileges.ts';
import { RawInterface } from './raw-endpoint.ts';
import type { EndpointFactory, EndpointOptions, UdpEndpoint } from './udp-endpoint.ts';

export interface BoardOptions {
  privateInterface: string;
  uplinkInterface?: string;
  /** Subnets behind relays on the private side; unicast services may answer them too. */
  relayNetworks?: string[];
}

export interface Board {
  roles: InterfaceRoles;
  /** Private subnets (the interface's own plus relay networks). */
  privateSubnets: Subnet[];
  /** Raw, device-bound endpoints: broadcasts in, broadcasts and unicasts out, private interface only. */
  raw: RawInterface;
  /** dgram endpoints on the private address, guarded to private-network peers. */
  unicast: EndpointFactory;
  isPrivatePeer(addr: string): boolean;
  close(): void;
}

export async function openBoard(opts: BoardOptions): Promise<Board> {
  const roles = await resolveRoles(opts.privateInterface, opts.uplinkInterface);
  if (!canRawSocket()) {
    throw new BootboxError(
      'NO_PRIVILEGE',
      'boot services need root or CAP_NET_RAW (run as root, or setcap cap_net_raw,cap_net_bind_service+ep on the binary)',
    );
  }
  const priv = roles.private;
  const own = subnetOf(parseIPv4(priv.ipv4)!, priv.prefix);
  const privateSubnets = [own, ...(opts.relayNetworks ?? []).map((c) => parseCidr(c)!)];
  const isPrivatePeer = (addr: string) => {
    const a = parseIPv4(addr);
    return a !== undefined && privateSubnets.some((s) => inSubnet(a, s));
  };
  const raw = RawInterface.open(priv.name, priv.ipv4, priv.prefix);
  const unicast: EndpointFactory = {
    ifname: priv.name,
    localAddress: priv.ipv4,
    open: (o: EndpointOptions): Promise<UdpEndpoint> =>
      DgramEndpoint.open({ ...o, ifname: priv.name, address: priv.ipv4, allowPeer: isPrivatePeer }),
  };
  return {
    roles,
    privateSubnets,
    raw,
    unicast,
    isPrivatePeer,
    close: () => raw.close(),
  };
}

export function describeSubnet(s: Subnet): string {
  return `${formatIPv4(s.network)}/${s.prefix}`;
}
