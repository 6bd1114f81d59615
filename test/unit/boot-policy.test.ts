import test from 'ava';
import { type Machine, type MachineState, newMachine } from '../../firmware/domain/machine.ts';
import {
  type BootClient,
  type BootDecision,
  type BootSettings,
  bootUrl,
  decideBoot,
  resolveImage,
} from '../../firmware/policy/boot-policy.ts';

const MAC = '52:54:00:77:00:11';
const T0 = new Date('2026-01-01T00:00:00.000Z');

function settings(over: Partial<BootSettings> = {}): BootSettings {
  return {
    answer: 'all',
    unknown: 'approve',
    httpBase: 'http://10.77.0.1',
    boxName: 'lab',
    uefiX86: 'ipxe.efi',
    defaultImage: { bios: 'win11', 'uefi-x64': 'win11', 'arm64-uefi': 'debian-arm64' },
    groupImages: { gpu: 'ubuntu-gpu' },
    images: {
      win11: { title: 'Windows 11', arches: ['bios', 'uefi-x64'] },
      'ubuntu-gpu': { arches: ['uefi-x64'] },
      'debian-arm64': { arches: ['arm64-uefi'] },
      rescue: {},
    },
    deployEnvironments: {
      bios: { kernel: 'deploy/x64/vmlinuz', initrd: 'deploy/x64/initrd.img', params: ['console=ttyS0'] },
      'uefi-x64': { kernel: 'deploy/x64/vmlinuz', initrd: 'deploy/x64/initrd.img', params: ['console=ttyS0'] },
    },
    pollIntervalSec: 10,
    pollRetries: 30,
    onWaitTimeout: 'reboot',
    menu: { enabled: false, timeoutSec: 10 },
    ...over,
  };
}

function client(over: Partial<BootClient> = {}): BootClient {
  return { mac: MAC, arch: 'bios', isIpxe: false, isHttpBoot: false, ...over };
}

function machine(state: MachineState, over: Partial<Machine> = {}): Machine {
  return { ...newMachine({ mac: MAC, arch: 'bios', firmware: 'bios', name: 'HPC-NODE001' }, T0), state, ...over };
}

/** A compact view of a decision for the tables. */
function summary(d: BootDecision): string {
  if (d.action === 'ignore') return 'ignore';
  const effects = d.effects.map((e) => (e.type === 'seen' ? `seen:${e.policy}` : e.type)).join(',');
  const create = d.createMachine ? '+create' : '';
  if (d.action === 'first-stage') {
    const s = d.stage;
    const what = s.kind === 'tftp' ? s.file : s.url;
    return `first-stage ${s.kind} ${what}${create}${effects ? ` [${effects}]` : ''}`;
  }
  const p = d.plan;
  const detail = p.kind === 'deploy' ? ` ${p.image}` : '';
  return `script ${p.kind}${detail}${create}${effects ? ` [${effects}]` : ''}`;
}

type Row = [
  title: string,
  answer: BootSettings['answer'],
  unknown: BootSettings['unknown'],
  state: MachineState | undefined,
  expected: string,
];

/** Script phase: an iPXE client asks for its script. `state` undefined = never-seen MAC. */
const SCRIPT_ROWS: Row[] = [
  ['answer none ignores a known machine', 'none', 'approve', 'deployed', 'ignore'],
  ['answer none ignores an unknown MAC', 'none', 'auto', undefined, 'ignore'],
  ['answer known ignores an unknown MAC', 'known', 'auto', undefined, 'ignore'],
  ['answer known answers a known machine', 'known', 'approve', 'deployed', 'script local'],
  [
    'answer known: a reset record is known, and follows the unknown policy',
    'known',
    'approve',
    'unknown',
    'script wait [seen:approve]',
  ],
  ['unknown + ignore: ignored', 'all', 'ignore', undefined, 'ignore'],
  ['reset record + ignore: ignored', 'all', 'ignore', 'unknown', 'ignore'],
  ['unknown + approve: wait, created pending', 'all', 'approve', undefined, 'script wait+create [seen:approve]'],
  [
    'unknown + auto: deploy, created approved',
    'all',
    'auto',
    undefined,
    'script deploy win11+create [seen:auto,deploy-started]',
  ],
  ['pending: wait', 'all', 'auto', 'pending', 'script wait'],
  ['rejected: rejected', 'all', 'approve', 'rejected', 'script rejected'],
  ['approved: deploy', 'all', 'approve', 'approved', 'script deploy win11 [deploy-started]'],
  ['reimage-requested: deploy', 'all', 'approve', 'reimage-requested', 'script deploy win11 [deploy-started]'],
  ['deploying: deploy again', 'all', 'approve', 'deploying', 'script deploy win11 [deploy-started]'],
  ['deployed: local', 'all', 'auto', 'deployed', 'script local'],
];

for (const [title, answer, unknown, state, expected] of SCRIPT_ROWS) {
  test(`script: ${title}`, (t) => {
    const d = decideBoot(
      { phase: 'script', client: client({ isIpxe: true }), machine: state === undefined ? undefined : machine(state) },
      settings({ answer, unknown }),
    );
    t.is(summary(d), expected, d.reason);
    t.true(d.reason.length > 0);
  });
}

/** DHCP phase: the same rules decide whether to answer; the answer is the first stage. */
const DHCP_ROWS: Row[] = [
  ['answer none', 'none', 'approve', 'deployed', 'ignore'],
  ['answer known, unknown MAC', 'known', 'auto', undefined, 'ignore'],
  ['unknown + ignore', 'all', 'ignore', undefined, 'ignore'],
  ['unknown + approve', 'all', 'approve', undefined, 'first-stage tftp undionly.kpxe+create [seen:approve]'],
  ['unknown + auto', 'all', 'auto', undefined, 'first-stage tftp undionly.kpxe+create [seen:auto]'],
  ['pending', 'all', 'approve', 'pending', 'first-stage tftp undionly.kpxe'],
  ['rejected (so iPXE can show why)', 'all', 'approve', 'rejected', 'first-stage tftp undionly.kpxe'],
  ['deployed', 'all', 'approve', 'deployed', 'first-stage tftp undionly.kpxe'],
];

for (const [title, answer, unknown, state, expected] of DHCP_ROWS) {
  test(`dhcp: ${title}`, (t) => {
    const d = decideBoot(
      { phase: 'dhcp', client: client(), machine: state === undefined ? undefined : machine(state) },
      settings({ answer, unknown }),
    );
    t.is(summary(d), expected, d.reason);
  });
}

/** First stage per client kind (DHCP phase, known deployed machine). */
const STAGES: [title: string, c: Partial<BootClient>, m: Partial<Machine>, expected: string][] = [
  ['BIOS PXE', { arch: 'bios' }, {}, 'first-stage tftp undionly.kpxe'],
  ['UEFI x64 PXE', { arch: 'uefi-x64' }, {}, 'first-stage tftp ipxe.efi'],
  [
    'UEFI x64 PXE, machine set to snponly.efi',
    { arch: 'uefi-x64' },
    { firstStageOverride: 'snponly.efi' },
    'first-stage tftp snponly.efi',
  ],
  [
    'UEFI x64 PXE, machine set to shim (Secure Boot)',
    { arch: 'uefi-x64' },
    { firstStageOverride: 'shim' },
    'first-stage tftp shimx64.efi',
  ],
  ['UEFI x64 HTTP boot', { arch: 'uefi-x64', isHttpBoot: true }, {}, 'first-stage http http://10.77.0.1/boot/ipxe.efi'],
  ['ARM64 UEFI', { arch: 'arm64-uefi' }, {}, 'first-stage tftp grubnetaa64.efi'],
  ['iPXE', { arch: 'bios', isIpxe: true }, {}, `first-stage ipxe-script http://10.77.0.1/boot/${MAC}.ipxe`],
  ['an arch with no first stage', { arch: 'rpi' }, {}, 'ignore'],
];

for (const [title, c, m, expected] of STAGES) {
  test(`first stage: ${title}`, (t) => {
    const d = decideBoot({ phase: 'dhcp', client: client(c), machine: machine('deployed', m) }, settings());
    t.is(summary(d), expected, d.reason);
  });
}

test('first stage by NIC vendor: after the machine setting, before boot.uefiX86', (t) => {
  const s = settings({ uefiX86: 'ipxe.efi', firstStageByVendor: { '52:54:00': 'snponly.efi' } });
  const ask = (m: Partial<Machine>, mac = MAC) =>
    summary(
      decideBoot({ phase: 'dhcp', client: client({ mac, arch: 'uefi-x64' }), machine: machine('deployed', m) }, s),
    );
  t.is(ask({}), 'first-stage tftp snponly.efi');
  t.is(ask({ firstStageOverride: 'shim' }), 'first-stage tftp shimx64.efi');
  t.is(ask({}, '00:1b:21:00:00:01'), 'first-stage tftp ipxe.efi');
  // BIOS nodes of that vendor are not affected.
  t.is(
    summary(decideBoot({ phase: 'dhcp', client: client({ arch: 'bios' }), machine: machine('deployed') }, s)),
    'first-stage tftp undionly.kpxe',
  );
});

test('the deploy plan carries kernel, initrd and the machine parameters', (t) => {
  const d = decideBoot({ phase: 'script', client: client({ isIpxe: true }), machine: machine('approved') }, settings());
  if (d.action !== 'script') return t.fail(d.reason);
  t.deepEqual(d.plan, {
    kind: 'deploy',
    mac: MAC,
    image: 'win11',
    kernelUrl: 'http://10.77.0.1/boot/deploy/x64/vmlinuz',
    initrdUrl: 'http://10.77.0.1/boot/deploy/x64/initrd.img',
    params: [
      'console=ttyS0',
      'bootbox.url=http://10.77.0.1',
      `bootbox.mac=${MAC}`,
      'bootbox.image=win11',
      'bootbox.name=HPC-NODE001',
    ],
    message: `deploying image win11 to HPC-NODE001 (${MAC})`,
  });
  t.deepEqual(d.effects, [{ type: 'deploy-started', image: 'win11' }]);
  t.false(d.createMachine);
});

test('an auto-approved new machine gets the name the registry will give it', (t) => {
  const d = decideBoot(
    { phase: 'script', client: client({ isIpxe: true }), machine: undefined, newName: 'HPC-NODE007' },
    settings({ unknown: 'auto' }),
  );
  if (d.action !== 'script' || d.plan.kind !== 'deploy') return t.fail(d.reason);
  t.true(d.plan.params.includes('bootbox.name=HPC-NODE007'));
  t.true(d.createMachine);
});

test('the wait plan carries the poll settings, the attempt and the message', (t) => {
  const d = decideBoot(
    { phase: 'script', client: client({ isIpxe: true }), machine: machine('pending'), attempt: 4 },
    settings({ onWaitTimeout: 'exit' }),
  );
  if (d.action !== 'script') return t.fail(d.reason);
  t.deepEqual(d.plan, {
    kind: 'wait',
    mac: MAC,
    message: `waiting for approval of HPC-NODE001 (${MAC}) on bootbox lab`,
    pollIntervalSec: 10,
    attempt: 4,
    retries: 30,
    onTimeout: 'exit',
  });
  t.deepEqual(d.effects, []);
});

test('the rejected plan says who rejected it', (t) => {
  const d = decideBoot(
    {
      phase: 'script',
      client: client({ isIpxe: true }),
      machine: machine('rejected', { stateReason: 'rejected by alice' }),
    },
    settings(),
  );
  if (d.action !== 'script') return t.fail(d.reason);
  t.deepEqual(d.plan, {
    kind: 'rejected',
    mac: MAC,
    message: `HPC-NODE001 (${MAC}) was rejected on bootbox lab (rejected by alice), trying the next boot device`,
  });
});

test('a script request takes the arch from the record when the request does not tell', (t) => {
  const d = decideBoot(
    {
      phase: 'script',
      client: client({ arch: 'unknown', isIpxe: true }),
      machine: machine('approved', { arch: 'uefi-x64', group: 'gpu' }),
    },
    settings(),
  );
  if (d.action !== 'script' || d.plan.kind !== 'deploy') return t.fail(d.reason);
  t.is(d.plan.image, 'ubuntu-gpu');
});

/** Why a deploy cannot happen → the node waits with the reason on screen. */
const CANNOT: [title: string, m: Partial<Machine>, s: Partial<BootSettings>, message: RegExp][] = [
  [
    'no image anywhere',
    { arch: 'bios' },
    { defaultImage: {} },
    /no image is set for it, its group or architecture bios/,
  ],
  ['image not in the catalog', { image: 'gone' }, {}, /its image gone is not in the catalog/],
  ['image for another arch', { image: 'debian-arm64' }, {}, /its image debian-arm64 is not for architecture bios/],
  ['no deploy environment', { arch: 'arm64-uefi' }, {}, /there is no deploy environment for architecture arm64-uefi/],
];

for (const [title, m, s, message] of CANNOT) {
  test(`cannot deploy (${title}): wait with the reason`, (t) => {
    const d = decideBoot(
      { phase: 'script', client: client({ arch: 'unknown', isIpxe: true }), machine: machine('approved', m) },
      settings(s),
    );
    if (d.action !== 'script' || d.plan.kind !== 'wait') return t.fail(summary(d));
    t.regex(d.plan.message, message);
    t.regex(d.reason, /^cannot deploy: /);
    t.deepEqual(d.effects, [], 'no deploy-started when nothing is deployed');
  });
}

test('names that are Object.prototype keys are not taken for settings entries', (t) => {
  for (const m of [{ image: 'constructor' }, { group: 'constructor', arch: 'rpi' as const }]) {
    const d = decideBoot(
      { phase: 'script', client: client({ arch: 'unknown', isIpxe: true }), machine: machine('approved', m) },
      settings(),
    );
    if (d.action !== 'script') return t.fail();
    t.is(d.plan.kind, 'wait', JSON.stringify(m));
  }
});

test('image precedence: reimage request, machine, group, arch default', (t) => {
  const s = settings();
  const base = machine('approved', { group: 'gpu', arch: 'uefi-x64' });
  t.deepEqual(resolveImage(base, 'uefi-x64', s), { image: 'ubuntu-gpu', source: 'group' });
  t.deepEqual(resolveImage({ ...base, image: 'rescue' }, 'uefi-x64', s), { image: 'rescue', source: 'machine' });
  t.deepEqual(
    resolveImage(
      { ...base, image: 'rescue', reimage: { from: 'deployed', mode: 'next-boot', requestedAt: '', image: 'win11' } },
      'uefi-x64',
      s,
    ),
    { image: 'win11', source: 'reimage' },
  );
  t.deepEqual(resolveImage(machine('approved'), 'bios', s), { image: 'win11', source: 'default' });
  t.deepEqual(resolveImage(undefined, 'arm64-uefi', s), { image: 'debian-arm64', source: 'default' });
  t.is(resolveImage(undefined, 'rpi', s), undefined);
});

test('with the menu on, a deploy is a menu: the chosen image first, the other images for the arch, then the disk', (t) => {
  const d = decideBoot(
    { phase: 'script', client: client({ isIpxe: true }), machine: machine('approved') },
    settings({ menu: { enabled: true, timeoutSec: 15 } }),
  );
  if (d.action !== 'script' || d.plan.kind !== 'menu') return t.fail(summary(d));
  t.is(d.plan.title, `bootbox lab: HPC-NODE001 (${MAC})`);
  t.is(d.plan.timeoutSec, 15);
  t.is(d.plan.defaultKey, 'deploy-1');
  t.deepEqual(
    d.plan.entries.map((e) => [e.key, e.label, e.plan.kind === 'deploy' ? e.plan.image : e.plan.kind]),
    [
      ['deploy-1', 'Deploy Windows 11', 'win11'],
      ['deploy-2', 'Deploy rescue', 'rescue'],
      ['local', 'Boot from the local disk', 'local'],
    ],
  );
  t.deepEqual(d.effects, [], 'the choice is made on the node, so no deploy-started yet');
});

test('the menu is not offered to a deployed machine', (t) => {
  const d = decideBoot(
    { phase: 'script', client: client({ isIpxe: true }), machine: machine('deployed') },
    settings({ menu: { enabled: true, timeoutSec: 15 } }),
  );
  t.is(summary(d), 'script local');
});

test('bootUrl: paths go under /boot/, URLs stay as they are', (t) => {
  t.is(bootUrl('http://10.77.0.1', 'deploy/vmlinuz'), 'http://10.77.0.1/boot/deploy/vmlinuz');
  t.is(bootUrl('http://10.77.0.1/', '/deploy/vmlinuz'), 'http://10.77.0.1/boot/deploy/vmlinuz');
  t.is(bootUrl('http://10.77.0.1', 'http://mirror/vmlinuz'), 'http://mirror/vmlinuz');
});

test('decideBoot is pure: same input, same decision, inputs untouched', (t) => {
  const m = machine('approved');
  const s = settings();
  const before = structuredClone({ m, s });
  const a = decideBoot({ phase: 'script', client: client({ isIpxe: true }), machine: m }, s);
  const b = decideBoot({ phase: 'script', client: client({ isIpxe: true }), machine: m }, s);
  t.deepEqual(a, b);
  t.deepEqual({ m, s }, before);
});
