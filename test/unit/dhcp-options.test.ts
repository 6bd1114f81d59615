import test from 'ava';
import { DecodeError } from '../../firmware/core/errors.ts';
import {
  type DhcpOptions,
  decodeSubOptions,
  encodeSubOptions,
  formatSmbiosUuid,
  getBroadcastAddress,
  getClientArch,
  getClientId,
  getClientNdi,
  getClientUuid,
  getDnsServers,
  getIPv4List,
  getLeaseTime,
  getMaxMessageSize,
  getParameterRequestList,
  getRouters,
  getString,
  getSubnetMask,
  getUserClasses,
  optionChunks,
  readOptionArea,
  setIPv4List,
  setU16,
  setU32,
  setUserClasses,
} from '../../firmware/protocols/dhcp/options.ts';
import { ip } from '../helpers/dhcp.ts';

const m = (entries: [number, number[] | string][]): DhcpOptions =>
  new Map(entries.map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v, 'latin1') : Buffer.from(v)]));

test('readOptionArea: Pad is skipped, End stops, repeated codes concatenate (RFC 3396)', (t) => {
  const into: DhcpOptions = new Map();
  const area = Buffer.from([0, 0, 12, 2, 0x61, 0x62, 0, 12, 1, 0x63, 255, 99, 99, 99]);
  t.is(readOptionArea(area, 0, area.length, 'options', into), undefined);
  t.deepEqual(into, m([[12, 'abc']]));
  const e = t.throws(() => readOptionArea(Buffer.from([12, 5, 1]), 0, 3, 'sname', new Map()), {
    instanceOf: DecodeError,
  });
  t.is(e?.reason, 'option-overrun');
  t.is(readOptionArea(Buffer.from([52, 1, 2]), 0, 3, 'options', new Map()), 2);
});

test('optionChunks: empty values and exact multiples of 255', (t) => {
  t.deepEqual(optionChunks(60, Buffer.alloc(0)), [Buffer.from([60, 0])]);
  const chunks = optionChunks(43, Buffer.alloc(510, 1));
  t.deepEqual(
    chunks.map((c) => [c[0], c[1], c.length]),
    [
      [43, 255, 257],
      [43, 255, 257],
    ],
  );
});

test('sub-options: round trip, End terminator, malformed blocks read as undefined', (t) => {
  const block = encodeSubOptions([
    [6, Buffer.from([8])],
    [71, Buffer.from([0x80, 0, 0, 0])],
  ]);
  t.deepEqual([...block], [6, 1, 8, 71, 4, 0x80, 0, 0, 0, 255]);
  t.deepEqual(
    decodeSubOptions(block),
    new Map([
      [6, Buffer.from([8])],
      [71, Buffer.from([0x80, 0, 0, 0])],
    ]),
  );
  t.deepEqual([...encodeSubOptions([[1, Buffer.from([3])]], false)], [1, 1, 3]);
  t.is(decodeSubOptions(Buffer.from([6, 4, 8])), undefined);
  t.is(decodeSubOptions(Buffer.from([6])), undefined);
});

test('user class: RFC 3004 list form and iPXE plain form', (t) => {
  t.deepEqual(getUserClasses(m([[77, 'iPXE']])), ['iPXE']);
  t.deepEqual(getUserClasses(m([[77, '\x04iPXE\x03foo']])), ['iPXE', 'foo']);
  t.deepEqual(getUserClasses(m([[77, '\x04iPX']])), ['\x04iPX'], 'an overrun reads as one plain string');
  t.deepEqual(getUserClasses(new Map()), []);
  const o: DhcpOptions = new Map();
  setUserClasses(o, ['iPXE', 'bootbox']);
  t.deepEqual(getUserClasses(o), ['iPXE', 'bootbox']);
});

test('PXE options: arch list, NDI, UUID in wire and SMBIOS order', (t) => {
  t.deepEqual(getClientArch(m([[93, [0, 7, 0, 9]]])), [7, 9]);
  t.is(getClientArch(m([[93, [0, 7, 0]]])), undefined);
  t.deepEqual(getClientNdi(m([[94, [1, 3, 16]]])), { type: 1, major: 3, minor: 16 });
  t.is(getClientNdi(m([[94, [1, 3]]])), undefined);
  const uuid = Buffer.from('0d9c8b7a2f1e4b3a5c6d7e8f9a0b1c2d', 'hex');
  t.deepEqual(getClientUuid(m([[97, [0, ...uuid]]])), uuid);
  t.is(getClientUuid(m([[97, [1, ...uuid]]])), undefined);
  t.is(formatSmbiosUuid(uuid), '7a8b9c0d-1e2f-3a4b-5c6d-7e8f9a0b1c2d');
});

test('scalars: lengths are checked, strings lose trailing NULs, 57 below 576 is ignored', (t) => {
  const o: DhcpOptions = new Map();
  setU32(o, 51, 86400);
  setU16(o, 57, 1472);
  setIPv4List(o, 6, [ip('10.77.0.1'), ip('10.77.0.2')]);
  o.set(1, Buffer.from([255, 255, 255, 0]));
  o.set(3, Buffer.from([10, 77, 0, 1]));
  o.set(28, Buffer.from([10, 77, 0, 255]));
  t.is(getLeaseTime(o), 86400);
  t.is(getMaxMessageSize(o), 1472);
  t.deepEqual(getDnsServers(o), [ip('10.77.0.1'), ip('10.77.0.2')]);
  t.is(getSubnetMask(o), ip('255.255.255.0'));
  t.deepEqual(getRouters(o), [ip('10.77.0.1')]);
  t.is(getBroadcastAddress(o), ip('10.77.0.255'));
  setU16(o, 57, 300);
  t.is(getMaxMessageSize(o), undefined);
  t.is(getIPv4List(m([[6, [1, 2, 3]]]), 6), undefined);
  t.is(getString(m([[60, 'PXEClient\0\0']]), 60), 'PXEClient');
  t.is(getClientId(m([[61, [1]]])), undefined);
  t.deepEqual(getParameterRequestList(m([[55, [1, 3, 67]]])), [1, 3, 67]);
});
