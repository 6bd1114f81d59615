/**
 * Unattend templates rendered per machine (pure). Windows Setup reads an answer file;
 * the box keeps one template per architecture (the WDS "client unattend": which image,
 * disk layout) and one per install image (the "image unattend"), and fills in each
 * machine's own values when the node fetches it.
 *
 * Two formats: `xml` (unattend.xml / autounattend.xml, Vista and later) and `ini`
 * (sysprep.inf of the XP/2003 era, `[Section]` and `key=value` lines).
 *
 * ## Variables
 * A variable is written `%NAME%` with a name from UNATTEND_VARIABLES: the WDS ones
 * (`%MACHINENAME%`, `%MACHINEDOMAIN%`, `%ORGNAME%`, `%TIMEZONE%`) and the box's own
 * (`%MAC%`, `%IP%`, `%BOXURL%`, `%IMAGE%`). Names are case-insensitive, as Windows
 * environment variables are (`%MachineName%` is `%MACHINENAME%`).
 *
 * ## Everything else written with `%`
 * - `%%` is always one literal `%` (so `%%Foo%%` renders `%Foo%`).
 * - A Windows environment reference from WINDOWS_ENVIRONMENT_VARIABLES (`%WINDIR%`,
 *   `%SystemRoot%`, `%ProgramFiles(x86)%`, `%TEMP%` …, any case) is kept exactly as
 *   written: Setup and cmd expand those on the node, as they do under WDS.
 * - Any other `%Name%` is refused when the template is saved, naming it and its line: it
 *   is nearly always a misspelt variable (`%MACHINNAME%`) that would otherwise reach the
 *   node as text. To keep such text, write `%%Name%%`.
 * - A `%` that does not open a `%Name%` (`100%`, `%20`, `%1`, `%~dp0`) is kept as it is, and
 *   so is URL percent-encoding (`%C3%A9`: a name of two hex digits is never a variable).
 *
 * ## Where variables may stand
 * - XML: in element text and attribute values, where values are XML-escaped. Comments are
 *   copied as written (nothing in them is substituted or checked, so a commented-out block
 *   stays as it was). A variable inside a CDATA section, a tag or a processing instruction
 *   is refused (no escaping exists there). The template must be well-formed XML without a
 *   DOCTYPE, and if it declares an encoding that must be UTF-8 (the box serves UTF-8).
 * - INI: in values only (`key=value`); `;` comment lines are copied as written. A value
 *   with a space, `"`, `;` or `,` is put in double quotes, and a `"` inside quotes is
 *   doubled (INF string rules); a variable already inside `"…"` is only doubled. Values
 *   with CR, LF or any other control character are refused (they would start a new line).
 */
import { BootboxError } from '../core/errors.ts';
import type { Machine } from '../domain/machine.ts';

export type TemplateFormat = 'xml' | 'ini';

export type VariableName = 'MACHINENAME' | 'MACHINEDOMAIN' | 'ORGNAME' | 'TIMEZONE' | 'MAC' | 'IP' | 'BOXURL' | 'IMAGE';

export interface VariableInfo {
  /** `wds`: the same meaning as under Windows Deployment Services; `bootbox`: the box's own. */
  origin: 'wds' | 'bootbox';
  description: string;
  /** What to do when it has no value (shown in the error). */
  whenMissing: string;
}

/** Every variable a template may use. */
export const UNATTEND_VARIABLES: Record<VariableName, VariableInfo> = {
  MACHINENAME: {
    origin: 'wds',
    description: 'The machine host name given by the naming policy or by an administrator (e.g. NODE007).',
    whenMissing: 'name the machine (naming policy or PUT /api/v1/machines/{id})',
  },
  MACHINEDOMAIN: {
    origin: 'wds',
    description: 'The domain the machine joins (the box domain setting, e.g. cluster.example.com).',
    whenMissing: "set the box's domain",
  },
  ORGNAME: {
    origin: 'wds',
    description: 'The organisation name (Windows registered organisation).',
    whenMissing: "set the box's organisation name",
  },
  TIMEZONE: {
    origin: 'wds',
    description:
      'The time zone as the answer file expects it: a Windows time zone name for unattend.xml ("W. Europe Standard Time"), an index for sysprep.inf.',
    whenMissing: "set the box's time zone",
  },
  MAC: {
    origin: 'bootbox',
    description: 'The MAC address the machine netboots with, aa:bb:cc:dd:ee:ff.',
    whenMissing: 'the machine has no MAC address',
  },
  IP: {
    origin: 'bootbox',
    description: 'The IPv4 address the machine last booted with.',
    whenMissing: 'the machine has not booted with an address yet',
  },
  BOXURL: {
    origin: 'bootbox',
    description: 'The base URL of the box on the private network, e.g. http://10.0.0.1.',
    whenMissing: "the box's private URL is unknown",
  },
  IMAGE: {
    origin: 'bootbox',
    description: 'The name of the image being deployed to the machine.',
    whenMissing: 'set an image for the machine, its group or its architecture',
  },
};

const VARIABLE_NAMES = Object.keys(UNATTEND_VARIABLES) as VariableName[];

/**
 * Windows environment references kept as written (compared case-insensitively): the system
 * and user variables of Windows and Windows PE, cmd's dynamic ones, and Setup's
 * `%configsetroot%`.
 */
export const WINDOWS_ENVIRONMENT_VARIABLES: readonly string[] = [
  'ALLUSERSPROFILE',
  'APPDATA',
  'CD',
  'CMDCMDLINE',
  'CMDEXTVERSION',
  'CommonProgramFiles',
  'CommonProgramFiles(x86)',
  'CommonProgramW6432',
  'COMPUTERNAME',
  'ComSpec',
  'ConfigSetRoot',
  'DATE',
  'DriverData',
  'ERRORLEVEL',
  'HOMEDRIVE',
  'HOMEPATH',
  'HOMESHARE',
  'LOCALAPPDATA',
  'LOGONSERVER',
  'NUMBER_OF_PROCESSORS',
  'OS',
  'Path',
  'PATHEXT',
  'PROCESSOR_ARCHITECTURE',
  'PROCESSOR_IDENTIFIER',
  'PROCESSOR_LEVEL',
  'PROCESSOR_REVISION',
  'ProgramData',
  'ProgramFiles',
  'ProgramFiles(x86)',
  'ProgramW6432',
  'PROMPT',
  'PSModulePath',
  'PUBLIC',
  'RANDOM',
  'SESSIONNAME',
  'SystemDrive',
  'SystemRoot',
  'TEMP',
  'TIME',
  'TMP',
  'USERDNSDOMAIN',
  'USERDOMAIN',
  'USERDOMAIN_ROAMINGPROFILE',
  'USERNAME',
  'USERPROFILE',
  'windir',
];

const ENVIRONMENT = new Set(WINDOWS_ENVIRONMENT_VARIABLES.map((n) => n.toUpperCase()));

/** XML: element text or attribute value. INI: a bare value, or inside "…" already. */
export type VariableContext = 'text' | 'attribute' | 'value' | 'quoted';

/** One piece of a parsed template: text copied as is, or a variable to fill in. */
export type TemplatePart =
  | { kind: 'literal'; text: string }
  | {
      kind: 'variable';
      name: VariableName;
      /** 1-based line of the template. */
      line: number;
      /** Where it stands: escaping and quoting depend on it. */
      context: VariableContext;
    };

export interface Template {
  format: TemplateFormat;
  parts: readonly TemplatePart[];
  /** The variables it uses, each once, in order of first use. */
  variables: readonly VariableName[];
}

export interface ParseOptions {
  format: TemplateFormat;
  /** Named in error messages (e.g. the file name). */
  source?: string;
}

export type UnattendValues = Partial<Record<VariableName, string>>;

/** Box-wide settings that feed the variables. */
export interface UnattendBoxSettings {
  domain?: string;
  orgName?: string;
  timezone?: string;
  /** The box on the private network, e.g. http://10.0.0.1. */
  boxUrl: string;
}

/** Parses and checks a template; BootboxError('INVALID_TEMPLATE') naming the line otherwise. */
export function parseTemplate(text: string, opts: ParseOptions): Template {
  const b = new PartsBuilder(text, opts.source);
  if (opts.format === 'xml') scanXml(text, b);
  else scanIni(text, b);
  return b.done(opts.format);
}

/**
 * Fills in the values. A used variable without a value (or an empty one) is a
 * BootboxError('UNATTEND_VALUE_MISSING') naming it; a value that cannot be put into the
 * format safely is a BootboxError('UNSAFE_SCRIPT_VALUE').
 */
export function renderTemplate(t: Template, values: UnattendValues): string {
  const missing = t.variables.filter((n) => !values[n]);
  if (missing.length > 0) {
    const first = missing[0]!;
    const at = t.parts.find((p) => p.kind === 'variable' && p.name === first) as { line: number } | undefined;
    throw new BootboxError(
      'UNATTEND_VALUE_MISSING',
      `the unattend template uses ${missing.map((n) => `%${n}%`).join(', ')} (first on line ${at?.line ?? '?'}) but there is no value for this machine: ${missing.map((n) => UNATTEND_VARIABLES[n].whenMissing).join('; ')}`,
      { variables: missing },
    );
  }
  let out = '';
  for (const p of t.parts) {
    if (p.kind === 'literal') out += p.text;
    else
      out +=
        t.format === 'xml'
          ? xmlValue(p.name, values[p.name]!, p.context)
          : iniValue(p.name, values[p.name]!, p.context);
  }
  return out;
}

/** The values for one machine. Variables without a value are left out (renderTemplate names them). */
export function unattendValues(machine: Machine, box: UnattendBoxSettings, image?: string): UnattendValues {
  const v: UnattendValues = { MAC: machine.mac, BOXURL: box.boxUrl };
  if (machine.name) v.MACHINENAME = machine.name;
  if (box.domain) v.MACHINEDOMAIN = box.domain;
  if (box.orgName) v.ORGNAME = box.orgName;
  if (box.timezone) v.TIMEZONE = box.timezone;
  if (machine.ip) v.IP = machine.ip;
  const img = image ?? machine.reimage?.image ?? machine.image;
  if (img) v.IMAGE = img;
  return v;
}

/** Checks that `text` is well-formed XML as parseTemplate('xml') requires (no variables are resolved). */
export function checkXml(text: string, source?: string): void {
  parseTemplate(text, { format: 'xml', ...(source !== undefined && { source }) });
}

// ---------------------------------------------------------------------------------------------
// Rendering values

// XML 1.0 §2.2 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
const XML_FORBIDDEN =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function xmlValue(name: VariableName, value: string, context: VariableContext): string {
  if (XML_FORBIDDEN.test(value)) {
    throw new BootboxError(
      'UNSAFE_SCRIPT_VALUE',
      `%${name}% ${JSON.stringify(value)} has a character that XML cannot carry (a control character)`,
      { variable: name },
    );
  }
  let s = value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
  // XML parsers turn CR into LF (§2.11) and, in attributes, CR, LF and tab into spaces (§3.3.3).
  s = s.replace(/\r/g, '&#13;');
  if (context === 'attribute') s = s.replace(/\n/g, '&#10;').replace(/\t/g, '&#9;');
  return s;
}

// C0 controls, DEL and C1 controls, plus the Unicode line and paragraph separators.
const INI_FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function iniValue(name: VariableName, value: string, context: VariableContext): string {
  if (INI_FORBIDDEN.test(value)) {
    throw new BootboxError(
      'UNSAFE_SCRIPT_VALUE',
      `%${name}% ${JSON.stringify(value)} cannot go into sysprep.inf: it contains a line break or another control character`,
      { variable: name },
    );
  }
  const doubled = value.replace(/"/g, '""');
  if (context === 'quoted') return doubled;
  // INF strings: a value with spaces, quotes, a list comma or a comment `;` goes in quotes.
  return /[\s";,]/.test(value) ? `"${doubled}"` : value;
}

// ---------------------------------------------------------------------------------------------
// Parsing: parts, `%` tokens and errors

class PartsBuilder {
  readonly parts: TemplatePart[] = [];
  private readonly used: VariableName[] = [];
  private readonly lineStarts: number[] = [0];
  private readonly text: string;
  private readonly source: string | undefined;

  constructor(text: string, source: string | undefined) {
    this.text = text;
    this.source = source;
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }

  lineAt(offset: number): number {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }

  fail(offset: number, message: string, details: Record<string, unknown> = {}): never {
    const line = this.lineAt(offset);
    const where = this.source ? `${this.source} line ${line}` : `line ${line}`;
    throw new BootboxError('INVALID_TEMPLATE', `unattend template ${where}: ${message}`, {
      line,
      ...(this.source !== undefined && { source: this.source }),
      ...details,
    });
  }

  literal(s: string): void {
    if (s === '') return;
    const last = this.parts.at(-1);
    if (last?.kind === 'literal') last.text += s;
    else this.parts.push({ kind: 'literal', text: s });
  }

  /** Copies text[start, end) as it is. */
  verbatim(start: number, end: number): void {
    this.literal(this.text.slice(start, end));
  }

  /**
   * Copies text[start, end) resolving `%` tokens. `where` says what variables may do there:
   * a context to substitute in, or a phrase for the refusal. `contextAt` lets INI tell
   * quoted from bare positions.
   */
  percents(
    start: number,
    end: number,
    where: VariableContext,
    refuse?: string,
    contextAt?: (offset: number) => 'value' | 'quoted',
  ): void {
    const t = this.text;
    let i = start;
    let lit = start;
    while (i < end) {
      const pct = t.indexOf('%', i);
      if (pct < 0 || pct >= end) break;
      if (t.charCodeAt(pct + 1) === 37 && pct + 1 < end) {
        // `%%`: one literal percent sign.
        this.literal(t.slice(lit, pct + 1));
        i = pct + 2;
        lit = i;
        continue;
      }
      TOKEN.lastIndex = pct;
      const m = TOKEN.exec(t);
      if (!m || pct + m[0].length > end) {
        i = pct + 1; // a lone `%`: kept
        continue;
      }
      const name = m[1]!;
      const upper = name.toUpperCase();
      if (ENVIRONMENT.has(upper)) {
        i = pct + m[0].length; // a Windows environment reference: kept as written
        continue;
      }
      if (/^[0-9A-F]{2}$/.test(upper)) {
        i = pct + 1; // `%C3%A9`: URL percent-encoding, kept
        continue;
      }
      if (!(upper in UNATTEND_VARIABLES)) {
        this.fail(
          pct,
          `unknown variable %${name}%: the variables are ${VARIABLE_NAMES.map((n) => `%${n}%`).join(', ')}, and Windows environment references such as %WINDIR% or %SystemRoot% are kept as written; to keep "%${name}%" as text write %%${name}%%`,
          { variable: name },
        );
      }
      const v = upper as VariableName;
      if (refuse) this.fail(pct, `%${name}% cannot be used ${refuse}`, { variable: name });
      this.literal(t.slice(lit, pct));
      const context = contextAt ? contextAt(pct) : where;
      this.parts.push({ kind: 'variable', name: v, line: this.lineAt(pct), context });
      if (!this.used.includes(v)) this.used.push(v);
      i = pct + m[0].length;
      lit = i;
    }
    this.literal(t.slice(lit, end));
  }

  done(format: TemplateFormat): Template {
    return { format, parts: this.parts, variables: this.used };
  }
}

/** `%Name%`: a letter or `_`, then letters, digits, `_`; `(x86)` may end it (%ProgramFiles(x86)%). */
const TOKEN = /%([A-Za-z_][A-Za-z0-9_]{0,63}(?:\(x86\))?)%/y;

// ---------------------------------------------------------------------------------------------
// XML: a small well-formedness checker (XML 1.0 fifth edition), without DTDs.

const NAME_START =
  'A-Za-z_:\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD';
const NAME_CHAR = `${NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040`;
const XML_NAME = new RegExp(`[${NAME_START}][${NAME_CHAR}]*`, 'y');
const WS = /[ \t\r\n]*/y;
// §4.1: the five predefined entities and character references; nothing else (no DTD).
const REFERENCE = /&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);/y;
const XML_BAD_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;

function scanXml(text: string, b: PartsBuilder): void {
  XML_BAD_CHAR.lastIndex = 0;
  const bad = XML_BAD_CHAR.exec(text);
  if (bad)
    b.fail(
      bad.index,
      `control character U+${bad[0].charCodeAt(0).toString(16).padStart(4, '0')} is not allowed in XML`,
    );

  let i = 0;
  if (text.charCodeAt(0) === 0xfeff) i = 1; // byte order mark
  b.verbatim(0, i);
  if (text.startsWith('<?xml', i) && /[\s?]/.test(text.charAt(i + 5))) {
    const end = text.indexOf('?>', i);
    if (end < 0) b.fail(i, 'the XML declaration <?xml … ?> is not closed');
    const decl = text.slice(i, end);
    if (!/\bversion\s*=\s*(["'])1\.[0-9]+\1/.test(decl)) b.fail(i, 'the XML declaration has no version="1.0"');
    const enc = /\bencoding\s*=\s*(["'])([^"']*)\1/.exec(decl);
    if (enc && !/^utf-?8$/i.test(enc[2]!)) {
      b.fail(
        i,
        `the XML declaration says encoding="${enc[2]}": save the template as UTF-8 and declare encoding="utf-8" (the box serves UTF-8)`,
      );
    }
    b.verbatim(i, end + 2);
    i = end + 2;
  }

  const stack: { name: string; at: number }[] = [];
  let rootSeen = false;
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const textEnd = lt < 0 ? text.length : lt;
    if (textEnd > i) {
      if (stack.length === 0) {
        const nonWs = text.slice(i, textEnd).search(/[^ \t\r\n]/);
        if (nonWs >= 0) {
          b.fail(i + nonWs, rootSeen ? 'text after the root element' : 'text before the root element');
        }
        b.verbatim(i, textEnd);
      } else {
        checkCharData(text, i, textEnd, b);
        b.percents(i, textEnd, 'text');
      }
      i = textEnd;
      continue;
    }
    // i is at '<'
    if (text.startsWith('<!--', i)) {
      const end = text.indexOf('-->', i + 4);
      if (end < 0) b.fail(i, 'comment <!-- is not closed');
      const dd = text.indexOf('--', i + 4);
      if (dd < end) b.fail(dd, '"--" is not allowed inside a comment');
      if (text.charAt(end - 1) === '-' && end - 1 >= i + 4) b.fail(end - 1, 'a comment may not end with "--->"');
      b.verbatim(i, end + 3);
      i = end + 3;
      continue;
    }
    if (text.startsWith('<![CDATA[', i)) {
      if (stack.length === 0) b.fail(i, 'a CDATA section outside the root element');
      const end = text.indexOf(']]>', i + 9);
      if (end < 0) b.fail(i, 'CDATA section is not closed with ]]>');
      b.verbatim(i, i + 9);
      b.percents(i + 9, end, 'text', 'inside a CDATA section (nothing is escaped there): put the text outside CDATA');
      b.verbatim(end, end + 3);
      i = end + 3;
      continue;
    }
    if (text.startsWith('<!', i)) {
      if (/^<!DOCTYPE/i.test(text.slice(i, i + 9))) b.fail(i, 'a DOCTYPE is not allowed in an unattend template');
      b.fail(i, 'markup "<!" that is neither a comment nor a CDATA section');
    }
    if (text.startsWith('<?', i)) {
      XML_NAME.lastIndex = i + 2;
      const target = XML_NAME.exec(text);
      if (!target) b.fail(i, 'processing instruction without a target name');
      if (target[0].toLowerCase() === 'xml')
        b.fail(i, 'the XML declaration <?xml … ?> must be at the very start of the file');
      const end = text.indexOf('?>', i + 2);
      if (end < 0) b.fail(i, 'processing instruction <? is not closed with ?>');
      b.percents(i, end + 2, 'text', 'inside a processing instruction');
      i = end + 2;
      continue;
    }
    if (text.startsWith('</', i)) {
      XML_NAME.lastIndex = i + 2;
      const m = XML_NAME.exec(text);
      if (!m) b.fail(i, 'end tag without a name');
      WS.lastIndex = XML_NAME.lastIndex;
      WS.exec(text);
      if (text.charAt(WS.lastIndex) !== '>') b.fail(WS.lastIndex, `end tag </${m[0]} is not closed with >`);
      const open = stack.pop();
      if (!open) b.fail(i, `end tag </${m[0]}> without a start tag`);
      if (open.name !== m[0]) {
        b.fail(i, `end tag </${m[0]}> does not match <${open.name}> opened on line ${b.lineAt(open.at)}`);
      }
      b.verbatim(i, WS.lastIndex + 1);
      i = WS.lastIndex + 1;
      continue;
    }
    // start tag
    if (stack.length === 0 && rootSeen) b.fail(i, 'a second root element (an XML document has exactly one)');
    XML_NAME.lastIndex = i + 1;
    const m = XML_NAME.exec(text);
    if (!m) b.fail(i, '"<" that does not start a tag (write &lt; for a literal <)');
    const name = m[0];
    let j = XML_NAME.lastIndex;
    b.percents(i, j, 'text', 'in a tag name');
    const seen = new Set<string>();
    for (;;) {
      WS.lastIndex = j;
      WS.exec(text);
      const hadWs = WS.lastIndex > j;
      b.verbatim(j, WS.lastIndex);
      j = WS.lastIndex;
      if (text.startsWith('/>', j)) {
        b.verbatim(j, j + 2);
        j += 2;
        rootSeen = true;
        break;
      }
      if (text.charAt(j) === '>') {
        b.verbatim(j, j + 1);
        j += 1;
        stack.push({ name, at: i });
        rootSeen = true;
        break;
      }
      if (j >= text.length) b.fail(i, `start tag <${name} is not closed`);
      if (!hadWs) b.fail(j, `expected whitespace, ">" or "/>" in <${name}>`);
      XML_NAME.lastIndex = j;
      const an = XML_NAME.exec(text);
      if (!an) b.fail(j, `malformed attribute in <${name}>`);
      if (seen.has(an[0])) b.fail(j, `attribute ${an[0]} appears twice in <${name}>`);
      seen.add(an[0]);
      let k = XML_NAME.lastIndex;
      b.percents(j, k, 'text', 'in an attribute name');
      WS.lastIndex = k;
      WS.exec(text);
      if (text.charAt(WS.lastIndex) !== '=') b.fail(WS.lastIndex, `attribute ${an[0]} in <${name}> has no ="value"`);
      WS.lastIndex += 1;
      WS.exec(text);
      const q = text.charAt(WS.lastIndex);
      if (q !== '"' && q !== "'")
        b.fail(WS.lastIndex, `the value of attribute ${an[0]} in <${name}> must be in quotes`);
      b.verbatim(k, WS.lastIndex + 1);
      k = WS.lastIndex + 1;
      const close = text.indexOf(q, k);
      if (close < 0) b.fail(k, `the value of attribute ${an[0]} in <${name}> is not closed`);
      const lt2 = text.indexOf('<', k);
      if (lt2 >= 0 && lt2 < close) b.fail(lt2, `"<" in the value of attribute ${an[0]} (write &lt;)`);
      checkReferences(text, k, close, b);
      b.percents(k, close, 'attribute');
      b.verbatim(close, close + 1);
      j = close + 1;
    }
    i = j;
  }
  if (stack.length > 0) {
    const open = stack.at(-1)!;
    b.fail(open.at, `<${open.name}> is never closed`);
  }
  if (!rootSeen) b.fail(0, 'no root element: this is not an XML document');
}

function checkCharData(text: string, start: number, end: number, b: PartsBuilder): void {
  const cdEnd = text.indexOf(']]>', start);
  if (cdEnd >= 0 && cdEnd < end) b.fail(cdEnd, '"]]>" is not allowed in text (write ]]&gt;)');
  checkReferences(text, start, end, b);
}

function checkReferences(text: string, start: number, end: number, b: PartsBuilder): void {
  let a = text.indexOf('&', start);
  while (a >= 0 && a < end) {
    REFERENCE.lastIndex = a;
    const m = REFERENCE.exec(text);
    if (!m || a + m[0].length > end) {
      b.fail(
        a,
        '"&" that does not start &amp; &lt; &gt; &quot; &apos; or a character reference (write &amp; for a literal &)',
      );
    }
    a = text.indexOf('&', a + m[0].length);
  }
}

// ---------------------------------------------------------------------------------------------
// INI (sysprep.inf): [Section] lines, key=value lines, ; comments, blank lines.

function scanIni(text: string, b: PartsBuilder): void {
  const LINE = /([^\r\n]*)(\r\n|\n|\r|$)/y;
  let i = 0;
  let section: string | undefined;
  if (text.charCodeAt(0) === 0xfeff) {
    b.verbatim(0, 1);
    i = 1;
  }
  while (i < text.length) {
    LINE.lastIndex = i;
    const m = LINE.exec(text)!;
    const line = m[1]!;
    const start = i;
    const end = i + line.length;
    const next = end + m[2]!.length;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith(';')) {
      b.verbatim(start, next);
    } else if (trimmed.startsWith('[')) {
      const sec = /^\s*\[([^\][]+)\]\s*(;.*)?$/.exec(line);
      if (!sec) b.fail(start, `malformed section header ${JSON.stringify(trimmed)} (expected [Section])`);
      section = sec[1]!.trim();
      b.percents(start, end, 'value', 'in a section name');
      b.verbatim(end, next);
    } else {
      const eq = line.indexOf('=');
      if (eq <= 0 || line.slice(0, eq).trim() === '') {
        b.fail(start, `${JSON.stringify(trimmed.slice(0, 60))} is neither [Section], key=value nor a ; comment`);
      }
      const key = line.slice(0, eq).trim();
      if (section === undefined) b.fail(start, `${key}=… comes before the first [Section]`);
      if (/["[\];]/.test(key)) b.fail(start, `malformed key ${JSON.stringify(key)}`);
      b.percents(start, start + eq + 1, 'value', 'in a key (only in values)');
      // The value: quotes toggle; outside quotes `;` starts a comment.
      const vStart = start + eq + 1;
      let inQuotes = false;
      let commentAt = end;
      const quotedAt: number[] = []; // offsets where a quote toggles
      for (let k = vStart; k < end; k++) {
        const c = text.charAt(k);
        if (c === '"') {
          inQuotes = !inQuotes;
          quotedAt.push(k);
        } else if (c === ';' && !inQuotes) {
          commentAt = k;
          break;
        }
      }
      if (inQuotes) b.fail(vStart, `the value of ${key} has an unclosed " quote`);
      const contextAt = (offset: number): 'value' | 'quoted' =>
        quotedAt.filter((q) => q < offset).length % 2 === 1 ? 'quoted' : 'value';
      b.percents(vStart, commentAt, 'value', undefined, contextAt);
      b.verbatim(commentAt, next);
    }
    if (next === i) break;
    i = next;
  }
}
