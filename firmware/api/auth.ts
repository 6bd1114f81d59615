/**
 * Who may use the web UI: the admin account (one password, set once with a setup token),
 * browser sessions (a cookie plus a CSRF token), and the login rate limit.
 *
 * - The admin password comes from `ui.adminPassword` (plain or `scrypt$N$r$p$salt$hash`), else
 *   from `<data>/admin.json` (always a hash, mode 0600). With neither, the box makes a one-time
 *   setup token at start; whoever shows it may set the password (POST /api/v1/setup).
 * - Sessions live in memory only: a restart logs everybody out. A session expires after
 *   `ttlMs` without a request (idle expiry).
 * - Logins are limited per peer address and for everyone: a failure counts against both, and
 *   an attempt counts as a failure until its password checked out, so parallel guesses are
 *   limited too.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { Clock } from '../core/clock.ts';
import { BootboxError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { equalSecrets, hashPassword, parsePasswordHash, verifyPassword } from '../core/password.ts';

export const SESSION_COOKIE = 'bootbox_session';
export const CSRF_HEADER = 'x-csrf-token';
export const MIN_PASSWORD_LENGTH = 10;
/** Longer passwords are refused before hashing (a megabyte password must not cost a megabyte of scrypt input). */
export const MAX_PASSWORD_LENGTH = 1024;
/** Session ids and CSRF tokens: 32 random bytes, base64url (43 characters). */
const SECRET_BYTES = 32;
const SECRET_FORM = /^[A-Za-z0-9_-]{43}$/;

// -- sessions ---------------------------------------------------------------------------

export interface Session {
  /** sha256 of the cookie value: what the box keeps (the cookie itself is never stored). */
  readonly key: string;
  readonly csrfToken: string;
  readonly user: 'admin';
  /** clock.now() of the last request made with it. */
  lastSeen: number;
}

/** A session just made: its cookie value, to hand to the browser once. */
export type NewSession = Session & { readonly id: string };

export type SessionLookup =
  | { state: 'valid'; session: Session }
  /** Idle too long, or not known at all (logged out, or ended by a password change). */
  | { state: 'expired' | 'unknown' };

export interface SessionStoreOptions {
  clock: Clock;
  /** Idle time after which a session is gone. */
  ttlMs: number;
  /** Sessions kept at once; beyond it the least recently used one is dropped. */
  max?: number;
  /** Called after sessions were ended by drop(), end(), clear() or the `max` bound (not by idle expiry). */
  onEnded?: () => void;
  /**
   * Where sessions outlive a restart (mode 0600): each one's key (a hash of the cookie, which
   * cannot be used as one), CSRF token and last use. Without it, a restart ends them all.
   */
  file?: string;
  log?: Logger;
}

interface SessionsFile {
  version: 1;
  sessions: { key: string; csrfToken: string; lastSeenAt: number }[];
}

/** How long a session's last use may wait in memory before it is written (a restart loses at most this much idle time). */
const TOUCH_FLUSH_MS = 30_000;

export class SessionStore {
  private readonly o: SessionStoreOptions;
  /** sha256(id) -> session, least recently used first (Map order). */
  private readonly byHash = new Map<string, Session>();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(o: SessionStoreOptions) {
    this.o = o;
    if (o.file) this.load(o.file);
  }

  get size(): number {
    return this.byHash.size;
  }

  get ttlMs(): number {
    return this.o.ttlMs;
  }

  create(): NewSession {
    const id = randomBytes(SECRET_BYTES).toString('base64url');
    const s: NewSession = {
      id,
      key: digest(id),
      csrfToken: randomBytes(SECRET_BYTES).toString('base64url'),
      user: 'admin',
      lastSeen: this.o.clock.now(),
    };
    this.byHash.set(s.key, s);
    const max = this.o.max ?? 64;
    let evicted = false;
    while (this.byHash.size > max) {
      this.byHash.delete(this.byHash.keys().next().value!);
      evicted = true;
    }
    this.save();
    if (evicted) this.o.onEnded?.();
    return s;
  }

  /** Finds the session of a cookie value; a valid one counts as used now (`touch`). */
  lookup(id: string, touch = true): SessionLookup {
    if (!SECRET_FORM.test(id)) return { state: 'unknown' };
    const key = digest(id);
    const s = this.byHash.get(key);
    if (!s) return { state: 'unknown' };
    const now = this.o.clock.now();
    if (now - s.lastSeen >= this.o.ttlMs) {
      this.byHash.delete(key);
      this.save();
      return { state: 'expired' };
    }
    if (touch) {
      s.lastSeen = now;
      this.byHash.delete(key);
      this.byHash.set(key, s);
      this.saveLater();
    }
    return { state: 'valid', session: s };
  }

  /** Ends the session of a cookie value. */
  drop(id: string): boolean {
    return this.remove(digest(id));
  }

  /** Ends a session (logout). */
  end(s: Session): boolean {
    return this.remove(s.key);
  }

  /** Ends every session (after a password change); returns how many there were. */
  clear(): number {
    const n = this.byHash.size;
    this.byHash.clear();
    this.generation++;
    this.save();
    if (n) this.o.onEnded?.();
    return n;
  }

  /**
   * Bumped by clear(): a login that started verifying a password before a password change
   * must not get a session after it (compare before and after the check).
   */
  generation = 0;

  /** Whether this session still exists (not dropped, cleared or evicted); idle expiry is not looked at. */
  holds(s: Session): boolean {
    return this.byHash.get(s.key) === s;
  }

  /** Wall-clock time at which the session expires if it is not used again. */
  expiresAt(s: Session): Date {
    return new Date(this.o.clock.date().getTime() + (s.lastSeen + this.o.ttlMs - this.o.clock.now()));
  }

  /** Constant-time check of a request's X-CSRF-Token against the session's. */
  csrfMatches(s: Session, given: string | string[] | undefined): boolean {
    if (typeof given !== 'string' || given.length === 0) return false;
    return equalSecrets(Buffer.from(s.csrfToken), Buffer.from(given));
  }

  /** Writes what is still waiting (at stop). */
  close(): void {
    if (this.flushTimer) this.save();
  }

  private remove(key: string): boolean {
    const removed = this.byHash.delete(key);
    if (removed) {
      this.save();
      this.o.onEnded?.();
    }
    return removed;
  }

  /** A session began or ended: written at once, so an ended one cannot come back after a crash. */
  private save(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const file = this.o.file;
    if (!file) return;
    const now = this.o.clock.now();
    const wall = this.o.clock.date().getTime();
    const data: SessionsFile = {
      version: 1,
      sessions: [...this.byHash.values()].map((s) => ({
        key: s.key,
        csrfToken: s.csrfToken,
        lastSeenAt: Math.round(wall - (now - s.lastSeen)),
      })),
    };
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, `${JSON.stringify(data)}\n`, { mode: 0o600 });
      renameSync(tmp, file);
    } catch (e) {
      // Sessions go on in memory; only their surviving a restart is lost.
      this.o.log?.warn(`sessions not saved to ${file}: ${(e as Error).message}`);
    }
  }

  /** A session was used: its new idle time is written within TOUCH_FLUSH_MS. */
  private saveLater(): void {
    if (!this.o.file || this.flushTimer) return;
    this.flushTimer = setTimeout(() => this.save(), TOUCH_FLUSH_MS);
    this.flushTimer.unref?.();
  }

  private load(file: string): void {
    if (!existsSync(file)) return;
    try {
      const f = JSON.parse(readFileSync(file, 'utf8')) as SessionsFile;
      if (f?.version !== 1 || !Array.isArray(f.sessions)) throw new Error('not a sessions file');
      const now = this.o.clock.now();
      const wall = this.o.clock.date().getTime();
      for (const e of f.sessions) {
        if (typeof e?.key !== 'string' || !SECRET_FORM.test(e.key)) continue;
        if (typeof e.csrfToken !== 'string' || !SECRET_FORM.test(e.csrfToken)) continue;
        if (typeof e.lastSeenAt !== 'number' || !Number.isFinite(e.lastSeenAt)) continue;
        const idle = wall - e.lastSeenAt;
        if (idle >= this.o.ttlMs || idle < -60_000) continue; // expired, or from a clock far ahead
        this.byHash.set(e.key, {
          key: e.key,
          csrfToken: e.csrfToken,
          user: 'admin',
          lastSeen: now - Math.max(0, idle),
        });
      }
    } catch (e) {
      this.o.log?.warn(`${file} is unreadable (${(e as Error).message}): every browser logs in again`);
      this.byHash.clear();
    }
  }
}

function digest(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}

// -- cookies (RFC 6265) -----------------------------------------------------------------

/** The value of one cookie from a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    let v = part.slice(eq + 1).trim();
    // RFC 6265 §4.1.1: a cookie-value may be quoted.
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    return v;
  }
  return undefined;
}

/**
 * The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's page
 * sends it), Path=/, and Secure only when the request came over TLS (a Secure cookie sent
 * over plain HTTP would never come back). No Max-Age: the browser drops it when it closes.
 */
export function sessionCookie(id: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secure ? '; Secure' : ''}`;
}

// -- login rate limit -------------------------------------------------------------------

export interface LoginLimits {
  /** Failures allowed per peer address within the window. */
  perAddress: number;
  /** Failures allowed from everyone together within the window. */
  global: number;
  windowMs: number;
  /** Addresses tracked at once (the oldest are forgotten first). */
  maxAddresses: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = { perAddress: 5, global: 30, windowMs: 60_000, maxAddresses: 4096 };

export type LoginAttempt =
  | { ok: true /** The password was right: the attempt no longer counts as a failure. */; succeeded(): void }
  | { ok: false; scope: 'address' | 'global'; retryAfterSec: number };

export class LoginLimiter {
  private readonly limits: LoginLimits;
  private readonly clock: Clock;
  private readonly byAddress = new Map<string, number[]>();
  private readonly all: number[] = [];

  constructor(clock: Clock, limits: Partial<LoginLimits> = {}) {
    this.clock = clock;
    this.limits = { ...DEFAULT_LOGIN_LIMITS, ...limits };
  }

  /** Starts an attempt: refused while the address (or everyone) is over its limit. */
  attempt(address: string): LoginAttempt {
    const now = this.clock.now();
    const since = now - this.limits.windowMs;
    prune(this.all, since);
    let mine = this.byAddress.get(address);
    if (mine) {
      prune(mine, since);
      if (mine.length === 0) this.byAddress.delete(address);
    }
    const wait = (oldest: number) => Math.max(1, Math.ceil((oldest + this.limits.windowMs - now) / 1000));
    if (mine && mine.length >= this.limits.perAddress) {
      return { ok: false, scope: 'address', retryAfterSec: wait(mine[mine.length - this.limits.perAddress]!) };
    }
    if (this.all.length >= this.limits.global) {
      return { ok: false, scope: 'global', retryAfterSec: wait(this.all[this.all.length - this.limits.global]!) };
    }
    if (!mine) {
      mine = [];
      this.byAddress.set(address, mine);
      if (this.byAddress.size > this.limits.maxAddresses) this.forgetOldest(since);
    }
    mine.push(now);
    this.all.push(now);
    const list = mine;
    return {
      ok: true,
      succeeded: () => {
        // A good password clears the address's failures; the global count forgets this attempt.
        list.length = 0;
        this.byAddress.delete(address);
        const i = this.all.lastIndexOf(now);
        if (i >= 0) this.all.splice(i, 1);
      },
    };
  }

  private forgetOldest(since: number): void {
    for (const [a, l] of this.byAddress) {
      prune(l, since);
      if (l.length === 0) this.byAddress.delete(a);
    }
    while (this.byAddress.size > this.limits.maxAddresses) this.byAddress.delete(this.byAddress.keys().next().value!);
  }
}

function prune(times: number[], since: number): void {
  let n = 0;
  while (n < times.length && times[n]! <= since) n++;
  if (n) times.splice(0, n);
}

// -- the admin account ------------------------------------------------------------------

interface AdminFile {
  version: 1;
  password: string;
  setAt: string;
}

export interface AdminAccountOptions {
  /** `ui.adminPassword` from the config (plain or scrypt hash); it wins over admin.json. */
  configured?: string;
  /** `<data>/admin.json`. */
  file: string;
  clock: Clock;
  log?: Logger;
  /** Makes the setup token (tests give their own). */
  makeSetupToken?: () => string;
  /** scrypt parameters for new hashes (tests use small ones). */
  hashParams?: { N: number; r: number; p: number };
}

/** Crockford base32 without I, L, O, U: nothing to confuse when typed from a console. */
const TOKEN_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A setup token like `7K2Q-MX9D-4RTB-HW3C` (80 random bits). */
export function makeSetupToken(): string {
  const bytes = randomBytes(16);
  let s = '';
  for (let i = 0; i < 16; i++) s += TOKEN_ALPHABET[bytes[i]! & 31];
  return s.match(/.{4}/g)!.join('-');
}

/** Case, spaces and dashes do not matter when a setup token is typed back. */
function normalizeSetupToken(t: string): string {
  return t.toUpperCase().replace(/[\s-]/g, '');
}

export class AdminAccount {
  private readonly o: AdminAccountOptions;
  private stored: string | undefined;
  private token: string | undefined;

  constructor(o: AdminAccountOptions) {
    this.o = o;
  }

  /** Reads the stored password; without one, makes the setup token. */
  load(): void {
    if (this.o.configured) {
      this.stored = this.o.configured;
      return;
    }
    if (existsSync(this.o.file)) {
      try {
        const f = JSON.parse(readFileSync(this.o.file, 'utf8')) as AdminFile;
        if (f?.version !== 1 || typeof f.password !== 'string' || !parsePasswordHash(f.password)) {
          throw new Error('not an admin password file');
        }
        this.stored = f.password;
        return;
      } catch (e) {
        const aside = `${this.o.file}.invalid-${this.o.clock.date().getTime()}`;
        renameSync(this.o.file, aside);
        this.o.log?.error(`${this.o.file} is unreadable (${(e as Error).message}); kept as ${aside}`);
      }
    }
    this.token = (this.o.makeSetupToken ?? makeSetupToken)();
  }

  /** True until an admin password exists. */
  get setupRequired(): boolean {
    return this.stored === undefined;
  }

  /** The one-time setup token while no password is set (print it on the console). */
  get setupToken(): string | undefined {
    return this.stored === undefined ? this.token : undefined;
  }

  /** Where the password comes from. */
  get source(): 'config' | 'file' | 'none' {
    return this.o.configured ? 'config' : this.stored ? 'file' : 'none';
  }

  async verify(password: string): Promise<boolean> {
    if (this.stored === undefined) {
      throw new BootboxError(
        'SETUP_REQUIRED',
        'no admin password is set yet: set one with the setup token printed on the console (POST /api/v1/setup)',
      );
    }
    if (password.length > MAX_PASSWORD_LENGTH) return false;
    return verifyPassword(this.stored, password);
  }

  /** True when `given` is the setup token (constant time). */
  setupTokenMatches(given: string): boolean {
    if (this.token === undefined || this.stored !== undefined) return false;
    return equalSecrets(Buffer.from(normalizeSetupToken(this.token)), Buffer.from(normalizeSetupToken(given)));
  }

  /**
   * Sets the first admin password (the setup token must have been checked). The token is
   * used up; the hash goes to admin.json (mode 0600, written to a temp file and renamed).
   */
  setPassword(password: string): void {
    const weak = passwordProblem(password);
    if (weak) throw new BootboxError('WEAK_PASSWORD', `"password" ${weak}`);
    if (this.stored !== undefined) {
      throw new BootboxError('SETUP_REFUSED', 'the admin password is already set');
    }
    this.store(password);
    this.token = undefined;
    this.o.log?.info(`admin password set (stored as a scrypt hash in ${this.o.file})`);
  }

  /**
   * Replaces the admin password (the caller has checked the current one). Refused while the
   * password comes from the config. If admin.json cannot be written (a full disk), the old
   * password stays in force and on disk.
   */
  changePassword(password: string): void {
    if (this.o.configured) {
      throw new BootboxError(
        'PASSWORD_FROM_CONFIG',
        'the admin password comes from ui.adminPassword in the config file: change it there and restart',
      );
    }
    if (this.stored === undefined) {
      throw new BootboxError('SETUP_REQUIRED', 'no admin password is set yet: set one with the setup token');
    }
    const weak = passwordProblem(password);
    if (weak) throw new BootboxError('WEAK_PASSWORD', `"newPassword" ${weak}`);
    this.store(password);
    this.o.log?.info(`admin password changed (stored as a scrypt hash in ${this.o.file})`);
  }

  /** Writes the hash to admin.json (temp file, 0600, renamed over), then uses it. */
  private store(password: string): void {
    const hash = hashPassword(password, this.o.hashParams);
    const file: AdminFile = { version: 1, password: hash, setAt: this.o.clock.date().toISOString() };
    const tmp = `${this.o.file}.tmp-${process.pid}`;
    try {
      // Written, flushed to the disk, then renamed over: a power cut leaves the old file or the new one.
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, `${JSON.stringify(file, null, 2)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      chmodSync(tmp, 0o600);
      renameSync(tmp, this.o.file);
      syncDir(dirname(this.o.file));
    } catch (e) {
      try {
        rmSync(tmp, { force: true });
      } catch {
        // what is left there is not the admin file
      }
      const code = (e as NodeJS.ErrnoException).code === 'ENOSPC' ? 'DISK_FULL' : 'INTERNAL';
      throw new BootboxError(
        code,
        `the admin password could not be saved to ${this.o.file} (${(e as Error).message}); the old one stays in force`,
      );
    }
    this.stored = hash;
  }
}

/** Why a new password is refused, or undefined when it is acceptable. */
export function passwordProblem(password: string): string | undefined {
  const n = [...password].length;
  if (n < MIN_PASSWORD_LENGTH) return `must be at least ${MIN_PASSWORD_LENGTH} characters long`;
  if (password.length > MAX_PASSWORD_LENGTH) return `must be at most ${MAX_PASSWORD_LENGTH} characters long`;
  if (password.trim().length === 0) return 'must not be only spaces';
  return undefined;
}

/** Flushes a directory's entries (a rename in it) to the disk; not every file system allows it. */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // the rename stands; only its durability across a power cut is not forced
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
