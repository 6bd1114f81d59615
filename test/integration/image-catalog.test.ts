/**
 * The image catalog and uploads over a real store: WIMs made by wimcapture (checked
 * against wiminfo), a chunked image, a duplicate name and a broken WIM; rescans that keep
 * admin settings; a volume that goes away and comes back; resumable uploads through the
 * API on a real socket, with interruption, a wrong hash, a duplicate and a full disk.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { imageRoutes } from '../../firmware/api/images-routes.ts';
import { systemClock } from '../../firmware/core/clock.ts';
import { createLogger } from '../../firmware/core/logger.ts';
import { importRawImage } from '../../firmware/images/chunked/importer.ts';
import { ImageService } from '../../firmware/services/image-service.ts';
import { startApi } from '../helpers/api-server.ts';

const log = createLogger('test', { level: 'error' });
const events = { emit: () => {} };
const TOKEN = 'catalog-test-token-0123456789';

function tmpdir(t: { teardown(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'bb-catalog-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function tree(dir: string, files: Record<string, number>): string {
  for (const [rel, size] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), crypto.randomBytes(size));
  }
  return dir;
}

/** A WIM with one image per name, made by wimcapture/wimappend. */
function makeWim(file: string, src: string, names: string[], compress = 'LZX', props: string[] = []): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  for (const [i, n] of names.entries()) {
    const tool = i === 0 ? 'wimcapture' : 'wimappend';
    execFileSync(tool, [src, file, n, `--compress=${compress}`, '--threads=1'], { stdio: 'ignore' });
  }
  for (const p of props) execFileSync('wiminfo', [file, '1', '--image-property', p], { stdio: 'ignore' });
}

function wiminfoNames(file: string): string[] {
  return [...execFileSync('wiminfo', [file], { encoding: 'utf8' }).matchAll(/^Name:\s+(.*)$/gm)].map((m) =>
    m[1]!.trim(),
  );
}

async function service(root: string): Promise<ImageService> {
  const s = new ImageService({
    imagesDir: path.join(root, 'images'),
    dataDir: path.join(root, 'data'),
    clock: systemClock,
    log,
    events,
  });
  await s.start();
  return s;
}

test('a scan lists every WIM image and chunked image, reports duplicates and broken files, and serves only catalog files', async (t) => {
  const root = tmpdir(t);
  const images = path.join(root, 'images');
  const src = tree(path.join(root, 'src'), { 'Windows/System32/a.dll': 20000, 'b.txt': 3000 });
  makeWim(path.join(images, 'install-images/Lab/win.wim'), src, ['Windows A', 'Windows B'], 'LZX', ['WINDOWS/ARCH=9']);
  makeWim(path.join(images, 'install-images/Lab/zz-other.wim'), src, ['Windows A'], 'XPRESS');
  makeWim(path.join(images, 'boot-images/boot.wim'), src, ['WinPE'], 'LZMS');
  fs.writeFileSync(path.join(images, 'install-images/Lab/broken.wim'), Buffer.alloc(4096, 7));
  fs.mkdirSync(path.join(images, 'install-images/Linux'), { recursive: true });
  const raw = path.join(root, 'disk.img');
  fs.writeFileSync(raw, Buffer.concat([crypto.randomBytes(1 << 20), Buffer.alloc(3 << 20)]));
  await importRawImage(raw, path.join(images, 'install-images/Linux'), { name: 'debian12' });

  const s = await service(root);
  t.teardown(() => s.stop());
  const list = s.catalog.list();
  t.deepEqual(
    list.map((i) => i.id),
    ['boot/boot/WinPE', 'install/Lab/Windows A', 'install/Lab/Windows B', 'install/Linux/debian12'],
  );
  t.deepEqual(wiminfoNames(path.join(images, 'install-images/Lab/win.wim')), ['Windows A', 'Windows B']);
  const a = s.catalog.get('install/Lab/Windows A')!;
  t.is(a.architecture, 'x64');
  t.is(a.source.file, 'install-images/Lab/win.wim');
  t.is(a.source.index, 1);
  t.is(a.wim?.compression, 'lzx');
  t.is(a.size, fs.statSync(path.join(images, 'install-images/Lab/win.wim')).size);
  t.is(s.catalog.get('boot/boot/WinPE')!.wim?.compression, 'lzms');
  const deb = s.catalog.get('debian12')!;
  t.is(deb.format, 'chunked');
  t.is(deb.size, 4 << 20);
  t.regex(deb.hash!, /^sha256:[0-9a-f]{64}$/);

  const problems = s.catalog.problems();
  t.true(
    problems.some((p) => p.file.endsWith('zz-other.wim') && /already has an image named "Windows A"/.test(p.message)),
  );
  t.true(problems.some((p) => p.file.endsWith('broken.wim') && p.code === 'IMAGE_INVALID'));

  await s.catalog.hashesSettled();
  const want = crypto
    .createHash('sha256')
    .update(fs.readFileSync(path.join(images, 'install-images/Lab/win.wim')))
    .digest('hex');
  t.is(s.catalog.get('install/Lab/Windows B')!.hash, `sha256:${want}`);

  // serving: catalog files only, never a neighbour or a traversal
  t.is((await s.resolveImageFile('install-images/Lab/win.wim')).kind, 'ok');
  t.is((await s.resolveImageFile('install-images/Linux/debian12.bbimg/chunks.bin')).kind, 'ok');
  t.is((await s.resolveImageFile('install-images/Lab/broken.wim')).kind, 'refused');
  t.is((await s.resolveImageFile('install-images/Lab/../Lab/win.wim')).kind, 'refused');
  t.is((await s.resolveImageFile('boot')).kind, 'refused');
  s.catalog.update('install/Lab/Windows A', { enabled: false });
  s.catalog.update('install/Lab/Windows B', { enabled: false });
  t.is((await s.resolveImageFile('install-images/Lab/win.wim')).kind, 'refused', 'disabled images are not served');
});

test('admin settings survive rescans; a vanished file or volume makes images unavailable with a reason, and they come back', async (t) => {
  const root = tmpdir(t);
  const images = path.join(root, 'images');
  const src = tree(path.join(root, 'src'), { 'x.bin': 5000 });
  makeWim(path.join(images, 'install-images/Lab/a.wim'), src, ['Alpha'], 'none');
  let s = await service(root);
  s.catalog.update('Alpha', { enabled: false, description: 'kept <b>as text</b>' });
  await s.catalog.scan();
  t.false(s.catalog.get('Alpha')!.enabled);
  t.is(s.catalog.get('Alpha')!.description, 'kept <b>as text</b>');

  const moved = path.join(root, 'a.wim.away');
  fs.renameSync(path.join(images, 'install-images/Lab/a.wim'), moved);
  await s.catalog.scan();
  const gone = s.catalog.get('Alpha')!;
  t.false(gone.available);
  t.regex(gone.unavailableReason!, /no longer on the image volume/);
  fs.renameSync(moved, path.join(images, 'install-images/Lab/a.wim'));
  await s.catalog.scan();
  t.true(s.catalog.get('Alpha')!.available);

  s.catalog.setVolumeState({ state: 'missing', reason: 'image volume BOOTBOX was removed' });
  t.false(s.catalog.get('Alpha')!.available);
  t.is(s.catalog.get('Alpha')!.unavailableReason, 'image volume BOOTBOX was removed');
  await t.throwsAsync(() => s.catalog.scan(), { message: /image volume is missing/ });
  t.is((await s.resolveImageFile('install-images/Lab/a.wim')).kind, 'refused');
  s.catalog.setVolumeState({ state: 'attached' });
  await s.catalog.scan();
  t.true(s.catalog.get('Alpha')!.available);

  // nothing is lost across a restart
  await s.stop();
  s = await service(root);
  t.teardown(() => s.stop());
  t.false(s.catalog.get('Alpha')!.enabled);
  t.is(s.catalog.get('Alpha')!.description, 'kept <b>as text</b>');
});

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

function call(
  port: number,
  method: string,
  url: string,
  body?: Buffer | object,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: url,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          ...(data ? { 'content-length': String(data.length) } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') }),
        );
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** Sends `part` of an upload then drops the connection, as a lost link would. */
function sendAndDrop(port: number, id: string, total: number, part: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'PUT',
      path: `/api/v1/uploads/${id}`,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        'content-range': `bytes 0-${total - 1}/${total}`,
        'content-length': String(total),
      },
    });
    req.on('error', () => resolve());
    req.write(part, () => setTimeout(() => req.destroy(), 200));
    req.on('close', () => resolve());
  });
}

async function apiBox(t: { teardown(fn: () => Promise<void> | void): void }, root: string) {
  const s = await service(root);
  t.teardown(() => s.stop());
  const { port } = await startApi(t, { tokens: [TOKEN], routes: imageRoutes(s.catalog, s.uploads) });
  return { s, port };
}

test('an upload resumes after a dropped connection and appears in the catalog only when complete and verified', async (t) => {
  const root = tmpdir(t);
  const { s, port } = await apiBox(t, root);
  const src = tree(path.join(root, 'src'), { 'f.bin': 300_000 });
  const wimFile = path.join(root, 'up.wim');
  makeWim(wimFile, src, ['Uploaded'], 'none');
  const bytes = fs.readFileSync(wimFile);
  const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');

  const unauth = await call(
    port,
    'POST',
    '/api/v1/uploads',
    { filename: 'up.wim', size: bytes.length },
    { authorization: '' },
  );
  t.is(unauth.status, 401);
  const created = await call(port, 'POST', '/api/v1/uploads', {
    filename: 'up.wim',
    size: bytes.length,
    group: 'Lab',
    sha256,
  });
  t.is(created.status, 201, JSON.stringify(created.body));
  const id = (created.body.upload as { id: string }).id;

  await sendAndDrop(port, id, bytes.length, bytes.subarray(0, 100_000));
  let mid = await call(port, 'GET', `/api/v1/uploads/${id}`);
  // the box notices the dropped connection on its own time
  for (let i = 0; i < 100 && (mid.body.upload as { active?: boolean })?.active; i++) {
    await new Promise((r) => setTimeout(r, 50));
    mid = await call(port, 'GET', `/api/v1/uploads/${id}`);
  }
  t.is(mid.status, 200, JSON.stringify(mid.body));
  const received = (mid.body.upload as { received: number }).received;
  t.true(received > 0 && received < bytes.length, `received ${received}`);
  t.is(s.catalog.get('Uploaded'), undefined, 'a partial upload is never in the catalog');
  t.false(fs.existsSync(path.join(root, 'images/install-images/Lab/up.wim')));

  const wrong = await call(port, 'PUT', `/api/v1/uploads/${id}`, bytes.subarray(0, 10), {
    'content-range': `bytes 0-9/${bytes.length}`,
  });
  t.is(wrong.status, 409);
  t.is((wrong.body.error as { details: { received: number } }).details.received, received);

  const rest = bytes.subarray(received);
  const done = await call(port, 'PUT', `/api/v1/uploads/${id}`, rest, {
    'content-range': `bytes ${received}-${bytes.length - 1}/${bytes.length}`,
  });
  t.is(done.status, 201, JSON.stringify(done.body));
  t.deepEqual((done.body.upload as { images: string[] }).images, ['install/Lab/Uploaded']);
  t.true(s.catalog.get('Uploaded')!.available);
  t.deepEqual(fs.readFileSync(path.join(root, 'images/install-images/Lab/up.wim')), bytes);
  t.deepEqual(fs.readdirSync(path.join(root, 'images/.uploads')), [], 'staging is empty');

  const listed = await call(port, 'GET', '/api/v1/images');
  t.true((listed.body.images as Array<{ id: string }>).some((i) => i.id === 'install/Lab/Uploaded'));
});

test('bad uploads are refused and leave nothing behind: wrong hash, duplicate names, not a WIM, too big for the disk, bad ranges', async (t) => {
  const root = tmpdir(t);
  const { s, port } = await apiBox(t, root);
  const src = tree(path.join(root, 'src'), { 'f.bin': 50_000 });
  const wimFile = path.join(root, 'dup.wim');
  makeWim(wimFile, src, ['Same'], 'none');
  makeWim(path.join(root, 'images/install-images/Lab/first.wim'), src, ['Same'], 'none');
  await s.catalog.scan();
  const bytes = fs.readFileSync(wimFile);
  const put = async (body: object, data: Buffer) => {
    const c = await call(port, 'POST', '/api/v1/uploads', body);
    if (c.status !== 201) return c;
    const id = (c.body.upload as { id: string }).id;
    return call(port, 'PUT', `/api/v1/uploads/${id}`, data, {
      'content-range': `bytes 0-${data.length - 1}/${data.length}`,
    });
  };

  const badHash = await put({ filename: 'x.wim', size: bytes.length, group: 'Other', sha256: '0'.repeat(64) }, bytes);
  t.is(badHash.status, 400);
  t.regex(JSON.stringify(badHash.body), /SHA-256 is [0-9a-f]{64}, the upload declared 0{64}/);

  const dup = await put({ filename: 'dup.wim', size: bytes.length, group: 'Lab' }, bytes);
  t.is(dup.status, 409);
  t.regex((dup.body.error as { message: string }).message, /already has an image named "Same"/);

  const notWim = await put({ filename: 'junk.wim', size: 5000, group: 'Lab' }, crypto.randomBytes(5000));
  t.is(notWim.status, 400);
  t.is((notWim.body.error as { code: string }).code, 'IMAGE_INVALID');

  const huge = await call(port, 'POST', '/api/v1/uploads', { filename: 'huge.img', size: 2 ** 52, group: 'Lab' });
  t.is(huge.status, 507);
  t.regex(JSON.stringify(huge.body), /does not fit: the image volume has \d+ bytes free/);

  const c = await call(port, 'POST', '/api/v1/uploads', { filename: 'r.img', size: 1000, group: 'Lab' });
  const id = (c.body.upload as { id: string }).id;
  const beyond = await call(port, 'PUT', `/api/v1/uploads/${id}`, Buffer.alloc(10), {
    'content-range': 'bytes 995-1004/1000',
  });
  t.is(beyond.status, 400);
  const malformed = await call(port, 'PUT', `/api/v1/uploads/${id}`, Buffer.alloc(10), {
    'content-range': 'bytes=0-9',
  });
  t.is(malformed.status, 400);
  const badName = await call(port, 'POST', '/api/v1/uploads', { filename: '../../etc/passwd.wim', size: 10 });
  t.is(badName.status, 400);
  const badField = await call(port, 'POST', '/api/v1/uploads', { filename: 'a.wim', size: 10, evil: 1 });
  t.regex((badField.body.error as { message: string }).message, /unknown field "evil"/);
  t.is((await call(port, 'DELETE', `/api/v1/uploads/${id}`)).status, 200);

  t.deepEqual(fs.readdirSync(path.join(root, 'images/.uploads')), []);
  t.deepEqual(fs.readdirSync(path.join(root, 'images/install-images/Lab')), ['first.wim']);
  t.false(fs.existsSync(path.join(root, 'images/install-images/Other')));
  t.deepEqual(
    s.catalog.list().map((i) => i.id),
    ['install/Lab/Same'],
  );
});

test('a disk that fills up during an upload ends it with DISK_FULL and gives the space back', async (t) => {
  // root (the suite's setting) mounts a small tmpfs; without it the mount fails and so does the test
  const root = tmpdir(t);
  const images = path.join(root, 'images');
  fs.mkdirSync(images);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', images]);
  t.teardown(() => execFileSync('umount', ['-l', images]));
  const s = new ImageService({
    imagesDir: images,
    dataDir: path.join(root, 'data'),
    clock: systemClock,
    log,
    events,
    reserveBytes: 0,
  });
  await s.start();
  t.teardown(() => s.stop());
  // promised 3 MiB fits the free-space check; another writer takes the space meanwhile
  const u = await s.uploads.create({ filename: 'big.img', size: 3 << 20, group: 'Lab' }, 'test');
  fs.writeFileSync(path.join(images, 'filler'), Buffer.alloc(6 << 20, 1));
  const { Readable } = await import('node:stream');
  const err = await t.throwsAsync(() => s.uploads.write(u.id, 0, Readable.from([Buffer.alloc(3 << 20, 1)])));
  t.is((err as { code?: string }).code, 'DISK_FULL');
  t.deepEqual(fs.readdirSync(path.join(images, '.uploads')), []);
  t.throws(() => s.uploads.get(u.id), { message: /no upload/ });
});
