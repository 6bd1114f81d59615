/**
 * The web UI in headless Chromium against a real box: `bootbox serve --lab` in its own
 * namespace, a real DHCP client (busybox udhcpc playing a BIOS PXE ROM) on the lab
 * switch, and Chromium started inside the box's namespace so it talks to the box's
 * 127.0.0.1. Covers the first-start setup and sign-in, a machine appearing and being
 * approved live, its timeline filling in, an upload that survives a dropped chunk,
 * reimage through the confirmation dialog (keyboard: Escape, focus trap), text from the
 * API shown as text, the narrow layout, and no CSP violation or script error anywhere.
 * Screenshots of every page go to test-artifacts/ui/; docs/screenshots/{dashboard,machines}.png
 * are written when missing (BOOTBOX_UPDATE_SCREENSHOTS=1 replaces them).
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { type Browser, chromium, type Page } from 'playwright-core';
import { buildUi } from '../../web-ui/build.ts';
import { pxeLease } from '../helpers/mqtt-lab.ts';
import { collectLines, Netns, NODE, ROOT, sh, uniqueId, waitForLine } from '../helpers/netns.ts';

const BIN = path.join(ROOT, 'bin/bootbox.mjs');
const ARTIFACTS = path.join(ROOT, 'test-artifacts/ui');
const DOCS_SHOTS = path.join(ROOT, 'docs/screenshots');
const UI = 'http://127.0.0.1:8080';
const PASSWORD = 'correct horse battery';
const MAC1 = '52:54:00:ab:00:01';
const MAC2 = '52:54:00:ab:00:02';
const XSS = '<img src=x onerror=alert(1)>';

interface Ctx {
  lab: string;
  box: Netns;
  clients: Netns[];
  data: string;
  proc: ChildProcess;
  log: string[];
  setupToken: string;
  browser: Browser;
  page: Page;
  dialogs: string[];
  problems: string[];
  token: string;
}

let ctx: Ctx | undefined;
const c = (): Ctx => {
  if (!ctx) throw new Error('the box did not start (see test.before)');
  return ctx;
};

/** A client host on the lab switch: its eth0 is a port of the switch's bridge. */
function switchHost(lab: string, name: string, mac: string): Netns {
  const ns = new Netns(`bbt-${lab}-${name}`);
  const sw = `bblab-${lab}`;
  sh('ip', ['-n', sw, 'link', 'add', `${name}p`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
  sh('ip', ['-n', sw, 'link', 'set', `${name}p`, 'master', 'br0', 'up']);
  ns.ip('link', 'set', 'eth0', 'address', mac);
  ns.ip('link', 'set', 'eth0', 'up');
  return ns;
}

/** The box's API from inside its namespace, with the API token (as a script would call it). */
// biome-ignore lint/suspicious/noExplicitAny: tests read deep into the API's answers
async function boxApi(method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  const { stdout } = await c().box.exec('curl', [
    '-sS',
    '-m',
    '10',
    '-w',
    '\n%{http_code}',
    '-X',
    method,
    '-H',
    `Authorization: Bearer ${c().token}`,
    ...(body !== undefined ? ['-H', 'Content-Type: application/json', '--data', JSON.stringify(body)] : []),
    `${UI}${p}`,
  ]);
  const i = stdout.lastIndexOf('\n');
  const text = stdout.slice(0, i);
  return { status: Number(stdout.slice(i + 1)), json: text ? JSON.parse(text) : undefined };
}

async function shot(name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await c().page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function go(hash: string): Promise<void> {
  const { page } = c();
  await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
}

test.before(async () => {
  await buildUi({ quiet: true });
  const lab = `u${uniqueId()}`.slice(0, 8);
  const box = new Netns(`bbt-${lab}-box`);
  const data = mkdtempSync(path.join(os.tmpdir(), 'bootbox-ui-'));
  const partial: Partial<Ctx> = { lab, box, data, clients: [], dialogs: [], problems: [] };
  ctx = partial as Ctx;
  sh(NODE, [BIN, 'lab', 'up', '--lab', lab, '--netns', box.name]);
  const config = path.join(data, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      imagesDir: path.join(data, 'images'),
      dhcp: { mode: 'full', range: '10.77.0.100-10.77.0.150' },
      boot: { namingPattern: 'UI-NODE%02#' },
    }),
  );
  const proc = box.spawn(NODE, [BIN, 'serve', '--lab', '--lab-name', lab, '--config', config, '--data', data]);
  partial.proc = proc;
  partial.log = collectLines(proc);
  proc.stderr?.on('data', (d) => partial.log!.push(String(d)));
  const ready = await waitForLine(proc, /^bootbox ready/, 30_000);
  const m = /setup token (\S+)/.exec(ready);
  if (!m) throw new Error(`no setup token in the ready line: ${ready}`);
  partial.setupToken = m[1]!;
  partial.token = readFileSync(path.join(data, 'api-token'), 'utf8').trim();

  // Chromium runs in the box's namespace: the UI is the box's http://127.0.0.1:8080.
  const wrapper = path.join(data, 'chromium-in-netns.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${box.name} /usr/bin/chromium "$@"\n`);
  chmodSync(wrapper, 0o755);
  const browser = await chromium.launch({ executablePath: wrapper, args: ['--no-sandbox'] });
  partial.browser = browser;
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  partial.page = page;
  page.on('dialog', (d) => {
    partial.dialogs!.push(d.message());
    void d.dismiss();
  });
  page.on('pageerror', (e) => partial.problems!.push(`page error: ${e.message}`));
  page.on('console', (msg) => {
    // A CSP violation is a console error; so is any uncaught failure. Refused requests the
    // tests provoke (wrong password, invalid settings, the dropped chunk) are logged by
    // Chromium as "Failed to load resource": those are expected.
    if (msg.type() === 'error' && !/^Failed to load resource/.test(msg.text())) partial.problems!.push(msg.text());
  });
});

test.after.always(async () => {
  if (!ctx) return;
  await ctx.browser?.close().catch(() => undefined);
  if (ctx.proc && ctx.proc.exitCode === null) {
    const gone = new Promise((r) => ctx!.proc.once('exit', r));
    ctx.proc.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
  }
  for (const ns of ctx.clients ?? []) await ns.destroy();
  try {
    sh(NODE, [BIN, 'lab', 'down', '--lab', ctx.lab]);
  } catch {
    // already gone
  }
  await ctx.box?.destroy();
  rmSync(ctx.data, { recursive: true, force: true });
});

test('first start: the setup page takes the token from the ready line; sign out, a wrong password, sign in', async (t) => {
  const { page } = c();
  await page.goto(`${UI}/`);
  await page.getByRole('heading', { name: 'Set up this box' }).waitFor();
  // What the page's CSP says (no inline scripts or styles) is what the box sends.
  const head = await c().box.exec('curl', ['-sS', '-m', '5', '-D', '-', '-o', '/dev/null', `${UI}/`]);
  t.regex(head.stdout, /content-security-policy: [^\n]*script-src 'self'; style-src 'self'/i);
  await page.getByLabel('Setup token').fill('wrong-token');
  await page.getByLabel('New admin password (at least 10 characters)').fill(PASSWORD);
  await page.getByLabel('New admin password, again').fill(PASSWORD);
  await page.getByRole('button', { name: 'Set password and sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong setup token' }).waitFor();
  await shot('setup');
  await page.getByLabel('Setup token').fill(c().setupToken);
  await page.getByRole('button', { name: 'Set password and sign in' }).click();
  await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
  await page.getByText('No machine has netbooted yet.').waitFor();
  t.pass();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong password' }).waitFor();
  await shot('login');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
  await page.locator('.conn-live').waitFor();
  t.is(await page.locator('nav[aria-label="Main"] a[aria-current="page"]').textContent(), 'Dashboard');
});

test('a machine a real DHCP client creates shows up pending, live; approving it (button) and through the API shows at once', async (t) => {
  const { page } = c();
  await go('#/machines');
  await page.getByText('No machines yet.').waitFor();
  const h1 = switchHost(c().lab, 'c1', MAC1);
  c().clients.push(h1);
  await pxeLease(h1, path.join(c().data, 'c1'), MAC1);
  // No reload: the machine arrives over the event stream.
  const pending = page.getByRole('region', { name: /Waiting for approval/ });
  await pending.getByText('UI-NODE01').waitFor();
  await pending.getByRole('button', { name: 'Approve UI-NODE01' }).click();
  await page.getByRole('status').filter({ hasText: 'UI-NODE01 (52:54:00:ab:00:01) approved.' }).waitFor();
  const row = page.locator('table.machines tbody tr', { hasText: MAC1 });
  await row.locator('.badge-approved').waitFor();
  t.is((await boxApi('GET', `/api/v1/machines/${MAC1}`)).json.machine.state, 'approved');

  // A second machine, approved by a script through the API: the open page follows.
  const h2 = switchHost(c().lab, 'c2', MAC2);
  c().clients.push(h2);
  await pxeLease(h2, path.join(c().data, 'c2'), MAC2);
  const row2 = page.locator('table.machines tbody tr', { hasText: MAC2 });
  await row2.locator('.badge-pending').waitFor();
  t.is((await boxApi('POST', `/api/v1/machines/${MAC2}/approve`)).status, 200);
  await row2.locator('.badge-approved').waitFor();
  t.is(await pending.count(), 0, 'nothing waits for approval any more');

  // Filters: text search and state.
  await page.getByLabel('Search').fill('ab:00:02');
  await page.locator('table.machines tbody tr').first().waitFor();
  t.is(await page.locator('table.machines tbody tr').count(), 1);
  await page.getByLabel('Search').fill('');
  await page.getByLabel('State').selectOption('pending');
  await page.getByText('No machine matches these filters.').waitFor();
  await page.getByRole('button', { name: 'Clear filters' }).click();
  t.is(await page.locator('table.machines tbody tr').count(), 2);
});

test('the machine page tells its boot in words and fills in live as it fetches its script', async (t) => {
  const { page } = c();
  await go(`#/machines/${MAC1}`);
  await page.getByRole('heading', { name: /UI-NODE01/, level: 1 }).waitFor();
  const latest = page.locator('article.boot').first();
  await latest
    .getByRole('region', { name: 'DHCP' })
    .getByText(/OFFER sent: address 10\.77\.0\.1\d\d/)
    .waitFor();
  t.regex(
    (await latest.getByRole('region', { name: 'DHCP' }).textContent()) ?? '',
    /DISCOVER from the BIOS network boot ROM/,
  );
  // The node's iPXE asks for its script (curl plays iPXE): the open page shows it without a reload.
  const h1 = c().clients[0]!;
  const { stdout } = await h1.exec('curl', ['-sS', '-m', '5', `http://10.77.0.1/boot/${MAC1}.ipxe`]);
  t.regex(stdout, /^#!ipxe/);
  await latest
    .getByRole('region', { name: 'HTTP' })
    .getByText(`Fetched /boot/${MAC1}.ipxe`, { exact: false })
    .waitFor();
  await latest
    .getByRole('region', { name: 'Deploy' })
    .getByText(/Told to/)
    .waitFor();
  await page.getByText('Full timeline').click();
  t.true((await page.locator('table.timeline tbody tr').count()) >= 5);
  await shot('machine');
});

test('an upload shows its progress to the end, resumes after a dropped chunk, and the image appears', async (t) => {
  const { page } = c();
  const file = path.join(c().data, 'ui-test.img');
  // 20 MiB: three chunks of at most 8 MiB; half random (not all zeros, so it is stored).
  writeFileSync(file, Buffer.concat([randomBytes(10 << 20), Buffer.alloc(10 << 20)]));
  let puts = 0;
  let dropped = 0;
  await page.route('**/api/v1/uploads/*', async (route) => {
    if (route.request().method() === 'PUT' && ++puts === 2) {
      dropped++;
      return route.abort('connectionreset');
    }
    return route.continue();
  });
  await go('#/images');
  await page.getByRole('heading', { name: 'Images', level: 1 }).waitFor();
  await page.getByText('No images yet.').waitFor();
  await page.getByLabel('Image file (.wim, .esd, .img, .raw)').setInputFiles(file);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.locator('progress#upload-progress[data-phase="done"]').waitFor({ timeout: 60_000 });
  await page.unroute('**/api/v1/uploads/*');
  t.is(dropped, 1);
  t.is(puts, 4, 'three chunks plus the one sent again');
  t.is(await page.evaluate('document.getElementById("upload-progress").value'), 100);
  await page.getByText('in the catalog: install/default/ui-test').waitFor();
  await page.getByRole('region', { name: 'Group default' }).getByText('ui-test', { exact: true }).waitFor();

  // Text from the API is text: an image description with HTML shows literally, runs nothing.
  const put = await boxApi('PUT', `/api/v1/images/${encodeURIComponent('install/default/ui-test')}`, {
    description: XSS,
  });
  t.is(put.status, 200, JSON.stringify(put.json));
  await page.reload();
  await page.locator('.image-description', { hasText: XSS }).waitFor();
  t.is(await page.locator('.image-description').first().textContent(), XSS);
  t.is(await page.evaluate('document.querySelectorAll("img").length'), 0);
  await shot('images');
});

test('reimage through the confirmation dialog: it names the machines and the mode; Escape and Tab stay in it', async (t) => {
  const { page } = c();
  await go('#/machines');
  await page.getByRole('checkbox', { name: 'Select UI-NODE01' }).check();
  await page.getByRole('checkbox', { name: 'Select UI-NODE02' }).check();
  await page.getByRole('button', { name: 'Reimage 2…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Reimage 2 machines' });
  await dialog.waitFor();
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  // back on the button at once, or within a few frames if a live update re-rendered it
  await page.waitForFunction(`document.activeElement?.textContent?.trim() === 'Reimage 2…'`, undefined, {
    timeout: 2000,
  });
  t.is(await page.evaluate('document.activeElement?.textContent?.trim()'), 'Reimage 2…', 'focus is back on the button');
  await page.keyboard.press('Enter');
  await dialog.waitFor();
  const names = (await dialog.getByRole('list', { name: 'Machines to reimage' }).textContent()) ?? '';
  t.regex(names, /UI-NODE01 \(52:54:00:ab:00:01\)/);
  t.regex(names, /UI-NODE02 \(52:54:00:ab:00:02\)/);
  // The wipe mode asks for an explicit confirmation first.
  await dialog.getByRole('radio', { name: /Wipe now/ }).check();
  t.true(await dialog.getByRole('button', { name: 'Reimage 2 machines (wipe)' }).isDisabled());
  await dialog.getByRole('radio', { name: /At the next netboot/ }).check();
  // Tab cycles inside the dialog.
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    t.true(
      await page.evaluate('Boolean(document.activeElement?.closest("dialog"))'),
      `tab ${i + 1} stays in the dialog`,
    );
  }
  await dialog.getByLabel('Image', { exact: true }).selectOption('install/default/ui-test');
  await shot('reimage-dialog');
  await dialog.getByRole('button', { name: 'Reimage 2 machines (next-boot)' }).click();
  await page.getByRole('status').filter({ hasText: 'Reimage (next-boot) requested for 2 machines.' }).waitFor();
  await page.locator('table.machines tbody tr', { hasText: MAC1 }).locator('.badge-reimage-requested').waitFor();
  const m = (await boxApi('GET', `/api/v1/machines/${MAC2}`)).json.machine;
  t.like(m, { state: 'reimage-requested', reimage: { mode: 'next-boot', image: 'install/default/ui-test' } });
  await shot('machines');
});

test('settings show the API’s validation message at the field; transfers and events list what happened', async (t) => {
  const { page } = c();
  await go('#/settings');
  await page.getByLabel('Naming pattern').fill('NODE');
  await page.getByRole('button', { name: 'Save' }).click();
  const err = page.locator('#err-boot-namingPattern');
  await err.waitFor();
  t.regex((await err.textContent()) ?? '', /boot\.namingPattern/);
  t.is(await page.getByLabel('Naming pattern').getAttribute('aria-invalid'), 'true');
  await page.getByLabel('Naming pattern').fill('UI-NODE%03#');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Saved and in effect now.').waitFor();
  await shot('settings');

  // The node fetches its script again: the Transfers page lists it with its rate.
  await go('#/transfers');
  await page.getByRole('heading', { name: 'Transfers', level: 1 }).waitFor();
  await c().clients[0]!.exec('curl', ['-sS', '-m', '5', '-o', '/dev/null', `http://10.77.0.1/boot/${MAC1}.ipxe`]);
  await page
    .locator('td', { hasText: `/boot/${MAC1}.ipxe` })
    .first()
    .waitFor();
  await shot('transfers');

  // Events: filter by type, pause (news is counted, not shown), resume.
  await go('#/events');
  await page.getByLabel('Type').selectOption('dhcp');
  await page.getByLabel('MAC').fill(MAC2);
  await pxeLease(c().clients[1]!, path.join(c().data, 'c2-again'), MAC2);
  const rows = page.locator('table.events tbody tr');
  await rows.first().waitFor();
  await page.getByRole('button', { name: 'Pause' }).click();
  const before = await rows.count();
  await pxeLease(c().clients[1]!, path.join(c().data, 'c2-third'), MAC2);
  await page.getByText(/Paused; [1-9]\d* new events? since\./).waitFor();
  t.is(await rows.count(), before, 'nothing new is shown while paused');
  await page.getByRole('button', { name: 'Resume' }).click();
  await rows.nth(before).waitFor();
  t.regex((await rows.first().textContent()) ?? '', /dhcp\./);
  await shot('events');
});

test('a 375 px wide screen shows the machines page without sideways scrolling', async (t) => {
  const { page } = c();
  await go('#/');
  await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
  await page.locator('.service').first().waitFor();
  await shot('dashboard');
  await page.setViewportSize({ width: 375, height: 812 });
  await go('#/machines');
  await page.locator('table.machines tbody tr').first().waitFor();
  const widths = (await page.evaluate(
    '[document.documentElement.scrollWidth, document.documentElement.clientWidth, document.body.scrollWidth]',
  )) as number[];
  t.true(
    widths[0]! <= widths[1]! && widths[2]! <= widths[1]!,
    `page ${widths[0]} / body ${widths[2]} wider than ${widths[1]}`,
  );
  await shot('machines-narrow');
  await page.setViewportSize({ width: 1280, height: 860 });
  // The README's screenshots: written when missing, or on request (they differ on every run).
  mkdirSync(DOCS_SHOTS, { recursive: true });
  for (const name of ['dashboard', 'machines']) {
    const dest = path.join(DOCS_SHOTS, `${name}.png`);
    if (!existsSync(dest) || process.env.BOOTBOX_UPDATE_SCREENSHOTS === '1') {
      copyFileSync(path.join(ARTIFACTS, `${name}.png`), dest);
    }
  }
});

test('the admin password is changed on the settings page: a wrong current one is refused at its field; this browser stays signed in', async (t) => {
  const { page, box } = c();
  const NEW = 'a new admin passphrase';
  await go('#/settings');
  await page.getByRole('heading', { name: 'Admin password' }).waitFor();
  await page.getByLabel('Current password', { exact: true }).fill('not the password');
  await page.getByLabel('New password', { exact: true }).fill(NEW);
  await page.getByLabel('New password again', { exact: true }).fill(NEW);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByRole('alert').filter({ hasText: 'is not the admin password' }).waitFor();
  t.is(await page.getByLabel('Current password', { exact: true }).getAttribute('aria-invalid'), 'true');
  await page.getByLabel('Current password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByText(/^Password changed\./).waitFor();
  await shot('password');
  t.is(await page.getByLabel('Current password', { exact: true }).inputValue(), '', 'the fields are emptied');
  // still signed in, with the new session the answer set: a change goes through
  await go('#/settings');
  await page.getByLabel('Naming pattern').fill('UI-NODE%04#');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Saved and in effect now.').waitFor();
  const login = async (password: string) =>
    (
      await box.exec('curl', [
        '-sS',
        '-m',
        '5',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '-H',
        'Content-Type: application/json',
        '--data',
        JSON.stringify({ password }),
        `${UI}/api/v1/session`,
      ])
    ).stdout;
  t.is(await login(PASSWORD), '401', 'the old password no longer signs in');
  t.is(await login(NEW), '200');
});

test('no alert or dialog fired and no CSP violation or script error was logged', (t) => {
  t.deepEqual(c().dialogs, []);
  t.deepEqual(c().problems, []);
});
