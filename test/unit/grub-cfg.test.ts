import { readFileSync } from 'node:fs';
import test from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import { grubPath, renderGrubBootstrap, renderGrubCfg } from '../../firmware/policy/grub-cfg.ts';
import type { DeployPlan, ScriptPlan } from '../../firmware/policy/script-plan.ts';
import { BASE, DEPLOY, GOLDEN_PLANS, HOSTILE_TEXT, MAC, selfUrl } from '../helpers/script-plans.ts';

const FIXTURES = new URL('../fixtures/scripts/', import.meta.url);
const ctx = { selfUrl: selfUrl('grub.cfg') };
const TFTP_BASE = 'tftp://10.77.0.1';

function render(plan: ScriptPlan): string {
  const out = renderGrubCfg(plan, ctx);
  if (out instanceof BootboxError) throw out;
  return out;
}

for (const [name, plan] of Object.entries(GOLDEN_PLANS)) {
  test(`golden: ${name}.grub.cfg`, (t) => {
    t.is(render(plan), readFileSync(new URL(`${name}.grub.cfg`, FIXTURES), 'utf8'));
  });
}

test('golden: bootstrap.grub.cfg hands over to the per-machine configuration, over TFTP', (t) => {
  t.is(renderGrubBootstrap(TFTP_BASE), readFileSync(new URL('bootstrap.grub.cfg', FIXTURES), 'utf8'));
  t.is(renderGrubBootstrap(`${TFTP_BASE}/`), readFileSync(new URL('bootstrap.grub.cfg', FIXTURES), 'utf8'));
  // GRUB's tftp driver has no port in its device names.
  t.like(renderGrubBootstrap('tftp://10.77.0.1:6969'), { code: 'UNSAFE_SCRIPT_VALUE' });
});

/** The box's boot tree as HTTP (port 8081, as in the lab) and TFTP serve it. */
const TREE = { http: 'http://10.77.0.1:8081/boot/', tftp: `${TFTP_BASE}/` };
const tftpCtx = { selfUrl: `${TFTP_BASE}/${MAC}.grub.cfg`, bootTree: TREE };
const inTree = (p: DeployPlan): DeployPlan => ({
  ...p,
  kernelUrl: p.kernelUrl.replace(BASE, 'http://10.77.0.1:8081'),
  initrdUrl: p.initrdUrl.replace(BASE, 'http://10.77.0.1:8081'),
});

test('with the boot tree given, its files are fetched over TFTP (GRUB netboot images have no HTTP)', (t) => {
  const out = renderGrubCfg(inTree(DEPLOY), tftpCtx);
  if (out instanceof BootboxError) return t.fail(out.message);
  const lines = out.split('\n');
  t.is(
    lines.find((l) => l.startsWith('linux ')),
    "linux '(tftp,10.77.0.1)/deploy/x64/vmlinuz' 'console=ttyS0' 'bootbox.url=http://10.77.0.1' " +
      `'bootbox.mac=${MAC}' 'bootbox.image=win11' 'bootbox.name=HPC-NODE001'`,
  );
  t.is(
    lines.find((l) => l.startsWith('initrd ')),
    "initrd '(tftp,10.77.0.1)/deploy/x64/initrd.img'",
  );
  // Menu entries too.
  const menu = GOLDEN_PLANS.menu!;
  if (menu.kind !== 'menu') return t.fail();
  const m = renderGrubCfg(
    { ...menu, entries: menu.entries.map((e) => (e.plan.kind === 'deploy' ? { ...e, plan: inTree(e.plan) } : e)) },
    tftpCtx,
  );
  if (m instanceof BootboxError) return t.fail(m.message);
  t.true(m.includes("  linux '(tftp,10.77.0.1)/deploy/x64/vmlinuz'"));
  t.false(m.includes('(http,'));
});

test('only URLs inside the boot tree go over TFTP; others stay as they are', (t) => {
  const cases: [string, string][] = [
    // another host, or the box on another port: not the boot tree
    ['http://10.77.0.9/boot/deploy/k', '(http,10.77.0.9)/boot/deploy/k'],
    ['http://10.77.0.1/boot/deploy/k', '(http,10.77.0.1)/boot/deploy/k'],
    // outside /boot/, or not a plain path
    ['http://10.77.0.1:8081/images/k', 'refused'],
    ['http://10.77.0.1:8081/boot/deploy/k?x=1', 'refused'],
    ['http://10.77.0.1:8081/boot/../k', 'refused'],
    // already TFTP
    ['tftp://10.77.0.1/deploy/k', '(tftp,10.77.0.1)/deploy/k'],
  ];
  for (const [url, want] of cases) {
    const out = renderGrubCfg({ ...DEPLOY, kernelUrl: url }, tftpCtx);
    const got =
      out instanceof BootboxError ? 'refused' : (/^linux '([^']*)'/m.exec(out)?.[1] ?? `no linux line in ${out}`);
    t.is(got, want, url);
  }
});

test('a wait served over TFTP polls over TFTP', (t) => {
  const out = renderGrubCfg(GOLDEN_PLANS['wait-first']!, tftpCtx);
  if (out instanceof BootboxError) return t.fail(out.message);
  t.true(out.includes(`configfile '(tftp,10.77.0.1)/${MAC}.grub.cfg?attempt=2'\n`));
});

test('URLs become GRUB device paths; what GRUB cannot fetch is refused', (t) => {
  t.is(grubPath('http://10.77.0.1/boot/x'), '(http,10.77.0.1)/boot/x');
  t.is(grubPath('http://10.77.0.1:80/boot/x'), '(http,10.77.0.1)/boot/x');
  t.is(grubPath('tftp://boot.lab/grub/x.cfg'), '(tftp,boot.lab)/grub/x.cfg');
  t.is(grubPath(`http://10.77.0.1/boot/${MAC}.grub.cfg?attempt=2`), `(http,10.77.0.1)/boot/${MAC}.grub.cfg?attempt=2`);
  for (const bad of [
    'http://10.77.0.1:8080/boot/x',
    'https://10.77.0.1/boot/x',
    'http://[fe80::1]/x',
    'http://10.77.0.1',
    'boot/x',
    "http://10.77.0.1/a'b",
  ]) {
    t.throws(() => grubPath(bad), { instanceOf: BootboxError }, bad);
  }
  t.like(renderGrubCfg({ ...DEPLOY, kernelUrl: 'http://10.77.0.1:8080/boot/k' }, ctx), { code: 'UNSAFE_SCRIPT_VALUE' });
});

test('every interpolated value is single-quoted', (t) => {
  const linux = render(DEPLOY)
    .split('\n')
    .find((l) => l.startsWith('linux '));
  t.is(
    linux,
    "linux '(http,10.77.0.1)/boot/deploy/x64/vmlinuz' 'console=ttyS0' 'bootbox.url=http://10.77.0.1' " +
      `'bootbox.mac=${MAC}' 'bootbox.image=win11' 'bootbox.name=HPC-NODE001'`,
  );
});

test('hostile display text stays inside its quotes, on its own line', (t) => {
  const hostilePlan = GOLDEN_PLANS['hostile-text']!;
  const benignPlan = JSON.parse(JSON.stringify(hostilePlan).replaceAll(JSON.stringify(HOSTILE_TEXT).slice(1, -1), 'x'));
  const lines = render(hostilePlan).split('\n');
  t.is(lines.length, render(benignPlan).split('\n').length);
  for (const line of lines) {
    // Outside the quoted strings, a hostile line has only what the renderer wrote.
    const outside = line.replace(/'(?:[^']|'\\'')*'/g, "''");
    if (line.includes('evil')) {
      t.regex(outside, /^\s*(echo ''|menuentry '' --id '' \{)$/, line);
    }
  }
});

test('a kernel parameter that is not a safe token is refused', (t) => {
  for (const bad of ["a'b", 'a b', '$x', 'a\nb', '-x']) {
    t.like(renderGrubCfg({ ...DEPLOY, params: [bad] }, ctx), { code: 'UNSAFE_SCRIPT_VALUE' }, bad);
  }
});

test('the wait poll is a configfile of the same URL with the next attempt', (t) => {
  t.true(
    render(GOLDEN_PLANS['wait-first']!).includes(`configfile '(http,10.77.0.1)/boot/${MAC}.grub.cfg?attempt=2'\n`),
  );
});
