import test from 'ava';
import { BootboxError, DecodeError } from '../../firmware/core/errors.ts';
import { decode, emptyPacket, encode, encodingLength } from '../../firmware/protocols/dhcp/codec.ts';
import { DhcpOption, MessageType } from '../../firmware/protocols/dhcp/constants.ts';
import { getUserClasses, getVendorSpecific } from '../../firmware/protocols/dhcp/options.ts';
import { negative, positive } from '../fixtures/dhcp/annotated.ts';
import { seq } from '../helpers/dhcp.ts';

// One helper turns each annotated fixture into decode, encode and mirror tests.
for (const f of positive) {
  const bytes = Buffer.from(f.bytes);
  test(`decode: ${f.name}`, (t) => {
    t.deepEqual(decode(bytes), f.packet);
  });
  if (f.encode !== false) {
    test(`encode: ${f.name}`, (t) => {
      const out = encode(f.packet, f.encodeOptions);
      t.is(out.length, bytes.length);
      t.is(out.toString('hex'), bytes.toString('hex'));
      t.is(encodingLength(f.packet, f.encodeOptions), bytes.length);
    });
  }
  test(`mirror: ${f.name}`, (t) => {
    const once = decode(bytes);
    t.deepEqual(decode(encode(once, f.encodeOptions)), once);
    t.deepEqual(decode(encode(once)), once);
  });
}

for (const f of negative) {
  test(`reject: ${f.name}`, (t) => {
    const e = t.throws(() => decode(Buffer.from(f.bytes)), { instanceOf: DecodeError });
    t.is(e?.reason, f.reason);
  });
}

test('decode accepts a Uint8Array view at an offset', (t) => {
  const inner = Buffer.from(positive[0]!.bytes);
  const outer = new Uint8Array(inner.length + 10);
  outer.set(inner, 7);
  t.deepEqual(decode(outer.subarray(7, 7 + inner.length)), positive[0]!.packet);
});

test('decoded values do not alias the input buffer', (t) => {
  const bytes = Buffer.from(positive[1]!.bytes);
  const pkt = decode(bytes);
  bytes.fill(0xee);
  t.deepEqual(pkt, positive[1]!.packet);
});

test('a missing End option is tolerated', (t) => {
  const bytes = Buffer.from(positive[0]!.bytes.slice(0, 243)); // cookie + 53,1,1 and nothing else
  t.is(decode(bytes).options.get(DhcpOption.MessageType)![0], MessageType.Discover);
});

test('typed views of the annotated fixtures', (t) => {
  const offer = decode(Buffer.from(positive[1]!.bytes));
  t.deepEqual(getVendorSpecific(offer.options), new Map([[6, Buffer.from([8])]]));
  const req = decode(Buffer.from(positive[4]!.bytes));
  t.deepEqual(getUserClasses(req.options), ['iPXE', 'bootbox']);
});

test('encode splits options longer than 255 bytes and pads short packets to 300', (t) => {
  const p = emptyPacket(2, Buffer.from('525400770011', 'hex'));
  p.options.set(DhcpOption.MessageType, Buffer.from([MessageType.Ack]));
  p.options.set(DhcpOption.VendorSpecific, Buffer.from(seq(0, 600)));
  const out = encode(p);
  // 53 (3) + 43 as 255 + 255 + 90 (3 headers) + end
  t.is(out.length, 240 + 3 + 600 + 6 + 1);
  t.deepEqual([out[243], out[244]], [43, 255]);
  t.deepEqual([out[243 + 257], out[244 + 257]], [43, 255]);
  t.deepEqual([out[243 + 514], out[244 + 514]], [43, 90]);
  t.deepEqual(decode(out).options.get(43), Buffer.from(seq(0, 600)));
  const small = emptyPacket(2, Buffer.from('525400770011', 'hex'));
  small.options.set(DhcpOption.MessageType, Buffer.from([MessageType.Ack]));
  t.is(encode(small).length, 300);
  t.is(encode(small, { minLength: 0 }).length, 244);
});

test('encode writes option 53 first, keeps map order, and drops Pad/End/Overload keys', (t) => {
  const p = emptyPacket(1, Buffer.from('525400770011', 'hex'));
  p.options.set(DhcpOption.VendorClassId, Buffer.from('PXEClient'));
  p.options.set(DhcpOption.Overload, Buffer.from([3]));
  p.options.set(DhcpOption.Pad, Buffer.from([1]));
  p.options.set(DhcpOption.MessageType, Buffer.from([MessageType.Discover]));
  const out = encode(p);
  t.deepEqual([...out.subarray(240, 245)], [53, 1, 1, 60, 9]);
  t.deepEqual([...decode(out).options.keys()], [53, 60]);
});

test('encode refuses what it cannot represent', (t) => {
  const p = emptyPacket(2, Buffer.from('525400770011', 'hex'));
  p.options.set(DhcpOption.MessageType, Buffer.from([MessageType.Offer]));
  p.file = 'x'.repeat(128);
  t.throws(() => encode(p), { instanceOf: BootboxError });
  p.file = 'x'.repeat(127);
  t.notThrows(() => encode(p));
  p.options.set(DhcpOption.RootPath, Buffer.alloc(254, 0x61));
  p.options.set(DhcpOption.HostName, Buffer.alloc(100, 0x62));
  t.throws(() => encode(p, { maxLength: 548 }), { instanceOf: BootboxError }); // file is taken, cannot overload it
  p.file = '';
  const out = encode(p, { maxLength: 548 });
  t.true(out.length <= 548);
  t.is(out[out.length - 4], DhcpOption.Overload);
  t.deepEqual(decode(out).options.get(DhcpOption.RootPath), Buffer.alloc(254, 0x61));
  t.deepEqual(decode(out).options.get(DhcpOption.HostName), Buffer.alloc(100, 0x62));
});
