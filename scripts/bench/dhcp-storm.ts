/**
 * Boot storm generator (runs in the client namespace, acting as a relay agent like
 * perfdhcp): N distinct PXE clients send DISCOVER within a window; prints one JSON line
 * with how many got an OFFER, latency percentiles and the time to the last offer.
 *   node dhcp-storm.ts <relayAddr> <server> <clients> <windowMs> [waitMs]
 */
import dgram from 'node:dgram';
import { parseIPv4 } from '../../firmware/core/net.ts';
import { decode, emptyPacket, encode } from '../../firmware/protocols/dhcp/codec.ts';

const [relay, server, nArg, windowArg, waitArg] = process.argv.slice(2);
const n = Number(nArg ?? 1000);
const windowMs = Number(windowArg ?? 1000);
const waitMs = Number(waitArg ?? 5000);
const giaddr = parseIPv4(relay!)!;

const sock = dgram.createSocket('udp4');
await new Promise<void>((r) => sock.bind(67, relay, () => r()));
sock.setRecvBufferSize(8 * 1024 * 1024);
const sentAt = new Map<number, number>();
const latency = new Map<number, number>();
const t0 = performance.now();
let lastOffer = 0;
sock.on('message', (buf) => {
  try {
    const p = decode(buf);
    const s = sentAt.get(p.xid);
    if (s !== undefined && !latency.has(p.xid) && p.options.get(53)?.[0] === 2) {
      const now = performance.now();
      latency.set(p.xid, now - s);
      lastOffer = now - t0;
    }
  } catch {
    // not ours
  }
});

for (let i = 0; i < n; i++) {
  const due = t0 + (i * windowMs) / n;
  const wait = due - performance.now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  const mac = Buffer.from([0x02, 0xbb, (i >> 16) & 255, (i >> 8) & 255, i & 255, 0x01]);
  const p = emptyPacket(1, mac);
  p.xid = (0x5a000000 + i) >>> 0;
  p.giaddr = giaddr;
  p.hops = 1;
  p.options.set(53, Buffer.from([1]));
  p.options.set(60, Buffer.from('PXEClient:Arch:00000:UNDI:002001'));
  p.options.set(93, Buffer.from([0, 0]));
  p.options.set(94, Buffer.from([1, 2, 1]));
  sentAt.set(p.xid, performance.now());
  sock.send(encode(p), 67, server!);
}
const sendSpan = performance.now() - t0;
await new Promise((r) => setTimeout(r, waitMs));
sock.close();
const lat = [...latency.values()].sort((a, b) => a - b);
const pct = (q: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]! : null);
process.stdout.write(
  `${JSON.stringify({
    clients: n,
    offered: lat.length,
    sendSpanMs: Math.round(sendSpan),
    medianMs: pct(0.5),
    p99Ms: pct(0.99),
    lastOfferMs: lat.length ? Math.round(lastOffer) : null,
  })}\n`,
);
