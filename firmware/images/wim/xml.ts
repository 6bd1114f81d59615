/**
 * The XML metadata of a WIM: a UTF-16LE document with one IMAGE element per image
 * ([WIMFMT] "Windows Imaging File Format (WIM)" §2.6 "XML Data"). Pure: bytes in, the
 * per-image facts the catalog needs out. Decoding garbage only ever throws `DecodeError`.
 *
 * The document looks like this (elements are upper case; WINDOWS is present in images
 * captured from Windows):
 *
 *   <WIM>
 *     <TOTALBYTES>…</TOTALBYTES>             the WIM's size up to its XML data (whole WIM if split)
 *     <IMAGE INDEX="1">
 *       <NAME/> <DESCRIPTION/> <DISPLAYNAME/> <DISPLAYDESCRIPTION/> <FLAGS/>
 *       <DIRCOUNT/> <FILECOUNT/> <TOTALBYTES/>
 *       <CREATIONTIME><HIGHPART>0x01D…</HIGHPART><LOWPART>0x…</LOWPART></CREATIONTIME>
 *       <LASTMODIFICATIONTIME>…</LASTMODIFICATIONTIME>
 *       <WINDOWS>
 *         <ARCH>9</ARCH> <EDITIONID/> <INSTALLATIONTYPE/> <PRODUCTNAME/>
 *         <LANGUAGES><LANGUAGE>en-US</LANGUAGE>…<DEFAULT>en-US</DEFAULT></LANGUAGES>
 *         <VERSION><MAJOR/><MINOR/><BUILD/><SPBUILD/></VERSION>
 *       </WINDOWS>
 *     </IMAGE>
 *   </WIM>
 *
 * The parser is a small strict XML 1.0 subset of our own: elements, attributes, text,
 * CDATA, comments, processing instructions and the predefined and numeric entities. A
 * DOCTYPE (and with it any entity definition) is refused.
 */
import { DecodeError } from '../../core/errors.ts';

export type WimArchitecture = 'x86' | 'arm' | 'ia64' | 'x64' | 'arm64' | 'unknown';

/** WINDOWS/ARCH: the PROCESSOR_ARCHITECTURE_* values of the Windows SDK (winnt.h). */
export const WimArch: Record<number, WimArchitecture> = {
  0: 'x86', // PROCESSOR_ARCHITECTURE_INTEL
  5: 'arm', // PROCESSOR_ARCHITECTURE_ARM
  6: 'ia64', // PROCESSOR_ARCHITECTURE_IA64
  9: 'x64', // PROCESSOR_ARCHITECTURE_AMD64
  12: 'arm64', // PROCESSOR_ARCHITECTURE_ARM64
};

export interface WimImageInfo {
  /** 1-based image index (INDEX attribute). */
  index: number;
  /** NAME; '' when the image has none. */
  name: string;
  description?: string;
  displayName?: string;
  displayDescription?: string;
  /** FLAGS: the edition a Windows image was captured as ("Professional" …). */
  flags?: string;
  /** WINDOWS/EDITIONID */
  edition?: string;
  /** WINDOWS/INSTALLATIONTYPE: Client, Server, Server Core, WindowsPE … */
  installationType?: string;
  /** WINDOWS/PRODUCTNAME */
  productName?: string;
  /** WINDOWS/ARCH; 'unknown' when absent or not one of the known values. */
  architecture: WimArchitecture;
  /** WINDOWS/LANGUAGES/LANGUAGE, in document order. */
  languages: string[];
  /** WINDOWS/LANGUAGES/DEFAULT */
  defaultLanguage?: string;
  /** WINDOWS/VERSION as MAJOR.MINOR.BUILD.SPBUILD (missing parts are 0). */
  version?: string;
  /** TOTALBYTES: the size of the image's files. */
  totalBytes: number;
  /** FILECOUNT */
  fileCount: number;
  /** DIRCOUNT */
  directoryCount: number;
  /** CREATIONTIME as an ISO 8601 UTC string. */
  created?: string;
  /** LASTMODIFICATIONTIME as an ISO 8601 UTC string. */
  modified?: string;
}

export interface WimXmlInfo {
  /** Top-level TOTALBYTES: the WIM's size up to its XML data, of the unsplit WIM for a split one (0 when absent). */
  totalBytes: number;
  /** Sorted by index, which runs 1..N without gaps. */
  images: WimImageInfo[];
}

export interface WimXmlOptions {
  /** Refuse a document nested deeper than this (default 64). */
  maxDepth?: number;
  /** The header's image count: refuse a document with a different number of images. */
  imageCount?: number;
}

/** A parsed element: its attributes, its child elements, and its own text joined. */
export interface XmlElement {
  name: string;
  attributes: Map<string, string>;
  children: XmlElement[];
  text: string;
}

const UTF16LE_BOM = [0xff, 0xfe];

/**
 * UTF-16LE with a byte-order mark, as WIM files store it [WIMFMT §2.6]. A document
 * without the mark is accepted only if it visibly starts as UTF-16LE ("<" then 0x00).
 */
export function decodeUtf16Le(bytes: Uint8Array): string {
  let body = bytes;
  if (bytes[0] === UTF16LE_BOM[0] && bytes[1] === UTF16LE_BOM[1]) body = bytes.subarray(2);
  else if (!(bytes[0] === 0x3c && bytes[1] === 0x00)) {
    const start = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new DecodeError(
      'xml-not-utf16',
      `the XML data is not UTF-16LE (no FF FE byte-order mark; it starts with ${start || 'nothing'})`,
    );
  }
  if (body.length % 2 !== 0) {
    throw new DecodeError('xml-not-utf16', `the XML data is not UTF-16LE (odd length of ${bytes.length} bytes)`);
  }
  try {
    return new TextDecoder('utf-16le', { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    throw new DecodeError('xml-not-utf16', 'the XML data is not valid UTF-16LE (unpaired surrogate)');
  }
}

const malformed = (at: number, what: string) =>
  new DecodeError('xml-malformed', `malformed XML (character ${at}): ${what}`);

const NAME = /[A-Za-z_:\u00C0-\uFFFD][-A-Za-z0-9._:\u00B7\u00C0-\uFFFD]*/y;
const SPACE = /[ \t\r\n]*/y;
/** XML 1.0 §2.2 Char: no C0 controls but tab, LF and CR; no U+FFFE, U+FFFF. */
const BAD_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Replaces entity and character references (XML 1.0 §4.1, §4.6); `at` is for errors. */
function expandReferences(s: string, at: number): string {
  if (!s.includes('&')) return s;
  return s.replace(/&([^;]*);?/g, (ref, body: string) => {
    if (!ref.endsWith(';')) throw malformed(at, `"&" not starting a reference`);
    if (Object.hasOwn(PREDEFINED, body)) return PREDEFINED[body]!;
    const m = /^#(?:([0-9]{1,7})|x([0-9A-Fa-f]{1,6}))$/.exec(body);
    if (!m) throw malformed(at, `unknown entity "${ref}"`);
    const cp = m[1] !== undefined ? Number.parseInt(m[1], 10) : Number.parseInt(m[2]!, 16);
    const legal =
      cp === 0x9 ||
      cp === 0xa ||
      cp === 0xd ||
      (cp >= 0x20 && cp <= 0xd7ff) ||
      (cp >= 0xe000 && cp <= 0xfffd) ||
      (cp >= 0x10000 && cp <= 0x10ffff);
    if (!legal) throw malformed(at, `character reference "${ref}" names no XML character`);
    return String.fromCodePoint(cp);
  });
}

/** A strict parser for the XML subset above; returns the root element. */
export function parseXml(src: string, maxDepth = 64): XmlElement {
  const bad = BAD_CHAR.exec(src);
  if (bad) throw malformed(bad.index, `character U+${bad[0].charCodeAt(0).toString(16).padStart(4, '0')}`);
  let pos = 0;
  const skipSpace = () => {
    SPACE.lastIndex = pos;
    SPACE.exec(src);
    pos = SPACE.lastIndex;
  };
  const name = (): string => {
    NAME.lastIndex = pos;
    const m = NAME.exec(src);
    if (!m) throw malformed(pos, 'expected a name');
    pos = NAME.lastIndex;
    return m[0];
  };
  const until = (end: string, what: string): string => {
    const i = src.indexOf(end, pos);
    if (i < 0) throw malformed(pos, `unterminated ${what}`);
    const body = src.slice(pos, i);
    pos = i + end.length;
    return body;
  };
  /** Comments and processing instructions, allowed anywhere between elements. */
  const misc = (): boolean => {
    if (src.startsWith('<!--', pos)) {
      pos += 4;
      if (until('-->', 'comment').includes('--')) throw malformed(pos, '"--" inside a comment');
      return true;
    }
    if (src.startsWith('<?', pos)) {
      const start = pos;
      pos += 2;
      const target = name();
      if (target.toLowerCase() === 'xml' && start !== 0) throw malformed(start, 'XML declaration not at the start');
      until('?>', 'processing instruction');
      return true;
    }
    return false;
  };

  // Prolog: declaration, comments, PIs; no DOCTYPE (it could define entities).
  for (;;) {
    skipSpace();
    if (src.startsWith('<!DOCTYPE', pos)) throw malformed(pos, 'a DOCTYPE is not allowed');
    if (!misc()) break;
  }
  if (src[pos] !== '<') throw malformed(pos, src.length === pos ? 'no root element' : 'text before the root element');

  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  while (!root) {
    if (pos >= src.length) throw malformed(pos, `unclosed element <${stack.at(-1)?.name ?? ''}>`);
    const top = stack.at(-1);
    if (src[pos] !== '<') {
      if (!top) throw malformed(pos, 'text outside the root element');
      const end = src.indexOf('<', pos);
      const raw = src.slice(pos, end < 0 ? src.length : end);
      if (raw.includes(']]>')) throw malformed(pos, '"]]>" in text');
      top.text += expandReferences(raw, pos);
      pos += raw.length;
      continue;
    }
    if (src.startsWith('</', pos)) {
      pos += 2;
      const at = pos;
      const n = name();
      skipSpace();
      if (src[pos] !== '>') throw malformed(pos, `expected ">" to close </${n}>`);
      pos++;
      if (!top || top.name !== n) throw malformed(at, `</${n}> does not close <${top?.name ?? ''}>`);
      stack.pop();
      if (stack.length === 0) root = top;
      continue;
    }
    if (!top && (src.startsWith('<!', pos) || src.startsWith('<?', pos)))
      throw malformed(pos, 'expected the root element');
    if (top && src.startsWith('<![CDATA[', pos)) {
      pos += 9;
      top.text += until(']]>', 'CDATA section');
      continue;
    }
    if (top && misc()) continue;
    if (src.startsWith('<!', pos) || src.startsWith('<?', pos)) throw malformed(pos, 'unexpected markup');
    // A start tag.
    pos++;
    const el: XmlElement = { name: name(), attributes: new Map(), children: [], text: '' };
    for (;;) {
      const before = pos;
      skipSpace();
      if (src.startsWith('/>', pos) || src[pos] === '>') break;
      if (pos === before) throw malformed(pos, `expected a space or ">" in <${el.name}>`);
      const at = pos;
      const attr = name();
      skipSpace();
      if (src[pos] !== '=') throw malformed(pos, `attribute ${attr} of <${el.name}> has no value`);
      pos++;
      skipSpace();
      const quote = src[pos];
      if (quote !== '"' && quote !== "'") throw malformed(pos, `attribute ${attr} of <${el.name}> is not quoted`);
      pos++;
      const raw = until(quote, `attribute ${attr}`);
      if (raw.includes('<')) throw malformed(at, `"<" in attribute ${attr}`);
      if (el.attributes.has(attr)) throw malformed(at, `attribute ${attr} repeated in <${el.name}>`);
      // XML 1.0 §3.3.3: white space in attribute values becomes a space.
      el.attributes.set(attr, expandReferences(raw.replace(/[\t\r\n]/g, ' '), at));
    }
    if (top) top.children.push(el);
    if (src.startsWith('/>', pos)) {
      pos += 2;
      if (!top) root = el;
      continue;
    }
    pos++;
    if (stack.length >= maxDepth) throw new DecodeError('xml-too-deep', `XML nested deeper than ${maxDepth} elements`);
    stack.push(el);
  }
  for (;;) {
    skipSpace();
    if (pos >= src.length) return root;
    if (!misc()) throw malformed(pos, 'content after the root element');
  }
}

const child = (el: XmlElement | undefined, name: string) => el?.children.find((c) => c.name === name);
const at = (el: XmlElement | undefined, path: string) => path.split('/').reduce(child, el);
const textAt = (el: XmlElement, path: string) => at(el, path)?.text;

function decimal(el: XmlElement, path: string, where: string): number | undefined {
  const raw = textAt(el, path)?.trim();
  if (raw === undefined || raw === '') return undefined;
  if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new DecodeError('xml-bad-number', `${where} ${path} "${raw.slice(0, 40)}" is not a whole number`);
  }
  return Number(raw);
}

function hex32(el: XmlElement, path: string, where: string): bigint {
  const raw = textAt(el, path)?.trim();
  if (raw === undefined || raw === '') return 0n;
  if (!/^(0[xX])?[0-9A-Fa-f]{1,8}$/.test(raw)) {
    throw new DecodeError('xml-bad-number', `${where} ${path} "${raw.slice(0, 40)}" is not a 32-bit hex number`);
  }
  return BigInt(raw.startsWith('0x') || raw.startsWith('0X') ? raw : `0x${raw}`);
}

/** FILETIME ticks (100 ns) from 1601-01-01 to 1970-01-01. */
const FILETIME_UNIX_EPOCH = 116444736000000000n;

/** A HIGHPART/LOWPART FILETIME element as ISO 8601 (millisecond precision). */
function filetime(el: XmlElement, path: string, where: string): string | undefined {
  const t = at(el, path);
  if (!t) return undefined;
  const ticks = (hex32(t, 'HIGHPART', `${where} ${path}`) << 32n) | hex32(t, 'LOWPART', `${where} ${path}`);
  const sinceUnix = ticks - FILETIME_UNIX_EPOCH;
  // Floor to whole milliseconds (BigInt division truncates toward zero).
  const ms = sinceUnix / 10000n - (sinceUnix < 0n && sinceUnix % 10000n !== 0n ? 1n : 0n);
  // Within Date's range for every 64-bit FILETIME (about year 60056 at most).
  return new Date(Number(ms)).toISOString();
}

function imageIndex(img: XmlElement): number {
  const raw = img.attributes.get('INDEX');
  if (raw === undefined) throw new DecodeError('xml-bad-index', 'an IMAGE element has no INDEX attribute');
  if (!/^[0-9]{1,5}$/.test(raw) || Number(raw) < 1) {
    throw new DecodeError('xml-bad-index', `IMAGE INDEX "${raw.slice(0, 20)}" is not an image number`);
  }
  return Number(raw);
}

function imageInfo(img: XmlElement, index: number): WimImageInfo {
  const where = `IMAGE ${index}`;
  const info: WimImageInfo = {
    index,
    name: textAt(img, 'NAME') ?? '',
    architecture: 'unknown',
    languages: [],
    totalBytes: decimal(img, 'TOTALBYTES', where) ?? 0,
    fileCount: decimal(img, 'FILECOUNT', where) ?? 0,
    directoryCount: decimal(img, 'DIRCOUNT', where) ?? 0,
  };
  const set = <K extends keyof WimImageInfo>(key: K, value: WimImageInfo[K] | undefined) => {
    if (value !== undefined) info[key] = value;
  };
  set('description', textAt(img, 'DESCRIPTION'));
  set('displayName', textAt(img, 'DISPLAYNAME'));
  set('displayDescription', textAt(img, 'DISPLAYDESCRIPTION'));
  set('flags', textAt(img, 'FLAGS'));
  set('edition', textAt(img, 'WINDOWS/EDITIONID'));
  set('installationType', textAt(img, 'WINDOWS/INSTALLATIONTYPE'));
  set('productName', textAt(img, 'WINDOWS/PRODUCTNAME'));
  set('defaultLanguage', textAt(img, 'WINDOWS/LANGUAGES/DEFAULT'));
  const arch = decimal(img, 'WINDOWS/ARCH', where);
  if (arch !== undefined) info.architecture = WimArch[arch] ?? 'unknown';
  const languages = at(img, 'WINDOWS/LANGUAGES');
  if (languages) info.languages = languages.children.filter((c) => c.name === 'LANGUAGE').map((c) => c.text);
  const version = at(img, 'WINDOWS/VERSION');
  if (version) {
    const parts = ['MAJOR', 'MINOR', 'BUILD', 'SPBUILD'].map((p) => decimal(version, p, `${where} WINDOWS/VERSION`));
    info.version = parts.map((p) => p ?? 0).join('.');
  }
  set('created', filetime(img, 'CREATIONTIME', where));
  set('modified', filetime(img, 'LASTMODIFICATIONTIME', where));
  return info;
}

/** Decodes the raw XML data resource of a WIM. */
export function decodeWimXml(bytes: Uint8Array, opts: WimXmlOptions = {}): WimXmlInfo {
  const root = parseXml(decodeUtf16Le(bytes), opts.maxDepth ?? 64);
  if (root.name !== 'WIM') throw new DecodeError('xml-bad-root', `the XML root is <${root.name}>, not <WIM>`);
  // An encrypted ESD (as some download services ship them) cannot be deployed.
  if (at(root, 'ESD/ENCRYPTED')) throw new DecodeError('wim-encrypted', 'the WIM is encrypted (ESD/ENCRYPTED)');
  const byIndex = new Map<number, XmlElement>();
  for (const img of root.children) {
    if (img.name !== 'IMAGE') continue;
    const index = imageIndex(img);
    if (byIndex.has(index)) throw new DecodeError('xml-bad-index', `two IMAGE elements have INDEX ${index}`);
    byIndex.set(index, img);
  }
  for (let i = 1; i <= byIndex.size; i++) {
    if (!byIndex.has(i)) {
      throw new DecodeError('xml-bad-index', `IMAGE indexes do not run 1..${byIndex.size} (${i} is missing)`);
    }
  }
  if (opts.imageCount !== undefined && opts.imageCount !== byIndex.size) {
    throw new DecodeError(
      'image-count-mismatch',
      `the header counts ${opts.imageCount} images but the XML data describes ${byIndex.size}`,
    );
  }
  const images: WimImageInfo[] = [];
  for (let i = 1; i <= byIndex.size; i++) images.push(imageInfo(byIndex.get(i)!, i));
  return { totalBytes: decimal(root, 'TOTALBYTES', 'WIM') ?? 0, images };
}
