/**
 * WIM XML metadata: UTF-16LE documents (byte fixtures, then documents written as text
 * and encoded), the strict XML subset, per-image fields, negative fixtures named by
 * their failure, and random bytes.
 */
import test from 'ava';
import { DecodeError } from '../../firmware/core/errors.ts';
import { decodeUtf16Le, decodeWimXml, parseXml, type WimXmlInfo } from '../../firmware/images/wim/xml.ts';
import { rng } from '../helpers/rng.ts';

/** A document as WIM files store it: FF FE, then UTF-16LE. */
const utf16 = (doc: string) => Uint8Array.from([0xff, 0xfe, ...Buffer.from(doc, 'utf16le')]);
const reasonOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    if (e instanceof DecodeError) return e.reason;
    throw e;
  }
  return 'decoded';
};

test('byte fixture: the smallest WIM document, with its byte-order mark', (t) => {
  // biome-ignore format: annotated byte fixture
  const bytes = Uint8Array.from([
    0xff, 0xfe,             // BOM: UTF-16LE
    0x3c, 0x00,             // <
    0x57, 0x00, 0x49, 0x00, 0x4d, 0x00, // WIM
    0x2f, 0x00, 0x3e, 0x00, // />
  ]);
  t.deepEqual(decodeWimXml(bytes), { totalBytes: 0, images: [] });
});

test('byte fixture: one image, a non-ASCII name and a surrogate pair', (t) => {
  // biome-ignore format: annotated byte fixture
  const bytes = Uint8Array.from([
    0xff, 0xfe,                                                 // BOM
    0x3c, 0x00, 0x57, 0x00, 0x49, 0x00, 0x4d, 0x00, 0x3e, 0x00, // <WIM>
    0x3c, 0x00, 0x49, 0x00, 0x4d, 0x00, 0x41, 0x00, 0x47, 0x00, 0x45, 0x00, // <IMAGE
    0x20, 0x00, 0x49, 0x00, 0x4e, 0x00, 0x44, 0x00, 0x45, 0x00, 0x58, 0x00, //  INDEX
    0x3d, 0x00, 0x22, 0x00, 0x31, 0x00, 0x22, 0x00, 0x3e, 0x00, // ="1">
    0x3c, 0x00, 0x4e, 0x00, 0x41, 0x00, 0x4d, 0x00, 0x45, 0x00, 0x3e, 0x00, // <NAME>
    0xe9, 0x00,                                                 // é (U+00E9)
    0x3d, 0xd8, 0x00, 0xde,                                     // 😀 (U+1F600: D83D DE00)
    0x3c, 0x00, 0x2f, 0x00, 0x4e, 0x00, 0x41, 0x00, 0x4d, 0x00, 0x45, 0x00, 0x3e, 0x00, // </NAME>
    0x3c, 0x00, 0x2f, 0x00, 0x49, 0x00, 0x4d, 0x00, 0x41, 0x00, 0x47, 0x00, 0x45, 0x00, 0x3e, 0x00, // </IMAGE>
    0x3c, 0x00, 0x2f, 0x00, 0x57, 0x00, 0x49, 0x00, 0x4d, 0x00, 0x3e, 0x00, // </WIM>
  ]);
  const info = decodeWimXml(bytes);
  t.is(info.images.length, 1);
  t.is(info.images[0]?.name, '\u00e9\u{1F600}');
});

/** An install.wim-like document: a Windows image, and a data image listed first. */
const WINDOWS_DOC =
  '<WIM><TOTALBYTES>4404019200</TOTALBYTES>' +
  '<IMAGE INDEX="2"><DIRCOUNT>12</DIRCOUNT><FILECOUNT>34</FILECOUNT><TOTALBYTES>56789</TOTALBYTES>' +
  '<NAME>Data</NAME></IMAGE>' +
  '<IMAGE INDEX="1"><DIRCOUNT>19876</DIRCOUNT><FILECOUNT>91234</FILECOUNT><TOTALBYTES>15678901234</TOTALBYTES>' +
  '<HARDLINKBYTES>0</HARDLINKBYTES>' +
  '<CREATIONTIME><HIGHPART>0x01BF53EB</HIGHPART><LOWPART>0x256D4000</LOWPART></CREATIONTIME>' +
  '<LASTMODIFICATIONTIME><HIGHPART>0x01DD7A4C</HIGHPART><LOWPART>0xC6B09EE4</LOWPART></LASTMODIFICATIONTIME>' +
  '<WINDOWS><ARCH>9</ARCH><PRODUCTNAME>Microsoft&#xAE; Windows&#174; Operating System</PRODUCTNAME>' +
  '<EDITIONID>Professional</EDITIONID><INSTALLATIONTYPE>Client</INSTALLATIONTYPE>' +
  '<PRODUCTTYPE>WinNT</PRODUCTTYPE><LANGUAGES><LANGUAGE>en-US</LANGUAGE><LANGUAGE>de-DE</LANGUAGE>' +
  '<DEFAULT>en-US</DEFAULT></LANGUAGES><VERSION><MAJOR>10</MAJOR><MINOR>0</MINOR><BUILD>19041</BUILD>' +
  '<SPBUILD>1288</SPBUILD><SPLEVEL>0</SPLEVEL></VERSION><SYSTEMROOT>WINDOWS</SYSTEMROOT></WINDOWS>' +
  '<NAME>Windows 10 Pro</NAME><DESCRIPTION>Windows 10 Pro</DESCRIPTION><FLAGS>Professional</FLAGS>' +
  '<DISPLAYNAME>Windows 10 Pro &amp; more</DISPLAYNAME><DISPLAYDESCRIPTION>&lt;Pro&gt;</DISPLAYDESCRIPTION>' +
  '</IMAGE></WIM>';

test('an install.wim-like document: every field, images sorted by index', (t) => {
  const expected: WimXmlInfo = {
    totalBytes: 4404019200,
    images: [
      {
        index: 1,
        name: 'Windows 10 Pro',
        description: 'Windows 10 Pro',
        displayName: 'Windows 10 Pro & more',
        displayDescription: '<Pro>',
        flags: 'Professional',
        edition: 'Professional',
        installationType: 'Client',
        productName: 'Microsoft® Windows® Operating System',
        architecture: 'x64',
        languages: ['en-US', 'de-DE'],
        defaultLanguage: 'en-US',
        version: '10.0.19041.1288',
        totalBytes: 15678901234,
        fileCount: 91234,
        directoryCount: 19876,
        created: '2000-01-01T00:00:00.000Z', // FILETIME 125911584000000000
        modified: '2026-11-22T06:43:26.054Z', // FILETIME 0x01DD7A4CC6B09EE4, floored to the millisecond
      },
      {
        index: 2,
        name: 'Data',
        architecture: 'unknown',
        languages: [],
        totalBytes: 56789,
        fileCount: 34,
        directoryCount: 12,
      },
    ],
  };
  t.deepEqual(decodeWimXml(utf16(WINDOWS_DOC), { imageCount: 2 }), expected);
});

test('WINDOWS/ARCH: the processor architecture values', (t) => {
  const arch = (v: string) =>
    decodeWimXml(utf16(`<WIM><IMAGE INDEX="1"><WINDOWS><ARCH>${v}</ARCH></WINDOWS></IMAGE></WIM>`)).images[0]
      ?.architecture;
  t.is(arch('0'), 'x86');
  t.is(arch('5'), 'arm');
  t.is(arch('6'), 'ia64');
  t.is(arch('9'), 'x64');
  t.is(arch('12'), 'arm64');
  t.is(arch(' 12 '), 'arm64', 'white space around a number');
  t.is(arch('7'), 'unknown');
  t.is(arch(''), 'unknown');
  t.is(decodeWimXml(utf16('<WIM><IMAGE INDEX="1"><WINDOWS/></IMAGE></WIM>')).images[0]?.architecture, 'unknown');
});

test('a partial VERSION fills the missing parts with 0; no VERSION, no version', (t) => {
  const v = (inner: string) =>
    decodeWimXml(utf16(`<WIM><IMAGE INDEX="1"><WINDOWS>${inner}</WINDOWS></IMAGE></WIM>`)).images[0]?.version;
  t.is(v('<VERSION><MAJOR>6</MAJOR><MINOR>3</MINOR><BUILD>9600</BUILD></VERSION>'), '6.3.9600.0');
  t.is(v('<VERSION/>'), '0.0.0.0');
  t.is(v('<ARCH>9</ARCH>'), undefined);
});

test('FILETIME: hex parts with or without 0x, a missing part is 0, before 1970 floors', (t) => {
  const time = (inner: string) =>
    decodeWimXml(utf16(`<WIM><IMAGE INDEX="1"><CREATIONTIME>${inner}</CREATIONTIME></IMAGE></WIM>`)).images[0]?.created;
  t.is(time('<HIGHPART>01bf53eb</HIGHPART><LOWPART>256d4000</LOWPART>'), '2000-01-01T00:00:00.000Z');
  t.is(time(''), '1601-01-01T00:00:00.000Z');
  // One tick before 1970-01-01: 116444735999999999 = 0x019DB1DE_D53E7FFF.
  t.is(time('<HIGHPART>0x019DB1DE</HIGHPART><LOWPART>0xD53E7FFF</LOWPART>'), '1969-12-31T23:59:59.999Z');
  t.is(time('<HIGHPART>0xFFFFFFFF</HIGHPART><LOWPART>0xFFFFFFFF</LOWPART>'), '+060056-05-28T05:36:10.955Z');
});

test('the XML subset: declaration, comments, PIs, CDATA, entities, attributes in either quotes', (t) => {
  const doc =
    '<?xml version="1.0" encoding="UTF-16"?>\r\n<!-- made by hand -->\n' +
    '<WIM>\n  <IMAGE INDEX=\'1\' OTHER="a&#9;b\tc">\n    <?pi data?><NAME><![CDATA[A <raw> & name]]></NAME>\n' +
    '    <DESCRIPTION>x &quot;y&quot; &apos;z&apos; &#x1F600;</DESCRIPTION><!-- c -->\n  </IMAGE>\n</WIM>\n<!-- end -->\n';
  const img = decodeWimXml(utf16(doc)).images[0]!;
  t.is(img.name, 'A <raw> & name');
  t.is(img.description, 'x "y" \'z\' \u{1F600}');
  const root = parseXml(doc);
  t.is(root.children[0]?.attributes.get('OTHER'), 'a\tb c', 'tab by reference kept, literal tab normalised');
});

test('UTF-16LE without a byte-order mark is accepted when it starts with "<"', (t) => {
  t.is(decodeWimXml(Buffer.from('<WIM><IMAGE INDEX="1"/></WIM>', 'utf16le')).images.length, 1);
  t.is(decodeUtf16Le(utf16('<a/>')), '<a/>');
});

test('names without NAME and empty strings are kept as given', (t) => {
  const img = decodeWimXml(utf16('<WIM><IMAGE INDEX="1"><DESCRIPTION></DESCRIPTION></IMAGE></WIM>')).images[0]!;
  t.is(img.name, '');
  t.is(img.description, '');
  t.is(img.totalBytes, 0);
});

// Negative fixtures, named by their failure.
const image = (inner: string, index = '1') => `<WIM><IMAGE INDEX="${index}">${inner}</IMAGE></WIM>`;
const NEGATIVE: [failure: string, reason: string, bytes: Uint8Array][] = [
  ['UTF-8 (no BOM)', 'xml-not-utf16', Buffer.from('<WIM></WIM>', 'utf8')],
  ['UTF-8 with its BOM', 'xml-not-utf16', Buffer.from('\ufeff<WIM></WIM>', 'utf8')],
  ['UTF-16BE', 'xml-not-utf16', Uint8Array.from([0xfe, 0xff, ...Buffer.from('<WIM/>', 'utf16le').swap16()])],
  ['empty', 'xml-not-utf16', new Uint8Array(0)],
  ['odd length', 'xml-not-utf16', Uint8Array.from([...utf16('<WIM/>'), 0x20])],
  [
    'unpaired surrogate',
    'xml-not-utf16',
    Uint8Array.from([...utf16('<WIM>'), 0x00, 0xd8, ...utf16('</WIM>').slice(2)]),
  ],
  ['BOM only', 'xml-malformed', utf16('')],
  ['only white space', 'xml-malformed', utf16('  \r\n')],
  ['text before the root', 'xml-malformed', utf16('hello<WIM/>')],
  ['unclosed root', 'xml-malformed', utf16('<WIM><IMAGE INDEX="1"></IMAGE>')],
  ['mismatched end tag', 'xml-malformed', utf16('<WIM><IMAGE INDEX="1"></NAME></WIM>')],
  ['end tag with no start', 'xml-malformed', utf16('</WIM>')],
  ['two roots', 'xml-malformed', utf16('<WIM/><WIM/>')],
  ['text after the root', 'xml-malformed', utf16('<WIM/>trailing')],
  ['NUL after the root', 'xml-malformed', utf16('<WIM/>\0')],
  ['control character in text', 'xml-malformed', utf16(image('<NAME>a\u0001b</NAME>'))],
  ['unknown entity', 'xml-malformed', utf16(image('<NAME>&nbsp;</NAME>'))],
  ['bare ampersand', 'xml-malformed', utf16(image('<NAME>R&D</NAME>'))],
  ['entity without semicolon', 'xml-malformed', utf16(image('<NAME>&amp</NAME>'))],
  ['character reference to NUL', 'xml-malformed', utf16(image('<NAME>&#0;</NAME>'))],
  ['character reference past U+10FFFF', 'xml-malformed', utf16(image('<NAME>&#x110000;</NAME>'))],
  ['"]]>" in text', 'xml-malformed', utf16(image('<NAME>a]]>b</NAME>'))],
  ['unquoted attribute', 'xml-malformed', utf16('<WIM><IMAGE INDEX=1></IMAGE></WIM>')],
  ['attribute without value', 'xml-malformed', utf16('<WIM><IMAGE INDEX></IMAGE></WIM>')],
  ['repeated attribute', 'xml-malformed', utf16('<WIM><IMAGE INDEX="1" INDEX="1"></IMAGE></WIM>')],
  ['"<" in an attribute', 'xml-malformed', utf16('<WIM><IMAGE INDEX="<1"></IMAGE></WIM>')],
  ['attributes without space', 'xml-malformed', utf16('<WIM><IMAGE INDEX="1"A="2"></IMAGE></WIM>')],
  ['a DOCTYPE', 'xml-malformed', utf16('<!DOCTYPE WIM [<!ENTITY x "y">]><WIM/>')],
  ['a declaration not at the start', 'xml-malformed', utf16(' <?xml version="1.0"?><WIM/>')],
  ['unterminated comment', 'xml-malformed', utf16('<WIM><!-- x </WIM>')],
  ['"--" in a comment', 'xml-malformed', utf16('<WIM><!-- a -- b --></WIM>')],
  ['unterminated CDATA', 'xml-malformed', utf16('<WIM><![CDATA[x</WIM>')],
  ['a name starting with a digit', 'xml-malformed', utf16('<WIM><1IMAGE/></WIM>')],
  ['nested 65 deep', 'xml-too-deep', utf16(`${'<A>'.repeat(65)}${'</A>'.repeat(65)}`)],
  ['root is not WIM', 'xml-bad-root', utf16('<IMAGE INDEX="1"/>')],
  ['encrypted ESD', 'wim-encrypted', utf16('<WIM><ESD><ENCRYPTED>1</ENCRYPTED></ESD></WIM>')],
  ['IMAGE without INDEX', 'xml-bad-index', utf16('<WIM><IMAGE/></WIM>')],
  ['INDEX 0', 'xml-bad-index', utf16(image('', '0'))],
  ['INDEX not a number', 'xml-bad-index', utf16(image('', 'one'))],
  ['INDEX negative', 'xml-bad-index', utf16(image('', '-1'))],
  ['two images with INDEX 1', 'xml-bad-index', utf16('<WIM><IMAGE INDEX="1"/><IMAGE INDEX="1"/></WIM>')],
  ['INDEX 1 and 3', 'xml-bad-index', utf16('<WIM><IMAGE INDEX="1"/><IMAGE INDEX="3"/></WIM>')],
  ['TOTALBYTES "12a"', 'xml-bad-number', utf16(image('<TOTALBYTES>12a</TOTALBYTES>'))],
  ['FILECOUNT negative', 'xml-bad-number', utf16(image('<FILECOUNT>-1</FILECOUNT>'))],
  ['DIRCOUNT past 2^53', 'xml-bad-number', utf16(image('<DIRCOUNT>99999999999999999999</DIRCOUNT>'))],
  ['top-level TOTALBYTES "x"', 'xml-bad-number', utf16('<WIM><TOTALBYTES>x</TOTALBYTES></WIM>')],
  ['ARCH "x64"', 'xml-bad-number', utf16(image('<WINDOWS><ARCH>x64</ARCH></WINDOWS>'))],
  [
    'VERSION/BUILD "19041a"',
    'xml-bad-number',
    utf16(image('<WINDOWS><VERSION><BUILD>19041a</BUILD></VERSION></WINDOWS>')),
  ],
  ['HIGHPART "0xzz"', 'xml-bad-number', utf16(image('<CREATIONTIME><HIGHPART>0xzz</HIGHPART></CREATIONTIME>'))],
  [
    'LOWPART of 9 digits',
    'xml-bad-number',
    utf16(image('<CREATIONTIME><LOWPART>0x100000000</LOWPART></CREATIONTIME>')),
  ],
];
for (const [failure, reason, bytes] of NEGATIVE) {
  test(`refused with ${reason}: ${failure}`, (t) => {
    const e = t.throws(() => decodeWimXml(bytes), { instanceOf: DecodeError });
    t.is(e?.reason, reason);
    t.true((e?.message.length ?? 0) > 10, 'a message an admin can read');
  });
}

test('the header image count must match the IMAGE elements', (t) => {
  const two = utf16('<WIM><IMAGE INDEX="2"/><IMAGE INDEX="1"/></WIM>');
  t.is(decodeWimXml(two, { imageCount: 2 }).images.length, 2);
  t.is(
    reasonOf(() => decodeWimXml(two, { imageCount: 3 })),
    'image-count-mismatch',
  );
  t.is(
    reasonOf(() => decodeWimXml(utf16('<WIM/>'), { imageCount: 1 })),
    'image-count-mismatch',
  );
});

test('error messages name the image and the field', (t) => {
  const e = t.throws(() => decodeWimXml(utf16(image('<FILECOUNT>lots</FILECOUNT>', '1'))), {
    instanceOf: DecodeError,
  });
  t.regex(e?.message ?? '', /IMAGE 1 FILECOUNT "lots"/);
});

const SEED = Number(process.env['WIM_FUZZ_SEED'] ?? 0x5158) >>> 0;

test(`random and mutated documents throw only DecodeError (seed ${SEED})`, (t) => {
  const rand = rng(SEED);
  const int = (n: number) => Math.floor(rand() * n);
  const tokens = [
    '<',
    '>',
    '</',
    '/>',
    '<WIM>',
    '</WIM>',
    '<IMAGE INDEX="1">',
    '<IMAGE INDEX="2">',
    '</IMAGE>',
    '<NAME>',
    '</NAME>',
    '<WINDOWS><ARCH>',
    '</ARCH></WINDOWS>',
    '&amp;',
    '&#x41;',
    '&',
    ';',
    '"',
    "'",
    '=',
    ' ',
    '9',
    '0x1',
    '<!--',
    '-->',
    '<![CDATA[',
    ']]>',
    '<?',
    '?>',
    '\u00e9',
    '\ud83d',
    '\u0000',
  ];
  const base = utf16(WINDOWS_DOC);
  const reasons = new Map<string, number>();
  let decoded = 0;
  for (let i = 0; i < 20_000; i++) {
    let bytes: Uint8Array;
    switch (i % 3) {
      case 0: {
        bytes = new Uint8Array(int(300));
        for (let j = 0; j < bytes.length; j++) bytes[j] = int(256);
        if (i % 2 === 0 && bytes.length >= 2) bytes.set([0xff, 0xfe]);
        break;
      }
      case 1: {
        let doc = '';
        for (let k = 0, n = 1 + int(40); k < n; k++) doc += tokens[int(tokens.length)];
        bytes = utf16(i % 6 === 1 ? `<WIM>${doc}</WIM>` : doc);
        break;
      }
      default: {
        bytes = Uint8Array.from(base);
        for (let k = 0, n = 1 + int(3); k < n; k++) bytes[2 + int(bytes.length - 2)] = int(256);
      }
    }
    try {
      decodeWimXml(bytes, { imageCount: i % 5 === 0 ? 2 : undefined });
      decoded++;
    } catch (e) {
      if (!(e instanceof DecodeError)) {
        t.fail(`iteration ${i}: ${String(e)} for ${Buffer.from(bytes).toString('hex')}`);
        return;
      }
      reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
    }
  }
  t.true(decoded > 50, `decoded ${decoded} documents`);
  for (const r of ['xml-not-utf16', 'xml-malformed']) t.true(reasons.has(r), `garbage reached ${r}`);
});
