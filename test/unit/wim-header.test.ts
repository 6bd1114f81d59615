/**
 * WIM header codec against byte fixtures (a real header written by wimlib, annotated
 * per field), negative fixtures named by their failure, and random bytes.
 */
import test from 'ava';
import { DecodeError } from '../../firmware/core/errors.ts';
import {
  BLOB_TABLE_ENTRY_SIZE,
  blobTableRange,
  decodeResourceHeader,
  decodeWimHeader,
  hasSolidBlobEntry,
  mayHoldSolidResources,
  type WimCompression,
  type WimHeader,
  xmlDataRange,
} from '../../firmware/images/wim/header.ts';
import { rng } from '../helpers/rng.ts';

/** The header of a 3-image XPRESS WIM (wimcapture + 2× wimappend, image 3 marked bootable). */
// biome-ignore format: annotated byte fixture
const XPRESS_3_IMAGES = [
  0x4d, 0x53, 0x57, 0x49, 0x4d, 0x00, 0x00, 0x00, // 0 ImageTag "MSWIM\0\0\0"
  0xd0, 0x00, 0x00, 0x00,                         // 8 cbSize 208
  0x00, 0x0d, 0x01, 0x00,                         // 12 dwVersion 0x10d00
  0x82, 0x00, 0x02, 0x00,                         // 16 dwFlags COMPRESSION | RP_FIX | COMPRESS_XPRESS
  0x00, 0x80, 0x00, 0x00,                         // 20 dwCompressionSize 32768
  0x83, 0x44, 0x72, 0x17, 0x08, 0xc0, 0x51, 0x71, // 24 gWIMGuid
  0xbc, 0xc3, 0x07, 0xaf, 0x6d, 0x8e, 0x33, 0x09,
  0x01, 0x00,                                     // 40 usPartNumber 1
  0x01, 0x00,                                     // 42 usTotalParts 1
  0x03, 0x00, 0x00, 0x00,                         // 44 dwImageCount 3
  0x5e, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,       // 48 rhOffsetTable: size 350 (56 bits)
  0x02,                                           //    flags METADATA
  0x7d, 0x98, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, //    offset 104573
  0x5e, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //    original size 350
  0xd0, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00,       // 72 rhXmlData: size 3280
  0x02,                                           //    flags METADATA
  0xdb, 0x99, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, //    offset 104923
  0xd0, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //    original size 3280
  0x95, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,       // 96 rhBootMetadata: size 405
  0x06,                                           //    flags METADATA | COMPRESSED
  0xe8, 0x96, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, //    offset 104168
  0xc8, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //    original size 712
  0x03, 0x00, 0x00, 0x00,                         // 120 dwBootIndex 3
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 124 rhIntegrity: none
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  ...new Array<number>(60).fill(0),               // 148 bUnused[60]
];
const FILE_SIZE = 108203; // the WIM file this header came from

const header = () => Uint8Array.from(XPRESS_3_IMAGES);
/** A copy of the fixture with little-endian values written over it. */
function patched(edits: [offset: number, bytes: number[]][], base = header()): Uint8Array {
  const b = Uint8Array.from(base);
  for (const [at, bytes] of edits) b.set(bytes, at);
  return b;
}
const u16 = (n: number) => [n & 0xff, n >>> 8];
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
const u64 = (n: number) => [...u32(n % 0x100000000), ...u32(Math.floor(n / 0x100000000))];
/** A 24-byte resource header: 56-bit size, flags, offset, original size. */
const reshdr = (size: number, flags: number, offset: number, original: number) => [
  ...u64(size).slice(0, 7),
  flags,
  ...u64(offset),
  ...u64(original),
];

const EXPECTED: WimHeader = {
  version: 0x10d00,
  flags: 0x20082,
  compression: 'xpress',
  chunkSize: 32768,
  guid: '8344721708c05171bcc307af6d8e3309',
  partNumber: 1,
  totalParts: 1,
  imageCount: 3,
  blobTable: { size: 350, flags: 0x02, offset: 104573, originalSize: 350 },
  xmlData: { size: 3280, flags: 0x02, offset: 104923, originalSize: 3280 },
  bootMetadata: { size: 405, flags: 0x06, offset: 104168, originalSize: 712 },
  bootIndex: 3,
  integrity: { size: 0, flags: 0, offset: 0, originalSize: 0 },
};

test('a real 3-image XPRESS header decodes field by field', (t) => {
  t.deepEqual(decodeWimHeader(header()), EXPECTED);
});

test('bytes after the 208-byte header are ignored', (t) => {
  t.deepEqual(decodeWimHeader(Uint8Array.from([...XPRESS_3_IMAGES, 1, 2, 3])), EXPECTED);
});

test('uncompressed: no type flag needed, chunk size reported as stored', (t) => {
  const h = decodeWimHeader(
    patched([
      [16, u32(0x80)],
      [20, u32(0)],
    ]),
  );
  t.is(h.compression, 'none');
  t.is(h.chunkSize, 0);
});

test('each compression type and its flag', (t) => {
  const cases: [number, number, WimCompression][] = [
    [0x00020002, 32768, 'xpress'],
    [0x00200002, 4096, 'xpress'], // XPRESS-2 flag
    [0x00040002, 2097152, 'lzx'],
    [0x00080002, 67108864, 'lzms'],
  ];
  for (const [flags, chunk, type] of cases) {
    const h = decodeWimHeader(
      patched([
        [16, u32(flags)],
        [20, u32(chunk)],
      ]),
    );
    t.is(h.compression, type, `flags 0x${flags.toString(16)}`);
    t.is(h.chunkSize, chunk);
  }
});

test('an LZMS / solid header: version 0xe00 may hold solid resources, 0x10d00 may not', (t) => {
  const esd = decodeWimHeader(
    patched([
      [12, u32(0xe00)],
      [16, u32(0x80082)],
      [20, u32(131072)],
    ]),
  );
  t.is(esd.version, 0xe00);
  t.is(esd.compression, 'lzms');
  t.true(mayHoldSolidResources(esd));
  t.false(mayHoldSolidResources(decodeWimHeader(header())));
});

test('a split WIM part: part 2 of 3, SPANNED flag', (t) => {
  // biome-ignore format: annotated byte fixture
  const part = patched([
    [16, [0x88, 0x00, 0x00, 0x00]], // dwFlags SPANNED | RP_FIX (uncompressed)
    [20, [0x00, 0x00, 0x00, 0x00]], // dwCompressionSize 0
    [40, [0x02, 0x00]],             // usPartNumber 2
    [42, [0x03, 0x00]],             // usTotalParts 3
    [44, [0x01, 0x00, 0x00, 0x00]], // dwImageCount 1
    [120, [0x00, 0x00, 0x00, 0x00]], // dwBootIndex 0
  ]);
  const h = decodeWimHeader(part);
  t.is(h.partNumber, 2);
  t.is(h.totalParts, 3);
  t.is(h.flags & 0x8, 0x8);
  t.is(h.compression, 'none');
});

test('a 56-bit resource size with its flag byte', (t) => {
  // biome-ignore format: annotated byte fixture
  const r = Uint8Array.from([
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x20, // size 0x20060504030201 (> 2^53: refused)
    0x04,                                     // flags COMPRESSED
    ...new Array<number>(16).fill(0),         // offset 0, original size 0
  ]);
  t.is(
    t.throws(() => decodeResourceHeader(r, 0, 'test'), { instanceOf: DecodeError })?.reason,
    'resource-out-of-range',
  );
  r[6] = 0x00; // size 0x060504030201
  t.deepEqual(decodeResourceHeader(r, 0, 'test'), { size: 0x060504030201, flags: 4, offset: 0, originalSize: 0 });
  t.is(
    t.throws(() => decodeResourceHeader(r, 1, 'test'), { instanceOf: DecodeError })?.reason,
    'short-resource-header',
  );
});

// Negative fixtures, named by their failure.
const NEGATIVE: [failure: string, reason: string, bytes: Uint8Array][] = [
  ['207 bytes', 'short-header', header().subarray(0, 207)],
  ['empty', 'short-header', new Uint8Array(0)],
  ['a zip file', 'bad-magic', patched([[0, [0x50, 0x4b, 0x03, 0x04]]])],
  ['"mSWIM" (the tag is case-sensitive)', 'bad-magic', patched([[0, [0x6d]]])],
  ['wimlib pipable "WLPWM"', 'pipable-unsupported', patched([[0, [0x57, 0x4c, 0x50, 0x57, 0x4d]]])],
  ['header size 200', 'bad-header-size', patched([[8, u32(200)]])],
  ['version 0x10b00', 'unsupported-version', patched([[12, u32(0x10b00)]])],
  ['COMPRESSION without a type', 'unsupported-compression', patched([[16, u32(0x00000082)]])],
  ['only COMPRESS_RESERVED', 'unsupported-compression', patched([[16, u32(0x00010082)]])],
  ['XPRESS and LZX', 'bad-compression-flags', patched([[16, u32(0x00060082)]])],
  ['compressed, chunk size 0', 'bad-chunk-size', patched([[20, u32(0)]])],
  ['XPRESS chunk size 128 KiB', 'bad-chunk-size', patched([[20, u32(131072)]])],
  ['chunk size not a power of two', 'bad-chunk-size', patched([[20, u32(40000)]])],
  ['part 0 of 1', 'bad-part-number', patched([[40, u16(0)]])],
  ['part 1 of 0', 'bad-part-number', patched([[42, u16(0)]])],
  [
    'part 3 of 2',
    'bad-part-number',
    patched([
      [40, u16(3)],
      [42, u16(2)],
    ]),
  ],
  ['65536 images', 'bad-image-count', patched([[44, u32(65536)]])],
  ['boot index 4 of 3 images', 'bad-boot-index', patched([[120, u32(4)]])],
  ['XML offset 2^53', 'resource-out-of-range', patched([[80, [0, 0, 0, 0, 0, 0, 0x20, 0]]])],
  ['blob table size 2^56-1', 'resource-out-of-range', patched([[48, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]]])],
];
for (const [failure, reason, bytes] of NEGATIVE) {
  test(`refused with ${reason}: ${failure}`, (t) => {
    const e = t.throws(() => decodeWimHeader(bytes), { instanceOf: DecodeError });
    t.is(e?.reason, reason);
    t.true((e?.message.length ?? 0) > 10, 'a message an admin can read');
  });
}

const withXml = (size: number, flags: number, offset: number, original: number) =>
  decodeWimHeader(patched([[72, reshdr(size, flags, offset, original)]]));

test('the XML data range is checked against the file size and the limit', (t) => {
  t.deepEqual(xmlDataRange(decodeWimHeader(header()), FILE_SIZE, 1 << 20), { offset: 104923, length: 3280 });
  t.is(xmlDataRange(withXml(0, 0, 0, 0), FILE_SIZE, 1 << 20), null, 'no XML data in this part');
  const refused: [string, WimHeader, number][] = [
    ['xml-compressed', withXml(3280, 0x06, 104923, 9000), 1 << 20],
    ['xml-bad-size', withXml(3280, 0x02, 104923, 3282), 1 << 20],
    ['xml-out-of-range', withXml(3280, 0x02, FILE_SIZE - 3279, 3280), 1 << 20], // one byte past the end
    ['xml-out-of-range', withXml(3280, 0x02, 100, 3280), 1 << 20], // inside the header
    ['xml-out-of-range', withXml(2 ** 40, 0x02, 208, 2 ** 40), 2 ** 50], // huge declared size
    ['xml-too-large', withXml(3280, 0x02, 104923, 3280), 3279],
  ];
  for (const [reason, h, max] of refused) {
    const e = t.throws(() => xmlDataRange(h, FILE_SIZE, max), { instanceOf: DecodeError });
    t.is(e?.reason, reason);
  }
  // The end of the file exactly.
  t.deepEqual(xmlDataRange(withXml(3280, 0x02, FILE_SIZE - 3280, 3280), FILE_SIZE, 3280), {
    offset: FILE_SIZE - 3280,
    length: 3280,
  });
});

test('the blob table range: uncompressed, whole entries, inside the file', (t) => {
  t.deepEqual(blobTableRange(decodeWimHeader(header()), FILE_SIZE), { offset: 104573, length: 350 });
  const withTable = (size: number, flags: number, offset: number, original: number) =>
    decodeWimHeader(patched([[48, reshdr(size, flags, offset, original)]]));
  const refused: [string, WimHeader][] = [
    ['blob-table-compressed', withTable(350, 0x06, 104573, 700)],
    ['blob-table-bad-size', withTable(351, 0x02, 104573, 351)],
    ['blob-table-out-of-range', withTable(350, 0x02, FILE_SIZE - 300, 350)],
  ];
  for (const [reason, h] of refused) {
    t.is(t.throws(() => blobTableRange(h, FILE_SIZE), { instanceOf: DecodeError })?.reason, reason);
  }
});

/** Two blob table entries of a solid WIM: a metadata resource, then a file in a solid resource. */
// biome-ignore format: annotated byte fixture
const BLOB_ENTRIES = [
  0xb0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,       // size 176
  0x06,                                           // flags METADATA | COMPRESSED
  0xee, 0x8a, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // offset 101102
  0xc8, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // original size 712
  0x01, 0x00,                                     // usPartNumber 1
  0x01, 0x00, 0x00, 0x00,                         // dwRefCount 1
  0x2d, 0xb9, 0x13, 0x2b, 0x9f, 0xe6, 0xcf, 0xe3, 0x86, 0x1e, // SHA-1
  0x10, 0x6e, 0xe9, 0x1a, 0x9b, 0x77, 0xd2, 0xd4, 0x4b, 0xc5,
  0x88, 0x13, 0x00, 0x00, 0x00, 0x00, 0x00,       // size 5000 (uncompressed size of the file)
  0x10,                                           // flags SOLID
  0xa6, 0x86, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // offset 100006 within the solid resource
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // original size: unused
  0x01, 0x00,                                     // usPartNumber 1
  0x01, 0x00, 0x00, 0x00,                         // dwRefCount 1
  0xc0, 0x68, 0xa1, 0xf5, 0x4d, 0x77, 0x96, 0x5b, 0x42, 0x8a, // SHA-1
  0x79, 0x69, 0x12, 0x53, 0x13, 0xce, 0x29, 0xab, 0xb9, 0x3b,
];

test('blob table entries: a SOLID flag is found, its absence too', (t) => {
  t.is(BLOB_ENTRIES.length, 2 * BLOB_TABLE_ENTRY_SIZE);
  t.true(hasSolidBlobEntry(Uint8Array.from(BLOB_ENTRIES)));
  t.false(hasSolidBlobEntry(Uint8Array.from(BLOB_ENTRIES.slice(0, BLOB_TABLE_ENTRY_SIZE))));
  t.false(hasSolidBlobEntry(new Uint8Array(0)));
  const e = t.throws(() => hasSolidBlobEntry(Uint8Array.from(BLOB_ENTRIES.slice(1))), { instanceOf: DecodeError });
  t.is(e?.reason, 'blob-table-bad-size');
});

const SEED = Number(process.env['WIM_FUZZ_SEED'] ?? 0x5157) >>> 0;

test(`random and mutated headers throw only DecodeError (seed ${SEED})`, (t) => {
  const rand = rng(SEED);
  const int = (n: number) => Math.floor(rand() * n);
  const reasons = new Map<string, number>();
  let decoded = 0;
  for (let i = 0; i < 50_000; i++) {
    let buf: Uint8Array;
    if (i % 2 === 0) {
      buf = new Uint8Array(int(i % 10 === 0 ? 260 : 215));
      for (let j = 0; j < buf.length; j++) buf[j] = int(256);
      if (i % 4 === 0 && buf.length >= 8) buf.set(XPRESS_3_IMAGES.slice(0, 16).slice(0, buf.length), 0); // past the magic
    } else {
      buf = header();
      for (let k = 0, n = 1 + int(3); k < n; k++) buf[int(buf.length)] = int(256);
    }
    try {
      const h = decodeWimHeader(buf);
      decoded++;
      // Whatever decodes can be range-checked without throwing anything else.
      for (const fn of [() => xmlDataRange(h, int(2 ** 20), int(2 ** 16)), () => blobTableRange(h, int(2 ** 20))]) {
        try {
          fn();
        } catch (e) {
          if (!(e instanceof DecodeError)) throw e;
        }
      }
    } catch (e) {
      if (!(e instanceof DecodeError)) {
        t.fail(`iteration ${i}: ${String(e)} for ${Buffer.from(buf).toString('hex')}`);
        return;
      }
      reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
    }
  }
  t.true(decoded > 1000, `decoded ${decoded} mutated headers`);
  for (const r of ['short-header', 'bad-magic', 'bad-header-size', 'unsupported-version', 'bad-part-number']) {
    t.true(reasons.has(r), `garbage reached ${r}`);
  }
});
