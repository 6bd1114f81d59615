/**
 * DHCP options: the TLV area codec (RFC 2132 §2, RFC 3396 long options), sub-option
 * blocks (option 43, 82, 175) and typed accessors for the options PXE needs.
 *
 * Options are an ordered map code -> value bytes. A value is the concatenation of
 * every instance of that code, in the order RFC 3396 §6 gives (options field, then
 * `file`, then `sname`), so a long option is one entry here. The map never holds
 * Pad (0), End (255) or Overload (52): those are structure, and the codec handles them.
 *
 * Accessors are lenient: a value of the wrong shape reads as `undefined` (or an
 * empty list) and never throws. Decoding already accepted the packet; a malformed
 * option must not kill a request that can still be answered.
 */
import { DecodeError } from '../../core/errors.ts';
import { DhcpOption } from './constants.ts';

export type DhcpOptions = Map<number, Buffer>;

/** Where a TLV area lives, for error messages and the overload rule. */
export type OptionArea = 'options' | 'file' | 'sname';

/**
 * Reads the TLVs of `buf[start, end)` into `into`, concatenating repeated codes
 * (RFC 3396 §5). Returns the value of option 52 if the area holds one.
 * Throws DecodeError('option-overrun') when a length runs past `end`,
 * DecodeError('overload-loop') when option 52 appears inside `file` or `sname`
 * (RFC 2132 §9.3 allows it only in the options field; honouring it there could loop),
 * DecodeError('bad-overload') when option 52 is not one byte of 1, 2 or 3.
 */
export function readOptionArea(
  buf: Uint8Array,
  start: number,
  end: number,
  area: OptionArea,
  into: DhcpOptions,
): number | undefined {
  let overload: number | undefined;
  let i = start;
  while (i < end) {
    const code = buf[i]!;
    if (code === DhcpOption.Pad) {
      i++;
      continue;
    }
    if (code === DhcpOption.End) break;
    if (i + 1 >= end) throw new DecodeError('option-overrun', `option ${code} in ${area} has no length byte`);
    const len = buf[i + 1]!;
    const from = i + 2;
    const to = from + len;
    if (to > end)
      throw new DecodeError('option-overrun', `option ${code} in ${area} runs ${to - end} bytes past the end`);
    if (code === DhcpOption.Overload) {
      if (area !== 'options') throw new DecodeError('overload-loop', `option 52 inside ${area}`);
      if (overload !== undefined) throw new DecodeError('bad-overload', 'option 52 appears twice');
      if (len !== 1 || buf[from]! < 1 || buf[from]! > 3)
        throw new DecodeError('bad-overload', 'option 52 must be 1, 2 or 3');
      overload = buf[from]!;
    } else {
      const value = Buffer.from(buf.subarray(from, to));
      const prev = into.get(code);
      into.set(code, prev === undefined ? value : Buffer.concat([prev, value]));
    }
    i = to;
  }
  return overload;
}

/**
 * One option as TLV chunks: values longer than 255 bytes become several instances
 * of the same code (RFC 3396 §5); an empty value is one chunk with length 0.
 */
export function optionChunks(code: number, value: Uint8Array): Buffer[] {
  const chunks: Buffer[] = [];
  let off = 0;
  do {
    const n = Math.min(255, value.length - off);
    const c = Buffer.allocUnsafe(2 + n);
    c[0] = code;
    c[1] = n;
    c.set(value.subarray(off, off + n), 2);
    chunks.push(c);
    off += n;
  } while (off < value.length);
  return chunks;
}

/** Codes the options map may hold (everything but Pad, End and Overload). */
export function isCarriedOption(code: number): boolean {
  return code > 0 && code < 255 && code !== DhcpOption.Overload;
}

// ---------------------------------------------------------------------------
// Sub-option blocks (option 43 for PXE, 82 for relays, 175 for iPXE)

/**
 * Decodes an encapsulated block (same TLV form as the options field, RFC 2132 §8.4).
 * Repeated codes are concatenated. Pad is skipped and End stops. Returns undefined if
 * a length runs past the block: vendor data is not ours to reject the packet over.
 */
export function decodeSubOptions(value: Uint8Array): Map<number, Buffer> | undefined {
  const out = new Map<number, Buffer>();
  let i = 0;
  while (i < value.length) {
    const code = value[i]!;
    if (code === 0) {
      i++;
      continue;
    }
    if (code === 255) break;
    if (i + 1 >= value.length) return undefined;
    const len = value[i + 1]!;
    if (i + 2 + len > value.length) return undefined;
    const v = Buffer.from(value.subarray(i + 2, i + 2 + len));
    const prev = out.get(code);
    out.set(code, prev ? Buffer.concat([prev, v]) : v);
    i += 2 + len;
  }
  return out;
}

/**
 * Encodes sub-options in map order. PXE 2.1 §2.4 ends option 43 with PXE_END (255),
 * and iPXE ends option 175 with End too; RFC 3046 option 82 has no terminator.
 */
export function encodeSubOptions(subs: Iterable<[number, Uint8Array]>, terminate = true): Buffer {
  const parts: Buffer[] = [];
  for (const [code, v] of subs) parts.push(...optionChunks(code, v));
  if (terminate) parts.push(Buffer.from([255]));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------
// Scalar readers and writers

export function getU8(o: DhcpOptions, code: number): number | undefined {
  const v = o.get(code);
  return v?.length === 1 ? v[0] : undefined;
}
export function getU16(o: DhcpOptions, code: number): number | undefined {
  const v = o.get(code);
  return v?.length === 2 ? v.readUInt16BE(0) : undefined;
}
export function getU32(o: DhcpOptions, code: number): number | undefined {
  const v = o.get(code);
  return v?.length === 4 ? v.readUInt32BE(0) : undefined;
}
/** An IPv4 address as an unsigned 32-bit number (see core/net.ts). */
export function getIPv4(o: DhcpOptions, code: number): number | undefined {
  return getU32(o, code);
}
export function getIPv4List(o: DhcpOptions, code: number): number[] | undefined {
  const v = o.get(code);
  if (!v || v.length === 0 || v.length % 4 !== 0) return undefined;
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 4) out.push(v.readUInt32BE(i));
  return out;
}
/**
 * NVT ASCII text (RFC 2132 §2) read as latin1 so every byte survives. Some ROMs
 * NUL-terminate strings they should not; trailing NULs are dropped.
 */
export function getString(o: DhcpOptions, code: number): string | undefined {
  const v = o.get(code);
  if (!v) return undefined;
  let end = v.length;
  while (end > 0 && v[end - 1] === 0) end--;
  return v.toString('latin1', 0, end);
}

export function setU8(o: DhcpOptions, code: number, n: number): void {
  o.set(code, Buffer.from([n & 0xff]));
}
export function setU16(o: DhcpOptions, code: number, n: number): void {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff);
  o.set(code, b);
}
export function setU32(o: DhcpOptions, code: number, n: number): void {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  o.set(code, b);
}
export const setIPv4 = setU32;
export function setIPv4List(o: DhcpOptions, code: number, list: readonly number[]): void {
  const b = Buffer.alloc(4 * list.length);
  list.forEach((n, i) => {
    b.writeUInt32BE(n >>> 0, 4 * i);
  });
  o.set(code, b);
}
export function setString(o: DhcpOptions, code: number, s: string): void {
  o.set(code, Buffer.from(s, 'latin1'));
}

// ---------------------------------------------------------------------------
// Typed accessors for what PXE needs

/** Option 53 (RFC 2132 §9.6). */
export function getMessageType(o: DhcpOptions): number | undefined {
  return getU8(o, DhcpOption.MessageType);
}
/** Option 54 (RFC 2132 §9.7). */
export function getServerId(o: DhcpOptions): number | undefined {
  return getIPv4(o, DhcpOption.ServerIdentifier);
}
/** Option 50 (RFC 2132 §9.1). */
export function getRequestedIp(o: DhcpOptions): number | undefined {
  return getIPv4(o, DhcpOption.RequestedIpAddress);
}
/** Option 51 (RFC 2132 §9.2), seconds. */
export function getLeaseTime(o: DhcpOptions): number | undefined {
  return getU32(o, DhcpOption.IpAddressLeaseTime);
}
/** Option 57 (RFC 2132 §9.10): the largest DHCP message the client accepts; below 576 is invalid. */
export function getMaxMessageSize(o: DhcpOptions): number | undefined {
  const n = getU16(o, DhcpOption.MaxMessageSize);
  return n !== undefined && n >= 576 ? n : undefined;
}
/** Option 55 (RFC 2132 §9.8). */
export function getParameterRequestList(o: DhcpOptions): number[] {
  const v = o.get(DhcpOption.ParameterRequestList);
  return v ? [...v] : [];
}
/** Option 61 (RFC 2132 §9.14): opaque; usually 0x01 followed by the MAC. */
export function getClientId(o: DhcpOptions): Buffer | undefined {
  const v = o.get(DhcpOption.ClientId);
  return v && v.length >= 2 ? v : undefined;
}
/** Option 60 (RFC 2132 §9.13). */
export function getVendorClass(o: DhcpOptions): string | undefined {
  return getString(o, DhcpOption.VendorClassId);
}
/** Option 66 (RFC 2132 §9.4). */
export function getTftpServerName(o: DhcpOptions): string | undefined {
  return getString(o, DhcpOption.TftpServerName);
}
/** Option 67 (RFC 2132 §9.5). */
export function getBootfileName(o: DhcpOptions): string | undefined {
  return getString(o, DhcpOption.BootfileName);
}

/** Option 93 (RFC 4578 §2.1): a list of 16-bit architecture types, most preferred first. */
export function getClientArch(o: DhcpOptions): number[] | undefined {
  const v = o.get(DhcpOption.ClientArch);
  if (!v || v.length === 0 || v.length % 2 !== 0) return undefined;
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 2) out.push(v.readUInt16BE(i));
  return out;
}

export interface ClientNdi {
  /** 1 = UNDI (RFC 4578 §2.2). */
  type: number;
  major: number;
  minor: number;
}
/** Option 94 (RFC 4578 §2.2): three bytes, interface type then UNDI major and minor version. */
export function getClientNdi(o: DhcpOptions): ClientNdi | undefined {
  const v = o.get(DhcpOption.ClientNdi);
  if (v?.length !== 3) return undefined;
  return { type: v[0]!, major: v[1]!, minor: v[2]! };
}

/**
 * Option 97 (RFC 4578 §2.3): type 0 then a 16-byte UUID. Returns the 16 bytes as
 * sent, or undefined when absent or of another shape.
 */
export function getClientUuid(o: DhcpOptions): Buffer | undefined {
  const v = o.get(DhcpOption.ClientUuid);
  if (v?.length !== 17 || v[0] !== 0) return undefined;
  return v.subarray(1);
}

/** 16 bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, in the order given. */
export function formatUuid(b: Uint8Array): string {
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * Option 97 bytes as the UUID people see (dmidecode, the firmware setup screen, QEMU's
 * -uuid). Clients copy the SMBIOS bytes, whose first three fields are little-endian
 * (SMBIOS 2.6+ §7.2.1), so those fields are swapped here. Both iPXE and edk2 do this:
 * ipxe-bios.hex, ipxe-efi.hex and edk2-pxe.hex were captured with
 * -uuid 7a8b9c0d-1e2f-3a4b-… and all carry 0d9c8b7a 2f1e 4b3a ….
 */
export function formatSmbiosUuid(b: Uint8Array): string {
  const s = Buffer.from(b);
  const swapped = Buffer.concat([
    Buffer.from(s.subarray(0, 4)).reverse(),
    Buffer.from(s.subarray(4, 6)).reverse(),
    Buffer.from(s.subarray(6, 8)).reverse(),
    s.subarray(8, 16),
  ]);
  return formatUuid(swapped);
}

/**
 * Option 77. RFC 3004 §4 makes it a list of length-prefixed opaque classes, but iPXE
 * (and some others) send the bare string "iPXE" (length byte 'i' = 105 then overruns).
 * The value is read as RFC 3004 only when the length bytes exactly tile it; otherwise
 * it is one plain string. Fixtures: ipxe-bios.hex carries iPXE's plain form, rfc3004-user-class in the annotated set the list form.
 */
export function getUserClasses(o: DhcpOptions): string[] {
  const v = o.get(DhcpOption.UserClass);
  if (!v || v.length === 0) return [];
  const list: string[] = [];
  let i = 0;
  while (i < v.length) {
    const n = v[i]!;
    if (n === 0 || i + 1 + n > v.length) break;
    list.push(v.toString('latin1', i + 1, i + 1 + n));
    i += 1 + n;
  }
  if (i === v.length) return list;
  return [getString(o, DhcpOption.UserClass)!];
}

/** Option 77 in RFC 3004 form. */
export function setUserClasses(o: DhcpOptions, classes: readonly string[]): void {
  o.set(
    DhcpOption.UserClass,
    Buffer.concat(classes.map((c) => Buffer.concat([Buffer.from([c.length]), Buffer.from(c, 'latin1')]))),
  );
}

/** Option 43 as sub-options (PXE 2.1 §2.4 when option 60 is PXEClient). */
export function getVendorSpecific(o: DhcpOptions): Map<number, Buffer> | undefined {
  const v = o.get(DhcpOption.VendorSpecific);
  return v ? decodeSubOptions(v) : undefined;
}
/** Option 175, iPXE's encapsulated options (present whenever the client is iPXE). */
export function getIpxeEncap(o: DhcpOptions): Map<number, Buffer> | undefined {
  const v = o.get(DhcpOption.IpxeEncap);
  return v ? decodeSubOptions(v) : undefined;
}
/**
 * Option 82 (RFC 3046): kept raw, because RFC 3046 §2.2 requires the server to echo
 * it verbatim in replies to the relay. Sub-options are for logging only.
 */
export function getRelayAgentInfo(o: DhcpOptions): Buffer | undefined {
  return o.get(DhcpOption.RelayAgentInfo);
}

/** Option 1 (RFC 2132 §3.3). */
export function getSubnetMask(o: DhcpOptions): number | undefined {
  return getIPv4(o, DhcpOption.SubnetMask);
}
/** Option 3 (RFC 2132 §3.5). */
export function getRouters(o: DhcpOptions): number[] | undefined {
  return getIPv4List(o, DhcpOption.Router);
}
/** Option 6 (RFC 2132 §3.8). */
export function getDnsServers(o: DhcpOptions): number[] | undefined {
  return getIPv4List(o, DhcpOption.DomainNameServer);
}
/** Option 28 (RFC 2132 §5.3). */
export function getBroadcastAddress(o: DhcpOptions): number | undefined {
  return getIPv4(o, DhcpOption.BroadcastAddress);
}
