/**
 * Machine naming policy with WDS's grammar (pure).
 *
 * WDS (MS-WDSOSD §3.1.1.4 "Machine Naming Policy") defines variables of the form
 * `%[0][length]Var`, case-insensitive: First, Last, Username, MAC and `#` (an incremental
 * number). `length` is the maximum number of characters of the value, kept from the left;
 * a leading `0` pads shorter values with zeros on the left and then requires a length.
 * The WDS help adds: "%03# … a three-digit number in the range from 001 through 999".
 *
 * What bootbox takes from that, and where it decides:
 * - Literal text, `%#`, `%n#`, `%0n#`, `%MAC`, `%nMAC`, `%0nMAC`, and `%%` for a literal
 *   percent (`%%` is a bootbox addition; a `%` can never be in a host name, so a pattern
 *   using it is refused by the host-name check, with its position).
 * - `%First`, `%Last`, `%Username` are refused: nobody logs on to a netbooting node, so
 *   there is no user to take them from.
 * - Counters: a width-n counter (`%n#`, `%0n#`) counts only up to n digits (999 for n = 3).
 *   WDS would trim 1000 to "100", a name already given; bootbox says NAMES_EXHAUSTED instead.
 *   `%n#` is unpadded (`%3#` → 7, 42, 999), `%0n#` zero-padded (`%03#` → 007). `%#` is
 *   unbounded. One counter per pattern.
 * - `%MAC` is the 12 hex digits of the MAC, upper case, no separators (the form wdsutil
 *   itself uses for MACs, e.g. 00B056882FDC). `%nMAC` keeps the first n (the vendor OUI
 *   comes first, so a short one is seldom unique; uniqueness is still enforced).
 * - Names are host names valid for both Windows and DNS: letters, digits and hyphens
 *   (RFC 1123 labels), not starting or ending with a hyphen, not all digits (Windows refuses
 *   numeric computer names), and at most 15 characters, the NetBIOS limit
 *   (learn.microsoft.com "Computer Names": NetBIOS names are up to 15 bytes). A pattern that
 *   can produce a longer name is refused when it is parsed; a `%#` counter that outgrows 15
 *   characters ends in NAMES_EXHAUSTED.
 * - A pattern must contain a counter or %MAC, or every machine would get the same name,
 *   and a letter in its literal text, or some names would be all digits (`%MAC` alone gives
 *   525400770011 for 52:54:00:77:00:11).
 * - Names are unique case-insensitively (NetBIOS and DNS ignore case) and never reused:
 *   `nextName` skips every name already taken.
 */
import { BootboxError } from '../core/errors.ts';

/** Windows computer (NetBIOS) names: at most 15 characters. */
export const MAX_NAME_LENGTH = 15;

export type PatternPart =
  | { kind: 'literal'; text: string }
  | { kind: 'counter'; width?: number; zeroPad: boolean }
  | { kind: 'mac'; length?: number; zeroPad: boolean };

export interface NamingPattern {
  source: string;
  parts: PatternPart[];
  hasCounter: boolean;
  hasMac: boolean;
  /** Length of the longest name the fixed parts allow (a `%#` counter counted as one digit). */
  maxLength: number;
  /** Largest counter value the pattern can show; Infinity for `%#`. */
  counterMax: number;
}

const LDH = /^[A-Za-z0-9-]$/;
const UNSUPPORTED_VARS = ['USERNAME', 'FIRST', 'LAST'];

function patternError(source: string, pos: number, message: string): BootboxError {
  return new BootboxError(
    'INVALID_NAMING_PATTERN',
    `naming pattern ${JSON.stringify(source)}, position ${pos + 1}: ${message}`,
    { pattern: source, position: pos + 1 },
  );
}

/**
 * Parses a WDS-style naming pattern. Errors name the 1-based position of the offending
 * character. The result can be used with `nextName` any number of times.
 */
export function parseNamingPattern(source: string): NamingPattern | BootboxError {
  if (typeof source !== 'string' || source.length === 0) {
    return new BootboxError('INVALID_NAMING_PATTERN', 'naming pattern is empty', { pattern: source });
  }
  const parts: PatternPart[] = [];
  let literal = '';
  /** Source position of each literal character ('%%' counts at its first '%'). */
  let literalPos: number[] = [];
  let hasCounter = false;
  let hasMac = false;
  let maxLength = 0;
  let counterMax = Number.POSITIVE_INFINITY;
  const flush = (): BootboxError | undefined => {
    for (let k = 0; k < literal.length; k++) {
      const ch = literal[k]!;
      if (!LDH.test(ch)) {
        const shown = ch === '%' ? "'%' (from %%)" : JSON.stringify(ch);
        return patternError(
          source,
          literalPos[k]!,
          `${shown} cannot be part of a host name (letters, digits and '-' only)`,
        );
      }
    }
    if (literal) parts.push({ kind: 'literal', text: literal });
    maxLength += literal.length;
    literal = '';
    literalPos = [];
    return undefined;
  };

  let i = 0;
  while (i < source.length) {
    const ch = source[i]!;
    if (ch !== '%') {
      literal += ch;
      literalPos.push(i);
      i++;
      continue;
    }
    const start = i;
    i++;
    if (source[i] === '%') {
      literal += '%';
      literalPos.push(start);
      i++;
      continue;
    }
    const err = flush();
    if (err) return err;
    let zeroPad = false;
    if (source[i] === '0') {
      zeroPad = true;
      i++;
    }
    let digits = '';
    while (i < source.length && source[i]! >= '0' && source[i]! <= '9') digits += source[i++];
    const length = digits ? Number(digits) : undefined;
    if (zeroPad && length === undefined) {
      return patternError(source, start, "'%0' must be followed by a length, as in %03#");
    }
    if (length !== undefined && (length < 1 || length > MAX_NAME_LENGTH)) {
      return patternError(source, start, `length ${digits} must be from 1 to ${MAX_NAME_LENGTH}`);
    }
    const rest = source.slice(i);
    if (rest.startsWith('#')) {
      if (hasCounter) return patternError(source, start, 'only one counter (%#) is allowed in a pattern');
      hasCounter = true;
      parts.push(length === undefined ? { kind: 'counter', zeroPad } : { kind: 'counter', width: length, zeroPad });
      maxLength += length ?? 1;
      if (length !== undefined) counterMax = 10 ** length - 1;
      i += 1;
      continue;
    }
    if (rest.slice(0, 3).toUpperCase() === 'MAC') {
      hasMac = true;
      parts.push(length === undefined ? { kind: 'mac', zeroPad } : { kind: 'mac', length, zeroPad });
      maxLength += length === undefined ? 12 : zeroPad ? length : Math.min(length, 12);
      i += 3;
      continue;
    }
    const unsupported = UNSUPPORTED_VARS.find((v) => rest.slice(0, v.length).toUpperCase() === v);
    if (unsupported) {
      return patternError(
        source,
        start,
        `%${unsupported[0]}${unsupported.slice(1).toLowerCase()} is a WDS variable about the user, and no user logs on to a netbooting node; use %#, %0n# or %MAC`,
      );
    }
    const what =
      i < source.length ? `unknown variable after '%' at ${JSON.stringify(source.slice(i, i + 8))}` : "'%' at the end";
    return patternError(source, start, `${what}; use %#, %n#, %0n#, %MAC or %% (a literal %)`);
  }
  const err = flush();
  if (err) return err;

  if (!hasCounter && !hasMac) {
    return patternError(
      source,
      0,
      'the pattern needs a counter (%#, %0n#) or %MAC, or every machine gets the same name',
    );
  }
  if (maxLength > MAX_NAME_LENGTH) {
    return patternError(
      source,
      0,
      `names can be ${maxLength} characters long; Windows (NetBIOS) computer names are at most ${MAX_NAME_LENGTH}`,
    );
  }
  if (!parts.some((p) => p.kind === 'literal' && /[A-Za-z]/.test(p.text))) {
    return patternError(
      source,
      0,
      'the pattern has no letter, so some names would be all digits (a counter, or a MAC like 525400770011), which Windows refuses as a computer name; add a prefix such as NODE',
    );
  }
  const first = parts[0]!;
  if (first.kind === 'literal' && first.text.startsWith('-')) {
    return patternError(source, 0, "a host name cannot start with '-'");
  }
  const last = parts[parts.length - 1]!;
  if (last.kind === 'literal' && last.text.endsWith('-')) {
    return patternError(source, source.length - 1, "a host name cannot end with '-'");
  }
  return { source, parts, hasCounter, hasMac, maxLength, counterMax };
}

/** `52:54:00:77:00:11` → `525400770011` (WDS form: no separators, upper case). */
export function macForName(mac: string): string {
  return mac.replace(/[^0-9a-fA-F]/g, '').toUpperCase();
}

function fitValue(value: string, length: number | undefined, zeroPad: boolean): string {
  if (length === undefined) return value;
  if (value.length > length) return value.slice(0, length);
  return zeroPad ? value.padStart(length, '0') : value;
}

/** The name a pattern gives for one counter value (no uniqueness or validity check). */
export function renderName(pattern: NamingPattern, counter: number, mac?: string): string {
  let out = '';
  for (const p of pattern.parts) {
    if (p.kind === 'literal') out += p.text;
    else if (p.kind === 'counter') out += fitValue(String(counter), p.width, p.zeroPad);
    else out += fitValue(macForName(mac ?? ''), p.length, p.zeroPad);
  }
  return out;
}

/** The key names are compared by: NetBIOS and DNS names are case-insensitive. */
export function nameKey(name: string): string {
  return name.toUpperCase();
}

/** Why a name is not a valid host name, or undefined when it is. */
export function hostNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > MAX_NAME_LENGTH) {
    return `it is ${name.length} characters long; Windows (NetBIOS) computer names are at most ${MAX_NAME_LENGTH}`;
  }
  for (let i = 0; i < name.length; i++) {
    if (!LDH.test(name[i]!)) {
      return `${JSON.stringify(name[i])} at position ${i + 1} is not allowed (letters, digits and '-' only)`;
    }
  }
  if (name.startsWith('-') || name.endsWith('-')) return "it cannot start or end with '-'";
  if (/^[0-9]+$/.test(name)) return 'it is all digits, which Windows does not accept as a computer name';
  return undefined;
}

export interface NextName {
  name: string;
  /** The counter value used (the pattern's next start is counter + 1). */
  counter: number;
}

/**
 * The first free name from `counterStart` on. `taken` holds the names in use, in any case;
 * a taken name is skipped (never reused), so the loop runs at most |taken| + 1 times.
 * Errors: NAMES_EXHAUSTED when the counter range is used up, when a `%#` counter no longer
 * fits 15 characters, or when a pattern without a counter gives a name already taken.
 */
export function nextName(
  pattern: NamingPattern,
  taken: ReadonlySet<string> | ((key: string) => boolean),
  counterStart = 1,
  mac?: string,
): NextName | BootboxError {
  if (!Number.isSafeInteger(counterStart) || counterStart < 0) {
    return new BootboxError('INVALID_REQUEST', `counter start must be a whole number >= 0 (got ${counterStart})`);
  }
  if (pattern.hasMac && (mac === undefined || macForName(mac).length !== 12)) {
    return new BootboxError('INVALID_REQUEST', `naming pattern ${pattern.source} uses %MAC but no valid MAC was given`);
  }
  // `taken`: the names in use, or (cheap for a large registry) a lookup by nameKey.
  let keys: { has(key: string): boolean };
  if (typeof taken === 'function') keys = { has: taken };
  else {
    const set = new Set<string>();
    for (const n of taken) set.add(nameKey(n));
    keys = set;
  }
  if (!pattern.hasCounter) {
    const name = renderName(pattern, counterStart, mac);
    const problem = hostNameProblem(name);
    if (problem) return new BootboxError('INVALID_NAME', `generated name ${name} is not valid: ${problem}`);
    if (keys.has(nameKey(name))) {
      return new BootboxError(
        'NAMES_EXHAUSTED',
        `naming pattern ${pattern.source} gives ${name}, which is already in use, and has no counter to move on`,
        { pattern: pattern.source, name },
      );
    }
    return { name, counter: counterStart };
  }
  for (let counter = counterStart; counter <= pattern.counterMax; counter++) {
    const name = renderName(pattern, counter, mac);
    if (name.length > MAX_NAME_LENGTH) break;
    if (keys.has(nameKey(name))) continue;
    const problem = hostNameProblem(name);
    if (problem) return new BootboxError('INVALID_NAME', `generated name ${name} is not valid: ${problem}`);
    return { name, counter };
  }
  const limit = Number.isFinite(pattern.counterMax)
    ? `its counter stops at ${pattern.counterMax}`
    : `its names would be longer than ${MAX_NAME_LENGTH} characters`;
  return new BootboxError(
    'NAMES_EXHAUSTED',
    `naming pattern ${pattern.source} has no free name from counter ${counterStart} on: ${limit}`,
    { pattern: pattern.source, counterStart },
  );
}

/**
 * Checks a name set by hand. Returns the name as given, or INVALID_NAME / NAME_IN_USE.
 * `current` is the machine's own present name: keeping it (in any case) is not a conflict.
 */
export function validateManualName(name: string, taken: ReadonlySet<string>, current?: string): string | BootboxError {
  if (typeof name !== 'string') return new BootboxError('INVALID_NAME', 'a machine name must be a string');
  const problem = hostNameProblem(name);
  if (problem) {
    return new BootboxError('INVALID_NAME', `machine name ${JSON.stringify(name)} is not valid: ${problem}`, {
      name,
    });
  }
  const key = nameKey(name);
  if (current !== undefined && nameKey(current) === key) return name;
  for (const t of taken) {
    if (nameKey(t) === key) {
      return new BootboxError(
        'NAME_IN_USE',
        `machine name ${name} is already in use${t === name ? '' : ` (as ${t}; names ignore case)`}`,
        { name, existing: t },
      );
    }
  }
  return name;
}
