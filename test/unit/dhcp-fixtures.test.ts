/**
 * Real client packets (test/fixtures/dhcp/*.hex, made by scripts/capture-dhcp-fixtures.ts):
 * each decodes, classifies as the lab notes say that client does, and mirrors.
 */
import test from 'ava';
import { type ClientInfo, classifyClient } from '../../firmware/protocols/dhcp/classify.ts';
import { decode, encode } from '../../firmware/protocols/dhcp/codec.ts';
import { MessageType } from '../../firmware/protocols/dhcp/constants.ts';
import { getClientUuid } from '../../firmware/protocols/dhcp/options.ts';
import { hexFixtureNames, loadHex } from '../helpers/dhcp.ts';

const QEMU_UUID = '7a8b9c0d-1e2f-3a4b-5c6d-7e8f9a0b1c2d';

type Expect = Partial<ClientInfo> & { features?: string[] };

const expected: Record<string, Expect> = {
  dhclient: {
    mac: '02:77:00:00:00:01',
    arch: 'unknown',
    firmware: 'unknown',
    isPxe: false,
    isHttpBoot: false,
    isIpxe: false,
    isNetboot: false,
    uuid: undefined,
    quirks: [],
  },
  udhcpc: {
    mac: '02:77:00:00:00:01',
    arch: 'unknown',
    isNetboot: false,
    vendorClass: 'udhcp 1.35.0',
    quirks: [],
  },
  // NOTES-lab: SeaBIOS with iPXE sends PXEClient:Arch:00000:UNDI:002001, 93 = 0, user class iPXE, option 175.
  'ipxe-bios': {
    mac: '52:54:00:77:00:11',
    arch: 'bios',
    archCode: 0,
    firmware: 'bios',
    isPxe: true,
    isHttpBoot: false,
    isIpxe: true,
    vendorClass: 'PXEClient:Arch:00000:UNDI:002001',
    userClass: ['iPXE'],
    uuid: QEMU_UUID,
    quirks: [],
    features: ['http', 'pxe', 'tftp'],
  },
  // NOTES-lab: iPXE EFI sends PXEClient:Arch:00007:UNDI:003010, 93 = 7.
  'ipxe-efi': {
    mac: '52:54:00:77:00:12',
    arch: 'uefi-x64',
    archCode: 7,
    firmware: 'uefi',
    isPxe: true,
    isIpxe: true,
    vendorClass: 'PXEClient:Arch:00007:UNDI:003010',
    userClass: ['iPXE'],
    uuid: QEMU_UUID,
    quirks: [],
    features: ['http', 'efi'],
  },
  // NOTES-lab: edk2 native PXE sends PXEClient:Arch:00007:UNDI:003000, 93 = 7, no 77 or 175.
  'edk2-pxe': {
    mac: '52:54:00:77:00:13',
    arch: 'uefi-x64',
    archCode: 7,
    firmware: 'uefi',
    isPxe: true,
    isHttpBoot: false,
    isIpxe: false,
    vendorClass: 'PXEClient:Arch:00007:UNDI:003000',
    userClass: [],
    uuid: QEMU_UUID,
    ndi: { type: 1, major: 3, minor: 0 },
    quirks: [],
  },
  // NOTES-lab: edk2 HTTP boot sends HTTPClient:Arch:00016:..., 93 = 16.
  'edk2-http': {
    mac: '52:54:00:77:00:14',
    arch: 'uefi-x64',
    archCode: 16,
    firmware: 'uefi',
    isPxe: false,
    isHttpBoot: true,
    isIpxe: false,
    isNetboot: true,
    vendorClass: 'HTTPClient:Arch:00016:UNDI:003000',
    uuid: QEMU_UUID,
    quirks: [],
  },
  'no-uuid-rom': { arch: 'uefi-x64', isPxe: true, uuid: undefined, quirks: ['no-uuid'] },
  'arch-from-vendor-class': { arch: 'uefi-x64', archCode: 7, archCodes: [], quirks: ['arch-from-vendor-class'] },
  'arch9-uefi-x64': { arch: 'uefi-x64', archCode: 9, firmware: 'uefi', quirks: ['arch-9-as-x64'] },
  'arch6-uefi-ia32': { arch: 'uefi-ia32', archCode: 6, firmware: 'uefi', quirks: [] },
  'rpi4-quirk': {
    mac: 'dc:a6:32:01:02:03',
    arch: 'rpi',
    archCode: 41,
    archCodes: [0],
    firmware: 'rpi',
    isPxe: true,
    isIpxe: false,
    quirks: ['raspberry-pi-arch-0'],
  },
};

test('every .hex fixture has expectations, and every expectation a fixture', (t) => {
  t.deepEqual(hexFixtureNames(), Object.keys(expected).sort());
});

for (const [name, want] of Object.entries(expected)) {
  test(`fixture ${name}: decodes as a DISCOVER and classifies`, (t) => {
    const pkt = decode(loadHex(name));
    t.is(pkt.op, 1);
    const info = classifyClient(pkt);
    t.is(info.messageType, MessageType.Discover);
    const { features, ...fields } = want;
    for (const [k, v] of Object.entries(fields)) t.deepEqual(info[k as keyof ClientInfo], v, k);
    if (features) for (const f of features) t.true(info.ipxeFeatures.includes(f), f);
  });
  test(`fixture ${name}: decode -> encode -> decode is stable`, (t) => {
    const once = decode(loadHex(name));
    const again = decode(encode(once));
    t.deepEqual(again, once);
    t.deepEqual(encode(again), encode(once));
  });
}

test('iPXE and edk2 send option 97 in SMBIOS (mixed-endian) byte order', (t) => {
  for (const name of ['ipxe-bios', 'ipxe-efi', 'edk2-pxe', 'edk2-http']) {
    const info = classifyClient(decode(loadHex(name)));
    t.is(info.uuidWire, '0d9c8b7a-2f1e-4b3a-5c6d-7e8f9a0b1c2d', name);
    t.is(getClientUuid(decode(loadHex(name)).options)?.length, 16);
  }
});
