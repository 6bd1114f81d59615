/**
 * "Is another DHCP server on this link?" (dhcp.mode auto). Sends DISCOVERs with the
 * broadcast flag from port 68 and waits for any OFFER carrying our xid. Nothing is
 * requested, so the other server's offer simply lapses.
 */
import { randomInt } from 'node:crypto';
import type { EndpointFactory } from '../../../board/udp-endpoint.ts';
import { formatIPv4, macToBytes } from '../../core/net.ts';
import { decode, emptyPacket, encode } from './codec.ts';
import { BootpOp, BROADCAST_FLAG, DhcpOption, MessageType, Port } from './constants.ts';
import { getMessageType, getServerId, setU8 } from './options.ts';

export interface ProbeResult {
  found: boolean;
  /** The other server's identifier (option 54), when one answered. */
  server?: string;
  offeredAddress?: string;
}

export async function probeForDhcpServer(
  endpoints: EndpointFactory,
  mac: string,
  opts: { attempts?: number; intervalMs?: number } = {},
): Promise<ProbeResult> {
  const ep = await endpoints.open({ port: Port.Client, broadcast: true });
  const xid = randomInt(1, 0xffffffff);
  const attempts = opts.attempts ?? 3;
  const interval = opts.intervalMs ?? 1000;
  try {
    return await new Promise<ProbeResult>((resolve) => {
      let sent = 0;
      let timer: NodeJS.Timeout | undefined;
      ep.onMessage((d) => {
        try {
          const p = decode(d.data);
          if (p.op !== BootpOp.BootReply || p.xid !== xid || getMessageType(p.options) !== MessageType.Offer) return;
          clearTimeout(timer);
          const sid = getServerId(p.options);
          resolve({
            found: true,
            server: sid !== undefined ? formatIPv4(sid) : d.srcAddr,
            offeredAddress: formatIPv4(p.yiaddr),
          });
        } catch {
          // not a DHCP reply
        }
      });
      const sendOne = () => {
        if (sent >= attempts) {
          resolve({ found: false });
          return;
        }
        sent++;
        const p = emptyPacket(BootpOp.BootRequest, macToBytes(mac));
        p.xid = xid;
        p.secs = sent;
        p.flags = BROADCAST_FLAG;
        setU8(p.options, DhcpOption.MessageType, MessageType.Discover);
        ep.send(encode(p), '255.255.255.255', Port.Server);
        timer = setTimeout(sendOne, interval);
      };
      sendOne();
    });
  } finally {
    await ep.close();
  }
}
