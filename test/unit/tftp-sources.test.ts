/** What transfers read from: FdSource (positioned reads with read-ahead), the hot-file cache, netascii. */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { FdSource } from '../../firmware/protocols/tftp/fd-source.ts';
import type { FileVersion } from '../../firmware/protocols/tftp/file-cache.ts';
import { FileCache } from '../../firmware/protocols/tftp/file-cache.ts';
import { MemorySource, SourceError } from '../../firmware/protocols/tftp/file-source.ts';
import { fromNetascii, netasciiSize, toNetascii } from '../../firmware/protocols/tftp/netascii.ts';

function tmpFile(t: { teardown(fn: () => void): void }, content: Buffer): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tftp-src-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'f.bin');
  fs.writeFileSync(f, content);
  return f;
}

const tick = () => new Promise<void>((r) => setTimeout(r, 20));

test('FdSource: sequential blocks across chunk boundaries, prefetched asynchronously', async (t) => {
  const content = randomBytes(1_000_003);
  const file = tmpFile(t, content);
  const src = new FdSource(fs.openSync(file, 'r'), content.length, { chunkBytes: 64 * 1024 });
  const out = Buffer.alloc(content.length);
  const blk = 1468; // not a divisor of the chunk: blocks straddle chunk ends
  for (let off = 0; off < content.length; off += blk) {
    const len = Math.min(blk, content.length - off);
    src.read(off, len).copy(out, off);
    if ((off / blk) % 20 === 0) await tick(); // let read-ahead land, as the event loop would
  }
  t.true(out.equals(content));
  t.true(src.asyncReads > 0, 'read-ahead was used');
  t.true(src.syncReads < 8, `most chunks came from read-ahead (${src.syncReads} of 16 read synchronously)`);
  src.close();
});

test('FdSource: jumping back (a window restart) and forth still returns the right bytes', (t) => {
  const content = randomBytes(300_000);
  const file = tmpFile(t, content);
  const src = new FdSource(fs.openSync(file, 'r'), content.length, { chunkBytes: 16 * 1024 });
  for (const off of [0, 100_000, 99_000, 250_000, 10, 299_990, 16_380]) {
    const len = Math.min(512, content.length - off);
    t.true(src.read(off, len).equals(content.subarray(off, off + len)), `offset ${off}`);
  }
  src.close();
  t.throws(() => src.read(0, 1), { instanceOf: SourceError });
});

test('FdSource: a file truncated under it fails with SourceError(shrunk)', (t) => {
  const content = randomBytes(200_000);
  const file = tmpFile(t, content);
  const src = new FdSource(fs.openSync(file, 'r'), content.length, { chunkBytes: 8192 });
  t.true(src.read(0, 512).equals(content.subarray(0, 512)));
  fs.truncateSync(file, 50_000);
  const e = t.throws(() => src.read(100_000, 512), { instanceOf: SourceError });
  t.is(e?.reason, 'shrunk');
  src.close();
});

test('FdSource: a file deleted under it keeps serving the open inode', (t) => {
  const content = randomBytes(50_000);
  const file = tmpFile(t, content);
  const src = new FdSource(fs.openSync(file, 'r'), content.length, { chunkBytes: 4096 });
  fs.unlinkSync(file);
  t.true(src.read(40_000, 512).equals(content.subarray(40_000, 40_512)));
  src.close();
});

test('MemorySource: reads past the end are SourceError', (t) => {
  const m = new MemorySource(Buffer.from('abc'));
  t.deepEqual(m.read(1, 2), Buffer.from('bc'));
  t.throws(() => m.read(2, 2), { instanceOf: SourceError });
});

function version(file: string): FileVersion & { fd: number } {
  const fd = fs.openSync(file, 'r');
  const st = fs.fstatSync(fd);
  return { path: file, fd, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
}

test('FileCache: hits for the same version, reloads when size or mtime change', async (t) => {
  const file = tmpFile(t, Buffer.from('first version'));
  const cache = new FileCache({ budgetBytes: 1024, maxFileBytes: 512 });
  let v = version(file);
  t.is((await cache.get(v, v.fd)).toString(), 'first version');
  t.is((await cache.get(v, v.fd)).toString(), 'first version');
  fs.closeSync(v.fd);
  t.deepEqual([cache.stats.hits, cache.stats.misses], [1, 1]);
  // same size, new mtime
  fs.writeFileSync(file, 'FIRST VERSION');
  fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
  v = version(file);
  t.is((await cache.get(v, v.fd)).toString(), 'FIRST VERSION');
  fs.closeSync(v.fd);
  // new size
  fs.writeFileSync(file, 'v3');
  v = version(file);
  t.is((await cache.get(v, v.fd)).toString(), 'v3');
  fs.closeSync(v.fd);
  t.is(cache.stats.invalidations, 2);
  t.is(cache.stats.bytes, 2);
});

test('FileCache: concurrent requests share one read; the budget evicts least recently used', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tftp-cache-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cache = new FileCache({ budgetBytes: 1000, maxFileBytes: 400 });
  t.true(cache.admits(400));
  t.false(cache.admits(401));
  const vs = ['a', 'b', 'c'].map((n) => {
    fs.writeFileSync(path.join(dir, n), Buffer.alloc(400, n));
    return version(path.join(dir, n));
  });
  const [x, y] = await Promise.all([cache.get(vs[0]!, vs[0]!.fd), cache.get(vs[0]!, vs[0]!.fd)]);
  t.is(x, y, 'one buffer for both');
  t.deepEqual([cache.stats.hits, cache.stats.misses], [1, 1]);
  await cache.get(vs[1]!, vs[1]!.fd);
  await cache.get(vs[0]!, vs[0]!.fd); // a is now the most recent
  await cache.get(vs[2]!, vs[2]!.fd); // 1200 > 1000: b goes
  t.is(cache.stats.evictions, 1);
  t.is(cache.stats.bytes, 800);
  const misses = cache.stats.misses;
  await cache.get(vs[0]!, vs[0]!.fd);
  t.is(cache.stats.misses, misses, 'a stayed');
  await cache.get(vs[1]!, vs[1]!.fd);
  t.is(cache.stats.misses, misses + 1, 'b was evicted');
  for (const v of vs) fs.closeSync(v.fd);
});

test('FileCache: a file shorter than its stat fails the load and is not kept', async (t) => {
  const file = tmpFile(t, Buffer.alloc(100, 1));
  const cache = new FileCache();
  const v = version(file);
  await t.throwsAsync(cache.get({ ...v, size: 200 }, v.fd), { instanceOf: SourceError });
  t.is(cache.stats.entries, 0);
  t.is(cache.stats.bytes, 0);
  fs.closeSync(v.fd);
});

test('FileCache: derived variants (netascii) are cached beside the file', async (t) => {
  const file = tmpFile(t, Buffer.from('a\nb\r'));
  const cache = new FileCache();
  const v = version(file);
  const na = await cache.get(v, v.fd, { name: 'netascii', derive: toNetascii });
  t.deepEqual(na, Buffer.from('a\r\nb\r\0'));
  t.deepEqual(await cache.get(v, v.fd), Buffer.from('a\nb\r'));
  t.is(cache.stats.bytes, 6 + 4);
  fs.closeSync(v.fd);
});

test('netascii: LF -> CR LF, CR -> CR NUL, and back', (t) => {
  const local = Buffer.from('line1\nline2\r\nbare\rend\n');
  const wire = toNetascii(local);
  t.is(wire.toString('latin1'), 'line1\r\nline2\r\0\r\nbare\r\0end\r\n');
  t.is(netasciiSize(local), wire.length);
  t.deepEqual(fromNetascii(wire), local);
  const bin = randomBytes(10_000);
  t.deepEqual(fromNetascii(toNetascii(bin)), bin);
});
