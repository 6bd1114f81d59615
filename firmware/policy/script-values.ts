/**
 * The rule for putting data into iPXE scripts and grub.cfg files (pure).
 *
 * iPXE has no quoting at all (src/core/exec.c): a line is split on whitespace, every
 * `${name}` in a token is expanded, a token starting with `#` starts a comment, and the
 * tokens `||`, `&&` and `;` end a command. A line ending in `\` continues on the next.
 * So a value cannot be escaped there; it can only be kept out of those characters.
 * GRUB does have quoting, and we use it as well, but the same rule keeps both renderers
 * simple and the goldens readable.
 *
 * Two kinds of value:
 * - **Tokens** (URLs, file names, kernel parameters, menu keys) become command arguments.
 *   They are VALIDATED: only `A-Z a-z 0-9 . _ ~ : / ? = % + , @ [ ] -`, 1 to 1024 of them,
 *   not starting with `-` (it would read as an option). Anything else is refused with
 *   BootboxError('UNSAFE_SCRIPT_VALUE'): a script that means something else is worse than
 *   no script.
 * - **Text** (messages, menu titles, image titles) is only shown. It is SANITISED and never
 *   refused: every character outside `A-Z a-z 0-9 space . , : ( ) / _ + = @ ? ! % ' -` becomes
 *   `_` (this removes `$ { } ; | & # \ "` and every control character, newlines included),
 *   runs of whitespace become one space, a `-` that starts a word becomes `_` (iPXE's `menu`
 *   and `item` would read it as an option), and it is cut to 200 characters.
 *   `'` survives for iPXE (inert there); GRUB text is single-quoted with `'` written `'\''`.
 */
import { BootboxError } from '../core/errors.ts';

const TOKEN_RE = /^[A-Za-z0-9._~:/?=%+,@[\]-]{1,1024}$/;
const TEXT_UNSAFE_RE = /[^A-Za-z0-9 .,:()/_+=@?!%'-]/g;
const MAX_TEXT = 200;

export function isSafeToken(value: string): boolean {
  return typeof value === 'string' && TOKEN_RE.test(value) && !value.startsWith('-');
}

/** Returns the value if it may be a script argument as it is; else UNSAFE_SCRIPT_VALUE. */
export function token(value: string, what: string): string {
  if (isSafeToken(value)) return value;
  throw new BootboxError(
    'UNSAFE_SCRIPT_VALUE',
    `${what} ${JSON.stringify(value)} cannot go into a boot script: use only letters, digits and . _ ~ : / ? = % + , @ [ ] - (not first)`,
    { what, value },
  );
}

/** Display text: never refused, made inert (see the rule above). */
export function text(value: string): string {
  const s = String(value)
    .replace(/\s+/g, ' ')
    .replace(TEXT_UNSAFE_RE, '_')
    .replace(/(^|\s)-/g, '$1_')
    .trim();
  return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) : s;
}

/** GRUB single quoting: nothing is expanded inside '…'; a quote is closed, escaped, reopened. */
export function grubQuote(value: string): string {
  return `'${value.replace(/'/g, "'\\''")}'`;
}

/** A menu key (also an iPXE label and a GRUB menuentry id): a short safe identifier. */
export function menuKey(value: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/.test(value)) return value;
  throw new BootboxError(
    'UNSAFE_SCRIPT_VALUE',
    `menu key ${JSON.stringify(value)} must be 1-32 letters, digits, _ or - (starting with a letter or digit)`,
    { what: 'menu key', value },
  );
}

/** A whole number for sleep/timeouts; refuses anything else rather than rounding silently. */
export function count(value: number, what: string, min = 0, max = 86_400): string {
  if (Number.isSafeInteger(value) && value >= min && value <= max) return String(value);
  throw new BootboxError('UNSAFE_SCRIPT_VALUE', `${what} must be a whole number from ${min} to ${max} (got ${value})`, {
    what,
    value,
  });
}
