/**
 * Binary captures for lab tests: tcpdump writes a pcap file (-w, packet-buffered), and
 * the test reads it back as UDP datagrams and TCP segments, so DHCP replies can be decoded
 * with our own codec, and TFTP and HTTP requests read field by field instead of from
 * tcpdump's text.
 */
import { existsSync, readFileSync } from 'node:fs';
import { type Netns, sleep, waitForLine } from './netns.ts';

export interface UdpFrame {
  /** Seconds (float) from the capture clock. */
  t: number;
  proto: 'udp' | 'tcp';
  srcMac: string;
  dstMac: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** TCP flags byte (SYN = 0x02, ACK = 0x10, …); 0 for UDP. */
  tcpFlags: number;
  payload: Buffer;
}

const LINKTYPE_ETHERNET = 1;

const mac = (b: Buffer, at: number) =>
  [...b.subarray(at, at + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
const ipv4 = (b: Buffer, at: number) => [...b.subarray(at, at + 4)].join('.');

/** Parses a classic pcap file (microsecond or nanosecond, either byte order); a truncated tail is ignored. */
export function parsePcap(buf: Buffer): UdpFrame[] {
  if (buf.length < 24) return [];
  const magicLE = buf.readUInt32LE(0);
  let le: boolean;
  let nano: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) {
    le = true;
    nano = magicLE === 0xa1b23c4d;
  } else {
    const magicBE = buf.readUInt32BE(0);
    if (magicBE !== 0xa1b2c3d4 && magicBE !== 0xa1b23c4d) throw new Error('not a pcap file');
    le = false;
    nano = magicBE === 0xa1b23c4d;
  }
  const u32 = (at: number) => (le ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  const linktype = u32(20);
  if (linktype !== LINKTYPE_ETHERNET) throw new Error(`pcap link type ${linktype}: only Ethernet is read`);
  const out: UdpFrame[] = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const incl = u32(off + 8);
    const start = off + 16;
    if (start + incl > buf.length) break;
    off = start + incl;
    const f = buf.subarray(start, start + incl);
    if (f.length < 14) continue;
    let etherType = f.readUInt16BE(12);
    let l3 = 14;
    if (etherType === 0x8100 && f.length >= 18) {
      etherType = f.readUInt16BE(16);
      l3 = 18;
    }
    if (etherType !== 0x0800 || f.length < l3 + 20) continue;
    const ihl = (f[l3]! & 0x0f) * 4;
    const proto = f[l3 + 9];
    if (proto !== 17 && proto !== 6) continue;
    const fragment = f.readUInt16BE(l3 + 6) & 0x3fff;
    if (fragment !== 0) continue;
    const ipEnd = Math.min(f.length, l3 + f.readUInt16BE(l3 + 2)); // Ethernet pads short frames
    const l4 = l3 + ihl;
    const head = {
      t: sec + frac / (nano ? 1e9 : 1e6),
      dstMac: mac(f, 0),
      srcMac: mac(f, 6),
      src: ipv4(f, l3 + 12),
      dst: ipv4(f, l3 + 16),
    };
    if (proto === 17) {
      if (ipEnd < l4 + 8) continue;
      out.push({
        ...head,
        proto: 'udp',
        sport: f.readUInt16BE(l4),
        dport: f.readUInt16BE(l4 + 2),
        tcpFlags: 0,
        payload: Buffer.from(f.subarray(l4 + 8, ipEnd)),
      });
    } else {
      if (ipEnd < l4 + 20) continue;
      const dataOff = (f[l4 + 12]! >> 4) * 4;
      out.push({
        ...head,
        proto: 'tcp',
        sport: f.readUInt16BE(l4),
        dport: f.readUInt16BE(l4 + 2),
        tcpFlags: f[l4 + 13]!,
        payload: Buffer.from(f.subarray(Math.min(ipEnd, l4 + dataOff), ipEnd)),
      });
    }
  }
  return out;
}

export interface PcapCapture {
  file: string;
  /** What was written so far (tcpdump -U flushes each packet). */
  read(): UdpFrame[];
  /** Polls read() until `pred` holds for some frame; returns it. */
  waitFor(pred: (f: UdpFrame) => boolean, timeoutMs: number): Promise<UdpFrame>;
  stop(): Promise<UdpFrame[]>;
}

/** tcpdump -w in a namespace; IPv4 UDP and TCP frames are read back (e.g. "udp port 67 or udp port 68"). */
export async function pcapCapture(ns: Netns, iface: string, filter: string, file: string): Promise<PcapCapture> {
  // --immediate-mode: without it packets wait in the ring buffer and are lost on SIGINT.
  const child = ns.spawn('tcpdump', ['-i', iface, '-n', '--immediate-mode', '-U', '-s', '0', '-w', file, filter]);
  await waitForLine(child, /listening on/);
  const read = () => (existsSync(file) ? parsePcap(readFileSync(file)) : []);
  return {
    file,
    read,
    async waitFor(pred, timeoutMs) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const hit = read().find(pred);
        if (hit) return hit;
        if (Date.now() > until) throw new Error(`capture ${file}: nothing matched within ${timeoutMs} ms`);
        await sleep(200);
      }
    },
    async stop() {
      await sleep(300);
      child.kill('SIGINT');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      return read();
    },
  };
}

/** A TFTP read request (RFC 1350 §5, options per RFC 2347): file name, mode and options. */
export function parseTftpRrq(payload: Buffer): { file: string; mode: string; options: Record<string, string> } | null {
  if (payload.length < 4 || payload.readUInt16BE(0) !== 1) return null;
  const parts = payload.subarray(2).toString('latin1').split('\0');
  if (parts.length < 2) return null;
  const options: Record<string, string> = {};
  for (let i = 2; i + 1 < parts.length; i += 2) options[parts[i]!.toLowerCase()] = parts[i + 1]!;
  return { file: parts[0]!, mode: parts[1]!.toLowerCase(), options };
}
