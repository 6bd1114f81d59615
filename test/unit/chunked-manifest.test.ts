import { createHash } from 'node:crypto';
import test from 'ava';
import { DecodeError } from '../../firmware/core/errors.ts';
import {
  type ChunkEntry,
  computeRootHash,
  decodeManifest,
  encodeChunkList,
  encodeManifest,
  isValidChunkSize,
  isValidImageName,
  type Manifest,
  storedLength,
  verifyManifest,
} from '../../firmware/images/chunked/manifest.ts';
import { rng } from '../helpers/rng.ts';

const H = (c: string) => c.repeat(64);

/**
 * 200000 raw bytes in 64 KiB chunks: grid slots at 0, 65536, 131072 and 196608 (3392 bytes).
 * Slot 1 (65536) is all zeros and left out; chunk 1 is stored raw (zstd did not help).
 */
function base(): Manifest {
  const chunks: ChunkEntry[] = [
    { index: 0, offset: 0, length: 65536, stored: { offset: 0, length: 1000, compression: 'zstd' }, sha256: H('a') },
    {
      index: 1,
      offset: 131072,
      length: 65536,
      stored: { offset: 1000, length: 65536, compression: 'none' },
      sha256: H('b'),
    },
    {
      index: 2,
      offset: 196608,
      length: 3392,
      stored: { offset: 66536, length: 50, compression: 'zstd' },
      sha256: H('c'),
    },
  ];
  const m: Manifest = {
    format: 'bootbox-chunked',
    version: 1,
    name: 'debian-12.node',
    size: 200000,
    chunkSize: 65536,
    compression: 'zstd',
    createdAt: '2026-01-01T00:00:00.000Z',
    source: { file: '/mnt/usb/debian.raw', sha256: H('d') },
    chunks,
    rootHash: '',
  };
  m.rootHash = computeRootHash(m);
  return m;
}

// biome-ignore format: annotated byte fixture
const CHUNK_LIST = Buffer.from([
  ...Buffer.from('bootbox-chunked/1', 'ascii'),   // tag: format and version
  0, 0, 0, 0, 0, 0x03, 0x0d, 0x40,                // size u64be = 200000
  0, 1, 0, 0,                                     // chunkSize u32be = 65536
  0, 0, 0, 3,                                     // count u32be = 3
  0, 0, 0, 0, 0, 0, 0, 0,                         // chunk 0: offset 0
  0, 1, 0, 0,                                     //          length 65536
  ...Buffer.alloc(32, 0xaa),                      //          sha256 aa..aa
  0, 0, 0, 0, 0, 0x02, 0, 0,                      // chunk 1: offset 131072
  0, 1, 0, 0,                                     //          length 65536
  ...Buffer.alloc(32, 0xbb),                      //          sha256 bb..bb
  0, 0, 0, 0, 0, 0x03, 0, 0,                      // chunk 2: offset 196608
  0, 0, 0x0d, 0x40,                               //          length 3392
  ...Buffer.alloc(32, 0xcc),                      //          sha256 cc..cc
]);

test('the canonical chunk list encoding, byte for byte, and the root hash over it', (t) => {
  const m = base();
  t.deepEqual(encodeChunkList(m.size, m.chunkSize, m.chunks), CHUNK_LIST);
  t.is(computeRootHash(m), createHash('sha256').update(CHUNK_LIST).digest('hex'));
});

test('encode -> decode round trip from text, bytes and a parsed object', (t) => {
  const m = base();
  const text = encodeManifest(m);
  t.deepEqual(decodeManifest(text), m);
  t.deepEqual(decodeManifest(Buffer.from(text)), m);
  t.deepEqual(decodeManifest(JSON.parse(text)), m);
  t.is(encodeManifest(decodeManifest(text)), text, 'encoding is stable');
});

test('the encoding puts one chunk per line and ends with a newline', (t) => {
  const text = encodeManifest(base());
  const lines = text.split('\n');
  t.true(text.endsWith('}\n'));
  t.is(lines.filter((l) => l.startsWith('    {"index":')).length, 3);
  t.true(
    lines.includes(
      `    {"index":0,"offset":0,"length":65536,"stored":{"offset":0,"length":1000,"compression":"zstd"},"sha256":"${H('a')}"},`,
    ),
  );
});

test('source without a file (stdin) and an image with no data chunks', (t) => {
  const m = base();
  m.source = { sha256: H('e') };
  t.deepEqual(decodeManifest(encodeManifest(m)), m);
  const empty = base();
  empty.chunks = [];
  delete empty.source;
  empty.rootHash = computeRootHash(empty);
  const back = decodeManifest(encodeManifest(empty));
  t.deepEqual(back, empty);
  t.is(storedLength(back), 0);
});

test('decode returns a fresh object', (t) => {
  const m = base();
  const d = decodeManifest(m);
  d.chunks[0]!.stored.length = 1;
  t.is(m.chunks[0]!.stored.length, 1000);
});

type Mutate = (m: Record<string, unknown> & Manifest) => void;
const chunk = (m: Manifest, i: number) => m.chunks[i] as ChunkEntry & Record<string, unknown>;

/** Each refusal, named by its reason. The root hash is recomputed where it can be, so the named rule is what refuses. */
const REFUSALS: [string, Mutate, string][] = [
  ['unknown top-level field', (m) => Object.assign(m, { extra: 1 }), 'unknown-field'],
  ['unknown chunk field', (m) => Object.assign(chunk(m, 0), { crc: 1 }), 'unknown-field'],
  ['unknown stored field', (m) => Object.assign(chunk(m, 0).stored, { path: 'x' }), 'unknown-field'],
  ['unknown source field', (m) => Object.assign(m.source!, { url: 'x' }), 'unknown-field'],
  ['wrong format', (m) => Object.assign(m, { format: 'wim' }), 'format'],
  ['version 2', (m) => Object.assign(m, { version: 2 }), 'version'],
  ['name with a slash', (m) => Object.assign(m, { name: '../etc' }), 'name'],
  ['empty name', (m) => Object.assign(m, { name: '' }), 'name'],
  ['name ending in .bbimg', (m) => Object.assign(m, { name: 'x.bbimg' }), 'name'],
  ['negative size', (m) => Object.assign(m, { size: -1 }), 'size'],
  ['size as a string', (m) => Object.assign(m, { size: '200000' }), 'size'],
  ['fractional size', (m) => Object.assign(m, { size: 1.5 }), 'size'],
  ['chunk size not a power of two', (m) => Object.assign(m, { chunkSize: 65537 }), 'chunk-size'],
  ['chunk size below 64 KiB', (m) => Object.assign(m, { chunkSize: 32768 }), 'chunk-size'],
  ['chunk size above 64 MiB', (m) => Object.assign(m, { chunkSize: 128 * 1024 * 1024 }), 'chunk-size'],
  ['unknown compression', (m) => Object.assign(m, { compression: 'xz' }), 'compression'],
  ['createdAt not ISO UTC', (m) => Object.assign(m, { createdAt: '1 Jan 2026' }), 'created-at'],
  ['createdAt impossible date', (m) => Object.assign(m, { createdAt: '2026-13-45T00:00:00Z' }), 'created-at'],
  ['source without sha256', (m) => Object.assign(m, { source: { file: 'a' } }), 'source'],
  ['source file empty', (m) => Object.assign(m.source!, { file: '' }), 'source'],
  ['chunks not an array', (m) => Object.assign(m, { chunks: {} }), 'chunks'],
  ['chunk not an object', (m) => m.chunks.splice(1, 1, null as never), 'chunk'],
  ['index not its position', (m) => Object.assign(chunk(m, 1), { index: 5 }), 'chunk-index'],
  ['offset negative', (m) => Object.assign(chunk(m, 0), { offset: -65536 }), 'chunk-offset'],
  ['length not a number', (m) => Object.assign(chunk(m, 0), { length: null }), 'chunk-length'],
  ['offset not on the chunk grid', (m) => Object.assign(chunk(m, 1), { offset: 131000 }), 'chunk-misaligned'],
  [
    'chunks out of order',
    (m) => {
      const [a, b] = [m.chunks[0]!, m.chunks[1]!];
      m.chunks[0] = { ...b, index: 0, stored: a.stored };
      m.chunks[1] = { ...a, index: 1, stored: b.stored };
    },
    'chunk-order',
  ],
  ['two chunks at one offset', (m) => Object.assign(chunk(m, 1), { offset: 0 }), 'chunk-overlap'],
  ['chunk beyond the image size', (m) => Object.assign(m, { size: 150000 }), 'chunk-outside'],
  ['chunk shorter than its grid slot', (m) => Object.assign(chunk(m, 1), { length: 4096 }), 'chunk-length'],
  ['last chunk not the image tail', (m) => Object.assign(chunk(m, 2), { length: 3000 }), 'chunk-length'],
  ['sha256 upper case', (m) => Object.assign(chunk(m, 0), { sha256: 'A'.repeat(64) }), 'chunk-sha256'],
  ['sha256 too short', (m) => Object.assign(chunk(m, 0), { sha256: 'a'.repeat(63) }), 'chunk-sha256'],
  ['stored missing', (m) => Reflect.deleteProperty(chunk(m, 0), 'stored'), 'stored'],
  [
    'stored compression unknown',
    (m) => Object.assign(chunk(m, 0).stored, { compression: 'gzip' }),
    'stored-compression',
  ],
  ['zstd chunk in an uncompressed image', (m) => Object.assign(m, { compression: 'none' }), 'stored-compression'],
  ['raw chunk of the wrong length', (m) => Object.assign(chunk(m, 1).stored, { length: 65535 }), 'stored-length'],
  ['zstd chunk not smaller', (m) => Object.assign(chunk(m, 0).stored, { length: 65536 }), 'stored-length'],
  ['zstd chunk of 0 bytes', (m) => Object.assign(chunk(m, 0).stored, { length: 0 }), 'stored-length'],
  ['stored ranges with a gap', (m) => Object.assign(chunk(m, 1).stored, { offset: 1001 }), 'stored-offset'],
  ['stored ranges overlapping', (m) => Object.assign(chunk(m, 1).stored, { offset: 999 }), 'stored-offset'],
  ['stored offset not an integer', (m) => Object.assign(chunk(m, 0).stored, { offset: '0' }), 'stored-offset'],
  ['root hash malformed', (m) => Object.assign(m, { rootHash: 'xyz' }), 'root-hash'],
  ['root hash of another chunk list', (m) => Object.assign(m, { rootHash: H('0') }), 'root-hash-mismatch'],
];

for (const [title, mutate, reason] of REFUSALS) {
  test(`refused: ${title} -> ${reason}`, (t) => {
    const m = structuredClone(base()) as Manifest & Record<string, unknown>;
    mutate(m);
    const err = t.throws(() => decodeManifest(JSON.stringify(m)), { instanceOf: DecodeError });
    t.is(err?.reason, reason, err?.message);
    t.regex(err?.message ?? '', /^manifest/);
  });
}

test('refused: not JSON, not an object', (t) => {
  t.is(t.throws(() => decodeManifest('{"format":'), { instanceOf: DecodeError })?.reason, 'json');
  t.is(t.throws(() => decodeManifest('[]'), { instanceOf: DecodeError })?.reason, 'not-object');
  t.is(t.throws(() => decodeManifest(null), { instanceOf: DecodeError })?.reason, 'not-object');
});

test('refused: a stored range beyond chunks.bin when its length is given', (t) => {
  const m = base();
  const need = storedLength(m);
  t.is(need, 66586);
  t.notThrows(() => decodeManifest(m, { storedLength: need }));
  const err = t.throws(() => decodeManifest(m, { storedLength: need - 1 }), { instanceOf: DecodeError });
  t.is(err?.reason, 'stored-outside');
  t.regex(err?.message ?? '', /chunks\[2\]/);
});

test('the messages name the offending field', (t) => {
  const m = structuredClone(base());
  m.chunks[1]!.sha256 = 'nope';
  t.regex(t.throws(() => decodeManifest(m))?.message ?? '', /chunks\[1\]\.sha256/);
});

test('the root hash changes when any field of the chunk list changes', (t) => {
  const root = base().rootHash;
  const variants: [string, (m: Manifest) => void][] = [
    ['size', (m) => (m.size += 1)],
    ['chunkSize', (m) => (m.chunkSize = 131072)],
    ['a chunk offset', (m) => (m.chunks[1]!.offset = 65536)],
    ['a chunk length', (m) => (m.chunks[2]!.length = 3391)],
    ['a chunk sha256', (m) => (m.chunks[0]!.sha256 = `${H('a').slice(0, 63)}b`)],
    ['a chunk removed', (m) => m.chunks.pop()],
    ['a chunk added', (m) => m.chunks.splice(1, 0, { ...m.chunks[0]!, index: 1, offset: 65536, sha256: H('f') })],
  ];
  const seen = new Set([root]);
  for (const [what, change] of variants) {
    const m = structuredClone(base());
    change(m);
    const h = computeRootHash(m);
    t.not(h, root, what);
    seen.add(h);
  }
  t.is(seen.size, variants.length + 1, 'every change gives its own hash');
});

test('the root hash covers the raw image, not how it is stored', (t) => {
  const root = base().rootHash;
  const m = structuredClone(base());
  m.chunks[0]!.stored = { offset: 0, length: 900, compression: 'zstd' };
  m.compression = 'zstd';
  m.name = 'other';
  m.createdAt = '2027-01-01T00:00:00Z';
  t.is(computeRootHash(m), root);
});

test('verifyManifest: tampered chunk list refused, and a root hash from a trusted place enforced', (t) => {
  const m = base();
  t.notThrows(() => verifyManifest(m));
  t.notThrows(() => verifyManifest(m, m.rootHash));
  t.is(t.throws(() => verifyManifest(m, H('1')), { instanceOf: DecodeError })?.reason, 'root-hash-unexpected');
  t.is(t.throws(() => decodeManifest(m, { expectedRootHash: H('1') }))?.message.includes(H('1')), true);
  const tampered = structuredClone(m);
  tampered.chunks[1]!.sha256 = H('e');
  t.is(t.throws(() => verifyManifest(tampered), { instanceOf: DecodeError })?.reason, 'root-hash-mismatch');
  t.is(t.throws(() => decodeManifest(tampered), { instanceOf: DecodeError })?.reason, 'root-hash-mismatch');
  // Tampering with the list and recomputing the root hash passes the self-check but not the trusted one.
  tampered.rootHash = computeRootHash(tampered);
  t.notThrows(() => decodeManifest(tampered));
  t.is(t.throws(() => decodeManifest(tampered, { expectedRootHash: m.rootHash }))?.message.includes('expected'), true);
});

test('encodeManifest refuses to write an invalid manifest', (t) => {
  const m = base();
  m.chunks[0]!.offset = 5;
  t.is(t.throws(() => encodeManifest(m), { instanceOf: DecodeError })?.reason, 'chunk-misaligned');
  const n = base();
  n.rootHash = H('0');
  t.is(t.throws(() => encodeManifest(n), { instanceOf: DecodeError })?.reason, 'root-hash-mismatch');
});

test('names and chunk sizes', (t) => {
  for (const ok of ['win11', 'debian-12.node', 'A', 'x_1', 'a'.repeat(128)]) t.true(isValidImageName(ok), ok);
  for (const bad of ['', '.hidden', '-x', 'a/b', 'a\\b', 'a b', 'a.', 'x.bbimg', 'X.BBIMG', 'a'.repeat(129), 'é']) {
    t.false(isValidImageName(bad), bad);
  }
  for (const ok of [65536, 1 << 20, 4 << 20, 64 << 20]) t.true(isValidChunkSize(ok), String(ok));
  for (const bad of [0, 32768, 65535, 3 << 20, 128 << 20, 1.5, Number.NaN]) t.false(isValidChunkSize(bad), String(bad));
});

test('garbage in: decoding random mutations of a manifest only ever throws DecodeError', (t) => {
  const r = rng(0xc0ffee);
  const text = encodeManifest(base());
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(text);
    const n = 1 + Math.floor(r() * 4);
    for (let j = 0; j < n; j++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    try {
      decodeManifest(b);
    } catch (e) {
      if (!(e instanceof DecodeError)) t.fail(`seed 0xc0ffee, round ${i}: ${(e as Error).stack}`);
      refused++;
    }
  }
  t.true(refused > 0, `refused ${refused} of 2000 mutated manifests`);
});
