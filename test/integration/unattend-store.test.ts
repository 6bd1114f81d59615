/**
 * Unattend templates on a real (temporary) image store: save with validation, atomic
 * replacement, read-only and full volumes (tmpfs mounts: needs root), lookup per
 * architecture and per image, and the HTTP handler over the store.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import type { Machine } from '../../firmware/domain/machine.ts';
import { unattendHandler } from '../../firmware/images/unattend-route.ts';
import { loadTemplate, saveTemplate, UnattendStore } from '../../firmware/images/unattend-store.ts';

const CLIENT_XML = `<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="windowsPE">
    <component name="Microsoft-Windows-Setup" processorArchitecture="amd64">
      <ImageInstall><OSImage><InstallFrom><Path>%BOXURL%/images/%IMAGE%</Path></InstallFrom></OSImage></ImageInstall>
      <UserData><Organization>%ORGNAME%</Organization></UserData>
    </component>
  </settings>
</unattend>
`;
const IMAGE_XML = `<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="specialize">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64">
      <ComputerName>%MACHINENAME%</ComputerName>
    </component>
    <component name="Microsoft-Windows-UnattendedJoin" processorArchitecture="amd64">
      <Identification><JoinDomain>%MACHINEDOMAIN%</JoinDomain></Identification>
    </component>
  </settings>
</unattend>
`;
const SYSPREP =
  '[UserData]\r\nComputerName=%MACHINENAME%\r\nOrgName=%ORGNAME%\r\n[Identification]\r\nJoinDomain=%MACHINEDOMAIN%\r\n';

function machine(over: Partial<Machine> = {}): Machine {
  return {
    mac: '52:54:00:77:00:11',
    arch: 'uefi-x64',
    firmware: 'uefi',
    name: 'HPC-NODE007',
    ip: '10.77.0.50',
    firstSeen: '2025-01-01T00:00:00.000Z',
    lastSeen: '2025-01-01T00:00:00.000Z',
    state: 'deploying',
    stateSince: '2025-01-01T00:00:00.000Z',
    stateReason: 'deploy started',
    image: 'win11-hpc',
    bootCount: 1,
    ...over,
  };
}

function tempDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bb-unattend-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A tmpfs of `size` mounted on a fresh folder; unmounted and removed in teardown. */
function tmpfs(t: ExecutionContext, size: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bb-unattend-mnt-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  t.teardown(() => {
    execFileSync('umount', ['-l', dir]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

function makeStore(imagesDir: string, machines: Machine[] = [machine()]) {
  const images: Record<string, string> = {
    'win11-hpc': path.join(imagesDir, 'install-images', 'hpc', 'win11.wim'),
    'winxp-old': path.join(imagesDir, 'install-images', 'legacy', 'xp.wim'),
  };
  for (const f of Object.values(images)) {
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, 'WIM');
  }
  const store = new UnattendStore({
    imagesDir,
    machine: (mac) => machines.find((m) => m.mac === mac),
    imageFor: (m) => m.image,
    imageFile: (name) => images[name],
    settings: () => ({ domain: 'cluster.example.com', orgName: 'R&D Lab', boxUrl: 'http://10.77.0.1' }),
  });
  return { store, images };
}

async function refusal(t: ExecutionContext, p: Promise<unknown>, code: string): Promise<BootboxError> {
  const e = await t.throwsAsync(p);
  t.true(e instanceof BootboxError, String(e));
  t.is((e as BootboxError).code, code as BootboxError['code']);
  return e as BootboxError;
}

const leftovers = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));

// ---------------------------------------------------------------------------------------------

test('a client template is saved under unattend/<arch>.xml and rendered for a machine of that arch', async (t) => {
  const dir = tempDir(t);
  const { store } = makeStore(dir);
  const p = await store.saveClientTemplate('uefi-x64', 'xml', CLIENT_XML);
  t.is(p, path.join(dir, 'unattend', 'uefi-x64.xml'));
  t.is(fs.readFileSync(p, 'utf8'), CLIENT_XML);
  t.deepEqual(leftovers(path.dirname(p)), []);
  const r = await store.renderFor('52:54:00:77:00:11', 'client', 'client.xml');
  t.is(r.template, p);
  t.is(r.contentType, 'application/xml; charset=utf-8');
  t.regex(r.body, /<Path>http:\/\/10\.77\.0\.1\/images\/win11-hpc<\/Path>/);
  t.regex(r.body, /<Organization>R&amp;D Lab<\/Organization>/);
});

test('an architecture without its own client template falls back to default.xml', async (t) => {
  const dir = tempDir(t);
  const { store } = makeStore(dir, [machine({ arch: 'bios' })]);
  await store.saveClientTemplate('uefi-x64', 'xml', CLIENT_XML.replace('amd64', 'x86-uefi'));
  const missing = await refusal(t, store.renderFor('52:54:00:77:00:11', 'client', 'client.xml'), 'NOT_FOUND');
  t.regex(missing.message, /unattend\/bios\.xml nor .*unattend\/default\.xml exists/);
  const def = await store.saveClientTemplate('default', 'xml', CLIENT_XML);
  const r = await store.renderFor('52:54:00:77:00:11', 'client', 'client.xml');
  t.is(r.template, def);
});

test('an image template lives beside the image file; sysprep.inf renders as INI', async (t) => {
  const dir = tempDir(t);
  const { store, images } = makeStore(dir);
  const x = await store.saveImageTemplate('win11-hpc', 'xml', IMAGE_XML);
  t.is(x, `${images['win11-hpc']}.unattend.xml`);
  const i = await store.saveImageTemplate('win11-hpc', 'ini', SYSPREP);
  t.is(i, `${images['win11-hpc']}.unattend.inf`);
  const rx = await store.renderFor('52:54:00:77:00:11', 'image', 'image.xml');
  t.regex(rx.body, /<ComputerName>HPC-NODE007<\/ComputerName>/);
  t.regex(rx.body, /<JoinDomain>cluster\.example\.com<\/JoinDomain>/);
  const ri = await store.renderFor('52:54:00:77:00:11', 'image', 'sysprep.inf');
  t.is(ri.contentType, 'text/plain; charset=utf-8');
  t.is(
    ri.body,
    '[UserData]\r\nComputerName=HPC-NODE007\r\nOrgName="R&D Lab"\r\n[Identification]\r\nJoinDomain=cluster.example.com\r\n',
  );
});

test('an image without a template, a machine without an image, an image not in the catalog: NOT_FOUND', async (t) => {
  const dir = tempDir(t);
  const { store } = makeStore(dir, [
    machine(),
    machine({ mac: '52:54:00:77:00:12', image: undefined }),
    machine({ mac: '52:54:00:77:00:13', image: 'gone' }),
  ]);
  t.regex(
    (await refusal(t, store.renderFor('52:54:00:77:00:11', 'image', 'image.xml'), 'NOT_FOUND')).message,
    /image win11-hpc has no unattend template .*win11\.wim\.unattend\.xml/,
  );
  t.regex(
    (await refusal(t, store.renderFor('52:54:00:77:00:12', 'image', 'image.xml'), 'NOT_FOUND')).message,
    /has no image/,
  );
  t.regex(
    (await refusal(t, store.renderFor('52:54:00:77:00:13', 'image', 'image.xml'), 'NOT_FOUND')).message,
    /image gone .* is not in the catalog/,
  );
  await refusal(t, store.saveImageTemplate('gone', 'xml', IMAGE_XML), 'NOT_FOUND');
});

test('unknown and rejected machines get nothing', async (t) => {
  const dir = tempDir(t);
  const { store } = makeStore(dir, [
    machine({ state: 'rejected' }),
    machine({ mac: '52:54:00:77:00:14', state: 'unknown' }),
  ]);
  await store.saveClientTemplate('default', 'xml', CLIENT_XML);
  t.regex(
    (await refusal(t, store.renderFor('52:54:00:77:00:99', 'client', 'client.xml'), 'NOT_FOUND')).message,
    /no machine 52:54:00:77:00:99/,
  );
  await refusal(t, store.renderFor('52:54:00:77:00:14', 'client', 'client.xml'), 'NOT_FOUND');
  t.regex(
    (await refusal(t, store.renderFor('52:54:00:77:00:11', 'client', 'client.xml'), 'FORBIDDEN')).message,
    /HPC-NODE007 \(52:54:00:77:00:11\) is rejected/,
  );
});

test('an invalid template is refused at save time and the previous one stays', async (t) => {
  const dir = tempDir(t);
  const { store } = makeStore(dir);
  const p = await store.saveClientTemplate('uefi-x64', 'xml', CLIENT_XML);
  const bad = CLIENT_XML.replace('%ORGNAME%', '%ORGNAMES%');
  const e = await refusal(t, store.saveClientTemplate('uefi-x64', 'xml', bad), 'INVALID_TEMPLATE');
  t.regex(e.message, /uefi-x64\.xml line 6: unknown variable %ORGNAMES%/);
  t.is(fs.readFileSync(p, 'utf8'), CLIENT_XML);
  const notXml = await refusal(
    t,
    store.saveClientTemplate('uefi-x64', 'xml', 'ComputerName=%MACHINENAME%'),
    'INVALID_TEMPLATE',
  );
  t.regex(notXml.message, /text before the root element/);
  t.is(fs.readFileSync(p, 'utf8'), CLIENT_XML);
  t.deepEqual(leftovers(path.dirname(p)), []);
});

test('saving replaces the file by rename (a new inode), never by rewriting it in place', async (t) => {
  const dir = tempDir(t);
  const { store } = makeStore(dir);
  const p = await store.saveClientTemplate('uefi-x64', 'xml', CLIENT_XML);
  const before = fs.statSync(p).ino;
  // A reader holding the old file keeps reading the old, complete content.
  const fd = fs.openSync(p, 'r');
  t.teardown(() => fs.closeSync(fd));
  const next = CLIENT_XML.replace('windowsPE', 'offlineServicing');
  await store.saveClientTemplate('uefi-x64', 'xml', next);
  t.not(fs.statSync(p).ino, before);
  t.is(fs.readFileSync(p, 'utf8'), next);
  const old = Buffer.alloc(CLIENT_XML.length * 2);
  t.is(old.subarray(0, fs.readSync(fd, old, 0, old.length, 0)).toString('utf8'), CLIENT_XML);
  t.deepEqual(leftovers(path.dirname(p)), []);
});

test('saving on a read-only volume is refused with VOLUME_READ_ONLY; reading still works', async (t) => {
  const mnt = tmpfs(t, '1m');
  const { store } = makeStore(mnt);
  const p = await store.saveClientTemplate('uefi-x64', 'xml', CLIENT_XML);
  execFileSync('mount', ['-o', 'remount,ro', mnt]);
  const e = await refusal(
    t,
    store.saveClientTemplate('uefi-x64', 'xml', CLIENT_XML.replace('amd64', 'arm64')),
    'VOLUME_READ_ONLY',
  );
  t.regex(e.message, /uefi-x64\.xml: the image volume is mounted read-only/);
  t.is(fs.readFileSync(p, 'utf8'), CLIENT_XML);
  const r = await store.renderFor('52:54:00:77:00:11', 'client', 'client.xml');
  t.regex(r.body, /win11-hpc/);
});

test('saving on a full volume is refused with DISK_FULL and leaves the old template and no temporary file', async (t) => {
  const mnt = tmpfs(t, '64k');
  const { store } = makeStore(mnt);
  const p = await store.saveClientTemplate('uefi-x64', 'xml', CLIENT_XML);
  // Fill the volume to the last block.
  const filler = path.join(mnt, 'filler');
  const fd = fs.openSync(filler, 'w');
  try {
    const block = Buffer.alloc(4096, 1);
    for (;;) fs.writeSync(fd, block);
  } catch (e) {
    t.is((e as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  const big = CLIENT_XML.replace('<UserData>', `<UserData><!-- ${'x'.repeat(20_000)} -->`);
  const e = await refusal(t, store.saveClientTemplate('uefi-x64', 'xml', big), 'DISK_FULL');
  t.regex(e.message, /the image volume is full/);
  t.is(fs.readFileSync(p, 'utf8'), CLIENT_XML);
  t.deepEqual(leftovers(path.dirname(p)), []);
});

test('a template edited by hand on the volume is checked again when it is served', async (t) => {
  const dir = tempDir(t);
  const { store } = makeStore(dir);
  const p = await store.saveClientTemplate('uefi-x64', 'xml', CLIENT_XML);
  fs.writeFileSync(p, CLIENT_XML.replace('</unattend>', ''));
  t.regex(
    (await refusal(t, store.renderFor('52:54:00:77:00:11', 'client', 'client.xml'), 'INVALID_TEMPLATE')).message,
    /uefi-x64\.xml line 2: <unattend> is never closed/,
  );
  fs.writeFileSync(p, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(CLIENT_XML, 'utf16le')]));
  t.regex((await refusal(t, loadTemplate(p), 'INVALID_TEMPLATE')).message, /UTF-16: save it as UTF-8/);
  fs.writeFileSync(p, Buffer.from([0x3c, 0x61, 0x3e, 0xc3, 0x28, 0x3c, 0x2f, 0x61, 0x3e]));
  t.regex((await refusal(t, loadTemplate(p), 'INVALID_TEMPLATE')).message, /not valid UTF-8/);
});

test('saveTemplate: the format follows the file name; other names and unknown architectures are refused', async (t) => {
  const dir = tempDir(t);
  await refusal(t, saveTemplate(path.join(dir, 'x.txt'), CLIENT_XML), 'INVALID_REQUEST');
  const tpl = await saveTemplate(path.join(dir, 'sub', 'deep', 'x.inf'), SYSPREP);
  t.is(tpl.format, 'ini');
  await refusal(t, saveTemplate(path.join(dir, 'x.inf'), CLIENT_XML), 'INVALID_TEMPLATE');
  const { store } = makeStore(dir);
  t.throws(() => store.clientTemplatePath('../../etc/passwd' as 'bios', 'xml'), { message: /unknown architecture/ });
  await refusal(t, saveTemplate(path.join(dir, 'huge.xml'), `<a>${'x'.repeat(1024 * 1024)}</a>`), 'INVALID_TEMPLATE');
});

// ---------------------------------------------------------------------------------------------
// The HTTP handler over the store

test('GET /unattend/<mac>/<file>: 200 with the right content type, clear 4xx otherwise', async (t) => {
  const dir = tempDir(t);
  const { store } = makeStore(dir, [machine(), machine({ mac: '52:54:00:77:00:15', name: undefined })]);
  await store.saveClientTemplate('uefi-x64', 'xml', CLIENT_XML);
  await store.saveImageTemplate('win11-hpc', 'xml', IMAGE_XML);
  await store.saveImageTemplate('win11-hpc', 'ini', SYSPREP);
  const get = unattendHandler({ store, log: silentLogger });

  const client = await get('52-54-00-77-00-11', 'WDSClientUnattend.xml', '10.77.0.50');
  t.is(client.status, 200);
  t.is(client.contentType, 'application/xml; charset=utf-8');
  t.regex(client.body, /win11-hpc/);

  const image = await get('52:54:00:77:00:11', 'image.xml', '10.77.0.50');
  t.is(image.status, 200);
  t.regex(image.body, /HPC-NODE007/);

  const inf = await get('52:54:00:77:00:11', 'SYSPREP.INF', '10.77.0.50');
  t.is(inf.status, 200);
  t.is(inf.contentType, 'text/plain; charset=utf-8');
  t.regex(inf.body, /^\[UserData\]\r\nComputerName=HPC-NODE007\r\n/);

  const unknown = await get('52:54:00:77:00:99', 'client.xml', '10.77.0.99');
  t.is(unknown.status, 404);
  t.regex(unknown.body, /no machine 52:54:00:77:00:99 is registered/);

  const noTemplate = await get('52:54:00:77:00:11', 'client.inf', '10.77.0.50');
  t.is(noTemplate.status, 404);
  t.regex(noTemplate.body, /no client unattend/);

  const badName = await get('52:54:00:77:00:11', 'constructor', '10.77.0.50');
  t.is(badName.status, 404);
  t.regex(badName.body, /ask for one of client\.xml/);

  const badMac = await get('not-a-mac', 'client.xml', '10.77.0.50');
  t.is(badMac.status, 400);

  const unnamed = await get('52:54:00:77:00:15', 'image.xml', '10.77.0.51');
  t.is(unnamed.status, 409);
  t.regex(unnamed.body, /%MACHINENAME%.*name the machine/);
});
