/**
 * TFTP wire codec: bytes <-> packets, pure. RFC 1350 (the protocol), RFC 2347
 * (option extension and OACK), and the one-byte window hint of Microsoft's
 * variable-window extension on ACK. Decoding garbage only ever throws
 * `DecodeError`, whose `reason` is a short stable token counted by the server.
 */
import { DecodeError } from '../../core/errors.ts';

/** RFC 1350 §5 (opcodes 1-5) and RFC 2347 (opcode 6, OACK). */
export const TftpOpcode = {
  Rrq: 1,
  Wrq: 2,
  Data: 3,
  Ack: 4,
  Error: 5,
  Oack: 6,
} as const;
export type TftpOpcode = (typeof TftpOpcode)[keyof typeof TftpOpcode];

/** RFC 1350 appendix "Error Codes" (0-7) and RFC 2347 (8: option negotiation refused). */
export const TftpErrorCode = {
  NotDefined: 0,
  FileNotFound: 1,
  AccessViolation: 2,
  DiskFull: 3,
  IllegalOperation: 4,
  UnknownTransferId: 5,
  FileExists: 6,
  NoSuchUser: 7,
  OptionNegotiation: 8,
} as const;
export type TftpErrorCode = (typeof TftpErrorCode)[keyof typeof TftpErrorCode];

/** RFC 1350 §5: the three transfer modes (case-insensitive on the wire). */
export type TftpMode = 'netascii' | 'octet' | 'mail';
const MODES: Record<string, TftpMode> = { netascii: 'netascii', octet: 'octet', mail: 'mail' };

/** One option as it appeared on the wire: name keeps the client's spelling (RFC 2347: case-insensitive). */
export interface TftpOption {
  name: string;
  value: string;
}

export interface RequestPacket {
  opcode: typeof TftpOpcode.Rrq | typeof TftpOpcode.Wrq;
  filename: string;
  mode: TftpMode;
  /** In wire order, duplicates kept: options.ts decides what they mean. */
  options: TftpOption[];
}
export interface DataPacket {
  opcode: typeof TftpOpcode.Data;
  /** 16-bit block number as on the wire. */
  block: number;
  data: Buffer;
}
export interface AckPacket {
  opcode: typeof TftpOpcode.Ack;
  block: number;
  /**
   * Microsoft variable-window extension (Wireshark packet-tftp.c, "msftwindow"):
   * once msftwindow is agreed, every ACK carries one extra byte, the number of
   * DATA blocks the client wants before its next ACK. Absent on plain ACKs.
   */
  windowHint?: number;
}
export interface ErrorPacket {
  opcode: typeof TftpOpcode.Error;
  code: number;
  message: string;
}
export interface OackPacket {
  opcode: typeof TftpOpcode.Oack;
  options: TftpOption[];
}
export type TftpPacket = RequestPacket | DataPacket | AckPacket | ErrorPacket | OackPacket;

/** RFC 1350 §5: DATA and ACK carry a 2-byte opcode and a 2-byte block number. */
export const DATA_HEADER_LENGTH = 4;

/** Reads the opcode without decoding (0 when the datagram is shorter than 2 bytes). */
export function peekOpcode(buf: Buffer): number {
  return buf.length >= 2 ? buf.readUInt16BE(0) : 0;
}

export function decode(buf: Buffer): TftpPacket {
  if (buf.length < 2) throw new DecodeError('too-short', `datagram of ${buf.length} bytes`);
  const opcode = buf.readUInt16BE(0);
  switch (opcode) {
    case TftpOpcode.Rrq:
    case TftpOpcode.Wrq:
      return decodeRequest(buf, opcode);
    case TftpOpcode.Data:
      if (buf.length < DATA_HEADER_LENGTH) throw new DecodeError('too-short', 'DATA without a block number');
      return { opcode, block: buf.readUInt16BE(2), data: buf.subarray(DATA_HEADER_LENGTH) };
    case TftpOpcode.Ack: {
      if (buf.length < 4) throw new DecodeError('too-short', 'ACK without a block number');
      const ack: AckPacket = { opcode, block: buf.readUInt16BE(2) };
      // msftwindow: the fifth byte, when present, is the next window size.
      if (buf.length >= 5) ack.windowHint = buf[4];
      return ack;
    }
    case TftpOpcode.Error: {
      if (buf.length < 4) throw new DecodeError('too-short', 'ERROR without a code');
      // RFC 1350 §5 wants a NUL-terminated message; clients that omit the NUL
      // still mean the rest of the datagram, so it is taken as the message.
      let end = buf.indexOf(0, 4);
      if (end < 0) end = buf.length;
      return { opcode, code: buf.readUInt16BE(2), message: buf.toString('latin1', 4, end) };
    }
    case TftpOpcode.Oack:
      return { opcode, options: decodeOptions(buf, 2) };
    default:
      throw new DecodeError('unknown-opcode', `opcode ${opcode}`);
  }
}

function decodeRequest(buf: Buffer, opcode: typeof TftpOpcode.Rrq | typeof TftpOpcode.Wrq): RequestPacket {
  // RFC 1350 §5: | opcode | filename | 0 | mode | 0 | ; RFC 2347 appends | opt | 0 | value | 0 | ...
  const nameEnd = buf.indexOf(0, 2);
  if (nameEnd < 0) throw new DecodeError('filename-unterminated', 'request filename has no NUL');
  if (nameEnd === 2) throw new DecodeError('empty-filename', 'request filename is empty');
  const modeEnd = buf.indexOf(0, nameEnd + 1);
  if (modeEnd < 0) throw new DecodeError('mode-unterminated', 'request mode has no NUL');
  const modeText = buf.toString('latin1', nameEnd + 1, modeEnd).toLowerCase();
  const mode = MODES[modeText];
  if (mode === undefined) throw new DecodeError('unknown-mode', `mode "${modeText.slice(0, 32)}"`);
  // Filenames are bytes; UTF-8 is what boot trees use. Invalid sequences become
  // U+FFFD, which the file resolver refuses.
  const filename = buf.toString('utf8', 2, nameEnd);
  return { opcode, filename, mode, options: decodeOptions(buf, modeEnd + 1) };
}

/** RFC 2347: a sequence of NUL-terminated name/value pairs up to the end of the datagram. */
function decodeOptions(buf: Buffer, start: number): TftpOption[] {
  const options: TftpOption[] = [];
  let pos = start;
  while (pos < buf.length) {
    const nameEnd = buf.indexOf(0, pos);
    if (nameEnd < 0) throw new DecodeError('option-unterminated', 'option name has no NUL');
    if (nameEnd === pos) {
      // Leniency: NUL padding after the last complete pair is not an option.
      if (isAllZero(buf, pos)) break;
      throw new DecodeError('empty-option-name', 'option name is empty');
    }
    if (nameEnd + 1 >= buf.length) throw new DecodeError('odd-option-list', 'option without a value');
    const valueEnd = buf.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) throw new DecodeError('option-unterminated', 'option value has no NUL');
    options.push({ name: buf.toString('latin1', pos, nameEnd), value: buf.toString('latin1', nameEnd + 1, valueEnd) });
    pos = valueEnd + 1;
  }
  return options;
}

function isAllZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

export function encode(p: TftpPacket): Buffer {
  switch (p.opcode) {
    case TftpOpcode.Rrq:
    case TftpOpcode.Wrq:
      return encodeRequest(p);
    case TftpOpcode.Data:
      return encodeData(p.block, p.data);
    case TftpOpcode.Ack:
      return encodeAck(p.block, p.windowHint);
    case TftpOpcode.Error:
      return encodeError(p.code, p.message);
    case TftpOpcode.Oack:
      return encodeOack(p.options);
  }
}

export function encodeRequest(p: Omit<RequestPacket, 'opcode'> & { opcode?: RequestPacket['opcode'] }): Buffer {
  const parts: Buffer[] = [u16(p.opcode ?? TftpOpcode.Rrq), cstr(p.filename, 'utf8'), cstr(p.mode, 'latin1')];
  for (const o of p.options) parts.push(cstr(o.name, 'latin1'), cstr(o.value, 'latin1'));
  return Buffer.concat(parts);
}

export function encodeData(block: number, data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(DATA_HEADER_LENGTH + data.length);
  writeDataHeader(out, block);
  data.copy(out, DATA_HEADER_LENGTH);
  return out;
}

/** Writes the DATA header in place (the transfer fills reusable buffers with it). */
export function writeDataHeader(out: Buffer, block: number): void {
  out[0] = 0;
  out[1] = TftpOpcode.Data;
  out[2] = (block >>> 8) & 0xff;
  out[3] = block & 0xff;
}

export function encodeAck(block: number, windowHint?: number): Buffer {
  const out = Buffer.allocUnsafe(windowHint === undefined ? 4 : 5);
  out.writeUInt16BE(TftpOpcode.Ack, 0);
  out.writeUInt16BE(block & 0xffff, 2);
  if (windowHint !== undefined) out[4] = windowHint & 0xff;
  return out;
}

export function encodeError(code: number, message: string): Buffer {
  return Buffer.concat([u16(TftpOpcode.Error), u16(code), cstr(message, 'latin1')]);
}

export function encodeOack(options: readonly TftpOption[]): Buffer {
  const parts: Buffer[] = [u16(TftpOpcode.Oack)];
  for (const o of options) parts.push(cstr(o.name, 'latin1'), cstr(o.value, 'latin1'));
  return Buffer.concat(parts);
}

function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n & 0xffff, 0);
  return b;
}

function cstr(s: string, enc: BufferEncoding): Buffer {
  const body = Buffer.from(s, enc);
  const out = Buffer.allocUnsafe(body.length + 1);
  body.copy(out, 0);
  out[body.length] = 0;
  return out;
}
