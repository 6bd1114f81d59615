/**
 * Passwords of the embedded broker's users (`mqtt.broker.users`): either plain text or
 * a scrypt hash `scrypt$N$r$p$salt$hash` (salt and hash in base64url), so a config file
 * need not hold the password itself. `hashPassword` is what a CLI calls to make one.
 *
 * scrypt is RFC 7914. N=2^14, r=8, p=1 are the interactive-login parameters of the scrypt
 * paper (Percival 2009): 16 MiB and tens of milliseconds per check.
 */
import { createHash, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';

export const HASH_SCHEME = 'scrypt';
const DEFAULTS = { N: 16384, r: 8, p: 1 };
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Bounds on stored parameters: a hostile config cannot make a login take minutes or gigabytes. */
const MAX_N = 1 << 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEM = 1024 * 1024 * 1024;

export interface PasswordHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** Makes a `scrypt$N$r$p$salt$hash` string for a config file. */
export function hashPassword(password: string, opts: Partial<{ N: number; r: number; p: number }> = {}): string {
  const { N, r, p } = { ...DEFAULTS, ...opts };
  const salt = randomBytes(SALT_BYTES);
  const hash = scryptSync(password.normalize('NFC'), salt, KEY_BYTES, { N, r, p, maxmem: memFor(N, r, p) });
  return [HASH_SCHEME, N, r, p, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

export function isPasswordHash(stored: string): boolean {
  return stored.startsWith(`${HASH_SCHEME}$`);
}

/** The parts of a hash string, or undefined when it is malformed or its parameters are out of bounds. */
export function parsePasswordHash(stored: string): PasswordHash | undefined {
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(stored);
  if (!m) return undefined;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // RFC 7914 §2: N is a power of two greater than 1.
  if (N < 2 || N > MAX_N || (N & (N - 1)) !== 0) return undefined;
  if (r < 1 || r > MAX_R || p < 1 || p > MAX_P || memFor(N, r, p) > MAX_MEM) return undefined;
  const salt = Buffer.from(m[4]!, 'base64url');
  const hash = Buffer.from(m[5]!, 'base64url');
  if (salt.length < 4 || hash.length < 16) return undefined;
  return { N, r, p, salt, hash };
}

/**
 * Checks a password against the stored value (hash or plain text) in time that does
 * not depend on where the two differ. A malformed hash never matches.
 */
export async function verifyPassword(stored: string, given: string | Buffer): Promise<boolean> {
  const pw = typeof given === 'string' ? given : given.toString('utf8');
  if (!isPasswordHash(stored)) return equalSecrets(Buffer.from(stored, 'utf8'), Buffer.from(pw, 'utf8'));
  const h = parsePasswordHash(stored);
  if (!h) return false;
  const key = await new Promise<Buffer>((resolve, reject) =>
    scrypt(
      pw.normalize('NFC'),
      h.salt,
      h.hash.length,
      { N: h.N, r: h.r, p: h.p, maxmem: memFor(h.N, h.r, h.p) },
      (e, k) => (e ? reject(e) : resolve(k)),
    ),
  );
  return timingSafeEqual(key, h.hash);
}

/** Constant-time comparison of secrets of any length (compared as SHA-256 digests). */
export function equalSecrets(a: Buffer, b: Buffer): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** RFC 7914 §2: scrypt needs 128·N·r bytes (plus 128·r·p); doubled for headroom. */
function memFor(N: number, r: number, p: number): number {
  return 2 * 128 * r * (N + p) + 1024 * 1024;
}
