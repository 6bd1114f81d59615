/**
 * Chunked deploy images on real files: import (from a file and from a stream), read back,
 * apply to a sparse file and to a loop block device, export as a stream, and every way it
 * must fail cleanly (tampering, abort, source error, full or read-only volume).
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import { applyBundle, exportRaw } from '../../firmware/images/chunked/apply.ts';
import { openBundle, readBundleManifest, verifyBundle } from '../../firmware/images/chunked/bundle.ts';
import { cleanupPartialImports, importRawImage } from '../../firmware/images/chunked/importer.ts';
import { dataLength, decodeManifest, storedLength } from '../../firmware/images/chunked/manifest.ts';
import { rng } from '../helpers/rng.ts';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB + 12345;

let root: string;
let imageFile: string;
let image: Buffer;
let imageSha: string;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * 64 MiB + 12345 bytes: random, compressible text, long zero runs (aligned and not), a
 * zero run with one stray byte, and a random tail shorter than a chunk.
 */
function buildImage(): Buffer {
  const r = rng(0x1ba6e);
  const b = Buffer.alloc(SIZE);
  const random = (from: number, to: number) => {
    for (let i = from; i < to; i++) b[i] = Math.floor(r() * 256);
  };
  const text = (from: number, to: number) => {
    const words = ['node', 'cluster', 'boot', 'image', 'kernel', 'initrd', 'bootbox', 'disk', 'sector', 'zero'];
    let o = from;
    while (o < to) {
      const w = `${words[Math.floor(r() * words.length)]}${Math.floor(r() * 100)} `;
      o += b.write(w, o, Math.min(w.length, to - o), 'latin1');
    }
  };
  random(0, 6 * MiB);
  text(6 * MiB, 13.5 * MiB);
  // zeros 13.5 .. 30 MiB
  random(30 * MiB, 36 * MiB);
  // zeros 36 .. 44 MiB, but one stray byte
  b[41 * MiB + 7] = 0x42;
  text(44 * MiB, 52 * MiB);
  // zeros 52 MiB .. SIZE - 5000
  random(SIZE - 5000, SIZE);
  return b;
}

/** Offsets of the grid slots that hold a non-zero byte, found independently of the importer. */
function nonZeroSlots(b: Buffer, chunkSize: number): number[] {
  const out: number[] = [];
  for (let off = 0; off < b.length; off += chunkSize) {
    const s = b.subarray(off, Math.min(b.length, off + chunkSize));
    if (s.some((x) => x !== 0)) out.push(off);
  }
  return out;
}

test.before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'chunked-it-'));
  image = buildImage();
  imageSha = sha(image);
  imageFile = path.join(root, 'source.raw');
  fs.writeFileSync(imageFile, image);
});

test.after.always(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function dir(t: ExecutionContext, prefix = 'dest-'): string {
  const d = fs.mkdtempSync(path.join(root, prefix));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function sha256File(file: string, length?: number): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4 * MiB);
    let pos = 0;
    for (;;) {
      const want = length === undefined ? buf.length : Math.min(buf.length, length - pos);
      if (want === 0) break;
      const n = fs.readSync(fd, buf, 0, want, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** A writable that hashes what it gets and calls back later, so the exporter meets backpressure. */
function hashSink(): Writable & { digest(): string; bytes: number } {
  const h = createHash('sha256');
  const w = new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      sink.bytes += chunk.length;
      setImmediate(cb);
    },
  }) as Writable & { digest(): string; bytes: number };
  const sink = Object.assign(w, { bytes: 0, digest: () => h.digest('hex') });
  return sink;
}

async function importFixture(t: ExecutionContext, name = 'node-image') {
  const dest = dir(t);
  const progress: number[] = [];
  const r = await importRawImage(imageFile, dest, { name, onProgress: (n) => progress.push(n) });
  return { dest, r, progress };
}

function tamper(file: string, at: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0x01;
    fs.writeSync(fd, b, 0, 1, at);
  } finally {
    fs.closeSync(fd);
  }
}

async function corruptCode(t: ExecutionContext, p: Promise<unknown>): Promise<BootboxError> {
  const e = await t.throwsAsync(p, { instanceOf: BootboxError });
  t.is(e?.code, 'IMAGE_CORRUPT', e?.message);
  return e!;
}

test('import from a file: zero chunks left out, random kept raw, text compressed, whole image hashed', async (t) => {
  const { dest, r, progress } = await importFixture(t);
  const m = r.manifest;
  t.is(r.dir, path.join(dest, 'node-image.bbimg'));
  t.deepEqual(fs.readdirSync(dest), ['node-image.bbimg'], 'no partial directory left');
  t.deepEqual(fs.readdirSync(r.dir).sort(), ['chunks.bin', 'manifest.json']);
  t.is(m.size, SIZE);
  t.is(m.chunkSize, 4 * MiB);
  t.deepEqual(m.source, { file: imageFile, sha256: imageSha });
  const expected = nonZeroSlots(image, 4 * MiB);
  t.deepEqual(
    m.chunks.map((c) => c.offset),
    expected,
  );
  t.true(expected.length < Math.ceil(SIZE / (4 * MiB)), 'the fixture has all-zero chunks');
  t.is(r.sparseChunks, Math.ceil(SIZE / (4 * MiB)) - expected.length);
  t.true(expected.includes(40 * MiB), 'one stray byte keeps its chunk');
  for (const c of m.chunks) {
    t.is(c.sha256, sha(image.subarray(c.offset, c.offset + c.length)), `chunk ${c.index} sha256`);
  }
  const first = m.chunks[0]!;
  t.is(first.stored.compression, 'none', 'random data is stored raw');
  t.is(first.stored.length, first.length);
  const textChunk = m.chunks.find((c) => c.offset === 8 * MiB)!;
  t.is(textChunk.stored.compression, 'zstd');
  t.true(textChunk.stored.length < textChunk.length / 2);
  const last = m.chunks.at(-1)!;
  t.is(last.offset + last.length, SIZE, 'the short tail is a chunk');
  t.is(fs.statSync(path.join(r.dir, 'chunks.bin')).size, storedLength(m));
  t.is(r.storedBytes, storedLength(m));
  t.deepEqual(decodeManifest(fs.readFileSync(path.join(r.dir, 'manifest.json'))), m);
  t.deepEqual(await readBundleManifest(r.dir, { expectedRootHash: m.rootHash }), m);
  t.is(progress.at(-1), SIZE);
  t.true(progress.every((p, i) => i === 0 || p > progress[i - 1]!));
  const v = await verifyBundle(r.dir, { expectedRootHash: m.rootHash });
  t.is(v.chunks, expected.length);
  t.is(v.dataBytes, dataLength(m));
});

test('import from a stream (cat | stdin), 1 MiB chunks; apply to a sparse file and export to a stream', async (t) => {
  const dest = dir(t);
  const cat = spawn('cat', [imageFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const r = await importRawImage(cat.stdout, dest, { name: 'from-stdin', chunkSize: MiB });
  const m = r.manifest;
  t.deepEqual(m.source, { sha256: imageSha }, 'no file for a stream');
  t.deepEqual(
    m.chunks.map((c) => c.offset),
    nonZeroSlots(image, MiB),
  );

  // The same bytes cut into odd-sized pieces give the same chunk list.
  const pieces = function* () {
    for (let o = 0; o < image.length; o += 100_003) yield image.subarray(o, o + 100_003);
  };
  const again = await importRawImage(Readable.from(pieces()), dest, { name: 'from-pieces', chunkSize: MiB });
  t.is(again.manifest.rootHash, m.rootHash);

  const target = path.join(dest, 'applied.raw');
  const applied = await applyBundle(r.dir, target);
  t.is(applied.kind, 'file');
  t.is(applied.zeroBytes, 0);
  const st = fs.statSync(target);
  t.is(st.size, SIZE);
  t.is(sha256File(target), imageSha);
  t.true(st.blocks * 512 < SIZE, `sparse: ${st.blocks * 512} bytes allocated for ${SIZE}`);
  t.true(st.blocks * 512 <= dataLength(m) + MiB, 'holes where the zero chunks were');

  const sink = hashSink();
  const ex = await exportRaw(r.dir, sink);
  t.is(ex.size, SIZE);
  t.is(ex.sha256, imageSha);
  t.is(sink.bytes, SIZE);
  t.is(sink.digest(), imageSha);
});

test('apply over an existing larger file replaces it whole', async (t) => {
  const { dest, r } = await importFixture(t);
  const target = path.join(dest, 'old.raw');
  fs.writeFileSync(target, Buffer.alloc(SIZE + 3 * MiB, 0xff));
  await applyBundle(r.dir, target);
  t.is(fs.statSync(target).size, SIZE);
  t.is(sha256File(target), imageSha);
});

test('apply to a block device writes zeros over the sparse regions', async (t) => {
  const { dest, r } = await importFixture(t);
  const backing = path.join(dest, 'disk.img');
  fs.writeFileSync(backing, Buffer.alloc(SIZE + MiB - 12345, 0xee));
  const loop = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' }).trim();
  t.teardown(() => execFileSync('losetup', ['-d', loop]));
  const progress: number[] = [];
  const res = await applyBundle(r.dir, loop, { onProgress: (n) => progress.push(n) });
  t.is(res.kind, 'block-device');
  t.is(res.dataBytes, dataLength(r.manifest));
  t.is(res.zeroBytes, SIZE - res.dataBytes);
  t.is(progress.at(-1), SIZE);
  t.is(sha256File(loop, SIZE), imageSha, 'the device holds the image, old bytes zeroed');

  const small = path.join(dest, 'small.img');
  fs.writeFileSync(small, Buffer.alloc(32 * MiB));
  const loop2 = execFileSync('losetup', ['--find', '--show', small], { encoding: 'utf8' }).trim();
  t.teardown(() => execFileSync('losetup', ['-d', loop2]));
  const e = await t.throwsAsync(applyBundle(r.dir, loop2), { instanceOf: BootboxError });
  t.is(e?.code, 'INVALID_REQUEST');
  t.regex(e?.message ?? '', /holds 33554432 bytes/);
});

test('an existing image is refused (IMAGE_EXISTS) unless replace is set', async (t) => {
  const { dest, r } = await importFixture(t, 'win');
  const before = fs.readFileSync(path.join(r.dir, 'manifest.json'), 'utf8');
  const e = await t.throwsAsync(importRawImage(imageFile, dest, { name: 'win' }), { instanceOf: BootboxError });
  t.is(e?.code, 'IMAGE_EXISTS');
  t.regex(e?.message ?? '', /win/);
  t.is(fs.readFileSync(path.join(r.dir, 'manifest.json'), 'utf8'), before, 'the existing image is untouched');
  const again = await importRawImage(imageFile, dest, { name: 'win', replace: true, chunkSize: 2 * MiB });
  t.is(again.manifest.chunkSize, 2 * MiB);
  t.deepEqual(fs.readdirSync(dest), ['win.bbimg'], 'the old bundle is gone, nothing partial left');
  await t.notThrowsAsync(verifyBundle(again.dir));
});

test('a flipped byte in chunks.bin: readChunk, verify, apply and export all say IMAGE_CORRUPT and name the chunk', async (t) => {
  const { dest, r } = await importFixture(t);
  const m = r.manifest;
  const raw = m.chunks.find((c) => c.stored.compression === 'none')!;
  const z = m.chunks.find((c) => c.stored.compression === 'zstd')!;
  const chunks = path.join(r.dir, 'chunks.bin');
  tamper(chunks, raw.stored.offset + 1000);
  tamper(chunks, z.stored.offset + Math.floor(z.stored.length / 2));

  const b = await openBundle(r.dir);
  t.teardown(() => b.close());
  for (const c of [raw, z]) {
    const e = await corruptCode(t, b.readChunk(c.index));
    t.is(e.details?.index, c.index);
    t.regex(e.message, new RegExp(`chunk ${c.index} \\(image offset ${c.offset}`));
  }
  const good = m.chunks.find((c) => c !== raw && c !== z)!;
  t.is(sha((await b.readChunk(good.index)).raw), good.sha256, 'other chunks still read');

  const v = await corruptCode(t, verifyBundle(r.dir));
  t.deepEqual(
    v.details?.chunks,
    [raw.index, z.index].sort((x, y) => x - y),
  );
  await corruptCode(t, applyBundle(r.dir, path.join(dest, 'out.raw')));
  await corruptCode(t, exportRaw(r.dir, hashSink()));
});

test('a tampered manifest or chunks.bin of the wrong size is refused', async (t) => {
  const { dest, r } = await importFixture(t);
  const mf = path.join(r.dir, 'manifest.json');
  const chunks = path.join(r.dir, 'chunks.bin');
  const original = fs.readFileSync(mf, 'utf8');
  const m = r.manifest;
  const reasonOf = async (p: Promise<unknown>) => (await corruptCode(t, p)).details?.reason;

  // A chunk's hash changed without the root hash: the chunk list no longer proves itself.
  fs.writeFileSync(mf, original.replace(m.chunks[1]!.sha256, 'f'.repeat(64)));
  t.is(await reasonOf(openBundle(r.dir)), 'root-hash-mismatch');
  t.is(await reasonOf(readBundleManifest(r.dir)), 'root-hash-mismatch');
  const target = path.join(dest, 'never.raw');
  await corruptCode(t, applyBundle(r.dir, target));
  t.false(fs.existsSync(target), 'nothing is written from a refused bundle');
  await corruptCode(t, exportRaw(r.dir, hashSink()));

  fs.writeFileSync(mf, original.replace(`"size": ${SIZE}`, `"size": ${SIZE + 1}`));
  t.is(await reasonOf(openBundle(r.dir)), 'chunk-length');
  fs.writeFileSync(mf, original.slice(0, 100));
  t.is(await reasonOf(openBundle(r.dir)), 'json');

  fs.writeFileSync(mf, original);
  await t.notThrowsAsync(async () => (await openBundle(r.dir)).close());
  t.is(await reasonOf(openBundle(r.dir, { expectedRootHash: '0'.repeat(64) })), 'root-hash-unexpected');
  fs.appendFileSync(chunks, Buffer.from([0]));
  t.is(await reasonOf(openBundle(r.dir)), 'stored-size');
  fs.truncateSync(chunks, storedLength(m) - 1);
  t.is(await reasonOf(openBundle(r.dir)), 'stored-outside');

  const missing = await t.throwsAsync(openBundle(path.join(dest, 'nope.bbimg')), { instanceOf: BootboxError });
  t.is(missing?.code, 'NOT_FOUND');
});

test('an import aborted halfway leaves nothing behind', async (t) => {
  const dest = dir(t);
  const ac = new AbortController();
  const err = await t.throwsAsync(
    importRawImage(imageFile, dest, {
      name: 'aborted',
      signal: ac.signal,
      onProgress: (n) => {
        if (n >= SIZE / 2) ac.abort();
      },
    }),
  );
  t.is(err?.name, 'AbortError');
  t.deepEqual(fs.readdirSync(dest), []);
});

test('an abort while the source stream is stalled ends the import and leaves nothing behind', async (t) => {
  const dest = dir(t);
  const ac = new AbortController();
  // 5 MiB, then nothing: like stdin from a command that hangs.
  const stalled = new Readable({ read() {} });
  stalled.push(image.subarray(0, 5 * MiB));
  const p = importRawImage(stalled, dest, {
    name: 'stalled',
    signal: ac.signal,
    onProgress: () => setImmediate(() => ac.abort()),
  });
  const err = await t.throwsAsync(p);
  t.is(err?.name, 'AbortError');
  t.deepEqual(fs.readdirSync(dest), []);
});

test('a source stream that fails mid-way: clear error, nothing behind', async (t) => {
  const dest = dir(t);
  let sent = 0;
  const failing = new Readable({
    read() {
      if (sent >= 10 * MiB) {
        this.destroy(new Error('usb stick unplugged'));
        return;
      }
      this.push(image.subarray(sent, sent + MiB));
      sent += MiB;
    },
  });
  const e = await t.throwsAsync(importRawImage(failing, dest, { name: 'broken' }), { instanceOf: BootboxError });
  t.regex(e?.message ?? '', /reading the source stream failed while importing broken: usb stick unplugged/);
  t.deepEqual(fs.readdirSync(dest), []);

  const nofile = await t.throwsAsync(importRawImage(path.join(root, 'missing.raw'), dest, { name: 'x' }), {
    instanceOf: BootboxError,
  });
  t.is(nofile?.code, 'NOT_FOUND');
  t.regex(nofile?.message ?? '', /missing\.raw/);
  const empty = await t.throwsAsync(importRawImage(Readable.from([]), dest, { name: 'empty' }), {
    instanceOf: BootboxError,
  });
  t.is(empty?.code, 'INVALID_REQUEST');
  t.deepEqual(fs.readdirSync(dest), []);
});

test('bad options are refused before anything is written', async (t) => {
  const dest = dir(t);
  for (const opts of [
    { name: '../escape' },
    { name: 'ok', chunkSize: 3 * MiB },
    { name: 'ok', chunkSize: 16 * 1024 },
    { name: 'ok', level: 0 },
    { name: 'ok', compression: 'xz' as 'none' },
  ]) {
    const e = await t.throwsAsync(importRawImage(imageFile, dest, opts), { instanceOf: BootboxError });
    t.is(e?.code, 'INVALID_REQUEST', JSON.stringify(opts));
  }
  t.deepEqual(fs.readdirSync(dest), []);
});

test('an uncompressed import stores every chunk raw', async (t) => {
  const dest = dir(t);
  const r = await importRawImage(imageFile, dest, { name: 'plain', compression: 'none' });
  t.true(r.manifest.chunks.every((c) => c.stored.compression === 'none'));
  t.is(r.storedBytes, dataLength(r.manifest));
  t.is((await exportRaw(r.dir, hashSink())).sha256, imageSha);
});

function tmpfs(t: ExecutionContext, size: string): string {
  const d = dir(t, 'tmpfs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', d]);
  t.teardown(() => execFileSync('umount', [d]));
  return d;
}

test('a full volume: DISK_FULL naming the directory and the image, nothing left behind', async (t) => {
  const d = tmpfs(t, '8m');
  const e = await t.throwsAsync(importRawImage(imageFile, d, { name: 'too-big' }), { instanceOf: BootboxError });
  t.is(e?.code, 'DISK_FULL');
  t.regex(e?.message ?? '', new RegExp(`^no space left on ${d} while importing too-big \\(\\d+ bytes written\\)$`));
  t.true((e?.details?.bytesWritten as number) > 0);
  t.deepEqual(fs.readdirSync(d), []);
});

test('a read-only volume: VOLUME_READ_ONLY, nothing left behind', async (t) => {
  const d = tmpfs(t, '8m');
  execFileSync('mount', ['-o', 'remount,ro', d]);
  const e = await t.throwsAsync(importRawImage(imageFile, d, { name: 'ro' }), { instanceOf: BootboxError });
  t.is(e?.code, 'VOLUME_READ_ONLY');
  t.regex(e?.message ?? '', /read-only/);
  t.deepEqual(fs.readdirSync(d), []);
});

test('partial imports left by a crash are cleaned up, nothing else', async (t) => {
  const { dest } = await importFixture(t, 'kept');
  fs.mkdirSync(path.join(dest, '.lost.bbimg.partial-0a1b2c'));
  fs.writeFileSync(path.join(dest, '.lost.bbimg.partial-0a1b2c', 'chunks.bin'), 'x');
  fs.mkdirSync(path.join(dest, '.old.bbimg.old-99ff'));
  fs.writeFileSync(path.join(dest, 'notes.txt'), 'x');
  const removed = await cleanupPartialImports(dest);
  t.deepEqual(removed.sort(), ['.lost.bbimg.partial-0a1b2c', '.old.bbimg.old-99ff']);
  t.deepEqual(fs.readdirSync(dest).sort(), ['kept.bbimg', 'notes.txt']);
});
