import test from 'ava';
import { buildUdpDatagram, ipChecksum, parseUdpDatagram, udpChecksum } from '../../board/ip-udp.ts';
import { parseIPv4 } from '../../firmware/core/net.ts';

const packet = {
  src: '10.77.0.1',
  dst: '255.255.255.255',
  srcPort: 67,
  dstPort: 68,
  payload: Buffer.from('hello dhcp'),
};

test('builds a header the receiver side accepts, with valid checksums', (t) => {
  const b = buildUdpDatagram(packet)!;
  t.is(b.length, 20 + 8 + 10);
  t.is(b[0], 0x45); // version 4, IHL 5
  t.is(b.readUInt16BE(2), 38); // total length
  t.is(b[9], 17); // UDP
  t.is(ipChecksum(b.subarray(0, 20)), 0, 'IP header sums to zero with its checksum');
  // A UDP checksum computed over a datagram that contains its own checksum folds to 0 (or 0xffff rule).
  const check = udpChecksum(parseIPv4(packet.src)!, parseIPv4(packet.dst)!, b.subarray(20));
  t.true(check === 0xffff || check === 0);
  t.deepEqual(parseUdpDatagram(b), packet);
});

test('known checksum vector', (t) => {
  // 10.0.0.1:1000 -> 10.0.0.2:2000, payload "ab"; checksum computed by hand:
  // pseudo 0x0a00+0x0001+0x0a00+0x0002+0x0011+0x000a = 0x141e; udp 0x03e8+0x07d0+0x000a+0x6162 = 0x6d24
  // sum 0x8142 -> ~ = 0x7ebd
  const b = buildUdpDatagram({
    src: '10.0.0.1',
    dst: '10.0.0.2',
    srcPort: 1000,
    dstPort: 2000,
    payload: Buffer.from('ab'),
  })!;
  t.is(b.readUInt16BE(26), 0x7ebd);
});

test('rejects what is not a whole UDP datagram', (t) => {
  const b = buildUdpDatagram(packet)!;
  t.is(parseUdpDatagram(b.subarray(0, 27)), undefined, 'truncated header');
  const tcp = Buffer.from(b);
  tcp[9] = 6;
  t.is(parseUdpDatagram(tcp), undefined, 'not UDP');
  const longUdp = Buffer.from(b);
  longUdp.writeUInt16BE(500, 24);
  t.is(parseUdpDatagram(longUdp), undefined, 'UDP length past the end');
  const frag = Buffer.from(b);
  frag.writeUInt16BE(0x2000, 6);
  t.is(parseUdpDatagram(frag), undefined, 'fragment');
  t.is(buildUdpDatagram({ ...packet, dst: 'nope' }), undefined);
});
