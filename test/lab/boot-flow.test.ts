/**
 * The boot flow over HTTP, driven the way iPXE and the deploy environment drive it
 * (curl stands in for them here; QEMU does it for real in test/e2e): a new machine
 * waits for approval, is approved through the API, gets its deploy script, reports
 * "deployed", then boots locally; a reimage sends it back to deploy. Plus the API's
 * and the HTTP server's answers to bad input.
 */

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { type BoxLab, boxLab } from '../helpers/box.ts';
import { pxeLease } from '../helpers/mqtt-lab.ts';

const MAC = '52:54:00:77:00:21';
const CONFIG = (bootDir: string) => ({
  bootDir,
  dhcp: { mode: 'full', range: '10.77.0.100-10.77.0.200' },
  http: { port: 80 },
  // Reads from the private side need no credentials here (ui.openReadOnly); changes still do.
  ui: { port: 8080, openReadOnly: true },
  boot: {
    unknown: 'approve',
    namingPattern: 'HPC-NODE%03#',
    images: { 'rocky-9': { title: 'Rocky 9' }, 'debian-12': {} },
    defaultImage: { bios: 'rocky-9', 'uefi-x64': 'rocky-9' },
    deployEnvironments: {
      bios: { kernel: 'deploy/vmlinuz', initrd: 'deploy/initrd.img', params: ['console=ttyS0'] },
      'uefi-x64': { kernel: 'deploy/vmlinuz', initrd: 'deploy/initrd.img', params: ['console=ttyS0'] },
    },
    pollIntervalSec: 2,
  },
});

async function setup(t: { teardown(fn: () => Promise<void>): void }) {
  const lab = await boxLab();
  t.teardown(() => lab.destroy());
  const bootDir = path.join(lab.dataDir, 'boot');
  mkdirSync(path.join(bootDir, 'deploy'), { recursive: true });
  await lab.start(CONFIG(bootDir));
  // The client plays a BIOS PXE ROM: its DHCP request (vendor class PXEClient, arch 0)
  // is how the box learns the machine and its architecture.
  await pxeLease(lab.cli, lab.dataDir, MAC);
  const token = readFileSync(path.join(lab.dataDir, 'api-token'), 'utf8').trim();
  return { lab, bootDir, token };
}

async function curl(lab: BoxLab, args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await lab.cli.exec('curl', ['-sS', '-m', '10', '-w', '\n%{http_code}', ...args]);
  const i = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(i + 1)), body: stdout.slice(0, i) };
}

const api = (lab: BoxLab, method: string, p: string, token?: string, body?: unknown) =>
  curl(lab, [
    '-X',
    method,
    ...(token ? ['-H', `Authorization: Bearer ${token}`] : []),
    ...(body !== undefined
      ? ['-H', 'Content-Type: application/json', '--data', typeof body === 'string' ? body : JSON.stringify(body)]
      : []),
    `http://10.77.0.1:${lab.uiPort}${p}`,
  ]);

test('a new machine waits, is approved, deploys, reports, boots locally, and is reimaged', async (t) => {
  const { lab, token } = await setup(t);
  const script = () => curl(lab, [`http://10.77.0.1/boot/${MAC}.ipxe`]);

  let m = JSON.parse((await api(lab, 'GET', `/api/v1/machines/${MAC}`)).body);
  t.is(m.machine.arch, 'bios', 'learnt from the PXE DHCP request');
  t.is(m.machine.lastBoot.file, 'undionly.kpxe');
  const wait = await script();
  t.is(wait.status, 200);
  t.regex(wait.body, /^#!ipxe/);
  t.regex(wait.body, /waiting for approval of HPC-NODE001/);
  m = JSON.parse((await api(lab, 'GET', `/api/v1/machines/${MAC}`)).body);
  t.is(m.machine.state, 'pending');
  t.is(m.machine.name, 'HPC-NODE001');

  const unauth = await api(lab, 'POST', `/api/v1/machines/${MAC}/approve`);
  t.is(unauth.status, 401);
  t.is(JSON.parse(unauth.body).error.code, 'UNAUTHORIZED');
  const ok = await api(lab, 'POST', '/api/v1/machines/HPC-NODE001/approve', token);
  t.is(ok.status, 200, ok.body);
  t.is(JSON.parse(ok.body).machine.state, 'approved');
  const again = await api(lab, 'POST', `/api/v1/machines/${MAC}/approve`, token);
  t.is(again.status, 409);
  t.is(JSON.parse(again.body).error.code, 'INVALID_STATE');

  const deploy = await script();
  t.regex(deploy.body, /kernel http:\/\/10\.77\.0\.1\/boot\/deploy\/vmlinuz/);
  t.regex(deploy.body, /bootbox\.mac=52:54:00:77:00:21/);
  t.regex(deploy.body, /bootbox\.image=rocky-9/);
  const tokenParam = /bootbox\.token=([0-9a-f]+)/.exec(deploy.body)![1]!;
  m = JSON.parse((await api(lab, 'GET', `/api/v1/machines/${MAC}`)).body);
  t.is(m.machine.state, 'deploying');

  const report = (body: unknown) =>
    curl(lab, [
      '-X',
      'POST',
      '-H',
      'Content-Type: application/json',
      '--data',
      JSON.stringify(body),
      `http://10.77.0.1/api/v1/nodes/${MAC}/report`,
    ]);
  t.is((await report({ state: 'deployed', token: 'wrong' })).status, 403);
  t.is((await report({ state: 'exploded', token: tokenParam })).status, 400);
  const rep = await report({ state: 'deployed', image: 'rocky-9', token: tokenParam });
  t.is(rep.status, 200, rep.body);
  m = JSON.parse((await api(lab, 'GET', `/api/v1/machines/${MAC}`)).body);
  t.is(m.machine.state, 'deployed');

  const local = await script();
  t.regex(local.body, /sanboot --no-describe --drive 0x80/);

  const badImage = await api(lab, 'POST', `/api/v1/machines/${MAC}/reimage`, token, {
    mode: 'next-boot',
    image: 'nope',
  });
  t.is(badImage.status, 404);
  const badMode = await api(lab, 'POST', `/api/v1/machines/${MAC}/reimage`, token, { mode: 'sometime' });
  t.is(badMode.status, 400);
  const re = await api(lab, 'POST', `/api/v1/machines/${MAC}/reimage`, token, {
    mode: 'next-boot',
    image: 'debian-12',
  });
  t.is(re.status, 200, re.body);
  t.is(JSON.parse(re.body).machine.state, 'reimage-requested');
  const redeploy = await script();
  t.regex(redeploy.body, /bootbox\.image=debian-12/);

  const tl = JSON.parse((await api(lab, 'GET', `/api/v1/machines/${MAC}`)).body).timeline as {
    type: string;
    to?: string;
  }[];
  const states = tl.filter((e) => e.type === 'machine.state').map((e) => e.to);
  t.deepEqual(states, ['pending', 'approved', 'deploying', 'deployed', 'reimage-requested', 'deploying']);
  t.true(
    tl.some((e) => e.type === 'http.request'),
    'HTTP steps are on the timeline',
  );
});

test('bad input gets clear API and HTTP errors, never a crash', async (t) => {
  const { lab, bootDir, token } = await setup(t);
  const file = Buffer.alloc(10_000);
  for (let i = 0; i < file.length; i++) file[i] = i & 255;
  writeFileSync(path.join(bootDir, 'blob.bin'), file);

  const cases: [string, string, string | undefined, unknown, number, string?][] = [
    ['GET', '/api/v1/machines/aa:bb:cc:dd:ee:ff', undefined, undefined, 404, 'NOT_FOUND'],
    ['GET', '/api/v1/machines/not%20a%20name', undefined, undefined, 404, 'NOT_FOUND'],
    ['POST', '/api/v1/machines/zz:zz/approve', token, undefined, 404, 'NOT_FOUND'],
    ['POST', `/api/v1/machines/${MAC}/reimage`, token, '{"mode": ', 400, 'INVALID_REQUEST'],
    ['POST', `/api/v1/machines/${MAC}/reject`, 'not-the-token-at-all', undefined, 401, 'UNAUTHORIZED'],
    ['GET', '/api/v1/nothing-here', undefined, undefined, 404, 'NOT_FOUND'],
  ];
  for (const [method, p, tok, body, status, code] of cases) {
    const r = await api(lab, method, p, tok, body);
    t.is(r.status, status, `${method} ${p}: ${r.body}`);
    if (code) t.is(JSON.parse(r.body).error.code, code);
  }
  const http = (args: string[]) => curl(lab, args);
  for (const u of [
    '/boot/../../etc/passwd',
    '/boot/..%2f..%2fetc%2fpasswd',
    '/boot/%2fetc%2fpasswd',
    '/boot/..\\..\\etc\\passwd',
  ]) {
    const r = await http(['--path-as-is', `http://10.77.0.1${u}`]);
    t.true(r.status >= 400 && r.status < 500, `${u}: ${r.status}`);
    t.notRegex(r.body, /root:/);
  }
  t.is((await http(['http://10.77.0.1/etc/passwd'])).status, 404);
  t.is((await http(['http://10.77.0.1/boot/nope.bin'])).status, 404);
  t.is((await http(['http://10.77.0.1/boot/not-a-mac.ipxe'])).status, 404);
  const out = path.join(lab.dataDir, 'part.bin');
  await lab.cli.exec('curl', ['-sS', '-r', '100-199', '-o', out, 'http://10.77.0.1/boot/blob.bin']);
  t.deepEqual(readFileSync(out), file.subarray(100, 200));
  t.is((await http(['-H', 'Range: bytes=20000-', 'http://10.77.0.1/boot/blob.bin'])).status, 416);
  t.is((await http(['-H', 'Range: bytes=9-3', 'http://10.77.0.1/boot/blob.bin'])).status, 400);
  t.is((await http(['-H', 'Range: pages=1-2', 'http://10.77.0.1/boot/blob.bin'])).status, 400);
  const head = await lab.cli.exec('curl', ['-sSI', 'http://10.77.0.1/boot/blob.bin']);
  t.regex(head.stdout, /Content-Length: 10000/i);
  const health = await lab.health();
  const c = health.services['http-boot'].counters;
  t.true(c.badRequests >= 3 && c.badRequests + c.notFound >= 8, JSON.stringify(c));
});

test('a burst of 500 unknown clients gives 500 pending machines with unique names, kept across a restart', async (t) => {
  const { lab } = await setup(t);
  const urls = Array.from({ length: 500 }, (_, i) => {
    const mac = `02:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    return `http://10.77.0.1/boot/${mac}.ipxe`;
  });
  // curl fetches the URLs in parallel batches (like nodes that all power on at once).
  const list = path.join(lab.dataDir, 'urls.txt');
  writeFileSync(list, urls.map((u) => `url = "${u}"\noutput = "/dev/null"`).join('\n'));
  await lab.cli.exec('curl', ['-sS', '--parallel', '--parallel-max', '50', '-K', list], { timeoutMs: 60_000 });
  const count = async () => {
    const r = JSON.parse((await api(lab, 'GET', '/api/v1/machines?state=pending')).body);
    return r.machines as { name: string }[];
  };
  let ms = await count();
  t.is(ms.length, 501, '500 and the PXE client of the setup');
  t.is(new Set(ms.map((m) => m.name.toLowerCase())).size, 501, 'names are unique');
  t.is(await lab.stop(), 0);
  await lab.start(CONFIG(path.join(lab.dataDir, 'boot')));
  ms = await count();
  t.is(ms.length, 501, 'no lost writes after a restart');
});

test('iPXE-style percent-encoded MACs reach the script', async (t) => {
  const { lab } = await setup(t);
  const r = await curl(lab, [`http://10.77.0.1/boot/${MAC.replace(/:/g, '%3A')}.ipxe`]);
  t.is(r.status, 200);
  t.regex(r.body, /^#!ipxe/);
});

test('an admin names a machine by hand, sets its image, group and first stage', async (t) => {
  const { lab, token } = await setup(t);
  const put = (body: unknown, id = MAC) => api(lab, 'PUT', `/api/v1/machines/${id}`, token, body);
  const ok = await put({ name: 'rack1-n01', image: 'debian-12', group: 'rack1', firstStage: 'snponly.efi' });
  t.is(ok.status, 200, ok.body);
  const m = JSON.parse(ok.body).machine;
  t.like(m, { name: 'rack1-n01', image: 'debian-12', group: 'rack1', firstStageOverride: 'snponly.efi' });
  t.is(JSON.parse((await api(lab, 'GET', '/api/v1/machines/RACK1-N01')).body).machine.mac, MAC, 'found by name');
  // A second machine may not take the name; bad values are refused and change nothing.
  const other = '02:00:00:00:00:07';
  await curl(lab, [`http://10.77.0.1/boot/${other}.ipxe`]);
  const taken = await put({ name: 'RACK1-N01' }, other);
  t.is(taken.status, 409);
  t.is(JSON.parse(taken.body).error.code, 'NAME_IN_USE');
  t.is((await put({ name: 'bad name!' })).status, 400);
  t.is((await put({ image: 'nope' })).status, 404);
  t.is((await put({ firstStage: 'grub.efi' })).status, 400);
  t.is((await put({ colour: 'red' })).status, 400);
  // The Secure Boot chain, then back to the box's default.
  const shim = await put({ firstStage: 'shim' });
  t.is(shim.status, 200, shim.body);
  t.is(JSON.parse(shim.body).machine.firstStageOverride, 'shim');
  t.is(JSON.parse((await put({ firstStage: null })).body).machine.firstStageOverride, undefined);
  t.is((await api(lab, 'PUT', `/api/v1/machines/${MAC}`, undefined, { name: 'x' })).status, 401);
  t.is(JSON.parse((await api(lab, 'GET', `/api/v1/machines/${MAC}`)).body).machine.name, 'rack1-n01');
});

test('the boot policy settings take effect at once: a new machine is approved, named and given its image by them', async (t) => {
  const { lab, token } = await setup(t);
  const put = await api(lab, 'PUT', '/api/v1/settings', token, {
    boot: { unknown: 'auto', namingPattern: 'LIVE%02#', defaultImage: { bios: 'debian-12' } },
    dhcp: { range: '10.77.0.120-10.77.0.130' },
  });
  t.is(put.status, 200, put.body);
  const p = JSON.parse(put.body);
  t.deepEqual(p.applied, ['boot.unknown', 'boot.namingPattern', 'boot.defaultImage']);
  t.deepEqual(p.restartKeys, ['dhcp.range'], 'DHCP waits for a restart');
  // A machine the box has never seen, booting now: no restart happened in between.
  const mac = '02:00:00:00:aa:01';
  await pxeLease(lab.cli, lab.dataDir, mac);
  const script = await curl(lab, [`http://10.77.0.1/boot/${mac}.ipxe`]);
  t.is(script.status, 200);
  t.regex(script.body, /bootbox: deploying image debian-12 to LIVE\d\d \(02:00:00:00:aa:01\)/);
  const m = JSON.parse((await api(lab, 'GET', `/api/v1/machines/${mac}`)).body).machine;
  t.like(m, { state: 'deploying', image: 'debian-12' });
  t.regex(m.name, /^LIVE\d\d$/);
  // The machine of the setup keeps its name; the settings survive a restart.
  t.is(JSON.parse((await api(lab, 'GET', `/api/v1/machines/${MAC}`)).body).machine.name, 'HPC-NODE001');
  t.is(await lab.stop(), 0);
  await lab.start(CONFIG(path.join(lab.dataDir, 'boot')));
  const after = JSON.parse((await api(lab, 'GET', '/api/v1/settings', token)).body);
  t.is(after.settings.boot.namingPattern, 'LIVE%02#');
  t.is(after.settings.dhcp.range, '10.77.0.120-10.77.0.130');
  t.false(after.restartRequired);
});
