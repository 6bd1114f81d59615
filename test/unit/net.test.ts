import test from 'ava';
import {
  broadcastOf,
  formatIPv4,
  inSubnet,
  maskToPrefix,
  normalizeMac,
  parseCidr,
  parseIPv4,
  parseRange,
  subnetOf,
} from '../../firmware/core/net.ts';

test('IPv4 parse and format round-trip', (t) => {
  for (const s of ['0.0.0.0', '10.77.0.1', '255.255.255.255', '192.168.1.254']) {
    t.is(formatIPv4(parseIPv4(s)!), s);
  }
  for (const bad of ['256.0.0.1', '1.2.3', '1.2.3.4.5', 'a.b.c.d', '01.2.3.4', '']) {
    t.is(parseIPv4(bad), undefined, bad);
  }
});

test('subnets, masks and ranges', (t) => {
  const s = parseCidr('10.77.0.1/24')!;
  t.is(formatIPv4(s.network), '10.77.0.0');
  t.is(formatIPv4(broadcastOf(s)), '10.77.0.255');
  t.true(inSubnet(parseIPv4('10.77.0.200')!, s));
  t.false(inSubnet(parseIPv4('10.77.1.1')!, s));
  t.is(maskToPrefix(parseIPv4('255.255.255.0')!), 24);
  t.is(maskToPrefix(parseIPv4('255.0.255.0')!), undefined);
  t.is(subnetOf(parseIPv4('10.1.2.3')!, 0).network, 0);
  t.deepEqual(parseRange('10.0.0.10-10.0.0.20'), { start: parseIPv4('10.0.0.10'), end: parseIPv4('10.0.0.20') });
  t.is(parseRange('10.0.0.20-10.0.0.10'), undefined);
});

test('MAC normalisation', (t) => {
  t.is(normalizeMac('AA-BB-CC-DD-EE-FF'), 'aa:bb:cc:dd:ee:ff');
  t.is(normalizeMac('aabbccddeeff'), 'aa:bb:cc:dd:ee:ff');
  t.is(normalizeMac('aa:bb:cc:dd:ee'), undefined);
  t.is(normalizeMac('aa:bb-cc:dd:ee:ff'), undefined);
});
