/**
 * DHCP message codec: bytes <-> DhcpPacket. Pure; no sockets, no domain.
 *
 * The public verbs are `decode`, `encode` and `encodingLength` (dns-packet style).
 * `decode` throws only DecodeError, with one of the reasons in DecodeReason.
 *
 * Decisions:
 * - Only Ethernet is accepted (htype 1, hlen 6). PXE, iPXE and edk2 are Ethernet-only,
 *   and the responder keys machines by a 6-byte MAC. hlen > 16 cannot be stored in
 *   chaddr and is 'hlen-too-long'; any other htype is 'htype-not-ethernet'; htype 1
 *   with an hlen other than 6 is 'hlen-not-ethernet'.
 * - A message without option 53 is BOOTP, which bootbox does not serve: 'no-message-type'.
 * - A missing End option is tolerated: the area ends where the buffer (or field) ends.
 * - Option overload (RFC 2132 §9.3): the options found in `file`/`sname` join the map
 *   in RFC 3396 §6 order, and the overloaded fields read as ''. Option 52 is not kept
 *   in the map: `encode` decides on its own whether it needs to overload.
 */
import { BootboxError, DecodeError } from '../../core/errors.ts';
import {
  BOOTP_MIN_LENGTH,
  BootpOp,
  CHADDR_LENGTH,
  DHCP_MIN_DECODE_LENGTH,
  DhcpOption,
  ETHERNET_HLEN,
  FILE_LENGTH,
  HardwareType,
  MAGIC_COOKIE,
  Offset,
  Overload,
  SNAME_LENGTH,
} from './constants.ts';
import { type DhcpOptions, isCarriedOption, optionChunks, readOptionArea } from './options.ts';

export interface DhcpPacket {
  /** 1 BOOTREQUEST, 2 BOOTREPLY (RFC 951). */
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  /** Transaction id, unsigned 32-bit. */
  xid: number;
  secs: number;
  /** Bit 15 is BROADCAST_FLAG (RFC 2131 §2). */
  flags: number;
  /** Addresses are unsigned 32-bit numbers (core/net.ts formats them). */
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** The first `hlen` bytes of chaddr: the MAC. */
  chaddr: Buffer;
  /** Server host name, latin1, up to the first NUL; '' when it carried options. */
  sname: string;
  /** Boot file name, latin1, up to the first NUL; '' when it carried options. */
  file: string;
  options: DhcpOptions;
}

export type DecodeReason =
  | 'truncated'
  | 'bad-op'
  | 'hlen-too-long'
  | 'htype-not-ethernet'
  | 'hlen-not-ethernet'
  | 'bad-magic'
  | 'option-overrun'
  | 'overload-loop'
  | 'bad-overload'
  | 'no-message-type'
  | 'bad-message-type';

function fail(reason: DecodeReason, message?: string): never {
  throw new DecodeError(reason, message);
}

function readCString(buf: Uint8Array, start: number, len: number): string {
  let end = start;
  while (end < start + len && buf[end] !== 0) end++;
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('latin1');
}

export function decode(input: Uint8Array): DhcpPacket {
  if (input.length < DHCP_MIN_DECODE_LENGTH) fail('truncated', `${input.length} bytes, need ${DHCP_MIN_DECODE_LENGTH}`);
  const buf = Buffer.from(input.buffer, input.byteOffset, input.length);
  const op = buf[Offset.op]!;
  if (op !== BootpOp.BootRequest && op !== BootpOp.BootReply) fail('bad-op', `op ${op}`);
  const htype = buf[Offset.htype]!;
  const hlen = buf[Offset.hlen]!;
  if (hlen > CHADDR_LENGTH) fail('hlen-too-long', `hlen ${hlen}`);
  if (htype !== HardwareType.Ethernet) fail('htype-not-ethernet', `htype ${htype}`);
  if (hlen !== ETHERNET_HLEN) fail('hlen-not-ethernet', `hlen ${hlen} with htype 1`);
  if (buf.readUInt32BE(Offset.cookie) !== MAGIC_COOKIE) fail('bad-magic');

  const options: DhcpOptions = new Map();
  const overload = readOptionArea(buf, Offset.options, buf.length, 'options', options) ?? 0;
  // RFC 3396 §6: options field first, then file, then sname.
  if (overload & Overload.File) readOptionArea(buf, Offset.file, Offset.file + FILE_LENGTH, 'file', options);
  if (overload & Overload.Sname) readOptionArea(buf, Offset.sname, Offset.sname + SNAME_LENGTH, 'sname', options);

  const mt = options.get(DhcpOption.MessageType);
  if (mt === undefined) fail('no-message-type');
  if (mt.length !== 1) fail('bad-message-type', `option 53 has ${mt.length} bytes`);

  return {
    op,
    htype,
    hlen,
    hops: buf[Offset.hops]!,
    xid: buf.readUInt32BE(Offset.xid),
    secs: buf.readUInt16BE(Offset.secs),
    flags: buf.readUInt16BE(Offset.flags),
    ciaddr: buf.readUInt32BE(Offset.ciaddr),
    yiaddr: buf.readUInt32BE(Offset.yiaddr),
    siaddr: buf.readUInt32BE(Offset.siaddr),
    giaddr: buf.readUInt32BE(Offset.giaddr),
    chaddr: Buffer.from(buf.subarray(Offset.chaddr, Offset.chaddr + hlen)),
    sname: overload & Overload.Sname ? '' : readCString(buf, Offset.sname, SNAME_LENGTH),
    file: overload & Overload.File ? '' : readCString(buf, Offset.file, FILE_LENGTH),
    options,
  };
}

export interface EncodeOptions {
  /**
   * The largest message the peer accepts (DHCP bytes, without IP/UDP headers): the
   * client's option 57 less 28, or DHCP_DEFAULT_MAX_MESSAGE. When the options do not
   * fit, they spill into `file` and then `sname` (RFC 2132 §9.3) if those are empty.
   * Unlimited when absent.
   */
  maxLength?: number;
  /** Pad to at least this many bytes; default BOOTP_MIN_LENGTH (RFC 1542 §2.1). */
  minLength?: number;
}

/**
 * `encode` refuses a packet it cannot represent (a too-long file name, options that
 * do not fit): that is a programming or configuration error, code INTERNAL.
 */
function encodeFail(message: string): never {
  throw new BootboxError('INTERNAL', `dhcp encode: ${message}`);
}

interface Layout {
  main: Buffer[];
  file: Buffer[] | undefined;
  sname: Buffer[] | undefined;
  overload: number;
  length: number;
}

function sum(chunks: Buffer[]): number {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}

function layout(pkt: DhcpPacket, opts: EncodeOptions): Layout {
  const chunks: Buffer[] = [];
  // Option 53 goes first: not required by RFC 2131, but what every server does and
  // some old ROMs look at the first option only.
  const mt = pkt.options.get(DhcpOption.MessageType);
  if (mt) chunks.push(...optionChunks(DhcpOption.MessageType, mt));
  for (const [code, value] of pkt.options) {
    if (code === DhcpOption.MessageType || !isCarriedOption(code)) continue;
    chunks.push(...optionChunks(code, value));
  }
  const minLength = opts.minLength ?? BOOTP_MIN_LENGTH;
  const total = sum(chunks);
  const fits = (n: number) => opts.maxLength === undefined || DHCP_MIN_DECODE_LENGTH + n + 1 <= opts.maxLength;
  if (fits(total)) {
    return {
      main: chunks,
      file: undefined,
      sname: undefined,
      overload: 0,
      length: Math.max(minLength, DHCP_MIN_DECODE_LENGTH + total + 1),
    };
  }
  // Overload: keep the chunk order; a chunk that does not fit moves on whole.
  const mainCap = opts.maxLength! - DHCP_MIN_DECODE_LENGTH - 1 - 3; // End, and 3 bytes for option 52
  const areas: { name: 'main' | 'file' | 'sname'; cap: number; chunks: Buffer[] }[] = [];
  areas.push({ name: 'main', cap: mainCap, chunks: [] });
  if (pkt.file === '') areas.push({ name: 'file', cap: FILE_LENGTH - 1, chunks: [] });
  if (pkt.sname === '') areas.push({ name: 'sname', cap: SNAME_LENGTH - 1, chunks: [] });
  let a = 0;
  let used = 0;
  for (const c of chunks) {
    while (a < areas.length && used + c.length > areas[a]!.cap) {
      a++;
      used = 0;
    }
    if (a >= areas.length) {
      encodeFail(`options need ${total} bytes; ${opts.maxLength} allowed even with file/sname overloaded`);
    }
    areas[a]!.chunks.push(c);
    used += c.length;
  }
  const file = areas.find((x) => x.name === 'file' && x.chunks.length > 0)?.chunks;
  const sname = areas.find((x) => x.name === 'sname' && x.chunks.length > 0)?.chunks;
  const main = areas[0]!.chunks;
  const overload = (file ? Overload.File : 0) | (sname ? Overload.Sname : 0);
  return {
    main,
    file,
    sname,
    overload,
    length: Math.max(minLength, DHCP_MIN_DECODE_LENGTH + sum(main) + 3 + 1),
  };
}

function writeIPv4(buf: Buffer, n: number, off: number): void {
  buf.writeUInt32BE(n >>> 0, off);
}

function writeArea(buf: Buffer, chunks: Buffer[], start: number): number {
  let off = start;
  for (const c of chunks) {
    c.copy(buf, off);
    off += c.length;
  }
  buf[off] = DhcpOption.End;
  return off + 1;
}

function writeString(buf: Buffer, s: string, off: number, field: number, name: string): void {
  const b = Buffer.from(s, 'latin1');
  // Leave room for the terminating NUL that C clients (PXE ROMs) rely on.
  if (b.length >= field) encodeFail(`${name} is ${b.length} bytes; at most ${field - 1}`);
  b.copy(buf, off);
}

export function encodingLength(pkt: DhcpPacket, opts: EncodeOptions = {}): number {
  return layout(pkt, opts).length;
}

export function encode(pkt: DhcpPacket, opts: EncodeOptions = {}): Buffer {
  if (pkt.chaddr.length > CHADDR_LENGTH) encodeFail(`chaddr is ${pkt.chaddr.length} bytes`);
  const l = layout(pkt, opts);
  const buf = Buffer.alloc(l.length); // zero fill: Pad after End, NUL-terminated strings
  buf[Offset.op] = pkt.op;
  buf[Offset.htype] = pkt.htype;
  buf[Offset.hlen] = pkt.hlen;
  buf[Offset.hops] = pkt.hops;
  buf.writeUInt32BE(pkt.xid >>> 0, Offset.xid);
  buf.writeUInt16BE(pkt.secs & 0xffff, Offset.secs);
  buf.writeUInt16BE(pkt.flags & 0xffff, Offset.flags);
  writeIPv4(buf, pkt.ciaddr, Offset.ciaddr);
  writeIPv4(buf, pkt.yiaddr, Offset.yiaddr);
  writeIPv4(buf, pkt.siaddr, Offset.siaddr);
  writeIPv4(buf, pkt.giaddr, Offset.giaddr);
  pkt.chaddr.copy(buf, Offset.chaddr);
  if (l.sname) writeArea(buf, l.sname, Offset.sname);
  else writeString(buf, pkt.sname, Offset.sname, SNAME_LENGTH, 'sname');
  if (l.file) writeArea(buf, l.file, Offset.file);
  else writeString(buf, pkt.file, Offset.file, FILE_LENGTH, 'file');
  buf.writeUInt32BE(MAGIC_COOKIE, Offset.cookie);
  let off = Offset.options;
  for (const c of l.main) {
    c.copy(buf, off);
    off += c.length;
  }
  if (l.overload) {
    buf[off++] = DhcpOption.Overload;
    buf[off++] = 1;
    buf[off++] = l.overload;
  }
  buf[off] = DhcpOption.End;
  return buf;
}

/** An empty packet with the fixed fields zeroed (tests and the responder start here). */
export function emptyPacket(op: number, chaddr: Buffer): DhcpPacket {
  return {
    op,
    htype: HardwareType.Ethernet,
    hlen: chaddr.length,
    hops: 0,
    xid: 0,
    secs: 0,
    flags: 0,
    ciaddr: 0,
    yiaddr: 0,
    siaddr: 0,
    giaddr: 0,
    chaddr,
    sname: '',
    file: '',
    options: new Map(),
  };
}
