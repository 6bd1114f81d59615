import test from 'ava';
import { type ArchName, classifyClient, type Firmware } from '../../firmware/protocols/dhcp/classify.ts';
import { type DhcpPacket, emptyPacket } from '../../firmware/protocols/dhcp/codec.ts';
import { DhcpOption, MessageType } from '../../firmware/protocols/dhcp/constants.ts';
import { encodeSubOptions, setIPv4, setString, setU16 } from '../../firmware/protocols/dhcp/options.ts';
import { ip } from '../helpers/dhcp.ts';

function discover(mac = '525400770099', build?: (p: DhcpPacket) => void): DhcpPacket {
  const p = emptyPacket(1, Buffer.from(mac, 'hex'));
  p.options.set(DhcpOption.MessageType, Buffer.from([MessageType.Discover]));
  build?.(p);
  return p;
}

const archTable: [number, ArchName, Firmware, boolean][] = [
  [0, 'bios', 'bios', false],
  [6, 'uefi-ia32', 'uefi', false],
  [7, 'uefi-x64', 'uefi', false],
  [9, 'uefi-x64', 'uefi', false],
  [10, 'arm32-uefi', 'uefi', false],
  [11, 'arm64-uefi', 'uefi', false],
  [15, 'uefi-ia32', 'uefi', true],
  [16, 'uefi-x64', 'uefi', true],
  [19, 'arm64-uefi', 'uefi', true],
  [22, 'arm64-uboot', 'uboot', false],
  [27, 'riscv64-uefi', 'uefi', false],
  [39, 'loongarch64-uefi', 'uefi', false],
  [41, 'rpi', 'rpi', false],
  [12, 'unknown', 'unknown', false],
];
for (const [code, arch, firmware, http] of archTable) {
  test(`option 93 = ${code} -> ${arch} (${firmware}${http ? ', HTTP boot' : ''})`, (t) => {
    const info = classifyClient(
      discover(undefined, (p) => {
        setU16(p.options, DhcpOption.ClientArch, code);
        setString(p.options, DhcpOption.VendorClassId, `PXEClient:Arch:${String(code).padStart(5, '0')}:UNDI:003000`);
      }),
    );
    t.is(info.arch, arch);
    t.is(info.firmware, firmware);
    t.is(info.isHttpBoot, http);
    t.is(info.archCode, code === 12 ? undefined : code);
    t.true(info.isNetboot);
  });
}

test('option 93 lists: the first known code wins; odd lengths are unknown', (t) => {
  let info = classifyClient(discover(undefined, (p) => p.options.set(93, Buffer.from([0, 200, 0, 7]))));
  t.is(info.archCode, 7);
  t.deepEqual(info.archCodes, [200, 7]);
  info = classifyClient(discover(undefined, (p) => p.options.set(93, Buffer.from([0]))));
  t.is(info.arch, 'unknown');
  t.deepEqual(info.quirks, ['arch-unknown']);
});

test('a PXE client with neither option 93 nor an Arch field is assumed to be x86 BIOS', (t) => {
  const info = classifyClient(discover(undefined, (p) => setString(p.options, 60, 'PXEClient')));
  t.is(info.arch, 'bios');
  t.deepEqual(info.quirks, ['arch-assumed-bios', 'no-uuid']);
});

test('iPXE is recognised by option 175 alone, and by the RFC 3004 list form of user class', (t) => {
  t.true(
    classifyClient(discover(undefined, (p) => p.options.set(175, encodeSubOptions([[0x13, Buffer.from([1])]])))).isIpxe,
  );
  const info = classifyClient(
    discover(undefined, (p) => p.options.set(77, Buffer.from('\x04iPXE\x07bootbox', 'latin1'))),
  );
  t.true(info.isIpxe);
  t.deepEqual(info.userClass, ['iPXE', 'bootbox']);
  t.false(classifyClient(discover(undefined, (p) => setString(p.options, 77, 'bootbox'))).isIpxe);
});

test('HTTP boot is recognised by option 60 alone', (t) => {
  const info = classifyClient(discover(undefined, (p) => setString(p.options, 60, 'HTTPClient')));
  t.true(info.isHttpBoot);
  t.false(info.isPxe);
});

test('a Raspberry Pi that reports UEFI (arch 11) is left alone', (t) => {
  const info = classifyClient(discover('dca632aabbcc', (p) => setU16(p.options, 93, 11)));
  t.is(info.arch, 'arm64-uefi');
  t.deepEqual(info.quirks, []);
});

test('UUID: unset, malformed, missing', (t) => {
  const pxe = (p: DhcpPacket) => {
    setString(p.options, 60, 'PXEClient:Arch:00007:UNDI:003000');
    setU16(p.options, 93, 7);
  };
  let info = classifyClient(
    discover(undefined, (p) => {
      pxe(p);
      p.options.set(97, Buffer.alloc(17));
    }),
  );
  t.is(info.uuid, undefined);
  t.deepEqual(info.quirks, ['uuid-unset']);
  info = classifyClient(
    discover(undefined, (p) => {
      pxe(p);
      p.options.set(97, Buffer.alloc(16, 1));
    }),
  );
  t.deepEqual(info.quirks, ['uuid-malformed']);
  t.deepEqual(classifyClient(discover(undefined, pxe)).quirks, ['no-uuid']);
});

test('relayed requests, client id and plain clients', (t) => {
  const info = classifyClient(
    discover(undefined, (p) => {
      p.giaddr = ip('10.88.0.1');
      p.options.set(61, Buffer.from('01525400770099', 'hex'));
      setIPv4(p.options, 50, ip('10.77.0.9'));
    }),
  );
  t.true(info.relayed);
  t.is(info.clientId, '01525400770099');
  t.false(info.isNetboot);
  t.is(info.arch, 'unknown');
  t.deepEqual(info.quirks, []);
});
