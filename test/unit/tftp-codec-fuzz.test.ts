/**
 * Decoding garbage may only ever throw the codec's own DecodeError. Whatever
 * decodes must encode and decode again to the same packet.
 */
import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import { DecodeError } from '../../firmware/core/errors.ts';
import { decode, encode, TftpOpcode } from '../../firmware/protocols/tftp/codec.ts';
import { rng } from '../helpers/rng.ts';

const SEED = Number(process.env['TFTP_FUZZ_SEED'] ?? 0x7f7f) >>> 0;

const SEEDS = [
  Buffer.from('\x00\x01boot.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00', 'latin1'),
  Buffer.from('\x00\x06tsize\x001024\x00msftwindow\x0027182\x00', 'latin1'),
  Buffer.from('\x00\x05\x00\x08User aborted the transfer\x00', 'latin1'),
  Buffer.from([0, 4, 0, 1, 8]),
  Buffer.from([0, 3, 0, 1, 1, 2, 3]),
];

test(`100,000 random and mutated datagrams throw only DecodeError (seed ${SEED})`, (t) => {
  const rand = rng(SEED);
  const int = (n: number) => Math.floor(rand() * n);
  const alphabet = [0, 0, 0, 0x30, 0x31, 0x38, 0x61, 0x6f, 0x63, 0x74, 0x65, 0xff];
  const reasons = new Map<string, number>();
  const opcodes = new Map<number, number>();
  for (let i = 0; i < 100_000; i++) {
    let buf: Buffer;
    switch (i % 4) {
      case 0: {
        // noise, any length up to a jumbo datagram
        buf = Buffer.allocUnsafe(int(i % 100 === 0 ? 9000 : 600));
        for (let j = 0; j < buf.length; j++) buf[j] = int(256);
        break;
      }
      case 1: {
        // a valid opcode followed by NUL-rich noise: reaches the string parsers
        buf = Buffer.allocUnsafe(2 + int(80));
        buf[0] = 0;
        buf[1] = 1 + int(7);
        for (let j = 2; j < buf.length; j++) buf[j] = alphabet[int(alphabet.length)]!;
        break;
      }
      case 2: {
        // a real packet with a few bytes flipped
        buf = Buffer.from(SEEDS[int(SEEDS.length)]!);
        for (let k = 0, n = 1 + int(4); k < n; k++) buf[int(buf.length)] = int(256);
        break;
      }
      default: {
        // a real packet cut short or extended
        const seed = SEEDS[int(SEEDS.length)]!;
        buf = rand() < 0.5 ? seed.subarray(0, int(seed.length + 1)) : Buffer.concat([seed, Buffer.from([int(256)])]);
      }
    }
    try {
      const p = decode(buf);
      opcodes.set(p.opcode, (opcodes.get(p.opcode) ?? 0) + 1);
      // Mode is normalised to lower case and NUL padding dropped on decode: the rest mirrors.
      const again = decode(encode(p));
      if (!isDeepStrictEqual(again, p)) {
        t.fail(`input ${buf.toString('hex')} does not mirror`);
        return;
      }
    } catch (e) {
      if (!(e instanceof DecodeError)) {
        t.fail(`input ${buf.toString('hex')} threw ${(e as Error).stack}`);
        return;
      }
      reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
    }
  }
  t.log('rejections', Object.fromEntries(reasons));
  t.log('decoded', Object.fromEntries(opcodes));
  // The generator must reach both outcomes and the request parser's checks, or it proves nothing.
  for (const r of ['too-short', 'unknown-opcode', 'filename-unterminated', 'unknown-mode', 'odd-option-list']) {
    t.true((reasons.get(r) ?? 0) > 0, `no input was rejected as ${r}`);
  }
  for (const op of [TftpOpcode.Rrq, TftpOpcode.Data, TftpOpcode.Ack, TftpOpcode.Error, TftpOpcode.Oack]) {
    t.true((opcodes.get(op) ?? 0) > 0, `no input decoded as opcode ${op}`);
  }
});
