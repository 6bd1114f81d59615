/**
 * Where a reply goes: RFC 2131 §4.1, in one function (as pixiecore's txType does).
 */
import { BROADCAST_FLAG, MessageType, Port } from './constants.ts';

export const LIMITED_BROADCAST = 0xffffffff;

export interface DestinationInput {
  /** The request's giaddr, ciaddr and flags. */
  request: { giaddr: number; ciaddr: number; flags: number };
  /** Option 53 of the reply. */
  replyType: number;
  /** UDP source of the request. */
  source: { addr: number; port: number };
  /** The server port the request arrived on: 67 (DHCP) or 4011 (ProxyDHCP boot server). */
  localPort: number;
}

export type DestinationRule =
  | 'proxy-source'
  | 'relay'
  | 'relay-nak'
  | 'nak-broadcast'
  | 'unicast-ciaddr'
  | 'broadcast-flag'
  | 'broadcast-no-arp';

export interface ReplyDestination {
  addr: number;
  port: number;
  /** Send as a link-layer broadcast (to 255.255.255.255 out of the private interface). */
  broadcast: boolean;
  /** The reply must carry the broadcast bit in `flags` (NAKs through a relay). */
  setBroadcastFlag: boolean;
  /** Which rule applied, for logs and tests. */
  rule: DestinationRule;
}

/**
 * RFC 2131 §4.1, "If the 'giaddr' field in a DHCP message from a client is non-zero,
 * the server sends any return messages to the 'DHCP server' port on the BOOTP relay
 * agent whose address appears in 'giaddr'. If the 'giaddr' field is zero and the
 * 'ciaddr' field is nonzero, then the server unicasts DHCPOFFER and DHCPACK messages
 * to the address in 'ciaddr'. If 'giaddr' is zero and 'ciaddr' is zero, and the
 * broadcast bit is set, then the server broadcasts DHCPOFFER and DHCPACK messages to
 * 0xffffffff. If the broadcast bit is not set and 'giaddr' is zero and 'ciaddr' is
 * zero, then the server unicasts DHCPOFFER and DHCPACK messages to the client's
 * hardware address and 'yiaddr' address. In all cases, when 'giaddr' is zero, the
 * server broadcasts any DHCPNAK messages to 0xffffffff." And: "If 'giaddr' is set
 * [for a DHCPNAK] … the server … sets the broadcast bit in the DHCPNAK", so the relay
 * broadcasts it on the client's segment.
 *
 * Deviations, on purpose:
 * - Unicast to yiaddr at the client's MAC needs an ARP entry we cannot add from an
 *   IP raw socket, so that case is broadcast too (rule 'broadcast-no-arp'). Clients
 *   must accept broadcast replies (RFC 2131 §4.1), so nothing breaks.
 * - Port 4011 (PXE 2.1 §2.2, ProxyDHCP boot server): the reply goes back to the
 *   request's source address and port. edk2 sends from port 4011 and listens there
 *   (NOTES-lab), iPXE from 68; answering the source port serves both.
 */
export function replyDestination(input: DestinationInput): ReplyDestination {
  const { request, replyType, source, localPort } = input;
  const nak = replyType === MessageType.Nak;
  if (localPort === Port.ProxyDhcp && source.addr !== 0) {
    return { addr: source.addr, port: source.port, broadcast: false, setBroadcastFlag: false, rule: 'proxy-source' };
  }
  if (request.giaddr !== 0) {
    return {
      addr: request.giaddr,
      port: Port.Server,
      broadcast: false,
      setBroadcastFlag: nak,
      rule: nak ? 'relay-nak' : 'relay',
    };
  }
  if (nak) {
    return {
      addr: LIMITED_BROADCAST,
      port: Port.Client,
      broadcast: true,
      setBroadcastFlag: false,
      rule: 'nak-broadcast',
    };
  }
  if (request.ciaddr !== 0) {
    return {
      addr: request.ciaddr,
      port: Port.Client,
      broadcast: false,
      setBroadcastFlag: false,
      rule: 'unicast-ciaddr',
    };
  }
  const rule = request.flags & BROADCAST_FLAG ? 'broadcast-flag' : 'broadcast-no-arp';
  return { addr: LIMITED_BROADCAST, port: Port.Client, broadcast: true, setBroadcastFlag: false, rule };
}
