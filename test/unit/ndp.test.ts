import test from 'ava';
import type { Icmp6Endpoint } from '../../board/icmp6-endpoint.ts';
import { ipv6Bytes } from '../../board/icmp6-endpoint.ts';
import { ManualClock } from '../../firmware/core/clock.ts';
import { DecodeError } from '../../firmware/core/errors.ts';
import { decodeRouterSolicitation, encodeRouterAdvertisement, NO_ROUTER } from '../../firmware/protocols/ndp/codec.ts';
import { RouterAdvertiser } from '../../firmware/protocols/ndp/server.ts';

test('the "no router" advertisement, byte by byte (RFC 4861 §4.2)', (t) => {
  t.deepEqual(
    encodeRouterAdvertisement(NO_ROUTER),
    // biome-ignore format: annotated byte fixture
    Buffer.from([
      134, 0, // type RA, code 0
      0, 0, // checksum: the kernel fills it
      0, // cur hop limit: unspecified
      0x00, // M=0 (no DHCPv6 addresses), O=0 (no DHCPv6 options)
      0, 0, // router lifetime 0: not a default router
      0, 0, 0, 0, // reachable time: unspecified
      0, 0, 0, 0, // retrans timer: unspecified
    ]),
  );
});

test('router solicitations decode; anything else is a DecodeError', (t) => {
  t.deepEqual(decodeRouterSolicitation(Buffer.from([133, 0, 0, 0, 0, 0, 0, 0])), { type: 'rs' });
  for (const [name, b] of [
    ['truncated', Buffer.from([133, 0, 0])],
    ['not-rs', Buffer.from([128, 0, 0, 0, 0, 0, 0, 0])],
    ['bad-code', Buffer.from([133, 1, 0, 0, 0, 0, 0, 0])],
  ] as const) {
    const e = t.throws(() => decodeRouterSolicitation(b), { instanceOf: DecodeError });
    t.is(e?.reason, name);
  }
});

test('the advertiser answers by unicast, and by rate-limited multicast for the unspecified source', (t) => {
  const sent: { dst: string; msg: Buffer }[] = [];
  let listener: ((m: Buffer, s: string) => void) | undefined;
  const ep: Icmp6Endpoint = {
    ifname: 'priv',
    onMessage: (fn) => {
      listener = fn;
    },
    send: (msg, dst, cb) => {
      sent.push({ dst, msg });
      cb?.(null);
    },
    close: () => {},
  };
  const clock = new ManualClock();
  const ra = new RouterAdvertiser(ep, clock);
  ra.start();
  const rs = Buffer.from([133, 0, 0, 0, 0, 0, 0, 0]);
  listener!(rs, 'fe80::5054:ff:fe77:111');
  listener!(rs, '::');
  listener!(rs, '::');
  clock.advance(3000);
  listener!(rs, '::');
  listener!(Buffer.from([133, 0, 0]), 'fe80::1');
  listener!(Buffer.from([136, 0, 0, 0, 0, 0, 0, 0]), 'fe80::1');
  t.deepEqual(
    sent.map((s) => s.dst),
    ['fe80::5054:ff:fe77:111', 'ff02::1', 'ff02::1'],
  );
  t.true(sent.every((s) => s.msg[0] === 134));
  t.like(ra.counters, { solicitations: 4, advertisements: 3, rateLimited: 1, dropped: 1 });
});

test('IPv6 text to bytes', (t) => {
  t.is(ipv6Bytes('ff02::2').toString('hex'), 'ff020000000000000000000000000002');
  t.is(ipv6Bytes('fe80::1:2').toString('hex'), 'fe800000000000000000000000010002');
  t.is(ipv6Bytes('1:2:3:4:5:6:7:8').toString('hex'), '00010002000300040005000600070008');
});
