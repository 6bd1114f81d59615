/**
 * A hand-made PXE client for lab tests (the fast check beside QEMU). Run inside a client
 * namespace that already has an address and a default route:
 *   node pxe-probe.ts '{"mac":"52:54:00:77:01:01","arch":7,"ciaddr":"10.77.0.150","listenMs":1500}'
 * It broadcasts a PXE DISCOVER (broadcast flag, options 60/93/94/97 as a PXE ROM sends
 * them), collects every OFFER for its xid, and, when a ProxyDHCP offer without option 43
 * came (the UEFI case), asks that server on port 4011 from port 4011, as edk2 does.
 * Prints one JSON document: { offers: [...], ack4011?: {...} }.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { formatIPv4, macToBytes, parseIPv4 } from '../../firmware/core/net.ts';
import { type DhcpPacket, decode, emptyPacket, encode } from '../../firmware/protocols/dhcp/codec.ts';
import { BootpOp, BROADCAST_FLAG, DhcpOption, MessageType } from '../../firmware/protocols/dhcp/constants.ts';
import { getMessageType, getServerId, getVendorClass, setU8, setU16 } from '../../firmware/protocols/dhcp/options.ts';

interface Config {
  mac: string;
  arch: number;
  /** Our address (for the port-4011 request's ciaddr). */
  ciaddr?: string;
  listenMs?: number;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;
const xid = randomInt(1, 0xffffffff);

function request(type: number): DhcpPacket {
  const p = emptyPacket(BootpOp.BootRequest, macToBytes(cfg.mac));
  p.xid = xid;
  setU8(p.options, DhcpOption.MessageType, type);
  p.options.set(DhcpOption.ParameterRequestList, Buffer.from([1, 3, 43, 60, 66, 67, 97]));
  setU16(p.options, DhcpOption.MaxMessageSize, 1464);
  const a = String(cfg.arch).padStart(5, '0');
  p.options.set(DhcpOption.VendorClassId, Buffer.from(`PXEClient:Arch:${a}:UNDI:003000`));
  setU16(p.options, DhcpOption.ClientArch, cfg.arch);
  p.options.set(DhcpOption.ClientNdi, Buffer.from([1, 3, 0]));
  p.options.set(DhcpOption.ClientUuid, Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 0x5a)]));
  return p;
}

function describe(p: DhcpPacket, from: string, port: number) {
  return {
    from: `${from}:${port}`,
    type: getMessageType(p.options),
    serverId: formatIPv4(getServerId(p.options) ?? 0),
    yiaddr: formatIPv4(p.yiaddr),
    siaddr: formatIPv4(p.siaddr),
    file: p.file,
    bootfileOption: p.options.get(DhcpOption.BootfileName)?.toString('latin1'),
    vendorClass: getVendorClass(p.options),
    option43: p.options.get(DhcpOption.VendorSpecific)?.toString('hex'),
  };
}

function bind(port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind(port, () => {
      s.setBroadcast(true);
      resolve(s);
    });
  });
}

const s68 = await bind(68);
const offers: ReturnType<typeof describe>[] = [];
s68.on('message', (data, r) => {
  try {
    const p = decode(data);
    if (p.op === BootpOp.BootReply && p.xid === xid) offers.push(describe(p, r.address, r.port));
  } catch {
    // not DHCP
  }
});
const discover = request(MessageType.Discover);
discover.flags = BROADCAST_FLAG;
s68.send(encode(discover), 67, '255.255.255.255');
await new Promise((r) => setTimeout(r, cfg.listenMs ?? 1500));
s68.close();

let ack4011: ReturnType<typeof describe> | { error: string } | undefined;
const proxy = offers.find((o) => o.yiaddr === '0.0.0.0' && o.vendorClass === 'PXEClient' && !o.option43);
if (proxy && cfg.ciaddr) {
  const s4011 = await bind(4011);
  const req = request(MessageType.Request);
  req.ciaddr = parseIPv4(cfg.ciaddr)!;
  ack4011 = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ error: 'no answer on 4011' }), 2000);
    s4011.on('message', (data, r) => {
      try {
        const p = decode(data);
        if (p.xid !== xid) return;
        clearTimeout(timer);
        resolve(describe(p, r.address, r.port));
      } catch {
        // not DHCP
      }
    });
    s4011.send(encode(req), 4011, proxy.serverId);
  });
  s4011.close();
}
process.stdout.write(`${JSON.stringify({ offers, ack4011 })}\n`);
