/**
 * The DHCP responder: one pure function from a decoded request (and where it came
 * from) to a Decision. It never touches a socket; the server encodes and sends the
 * reply, or counts the ignore reason. Ignoring is always a named outcome.
 *
 * Modes:
 * - full: we own the addresses of the private network (RFC 2131 server, §4.3).
 * - proxy: another server gives addresses; we answer only netboot clients with boot
 *   information (PXE 2.1 §2.2 ProxyDHCP), and run the port-4011 boot server.
 *
 * How PXE clients are steered (pixiecore's README.booting tells the same story):
 * - BIOS PXE ROMs get option 43 with PXE_DISCOVERY_CONTROL (sub-option 6) = 8 in a
 *   proxy offer: "boot the file in this offer", so they never go to port 4011.
 * - UEFI PXE (edk2) gets no option 43: the proxy offer then reads as "ProxyBINL" and
 *   edk2 asks the boot server on port 4011, which answers with the file.
 * - In full mode PXE clients get the classic siaddr + file, without option 60
 *   (ISC dhcpd's `next-server`/`filename`), which every ROM boots from directly.
 * - HTTP-boot clients (edk2 HttpBootDxe) need option 60 "HTTPClient" echoed and a URL
 *   as the boot file, in either mode.
 * - iPXE gets option 175.176 (no-pxedhcp) = 1 in full mode so it does not wait 2-3 s
 *   for ProxyDHCP offers that will never come (NOTES-lab).
 * - Raspberry Pi boot ROMs need "Raspberry Pi Boot" in option 43 (smee's AddRPIOpt43).
 */
import type { Subnet } from '../../core/net.ts';
import { broadcastOf, inSubnet } from '../../core/net.ts';
import { type ClientInfo, classifyClient } from './classify.ts';
import { type DhcpPacket, emptyPacket } from './codec.ts';
import {
  BootpOp,
  BROADCAST_FLAG,
  DHCP_DEFAULT_MAX_MESSAGE,
  DhcpOption,
  IpxeSubOption,
  MessageType,
  Port,
  PxeDiscoveryControl,
  PxeSubOption,
  VENDOR_CLASS_HTTP,
  VENDOR_CLASS_PXE,
} from './constants.ts';
import { replyDestination } from './destination.ts';
import type { LeasePool } from './leases.ts';
import {
  encodeSubOptions,
  getMaxMessageSize,
  getMessageType,
  getParameterRequestList,
  getRequestedIp,
  getServerId,
  getVendorSpecific,
  setIPv4,
  setIPv4List,
  setString,
  setU8,
  setU32,
} from './options.ts';

/** What to boot. Produced by the planner (services/boot-service.ts over policy/boot-policy.ts). */
export interface BootPlan {
  /** siaddr: the TFTP (or HTTP) server the client fetches from. */
  nextServer: number;
  /** The first-stage file (TFTP path) or, for iPXE, a script URL. */
  bootFile: string;
  /** Option 66, when the boot server is named rather than given by siaddr. */
  tftpServerName?: string;
  /** For HTTP-boot clients: the boot file becomes this URL (and option 60 "HTTPClient" is echoed). */
  httpUrl?: string;
  /** More options, set last (they may override ours). */
  extraOptions?: Iterable<readonly [number, Uint8Array]>;
}

/**
 * The boot-policy port. Called several times per boot (DISCOVER, REQUEST, port 4011),
 * so it must be cheap and have no side effects that matter. null = ignore this machine.
 */
export interface BootPlanner {
  plan(client: ClientInfo): BootPlan | null;
}

export interface SubnetConfig {
  subnet: Subnet;
  router?: number;
  dns?: readonly number[];
  domainName?: string;
  leaseTimeSec: number;
  /** Full mode only: the addresses handed out in this subnet. */
  pool?: LeasePool;
}

export interface DhcpRequestContext {
  packet: DhcpPacket;
  /** UDP source of the request. */
  source: { addr: number; port: number };
  /** The server port it arrived on: 67, or 4011 for the ProxyDHCP boot server. */
  localPort: number;
  mode: 'full' | 'proxy';
  /** Our address on the private interface: option 54 and the default next server. */
  serverAddr: number;
  /** The receiving interface's subnet. */
  subnet: SubnetConfig;
  /** Subnets behind relays, chosen by giaddr (RFC 2131 §4.3.1), or by ciaddr for unicast requests. */
  relaySubnets?: readonly SubnetConfig[];
  /**
   * The request was addressed to us (unicast), not broadcast. A client behind a relay
   * that renews or releases unicasts straight to us with giaddr 0 (RFC 2131 §4.3.2
   * RENEWING, §4.4.6); only then may ciaddr pick a relay subnet.
   */
  unicast?: boolean;
  /** The relay agent (giaddr) last seen for each relay subnet, keyed by its network address. */
  relayAgents?: ReadonlyMap<number, number>;
  planner: BootPlanner;
}

export type IgnoreReason =
  | 'not-a-request'
  | 'too-many-hops'
  | 'unsupported-message-type'
  | 'not-netboot-client'
  | 'planner-declined'
  | 'no-http-url'
  | 'no-subnet-for-relay'
  | 'no-pool'
  | 'pool-exhausted'
  | 'selected-other-server'
  | 'not-our-server'
  | 'request-without-address'
  | 'unknown-lease'
  | 'proxy-ignores-message'
  | 'inform-without-ciaddr'
  | 'released'
  | 'release-not-ours'
  | 'declined'
  | 'decline-not-ours'
  | 'relay-router-unknown';

export type Decision =
  | {
      kind: 'reply';
      packet: DhcpPacket;
      to: { addr: number; port: number };
      broadcast: boolean;
      /** Pass to encode(): the client's option 57 (less IP/UDP headers), else 548. */
      maxLength: number;
      client: ClientInfo;
    }
  | { kind: 'ignore'; reason: IgnoreReason; client?: ClientInfo };

/** RFC 1542 §4.1.1: relays discard requests that have crossed more than 16 hops. */
const MAX_HOPS = 16;

const RPI_BOOT_43 = encodeSubOptions([
  // PXE_BOOT_MENU: type 0, description length 17, "Raspberry Pi Boot"
  [PxeSubOption.BootMenu, Buffer.concat([Buffer.from([0, 0, 17]), Buffer.from('Raspberry Pi Boot')])],
  // PXE_MENU_PROMPT: timeout 0, "PXE"
  [PxeSubOption.MenuPrompt, Buffer.concat([Buffer.from([0]), Buffer.from('PXE')])],
]);

const BIOS_DIRECT_BOOT_43 = encodeSubOptions([
  [PxeSubOption.DiscoveryControl, Buffer.from([PxeDiscoveryControl.UseBootfile])],
]);

const IPXE_NO_PXEDHCP_175 = encodeSubOptions([[IpxeSubOption.NoPxeDhcp, Buffer.from([1])]]);

function ignore(reason: IgnoreReason, client?: ClientInfo): Decision {
  return client ? { kind: 'ignore', reason, client } : { kind: 'ignore', reason };
}

export function respond(ctx: DhcpRequestContext): Decision {
  const req = ctx.packet;
  if (req.op !== BootpOp.BootRequest) return ignore('not-a-request');
  if (req.hops > MAX_HOPS) return ignore('too-many-hops');
  const client = classifyClient(req);
  const type = getMessageType(req.options);

  if (ctx.localPort === Port.ProxyDhcp) return bootServer(ctx, client, type);
  if (ctx.mode === 'proxy') {
    if (type !== MessageType.Discover) return ignore('proxy-ignores-message', client);
    return proxyOffer(ctx, client);
  }
  switch (type) {
    case MessageType.Discover:
      return fullDiscover(ctx, client);
    case MessageType.Request:
      return fullRequest(ctx, client);
    case MessageType.Inform:
      return fullInform(ctx, client);
    case MessageType.Release:
      return fullRelease(ctx, client);
    case MessageType.Decline:
      return fullDecline(ctx, client);
    default:
      return ignore('unsupported-message-type', client);
  }
}

// -- planning ---------------------------------------------------------------

type Planned = { plan: BootPlan | null } | { decision: Decision };

/** Netboot clients need a plan; others (an installed OS) are served without one in full mode. */
function planFor(ctx: DhcpRequestContext, client: ClientInfo, required: boolean): Planned {
  if (!client.isNetboot) return required ? { decision: ignore('not-netboot-client', client) } : { plan: null };
  const plan = ctx.planner.plan(client);
  if (!plan) return { decision: ignore('planner-declined', client) };
  if (client.isHttpBoot && !plan.httpUrl) return { decision: ignore('no-http-url', client) };
  return { plan };
}

/**
 * The client's subnet. Relayed: the one holding giaddr (RFC 2131 §4.3.1). Not relayed:
 * this link's, except for a unicast request whose ciaddr lies in a relay subnet: a client
 * behind a relay renewing (§4.3.2 RENEWING) or releasing straight to us. Without this its
 * renewal got "wrong network" NAKs broadcast on our link and its release was lost
 * (test/lab/dhcp-relay.test.ts). A broadcast always comes from this link, whatever its
 * ciaddr says.
 */
function subnetFor(ctx: DhcpRequestContext): SubnetConfig | undefined {
  const g = ctx.packet.giaddr;
  if (g === 0) {
    const c = ctx.packet.ciaddr;
    if (c !== 0 && ctx.unicast && !inSubnet(c, ctx.subnet.subnet)) {
      const behindRelay = ctx.relaySubnets?.find((s) => inSubnet(c, s.subnet));
      if (behindRelay) return behindRelay;
    }
    return ctx.subnet;
  }
  if (inSubnet(g, ctx.subnet.subnet)) return ctx.subnet;
  return ctx.relaySubnets?.find((s) => inSubnet(g, s.subnet));
}

/**
 * The router of a subnet: the configured one; for a relay subnet without one, the relay
 * agent (giaddr), which is the client's gateway whenever the relay runs on the router
 * (dhcrelay there, `ip helper-address` on a switch's VLAN interface). A request that
 * came straight to us from behind a relay has no giaddr: the one last seen for its
 * subnet is used. Without a router a relayed client cannot reach the box at all: not for
 * TFTP or HTTP, not for a unicast renewal (test/lab/dhcp-relay.test.ts, with a real
 * dhcrelay, udhcpc and dhclient).
 */
function routerFor(ctx: DhcpRequestContext, s: SubnetConfig): number | undefined {
  if (s.router !== undefined || s === ctx.subnet) return s.router;
  if (ctx.packet.giaddr !== 0) return ctx.packet.giaddr;
  return ctx.relayAgents?.get(s.subnet.network);
}

/**
 * A reply into a relay subnet must name a router (routerFor); when none can be named
 * (a unicast renewal right after a restart, before any relayed request) we stay silent
 * and the client rebinds by broadcast, through the relay, at T2.
 */
function lacksRelayRouter(ctx: DhcpRequestContext, s: SubnetConfig): boolean {
  return s !== ctx.subnet && routerFor(ctx, s) === undefined;
}

// -- reply building -----------------------------------------------------------

/** RFC 2131 §4.3.1 table 3: the fields every reply copies from the request. */
function baseReply(req: DhcpPacket, type: number, serverAddr: number): DhcpPacket {
  const p = emptyPacket(BootpOp.BootReply, Buffer.from(req.chaddr));
  p.htype = req.htype;
  p.hlen = req.hlen;
  p.xid = req.xid;
  p.flags = req.flags;
  p.giaddr = req.giaddr;
  setU8(p.options, DhcpOption.MessageType, type);
  setIPv4(p.options, DhcpOption.ServerIdentifier, serverAddr);
  return p;
}

/** Mask, router (routerFor), DNS, domain and broadcast of the client's subnet. */
function networkOptions(p: DhcpPacket, s: SubnetConfig, ctx: DhcpRequestContext): void {
  setIPv4(p.options, DhcpOption.SubnetMask, s.subnet.mask);
  const router = routerFor(ctx, s);
  if (router !== undefined) setIPv4List(p.options, DhcpOption.Router, [router]);
  if (s.dns?.length) setIPv4List(p.options, DhcpOption.DomainNameServer, s.dns);
  if (s.domainName) setString(p.options, DhcpOption.DomainName, s.domainName);
  setIPv4(p.options, DhcpOption.BroadcastAddress, broadcastOf(s.subnet));
}

function leaseOptions(p: DhcpPacket, s: SubnetConfig): void {
  // RFC 2132 §9.11/9.12 defaults: T1 = 0.5, T2 = 0.875 of the lease.
  setU32(p.options, DhcpOption.IpAddressLeaseTime, s.leaseTimeSec);
  setU32(p.options, DhcpOption.RenewalTime, Math.floor(s.leaseTimeSec / 2));
  setU32(p.options, DhcpOption.RebindingTime, Math.floor((s.leaseTimeSec * 7) / 8));
}

/**
 * Boot information for a planned netboot client. `proxy` marks ProxyDHCP replies
 * (ours is not the address server): they need option 60 PXEClient to be noticed.
 */
function bootOptions(p: DhcpPacket, req: DhcpPacket, client: ClientInfo, plan: BootPlan, proxy: boolean): void {
  const o = p.options;
  const requested = getParameterRequestList(req.options);
  p.siaddr = plan.nextServer;
  const file = client.isHttpBoot ? plan.httpUrl! : plan.bootFile;
  const fitsFileField = Buffer.byteLength(file, 'latin1') < 128;
  if (fitsFileField) p.file = file;
  // Option 67 when asked for, when the name does not fit `file`, and always for HTTP
  // boot (edk2 takes the URI from either; some firmware only reads option 67).
  if (!fitsFileField || client.isHttpBoot || requested.includes(DhcpOption.BootfileName)) {
    setString(o, DhcpOption.BootfileName, file);
  }
  if (plan.tftpServerName) setString(o, DhcpOption.TftpServerName, plan.tftpServerName);
  if (client.isHttpBoot) {
    // UEFI 2.x §24.7.2: an HTTP boot offer must carry option 60 "HTTPClient".
    setString(o, DhcpOption.VendorClassId, VENDOR_CLASS_HTTP);
  } else if (proxy) {
    // PXE 2.1 §2.2.5: a ProxyDHCP offer identifies itself with option 60 "PXEClient".
    setString(o, DhcpOption.VendorClassId, VENDOR_CLASS_PXE);
    if (client.firmware === 'bios') o.set(DhcpOption.VendorSpecific, BIOS_DIRECT_BOOT_43);
    // UEFI: no option 43, so edk2 follows up on port 4011 (pixiecore README.booting).
  }
  if (client.firmware === 'rpi') {
    setString(o, DhcpOption.VendorClassId, VENDOR_CLASS_PXE);
    o.set(DhcpOption.VendorSpecific, RPI_BOOT_43);
  }
  // PXE 2.1 §2.2.5 and RFC 4578 §2.3: echo the client's UUID.
  const uuid = req.options.get(DhcpOption.ClientUuid);
  if (uuid && (client.isPxe || client.isHttpBoot)) o.set(DhcpOption.ClientUuid, Buffer.from(uuid));
  if (client.isIpxe && !proxy) o.set(DhcpOption.IpxeEncap, IPXE_NO_PXEDHCP_175);
  for (const [code, value] of plan.extraOptions ?? []) o.set(code, Buffer.from(value));
}

function finish(ctx: DhcpRequestContext, p: DhcpPacket, client: ClientInfo): Decision {
  const req = ctx.packet;
  // RFC 3046 §2.2: option 82 goes back verbatim, last.
  const rai = req.options.get(DhcpOption.RelayAgentInfo);
  if (rai) {
    p.options.delete(DhcpOption.RelayAgentInfo);
    p.options.set(DhcpOption.RelayAgentInfo, Buffer.from(rai));
  }
  const dest = replyDestination({
    request: req,
    replyType: getMessageType(p.options)!,
    source: ctx.source,
    localPort: ctx.localPort,
  });
  if (dest.setBroadcastFlag) p.flags |= BROADCAST_FLAG;
  const max = getMaxMessageSize(req.options);
  // RFC 2132 §9.10: option 57 counts IP and UDP headers; without it, 576 (548 of DHCP).
  const maxLength = max === undefined ? DHCP_DEFAULT_MAX_MESSAGE : Math.min(max, 1500) - 28;
  return {
    kind: 'reply',
    packet: p,
    to: { addr: dest.addr, port: dest.port },
    broadcast: dest.broadcast,
    maxLength,
    client,
  };
}

function nak(ctx: DhcpRequestContext, client: ClientInfo, message: string): Decision {
  // RFC 2131 §4.3.2 table 3: a NAK carries no addresses, no file, only 53, 54 and 56.
  const p = baseReply(ctx.packet, MessageType.Nak, ctx.serverAddr);
  setString(p.options, DhcpOption.Message, message);
  return finish(ctx, p, client);
}

// -- full mode ----------------------------------------------------------------

function fullDiscover(ctx: DhcpRequestContext, client: ClientInfo): Decision {
  const planned = planFor(ctx, client, false);
  if ('decision' in planned) return planned.decision;
  const s = subnetFor(ctx);
  if (!s) return ignore('no-subnet-for-relay', client);
  if (!s.pool) return ignore('no-pool', client);
  const yiaddr = s.pool.offer({
    mac: client.mac,
    clientId: client.clientId,
    requestedIp: getRequestedIp(ctx.packet.options),
  });
  if (yiaddr === undefined) return ignore('pool-exhausted', client);
  const p = baseReply(ctx.packet, MessageType.Offer, ctx.serverAddr);
  p.yiaddr = yiaddr;
  leaseOptions(p, s);
  networkOptions(p, s, ctx);
  if (planned.plan) bootOptions(p, ctx.packet, client, planned.plan, false);
  return finish(ctx, p, client);
}

/**
 * RFC 2131 §4.3.2: the client's state is told by options 54/50 and ciaddr.
 * - SELECTING: option 54 set. Not ours: our offer is released and we stay silent.
 * - INIT-REBOOT: no 54, option 50 set, ciaddr 0. Wrong network or someone else's: NAK.
 * - RENEWING/REBINDING: no 54, no 50, ciaddr set.
 * We are authoritative for our pool (like dnsmasq --dhcp-authoritative): a client we
 * have no record of may have an address of our pool that nobody else holds (the box
 * lost its state); it is acknowledged. One outside the pool but in the subnet was not
 * ours, and we remain silent, as §4.3.2 says.
 */
function fullRequest(ctx: DhcpRequestContext, client: ClientInfo): Decision {
  const req = ctx.packet;
  const serverId = getServerId(req.options);
  const requested = getRequestedIp(req.options);
  const s = subnetFor(ctx);
  if (serverId !== undefined && serverId !== ctx.serverAddr) {
    s?.pool?.cancelOffer({ mac: client.mac });
    return ignore('selected-other-server', client);
  }
  const planned = planFor(ctx, client, false);
  if ('decision' in planned) return planned.decision;
  if (!s) return ignore('no-subnet-for-relay', client);
  if (!s.pool) return ignore('no-pool', client);
  if (lacksRelayRouter(ctx, s)) return ignore('relay-router-unknown', client);
  const pool = s.pool;
  const selecting = serverId !== undefined;
  const ip = requested ?? (req.ciaddr !== 0 ? req.ciaddr : undefined);
  if (ip === undefined) return ignore('request-without-address', client);
  if (!inSubnet(ip, s.subnet)) return nak(ctx, client, 'wrong network');

  const current = pool.lookup({ mac: client.mac, clientId: client.clientId });
  if (!selecting && current === undefined && !pool.contains(ip)) return ignore('unknown-lease', client);
  if (!selecting && current !== undefined && current.ip !== ip && current.state === 'leased') {
    return nak(ctx, client, 'not your address');
  }
  const result = pool.commit({ mac: client.mac, clientId: client.clientId }, ip, s.leaseTimeSec * 1000);
  if (!result.ok) return nak(ctx, client, result.reason);
  const p = baseReply(req, MessageType.Ack, ctx.serverAddr);
  p.ciaddr = req.ciaddr;
  p.yiaddr = ip;
  leaseOptions(p, s);
  networkOptions(p, s, ctx);
  if (planned.plan) bootOptions(p, req, client, planned.plan, false);
  return finish(ctx, p, client);
}

/** RFC 2131 §4.3.5: configuration only; no yiaddr and no lease time, unicast to ciaddr. */
function fullInform(ctx: DhcpRequestContext, client: ClientInfo): Decision {
  const req = ctx.packet;
  if (req.ciaddr === 0) return ignore('inform-without-ciaddr', client);
  const planned = planFor(ctx, client, false);
  if ('decision' in planned) return planned.decision;
  const s = subnetFor(ctx);
  if (!s) return ignore('no-subnet-for-relay', client);
  if (lacksRelayRouter(ctx, s)) return ignore('relay-router-unknown', client);
  const p = baseReply(req, MessageType.Ack, ctx.serverAddr);
  p.ciaddr = req.ciaddr;
  networkOptions(p, s, ctx);
  if (planned.plan) bootOptions(p, req, client, planned.plan, false);
  return finish(ctx, p, client);
}

/** RFC 2131 §4.3.4: no reply. */
function fullRelease(ctx: DhcpRequestContext, client: ClientInfo): Decision {
  const serverId = getServerId(ctx.packet.options);
  if (serverId !== undefined && serverId !== ctx.serverAddr) return ignore('not-our-server', client);
  const pool = subnetFor(ctx)?.pool;
  const done = pool?.release({ mac: client.mac }, ctx.packet.ciaddr) ?? false;
  return ignore(done ? 'released' : 'release-not-ours', client);
}

/** RFC 2131 §4.3.3: the address is in use elsewhere; quarantine it. No reply. */
function fullDecline(ctx: DhcpRequestContext, client: ClientInfo): Decision {
  const serverId = getServerId(ctx.packet.options);
  if (serverId !== undefined && serverId !== ctx.serverAddr) return ignore('not-our-server', client);
  const ip = getRequestedIp(ctx.packet.options);
  const pool = subnetFor(ctx)?.pool;
  const done = ip !== undefined && (pool?.decline({ mac: client.mac }, ip) ?? false);
  return ignore(done ? 'declined' : 'decline-not-ours', client);
}

// -- proxy mode and the port-4011 boot server ---------------------------------

/** PXE 2.1 §2.2.5: a ProxyDHCP offer has no yiaddr, only boot information. */
function proxyOffer(ctx: DhcpRequestContext, client: ClientInfo): Decision {
  const planned = planFor(ctx, client, true);
  if ('decision' in planned) return planned.decision;
  const p = baseReply(ctx.packet, MessageType.Offer, ctx.serverAddr);
  bootOptions(p, ctx.packet, client, planned.plan!, true);
  return finish(ctx, p, client);
}

/**
 * PXE 2.1 §2.2.6: the boot server on port 4011. The client (edk2 after a proxy offer
 * without option 43, iPXE after any proxy offer, BIOS ROMs doing PXEBS) unicasts a
 * REQUEST with its address in ciaddr; the ACK carries the boot file and goes back to
 * the request's source address and port (destination.ts).
 */
function bootServer(ctx: DhcpRequestContext, client: ClientInfo, type: number | undefined): Decision {
  if (type !== MessageType.Request && type !== MessageType.Inform) return ignore('unsupported-message-type', client);
  const serverId = getServerId(ctx.packet.options);
  if (serverId !== undefined && serverId !== ctx.serverAddr) return ignore('not-our-server', client);
  const planned = planFor(ctx, client, true);
  if ('decision' in planned) return planned.decision;
  const req = ctx.packet;
  const p = baseReply(req, MessageType.Ack, ctx.serverAddr);
  p.ciaddr = req.ciaddr;
  bootOptions(p, req, client, planned.plan!, true);
  // PXEBS (PXE 2.1 §2.2.6): the ACK names the boot item the client asked for (sub-option 71).
  const item = getVendorSpecific(req.options)?.get(PxeSubOption.BootItem);
  if (item?.length === 4) p.options.set(DhcpOption.VendorSpecific, encodeSubOptions([[PxeSubOption.BootItem, item]]));
  else if (client.firmware !== 'rpi') p.options.delete(DhcpOption.VendorSpecific);
  return finish(ctx, p, client);
}
