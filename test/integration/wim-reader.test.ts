/**
 * The WIM reader against wimlib's own tools: WIMs made with wimcapture / wimappend /
 * wimsplit in a temp dir (every compression type, solid, several images with
 * Windows-like properties, a split WIM), every reported field compared with what
 * `wiminfo`, `wiminfo --header` and `wiminfo --blobs` print. Then broken copies, each
 * refused with IMAGE_INVALID (and by wimlib too), leaving no file open.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import { readWimInfo, type WimImageInfo, type WimInfo } from '../../firmware/images/wim/reader.ts';

const TOOLS = ['wimcapture', 'wimappend', 'wiminfo', 'wimsplit'];

let tmp = '';
const at = (...p: string[]) => path.join(tmp, ...p);
/** Runs a wimlib tool (one thread: the machine is shared) and returns its standard output. */
const wim = (tool: string, ...args: string[]) =>
  execFileSync(tool, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });

function tree(name: string, files: Record<string, number | string>): string {
  const root = at(name);
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), typeof content === 'number' ? crypto.randomBytes(content) : content);
  }
  return root;
}

const WINDOWS_PROPS = [
  'WINDOWS/ARCH=9',
  'WINDOWS/PRODUCTNAME=Microsoft® Windows® Operating System',
  'WINDOWS/EDITIONID=Professional',
  'WINDOWS/INSTALLATIONTYPE=Client',
  'WINDOWS/LANGUAGES/LANGUAGE=en-US',
  'WINDOWS/LANGUAGES/LANGUAGE[2]=de-DE',
  'WINDOWS/LANGUAGES/DEFAULT=en-US',
  'WINDOWS/VERSION/MAJOR=10',
  'WINDOWS/VERSION/MINOR=0',
  'WINDOWS/VERSION/BUILD=19041',
  'WINDOWS/VERSION/SPBUILD=1288',
  'DISPLAYNAME=Windows 10 Pro',
  'DISPLAYDESCRIPTION=Windows 10 Pro (display)',
].flatMap((p) => ['--image-property', p]);

/** What each WIM was made with: the facts the comparison must also find. */
interface Made {
  compression: WimInfo['compression'];
  chunkSize: number;
  solid: boolean;
  imageCount: number;
  bootIndex?: number;
  architectures?: WimImageInfo['architecture'][];
}
const MADE: Record<string, Made> = {};
let splitParts: string[] = [];

test.before('make WIMs with wimlib', () => {
  for (const tool of TOOLS) {
    if (spawnSync(tool, ['--version']).status !== 0) throw new Error(`${tool} is not installed (wimtools)`);
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bootbox-wim-'));
  const a = tree('a', {
    'Windows/System32/config/SYSTEM': 70_000,
    'Windows/System32/drivers/etc/hosts': '127.0.0.1 localhost\r\n',
    'Program Files/App/app.exe': 20_000,
    'Users/Default/ntuser.dat': 'x'.repeat(30_000),
    'Ünïcödé dir/file & <name>.txt': 'text',
  });
  const b = tree('b', { 'data/one.bin': 5_000, 'data/two.txt': 'two' });
  const threads = '--threads=1';

  wim(
    'wimcapture',
    a,
    at('none.wim'),
    'Plain',
    'no compression',
    '--compress=none',
    threads,
    ...['--image-property', 'WINDOWS/ARCH=5'],
  );
  MADE['none.wim'] = { compression: 'none', chunkSize: 0, solid: false, imageCount: 1, architectures: ['arm'] };

  wim('wimcapture', a, at('xpress.wim'), 'Fast', '--compress=XPRESS', '--flags=Professional', threads);
  MADE['xpress.wim'] = { compression: 'xpress', chunkSize: 32768, solid: false, imageCount: 1 };

  wim(
    'wimcapture',
    a,
    at('lzx.wim'),
    'Maximum',
    '--compress=LZX',
    '--chunk-size=64K',
    threads,
    ...['--image-property', 'WINDOWS/ARCH=6'],
  );
  MADE['lzx.wim'] = { compression: 'lzx', chunkSize: 65536, solid: false, imageCount: 1, architectures: ['ia64'] };

  wim('wimcapture', a, at('lzms.wim'), 'Recovery', '--compress=LZMS', threads);
  MADE['lzms.wim'] = { compression: 'lzms', chunkSize: 131072, solid: false, imageCount: 1 };

  wim('wimcapture', a, at('solid.esd'), 'Solid', '--solid', '--solid-chunk-size=1M', threads);
  MADE['solid.esd'] = { compression: 'lzms', chunkSize: 131072, solid: true, imageCount: 1 };

  // Three images: x86 with no other Windows facts, a full Windows-like x64 image, a bootable arm64 image.
  const multi = at('install.wim');
  wim(
    'wimcapture',
    a,
    multi,
    'Windows 10 Home',
    'Home edition',
    '--compress=LZX',
    threads,
    ...['--image-property', 'WINDOWS/ARCH=0'],
  );
  wim('wimappend', b, multi, 'Zweites Bild: ünïcödé & <tags>', 'Windows 10 Pro', threads, ...WINDOWS_PROPS);
  wim('wimappend', a, multi, 'Windows PE', threads, '--image-property', 'WINDOWS/ARCH=12');
  wim('wiminfo', multi, '3', '--boot');
  MADE['install.wim'] = {
    compression: 'lzx',
    chunkSize: 32768,
    solid: false,
    imageCount: 3,
    bootIndex: 3,
    architectures: ['x86', 'x64', 'arm64'],
  };

  // A split WIM: incompressible files of 300 KB, parts of at most 0.25 MiB.
  const big = tree('big', { 'one.bin': 300_000, 'two.bin': 300_000, 'three.bin': 300_000, 'small.txt': 'small' });
  wim('wimcapture', big, at('big.wim'), 'Split me', '--compress=none', threads);
  wim('wimsplit', at('big.wim'), at('install.swm'), '0.25');
  splitParts = fs
    .readdirSync(tmp)
    .filter((f) => /^install\d*\.swm$/.test(f))
    .sort((x, y) => x.length - y.length || x.localeCompare(y))
    .map((f) => at(f));
});

test.after.always('remove the temp dir', () => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// --- wiminfo's output, parsed ---

interface WiminfoOutput {
  wim: Record<string, string>;
  images: Record<string, string>[];
}

/** `Key:   value` blocks: the WIM block, then one block per image. */
function parseWiminfo(out: string): WiminfoOutput {
  const blocks: Record<string, string>[] = [];
  let cur: Record<string, string> | undefined;
  for (const line of out.split('\n')) {
    const m = /^([A-Za-z][A-Za-z ]*):[ ]*(.*)$/.exec(line);
    if (!m) {
      if (line.trim() === '') cur = undefined;
      continue;
    }
    if (!cur) {
      cur = {};
      blocks.push(cur);
    }
    cur[m[1]!] = m[2]!;
  }
  const [first, ...images] = blocks;
  return { wim: first ?? {}, images: images.filter((b) => 'Index' in b) };
}

/** `Key = value` lines of `wiminfo --header`. */
function parseHeader(out: string): Record<string, string> {
  const r: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^(\S.*?)\s+= (.*)$/.exec(line);
    if (m) r[m[1]!] = m[2]!;
  }
  return r;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** "Sun Nov 22 06:43:02 2026 UTC" → "2026-11-22T06:43:02Z" */
function wimlibTime(s: string): string {
  const m = /^\w{3} (\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\d+) UTC$/.exec(s);
  if (!m) throw new Error(`unexpected wiminfo time "${s}"`);
  const ms = Date.UTC(+m[6]!, MONTHS.indexOf(m[1]!), +m[2]!, +m[3]!, +m[4]!, +m[5]!);
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

const ARCH_NAMES: Record<string, WimImageInfo['architecture']> = {
  x86: 'x86',
  ARM: 'arm',
  ia64: 'ia64',
  x86_64: 'x64',
  ARM64: 'arm64',
};

/** Drops keys whose value is undefined, so absent and undefined compare equal. */
const defined = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

/**
 * The image as wiminfo describes it, in the reader's shape (times to the second).
 * One deliberate difference: wimlib prints "x86" for an image whose WINDOWS element has
 * no ARCH (wimcapture writes one for any tree with a Windows directory whose registry
 * it cannot read); the reader says 'unknown' there, as nothing records an architecture.
 */
function expectedImage(b: Record<string, string>, hasArch: boolean): WimImageInfo {
  const has = (k: string) => k in b;
  return defined({
    index: Number(b['Index']),
    name: b['Name'] ?? '',
    description: b['Description'] || undefined,
    displayName: b['Display Name'],
    displayDescription: b['Display Description'],
    flags: b['Flags'],
    edition: b['Edition ID'],
    installationType: b['Installation Type'],
    productName: b['Product Name'],
    architecture: has('Architecture') && hasArch ? (ARCH_NAMES[b['Architecture']!] ?? 'unknown') : 'unknown',
    languages: has('Languages') ? b['Languages']!.trim().split(/\s+/) : [],
    defaultLanguage: b['Default Language'],
    version: has('Major Version')
      ? [b['Major Version'], b['Minor Version'], b['Build'], b['Service Pack Build']].join('.')
      : undefined,
    totalBytes: Number(b['Total Bytes']),
    fileCount: Number(b['File Count']),
    directoryCount: Number(b['Directory Count']),
    created: wimlibTime(b['Creation Time']!),
    modified: wimlibTime(b['Last Modification Time']!),
  });
}

const toSecond = (iso: string | undefined) => (iso ? `${iso.slice(0, 19)}Z` : iso);

/** Every field the reader reports, against wiminfo; returns the reader's result. */
async function compareWithWiminfo(t: ExecutionContext, file: string): Promise<WimInfo> {
  const ours = await readWimInfo(file);
  const info = parseWiminfo(wim('wiminfo', file));
  const header = parseHeader(wim('wiminfo', file, '--header'));
  const blobs = wim('wiminfo', file, '--blobs');
  // Which images record WINDOWS/ARCH, from the raw document (UTF-16LE on stdout).
  const xml = execFileSync('wiminfo', [file, '--xml'], { maxBuffer: 64 << 20 }).toString('utf16le');
  const hasArch = [...xml.matchAll(/<IMAGE INDEX="(\d+)">(.*?)<\/IMAGE>/gs)].map((m) => m[2]!.includes('<ARCH>'));
  const [part, parts] = info.wim['Part Number']!.split('/').map(Number);

  t.is(ours.file, file);
  t.is(ours.size, fs.statSync(file).size);
  t.is(ours.guid, info.wim['GUID']!.replace(/^0x/, ''));
  t.is(ours.guid, header['GUID']);
  t.is(ours.partNumber, part);
  t.is(ours.totalParts, parts);
  t.is(ours.partNumber, Number(header['Part Number']));
  t.is(ours.totalParts, Number(header['Total Parts']));
  t.is(ours.compression, info.wim['Compression']!.toLowerCase() as WimInfo['compression']);
  t.is(ours.chunkSize, Number.parseInt(info.wim['Chunk Size']!, 10));
  t.is(ours.chunkSize, Number(header['Chunk Size']));
  t.is(ours.solid, blobs.includes('WIM_RESHDR_FLAG_SOLID'));
  t.is(ours.bootIndex, Number(info.wim['Boot Index']));
  t.is(ours.imageCount, Number(info.wim['Image Count']));
  t.is(ours.totalBytes, Number.parseInt(info.wim['Size']!, 10));
  if (ours.totalParts === 1) {
    t.is(ours.totalBytes, Number(header['XML Data Offset']), 'TOTALBYTES is where the XML data starts');
  }
  t.is(hasArch.length, info.images.length);
  t.deepEqual(
    ours.images.map((i) => defined({ ...i, created: toSecond(i.created), modified: toSecond(i.modified) })),
    info.images.map((b, i) => expectedImage(b, hasArch[i]!)),
  );
  return ours;
}

for (const name of ['none.wim', 'xpress.wim', 'lzx.wim', 'lzms.wim', 'solid.esd', 'install.wim']) {
  test(`${name}: every field matches wiminfo`, async (t) => {
    const made = MADE[name]!;
    const ours = await compareWithWiminfo(t, at(name));
    // And what it was made with.
    t.is(ours.compression, made.compression);
    t.is(ours.chunkSize, made.chunkSize);
    t.is(ours.solid, made.solid);
    t.is(ours.imageCount, made.imageCount);
    t.is(ours.images.length, made.imageCount);
    t.is(ours.bootIndex, made.bootIndex ?? 0);
    t.deepEqual(
      ours.images.map((i) => i.architecture),
      made.architectures ?? new Array(made.imageCount).fill('unknown'),
    );
    t.is(ours.partNumber, 1);
    t.is(ours.totalParts, 1);
  });
}

test('install.wim: the Windows-like image carries every Windows property that was set', async (t) => {
  const img = (await readWimInfo(at('install.wim'))).images[1]!;
  t.like(img, {
    index: 2,
    name: 'Zweites Bild: ünïcödé & <tags>',
    description: 'Windows 10 Pro',
    displayName: 'Windows 10 Pro',
    displayDescription: 'Windows 10 Pro (display)',
    edition: 'Professional',
    installationType: 'Client',
    productName: 'Microsoft® Windows® Operating System',
    architecture: 'x64',
    defaultLanguage: 'en-US',
    version: '10.0.19041.1288',
  });
  t.deepEqual(img.languages, ['en-US', 'de-DE']);
});

test('a split WIM: every part matches wiminfo, same GUID, part n of N', async (t) => {
  t.true(splitParts.length >= 3, `wimsplit made ${splitParts.length} parts`);
  const guids = new Set<string>();
  for (const [i, part] of splitParts.entries()) {
    const ours = await compareWithWiminfo(t, part);
    t.is(ours.partNumber, i + 1);
    t.is(ours.totalParts, splitParts.length);
    t.is(ours.images[0]?.name, 'Split me');
    guids.add(ours.guid);
  }
  t.is(guids.size, 1);
});

// --- broken copies ---

/** A copy of `src` with bytes written over it at `offset` (past the end: appended). */
function brokenCopy(src: string, name: string, edit: (b: Buffer) => Buffer): string {
  const dest = at('broken', name);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, edit(fs.readFileSync(src)));
  return dest;
}
const xmlOf = (b: Buffer) => {
  const offset = Number(b.readBigUInt64LE(80));
  const size = b.readUIntLE(72, 6);
  return b
    .subarray(offset, offset + size)
    .toString('utf16le')
    .replace(/^\ufeff/, '');
};
/** Appends `xml` as the new XML data resource and points the header at it. */
const withXml = (b: Buffer, xml: Buffer) => {
  const out = Buffer.concat([b, xml]);
  out.fill(0, 72, 96);
  out.writeUIntLE(xml.length, 72, 6);
  out[79] = 0x02; // ResourceFlag.Metadata, as wimlib writes it
  out.writeBigUInt64LE(BigInt(b.length), 80);
  out.writeBigUInt64LE(BigInt(xml.length), 88);
  return out;
};
const utf16 = (s: string) => Buffer.from(`\ufeff${s}`, 'utf16le');

/** Descriptors of this process that point into the temp dir. */
const openInTmp = () =>
  fs
    .readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((target) => target.startsWith(tmp));

test.serial('broken files are refused with IMAGE_INVALID and a clear reason, and left closed', async (t) => {
  const src = at('xpress.wim');
  const size = fs.statSync(src).size;
  fs.mkdirSync(at('broken'), { recursive: true });
  fs.writeFileSync(at('broken', 'empty.wim'), '');
  const fifo = at('broken', 'fifo.wim');
  execFileSync('mkfifo', [fifo]);
  const cases: [file: string, message: RegExp, wimlibRefuses: boolean][] = [
    [brokenCopy(src, 'truncated.wim', (b) => b.subarray(0, size - 100)), /XML data .* lies outside the/, true],
    [brokenCopy(src, 'truncated-header.wim', (b) => b.subarray(0, 100)), /shorter than the 208-byte WIM header/, true],
    [at('broken', 'empty.wim'), /not a WIM file: the file is empty/, true],
    [
      brokenCopy(src, 'bad-magic.wim', (b) => Buffer.concat([Buffer.from('XXWIM\0\0\0'), b.subarray(8)])),
      /not a WIM file \(starts with "XXWIM/,
      true,
    ],
    [
      brokenCopy(src, 'utf8-xml.wim', (b) => withXml(b, Buffer.from(xmlOf(b), 'utf8'))),
      /XML data is not UTF-16LE/,
      true,
    ],
    [
      brokenCopy(src, 'malformed-xml.wim', (b) => withXml(b, utf16(xmlOf(b).replace('</NAME>', '</NAMX>')))),
      /malformed XML .*<\/NAMX> does not close <NAME>/,
      true,
    ],
    [
      brokenCopy(src, 'huge-xml.wim', (b) => {
        const c = Buffer.from(b);
        c.writeUIntLE(2 ** 40, 72, 6); // XML data size 1 TiB
        c.writeBigUInt64LE(2n ** 40n, 88); // and its original size
        return c;
      }),
      /XML data \(1099511627776 bytes at offset \d+\) lies outside the \d+-byte file/,
      true,
    ],
    [
      brokenCopy(src, 'image-count.wim', (b) => {
        const c = Buffer.from(b);
        c.writeUInt32LE(2, 44);
        return c;
      }),
      /header counts 2 images but the XML data describes 1/,
      true,
    ],
    [tmp, /not a regular file \(a directory\)/, true],
    [fifo, /not a regular file/, false],
    [at('broken', 'missing.wim'), /cannot read the file \(ENOENT: no such file or directory\)/, true],
  ];
  for (const [file, message, wimlibRefuses] of cases) {
    const e = await t.throwsAsync(readWimInfo(file), { instanceOf: BootboxError }, path.basename(file));
    t.is(e?.code, 'IMAGE_INVALID', path.basename(file));
    t.true(e?.message.startsWith(`${file}: `), `${e?.message} names the file`);
    t.regex(e?.message ?? '', message, path.basename(file));
    if (wimlibRefuses) {
      t.not(spawnSync('wiminfo', [file], { stdio: 'ignore' }).status, 0, `wimlib refuses ${path.basename(file)} too`);
    }
  }
  t.deepEqual(openInTmp(), [], 'no file left open');
});

test.serial('an XML size over the limit is refused before it is read', async (t) => {
  const file = at('install.wim');
  const xmlSize = Number(parseHeader(wim('wiminfo', file, '--header'))['XML Data Size']);
  await t.notThrowsAsync(readWimInfo(file, { maxXmlBytes: xmlSize }));
  const e = await t.throwsAsync(readWimInfo(file, { maxXmlBytes: xmlSize - 1 }), { instanceOf: BootboxError });
  t.regex(e?.message ?? '', new RegExp(`XML data of ${xmlSize} bytes is over the ${xmlSize - 1}-byte limit`));
  t.deepEqual(openInTmp(), [], 'no file left open');
});
