/**
 * TFTP codec byte fixtures, annotated per field (mqtt-packet style). One helper
 * turns each fixture into decode, encode and mirror tests; negative fixtures are
 * named by their failure and must throw DecodeError with that reason.
 */
import test from 'ava';
import { DecodeError } from '../../firmware/core/errors.ts';
import type { TftpPacket } from '../../firmware/protocols/tftp/codec.ts';
import {
  decode,
  encode,
  encodeAck,
  encodeData,
  encodeError,
  encodeOack,
  peekOpcode,
  TftpErrorCode,
  TftpOpcode,
  writeDataHeader,
} from '../../firmware/protocols/tftp/codec.ts';

const s = (text: string): number[] => [...Buffer.from(text, 'latin1')];

interface Positive {
  name: string;
  bytes: number[];
  packet: TftpPacket;
  /** false when the bytes are a leniency the encoder never produces. */
  encode?: boolean;
}

const positive: Positive[] = [
  {
    name: 'RRQ octet without options (pxelinux, tftp-hpa)',
    bytes: [
      0,
      1, //                          opcode RRQ
      ...s('pxelinux.0'),
      0, //         filename
      ...s('octet'),
      0, //              mode
    ],
    packet: { opcode: TftpOpcode.Rrq, filename: 'pxelinux.0', mode: 'octet', options: [] },
  },
  {
    name: 'RRQ netascii (tftp-hpa default mode, upper case on the wire)',
    bytes: [
      0,
      1, //                          opcode RRQ
      ...s('menu.cfg'),
      0, //           filename
      ...s('NETASCII'),
      0, //           mode, case-insensitive (RFC 1350 §5)
    ],
    packet: { opcode: TftpOpcode.Rrq, filename: 'menu.cfg', mode: 'netascii', options: [] },
    encode: false,
  },
  {
    name: 'RRQ edk2 size probe: tsize=0 blksize=1468 windowsize=4',
    bytes: [
      0,
      1, //                          opcode RRQ
      ...s('\\EFI\\BOOT\\bootx64.efi'),
      0, // filename with backslashes
      ...s('octet'),
      0, //              mode
      ...s('tsize'),
      0,
      ...s('0'),
      0, // RFC 2349: ask for the size
      ...s('blksize'),
      0,
      ...s('1468'),
      0, // RFC 2348
      ...s('windowsize'),
      0,
      ...s('4'),
      0, // RFC 7440
    ],
    packet: {
      opcode: TftpOpcode.Rrq,
      filename: '\\EFI\\BOOT\\bootx64.efi',
      mode: 'octet',
      options: [
        { name: 'tsize', value: '0' },
        { name: 'blksize', value: '1468' },
        { name: 'windowsize', value: '4' },
      ],
    },
  },
  {
    name: 'RRQ Windows boot manager: windowsize plus msftwindow=31416',
    bytes: [
      0,
      1, //                          opcode RRQ
      ...s('\\Boot\\x64\\wdsmgfw.efi'),
      0,
      ...s('octet'),
      0,
      ...s('blksize'),
      0,
      ...s('1456'),
      0,
      ...s('windowsize'),
      0,
      ...s('64'),
      0,
      ...s('msftwindow'),
      0,
      ...s('31416'),
      0, // Wireshark packet-tftp.c: round(pi * 10000)
    ],
    packet: {
      opcode: TftpOpcode.Rrq,
      filename: '\\Boot\\x64\\wdsmgfw.efi',
      mode: 'octet',
      options: [
        { name: 'blksize', value: '1456' },
        { name: 'windowsize', value: '64' },
        { name: 'msftwindow', value: '31416' },
      ],
    },
  },
  {
    name: 'RRQ with NUL padding after the last option (tolerated)',
    bytes: [
      0,
      1,
      ...s('a'),
      0,
      ...s('octet'),
      0,
      ...s('blksize'),
      0,
      ...s('512'),
      0,
      0,
      0,
      0, //                       padding, not an option
    ],
    packet: { opcode: TftpOpcode.Rrq, filename: 'a', mode: 'octet', options: [{ name: 'blksize', value: '512' }] },
    encode: false,
  },
  {
    name: 'RRQ keeps option spelling and duplicates for options.ts to judge',
    bytes: [
      0,
      1,
      ...s('f'),
      0,
      ...s('octet'),
      0,
      ...s('BlkSize'),
      0,
      ...s('1024'),
      0,
      ...s('blksize'),
      0,
      ...s('2048'),
      0,
    ],
    packet: {
      opcode: TftpOpcode.Rrq,
      filename: 'f',
      mode: 'octet',
      options: [
        { name: 'BlkSize', value: '1024' },
        { name: 'blksize', value: '2048' },
      ],
    },
  },
  {
    name: 'RRQ filename in UTF-8',
    bytes: [0, 1, ...[...Buffer.from('boot/é.cfg', 'utf8')], 0, ...s('octet'), 0],
    packet: { opcode: TftpOpcode.Rrq, filename: 'boot/é.cfg', mode: 'octet', options: [] },
  },
  {
    name: 'WRQ octet',
    bytes: [
      0,
      2, //                          opcode WRQ
      ...s('upload.bin'),
      0,
      ...s('octet'),
      0,
    ],
    packet: { opcode: TftpOpcode.Wrq, filename: 'upload.bin', mode: 'octet', options: [] },
  },
  {
    name: 'DATA block 1 with 5 bytes',
    bytes: [
      0,
      3, //                          opcode DATA
      0,
      1, //                          block 1
      104,
      101,
      108,
      108,
      111, //       "hello"
    ],
    packet: { opcode: TftpOpcode.Data, block: 1, data: Buffer.from('hello') },
  },
  {
    name: 'DATA block 65535, empty (the last block of a file that fills its blocks)',
    bytes: [
      0,
      3, //                          opcode DATA
      255,
      255, //                      block 65535
    ],
    packet: { opcode: TftpOpcode.Data, block: 65535, data: Buffer.alloc(0) },
  },
  {
    name: 'ACK block 0 (accepts an OACK)',
    bytes: [
      0,
      4, //                          opcode ACK
      0,
      0, //                          block 0
    ],
    packet: { opcode: TftpOpcode.Ack, block: 0 },
  },
  {
    name: 'ACK with msftwindow next-window byte',
    bytes: [
      0,
      4, //                          opcode ACK
      0x12,
      0x34, //                    block 4660
      8, //                             next window: 8 blocks (Wireshark packet-tftp.c)
    ],
    packet: { opcode: TftpOpcode.Ack, block: 0x1234, windowHint: 8 },
  },
  {
    name: 'ERROR 8 from edk2 after the size probe',
    bytes: [
      0,
      5, //                          opcode ERROR
      0,
      8, //                          code 8: option negotiation (RFC 2347)
      ...s('User aborted the transfer'),
      0,
    ],
    packet: { opcode: TftpOpcode.Error, code: 8, message: 'User aborted the transfer' },
  },
  {
    name: 'ERROR without the final NUL (message runs to the end)',
    bytes: [0, 5, 0, 1, ...s('File not found')],
    packet: { opcode: TftpOpcode.Error, code: 1, message: 'File not found' },
    encode: false,
  },
  {
    name: 'ERROR with empty message',
    bytes: [0, 5, 0, 0, 0],
    packet: { opcode: TftpOpcode.Error, code: 0, message: '' },
  },
  {
    name: 'OACK tsize, blksize, windowsize, msftwindow=27182',
    bytes: [
      0,
      6, //                          opcode OACK (RFC 2347)
      ...s('tsize'),
      0,
      ...s('1048576'),
      0,
      ...s('blksize'),
      0,
      ...s('1468'),
      0,
      ...s('windowsize'),
      0,
      ...s('16'),
      0,
      ...s('msftwindow'),
      0,
      ...s('27182'),
      0, // floor(e * 10000)
    ],
    packet: {
      opcode: TftpOpcode.Oack,
      options: [
        { name: 'tsize', value: '1048576' },
        { name: 'blksize', value: '1468' },
        { name: 'windowsize', value: '16' },
        { name: 'msftwindow', value: '27182' },
      ],
    },
  },
];

const negative: { reason: string; bytes: number[] }[] = [
  { reason: 'too-short', bytes: [] },
  { reason: 'too-short', bytes: [0] },
  { reason: 'too-short', bytes: [0, 3, 0] }, // DATA without a block number
  { reason: 'too-short', bytes: [0, 4, 0] }, // ACK without a block number
  { reason: 'too-short', bytes: [0, 5, 0] }, // ERROR without a code
  { reason: 'unknown-opcode', bytes: [0, 0, 0, 1] },
  { reason: 'unknown-opcode', bytes: [0, 7, 0, 1] },
  { reason: 'unknown-opcode', bytes: [1, 1, ...s('a'), 0, ...s('octet'), 0] }, // 257: opcode is 16 bits
  { reason: 'filename-unterminated', bytes: [0, 1, ...s('pxelinux.0')] },
  { reason: 'empty-filename', bytes: [0, 1, 0, ...s('octet'), 0] },
  { reason: 'mode-unterminated', bytes: [0, 1, ...s('a'), 0, ...s('octet')] },
  { reason: 'mode-unterminated', bytes: [0, 1, ...s('a'), 0] },
  { reason: 'unknown-mode', bytes: [0, 1, ...s('a'), 0, ...s('binary'), 0] },
  { reason: 'unknown-mode', bytes: [0, 2, ...s('a'), 0, 0] }, // empty mode
  { reason: 'odd-option-list', bytes: [0, 1, ...s('a'), 0, ...s('octet'), 0, ...s('blksize'), 0] },
  { reason: 'option-unterminated', bytes: [0, 1, ...s('a'), 0, ...s('octet'), 0, ...s('blksize')] },
  { reason: 'option-unterminated', bytes: [0, 1, ...s('a'), 0, ...s('octet'), 0, ...s('blksize'), 0, ...s('1468')] },
  { reason: 'empty-option-name', bytes: [0, 1, ...s('a'), 0, ...s('octet'), 0, 0, ...s('1468'), 0] },
  { reason: 'odd-option-list', bytes: [0, 6, ...s('tsize'), 0] },
];

for (const f of positive) {
  const bytes = Buffer.from(f.bytes);
  test(`decode: ${f.name}`, (t) => {
    t.deepEqual(decode(bytes), f.packet);
  });
  if (f.encode !== false) {
    test(`encode: ${f.name}`, (t) => {
      t.is(encode(f.packet).toString('hex'), bytes.toString('hex'));
    });
  }
  test(`mirror: ${f.name}`, (t) => {
    const once = decode(bytes);
    t.deepEqual(decode(encode(once)), once);
  });
}

for (const f of negative) {
  test(`reject (${f.reason}): ${Buffer.from(f.bytes).toString('hex') || 'empty'}`, (t) => {
    const e = t.throws(() => decode(Buffer.from(f.bytes)), { instanceOf: DecodeError });
    t.is(e?.reason, f.reason);
  });
}

test('the helpers write the same bytes as encode()', (t) => {
  t.deepEqual(encodeAck(65536 + 7), Buffer.from([0, 4, 0, 7])); // block numbers are 16 bits on the wire
  t.deepEqual(encodeAck(1, 300), Buffer.from([0, 4, 0, 1, 44])); // one byte: 300 & 0xff
  t.deepEqual(encodeError(TftpErrorCode.UnknownTransferId, 'x'), Buffer.from([0, 5, 0, 5, 120, 0]));
  t.deepEqual(encodeOack([]), Buffer.from([0, 6]));
  t.deepEqual(encodeData(0x0102, Buffer.from([9])), Buffer.from([0, 3, 1, 2, 9]));
  const buf = Buffer.alloc(6, 0xee);
  writeDataHeader(buf, 0xabcd);
  t.deepEqual(buf, Buffer.from([0, 3, 0xab, 0xcd, 0xee, 0xee]));
});

test('peekOpcode reads the opcode without decoding', (t) => {
  t.is(peekOpcode(Buffer.from([0, 4, 0, 1])), TftpOpcode.Ack);
  t.is(peekOpcode(Buffer.from([0])), 0);
  t.is(peekOpcode(Buffer.alloc(0)), 0);
});

test('a bad UTF-8 filename decodes with U+FFFD (the resolver refuses it)', (t) => {
  const p = decode(Buffer.from([0, 1, 0x66, 0xff, 0, ...s('octet'), 0]));
  t.is(p.opcode, TftpOpcode.Rrq);
  if (p.opcode === TftpOpcode.Rrq) t.is(p.filename, 'f\ufffd');
});
