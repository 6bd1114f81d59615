/**
 * Decoding garbage may only ever throw the codec's own DecodeError (dns-packet and
 * mqtt-packet have the same test). Whatever decodes must also encode, mirror and classify.
 */
import test from 'ava';
import { DecodeError } from '../../firmware/core/errors.ts';
import { classifyClient } from '../../firmware/protocols/dhcp/classify.ts';
import { decode, encode } from '../../firmware/protocols/dhcp/codec.ts';
import { positive } from '../fixtures/dhcp/annotated.ts';
import { hexFixtureNames, loadHex } from '../helpers/dhcp.ts';
import { rng } from '../helpers/rng.ts';

const SEED = Number(process.env['DHCP_FUZZ_SEED'] ?? 0x5eed) >>> 0;

test(`100,000 random and mutated buffers throw only DecodeError (seed ${SEED})`, (t) => {
  const rand = rng(SEED);
  const int = (n: number) => Math.floor(rand() * n);
  const seeds = [...hexFixtureNames().map((n) => loadHex(n)), ...positive.map((f) => Buffer.from(f.bytes))];
  const header = Buffer.from(seeds[0]!.subarray(0, 240));
  const reasons = new Map<string, number>();
  let decoded = 0;
  const started = Date.now();
  for (let i = 0; i < 100_000; i++) {
    let buf: Buffer;
    const kind = i % 4;
    if (kind === 0) {
      // pure noise, any length
      buf = Buffer.alloc(int(700));
      for (let j = 0; j < buf.length; j++) buf[j] = int(256);
    } else if (kind === 1) {
      // a valid header and cookie, random options area (with overload bits sometimes set)
      buf = Buffer.alloc(240 + int(400));
      header.copy(buf);
      for (let j = 240; j < buf.length; j++) buf[j] = int(256);
      if (rand() < 0.3 && buf.length > 246) buf.set([53, 1, 1, 52, 1, 1 + int(3)], 240);
      if (rand() < 0.1) buf.set([52, 1, 1 + int(3)], rand() < 0.5 ? 108 : 44); // overload inside file/sname
      if (rand() < 0.3) for (let j = 44; j < 236; j++) buf[j] = int(256);
    } else {
      // a real packet with a few bytes flipped, and sometimes truncated or extended
      const base = seeds[int(seeds.length)]!;
      buf = Buffer.from(base);
      const flips = 1 + int(8);
      for (let f = 0; f < flips; f++) buf[int(buf.length)] = int(256);
      if (rand() < 0.2) buf = buf.subarray(0, int(buf.length));
      if (rand() < 0.1) buf = Buffer.concat([buf, Buffer.from([int(256), int(256), int(256)])]);
    }
    try {
      const pkt = decode(buf);
      decoded++;
      classifyClient(pkt);
      const again = decode(encode(pkt));
      if (again.options.size !== pkt.options.size) t.fail(`mirror lost options at iteration ${i}`);
    } catch (e) {
      if (!(e instanceof DecodeError)) {
        t.fail(
          `iteration ${i} (seed ${SEED}) threw ${(e as Error).name}: ${(e as Error).message}\n${buf.toString('hex')}`,
        );
        return;
      }
      reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
    }
  }
  t.log(
    `decoded ${decoded}; rejected by reason ${JSON.stringify(Object.fromEntries(reasons))}; ${Date.now() - started} ms`,
  );
  t.true(decoded > 1000, 'the mutations should leave many packets decodable');
  for (const r of ['truncated', 'bad-op', 'bad-magic', 'option-overrun', 'overload-loop']) t.true(reasons.has(r), r);
});
