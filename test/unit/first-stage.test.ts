import test from 'ava';
import type { UefiX86FirstStage } from '../../firmware/domain/machine.ts';
import {
  type FirstStageClient,
  type FirstStageOptions,
  firstStageFor,
  vendorChoice,
} from '../../firmware/policy/first-stage.ts';

const HTTP = 'http://10.77.0.1:8081';

/** Intel (00:1b:21), QEMU (52:54:00) and one QEMU sub-block (52:54:00:77). */
const BY_VENDOR: Record<string, UefiX86FirstStage> = {
  '00:1B:21': 'snponly.efi',
  '52:54:00': 'shim',
  '52:54:00:77': 'ipxe.efi',
};

function opts(over: Partial<FirstStageOptions> = {}): FirstStageOptions {
  return { uefiX86: 'ipxe.efi', httpBase: HTTP, byVendor: BY_VENDOR, ...over };
}

function client(mac: string, over: Partial<FirstStageClient> = {}): FirstStageClient {
  return { mac, arch: 'uefi-x64', isIpxe: false, isHttpBoot: false, ...over };
}

function show(s: ReturnType<typeof firstStageFor>): string {
  if (!s) return 'none';
  return s.kind === 'tftp' ? `tftp ${s.file}` : `${s.kind} ${s.url}`;
}

/** Which UEFI x86 first stage: the machine's own, then by vendor prefix (longest), then boot.uefiX86. */
const ROWS: [
  title: string,
  mac: string,
  override: UefiX86FirstStage | undefined,
  o: Partial<FirstStageOptions>,
  expected: string,
][] = [
  ['no vendor entry: the default', '3c:ec:ef:00:00:01', undefined, {}, 'tftp ipxe.efi'],
  [
    'no vendor entry, default snponly.efi',
    '3c:ec:ef:00:00:01',
    undefined,
    { uefiX86: 'snponly.efi' },
    'tftp snponly.efi',
  ],
  ['no vendor entry, default shim', '3c:ec:ef:00:00:01', undefined, { uefiX86: 'shim' }, 'tftp shimx64.efi'],
  ['vendor entry (upper-case key) beats the default', '00:1b:21:aa:bb:cc', undefined, {}, 'tftp snponly.efi'],
  ['vendor entry shim', '52:54:00:12:34:56', undefined, {}, 'tftp shimx64.efi'],
  ['the longest matching prefix wins', '52:54:00:77:e2:11', undefined, {}, 'tftp ipxe.efi'],
  [
    'a prefix matches whole octets only',
    '52:54:07:00:00:01',
    undefined,
    { byVendor: { '52:54:0': 'shim' } },
    'tftp ipxe.efi',
  ],
  ['the machine setting beats its vendor entry', '00:1b:21:aa:bb:cc', 'ipxe.efi', {}, 'tftp ipxe.efi'],
  ['the machine setting shim', '3c:ec:ef:00:00:01', 'shim', {}, 'tftp shimx64.efi'],
  ['no table at all', '52:54:00:12:34:56', undefined, { byVendor: undefined }, 'tftp ipxe.efi'],
  ['HTTP boot gets the URL of the chosen program', '52:54:00:12:34:56', undefined, {}, `http ${HTTP}/boot/shimx64.efi`],
];

for (const [title, mac, override, o, expected] of ROWS) {
  test(`UEFI x86 first stage: ${title}`, (t) => {
    const c = client(mac, title.startsWith('HTTP boot') ? { isHttpBoot: true } : {});
    t.is(show(firstStageFor(c, opts(o), override ? { uefiX86: override } : undefined)), expected);
  });
}

/** The UEFI x86 choice leaves the other kinds of client alone. */
const OTHERS: [title: string, c: Partial<FirstStageClient>, expected: string][] = [
  ['BIOS', { arch: 'bios' }, 'tftp undionly.kpxe'],
  ['ARM64 UEFI', { arch: 'arm64-uefi' }, 'tftp grubnetaa64.efi'],
  ['already iPXE', { isIpxe: true }, `ipxe-script ${HTTP}/boot/52:54:00:12:34:56.ipxe`],
  ['no first stage for the arch', { arch: 'rpi' }, 'none'],
];

for (const [title, c, expected] of OTHERS) {
  test(`a QEMU NIC whose vendor entry is shim, ${title}`, (t) => {
    t.is(show(firstStageFor(client('52:54:00:12:34:56', c), opts(), { uefiX86: 'shim' })), expected);
  });
}

test('vendorChoice: MACs in any case and with dashes; the table is not changed', (t) => {
  const table = { ...BY_VENDOR };
  t.is(vendorChoice('00-1B-21-AA-BB-CC', table), 'snponly.efi');
  t.is(vendorChoice('00:1b:21', table), 'snponly.efi');
  t.is(vendorChoice('00:1b:22:00:00:00', table), undefined);
  t.is(vendorChoice('00:1b:21:00:00:00', {}), undefined);
  t.deepEqual(table, BY_VENDOR);
});
