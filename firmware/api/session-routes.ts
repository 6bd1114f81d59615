/**
 * The web UI's login:
 *
 *   GET    /api/v1/session   {authenticated, user?, csrfToken?, expiresAt?, setupRequired}
 *   POST   /api/v1/session   {password} → {csrfToken, expiresAt, user} + Set-Cookie bootbox_session
 *   DELETE /api/v1/session   logout: the session is dropped and the cookie cleared
 *   POST   /api/v1/setup     {token, password}: the first admin password (then logged in)
 *   POST   /api/v1/session/password  {currentPassword, newPassword}: every session ends, this
 *                                    browser gets a new one
 */
import { BootboxError } from '../core/errors.ts';
import {
  type AdminAccount,
  clearedSessionCookie,
  type LoginLimiter,
  MAX_PASSWORD_LENGTH,
  type SessionStore,
  sessionCookie,
} from './auth.ts';
import { errorBody, type Route, type RouteContext, type RouteResult } from './route.ts';

export interface SessionRoutesOptions {
  admin: AdminAccount;
  sessions: SessionStore;
  limiter: LoginLimiter;
}

export function sessionRoutes(o: SessionRoutesOptions): Route[] {
  const { admin, sessions, limiter } = o;

  const loggedIn = (ctx: RouteContext, status = 200): RouteResult => {
    // A cookie the browser still holds is replaced: its session (if any) goes.
    if (ctx.caller.kind === 'session') sessions.end(ctx.caller.session);
    const s = sessions.create();
    return {
      status,
      body: { csrfToken: s.csrfToken, expiresAt: sessions.expiresAt(s).toISOString(), user: 'admin' },
      headers: { 'Set-Cookie': sessionCookie(s.id, ctx.secure) },
      actor: 'admin',
    };
  };

  const limited = (ctx: RouteContext) => {
    const a = limiter.attempt(ctx.peer);
    if (a.ok) return a;
    const r = errorBody(
      'RATE_LIMITED',
      a.scope === 'address'
        ? `too many failed attempts from ${ctx.peer}: try again in ${a.retryAfterSec} s`
        : `too many failed attempts: try again in ${a.retryAfterSec} s`,
    );
    r.headers = { 'Retry-After': String(a.retryAfterSec) };
    return r;
  };

  return [
    {
      method: 'GET',
      path: '/api/v1/session',
      auth: false,
      public: true,
      summary: 'Whether this browser is logged in (and its CSRF token), and whether the box still needs its setup',
      responseDescription:
        '{authenticated, user?, via?, csrfToken?, expiresAt?, setupRequired, passwordFrom?: "config" | "file"}',
      handler: ({ caller }) => {
        const body: Record<string, unknown> = { authenticated: false, setupRequired: admin.setupRequired };
        if (caller.kind === 'session') {
          Object.assign(body, {
            authenticated: true,
            user: 'admin',
            via: 'session',
            csrfToken: caller.session.csrfToken,
            expiresAt: sessions.expiresAt(caller.session).toISOString(),
          });
        } else if (caller.kind === 'token') {
          Object.assign(body, { authenticated: true, via: 'token' });
        } else if (caller.expired) {
          body.expired = true;
        }
        // Where the admin password is kept (the UI offers to change it only in the file).
        if (body.authenticated && admin.source !== 'none') body.passwordFrom = admin.source;
        return { status: 200, body };
      },
    },
    {
      method: 'POST',
      path: '/api/v1/session',
      auth: false,
      public: true,
      summary: 'Log in with the admin password: sets the session cookie and returns the CSRF token',
      requestSchema: {
        type: 'object',
        properties: { password: { type: 'string', minLength: 1, maxLength: MAX_PASSWORD_LENGTH } },
        required: ['password'],
        additionalProperties: false,
      },
      responseDescription:
        '{csrfToken, expiresAt, user: "admin"} and Set-Cookie: bootbox_session (HttpOnly, SameSite=Strict)',
      handler: async (ctx) => {
        // Every answer below is rate limited (and so is what the audit log records of it).
        const attempt = limited(ctx);
        if (!('succeeded' in attempt)) return attempt;
        if (admin.setupRequired) {
          throw new BootboxError(
            'SETUP_REQUIRED',
            'no admin password is set yet: set one with the setup token printed on the console',
          );
        }
        const { password } = ctx.body as { password: string };
        const generation = sessions.generation;
        if (!(await admin.verify(password))) return errorBody('INVALID_CREDENTIALS', 'wrong password');
        // The password changed while this one was being checked (against the old hash).
        if (sessions.generation !== generation) {
          return errorBody('INVALID_CREDENTIALS', 'the admin password has just changed: log in with the new one');
        }
        attempt.succeeded();
        return loggedIn(ctx);
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/session',
      auth: true,
      summary: 'Log out: the session ends and its cookie is cleared',
      responseDescription: '{loggedOut: true}',
      handler: (ctx) => {
        if (ctx.caller.kind === 'session') sessions.end(ctx.caller.session);
        return {
          status: 200,
          body: { loggedOut: ctx.caller.kind === 'session' },
          headers: { 'Set-Cookie': clearedSessionCookie(ctx.secure) },
        };
      },
    },
    {
      method: 'POST',
      path: '/api/v1/session/password',
      auth: true,
      summary:
        'Change the admin password (needs the current one): every session ends, and a browser that asked gets a new one',
      requestSchema: {
        type: 'object',
        properties: {
          currentPassword: { type: 'string', minLength: 1, maxLength: MAX_PASSWORD_LENGTH },
          newPassword: { type: 'string', maxLength: MAX_PASSWORD_LENGTH },
        },
        required: ['currentPassword', 'newPassword'],
        additionalProperties: false,
      },
      responseDescription:
        '{changed: true, sessionsEnded} and, from a browser session, the new session as POST /api/v1/session',
      handler: async (ctx) => {
        // A stolen session cookie must not turn into the password: the current one is asked
        // for, and wrong guesses count against the login limit.
        if (admin.source === 'config') {
          throw new BootboxError(
            'PASSWORD_FROM_CONFIG',
            'the admin password comes from ui.adminPassword in the config file: change it there and restart',
          );
        }
        const attempt = limited(ctx);
        if (!('succeeded' in attempt)) return attempt;
        const { currentPassword, newPassword } = ctx.body as { currentPassword: string; newPassword: string };
        if (!(await admin.verify(currentPassword))) {
          return errorBody('WRONG_PASSWORD', '"currentPassword" is not the admin password: nothing was changed');
        }
        attempt.succeeded();
        if (newPassword === currentPassword) {
          throw new BootboxError('WEAK_PASSWORD', '"newPassword" is the same as the current password');
        }
        admin.changePassword(newPassword);
        const sessionsEnded = sessions.clear();
        if (ctx.caller.kind !== 'session') return { status: 200, body: { changed: true, sessionsEnded } };
        const s = sessions.create();
        return {
          status: 200,
          body: {
            changed: true,
            sessionsEnded,
            csrfToken: s.csrfToken,
            expiresAt: sessions.expiresAt(s).toISOString(),
            user: 'admin',
          },
          headers: { 'Set-Cookie': sessionCookie(s.id, ctx.secure) },
        };
      },
    },
    {
      method: 'POST',
      path: '/api/v1/setup',
      auth: false,
      public: true,
      summary: 'Set the first admin password with the setup token printed on the console (then logged in)',
      requestSchema: {
        type: 'object',
        properties: {
          token: { type: 'string', minLength: 1, maxLength: 64 },
          password: { type: 'string', maxLength: MAX_PASSWORD_LENGTH },
        },
        required: ['token', 'password'],
        additionalProperties: false,
      },
      responseDescription: 'as POST /api/v1/session',
      handler: (ctx) => {
        const attempt = limited(ctx);
        if (!('succeeded' in attempt)) return attempt;
        if (!admin.setupRequired) {
          return errorBody('SETUP_REFUSED', 'the admin password is already set: log in instead');
        }
        const { token, password } = ctx.body as { token: string; password: string };
        if (!admin.setupTokenMatches(token)) {
          return errorBody(
            'SETUP_REFUSED',
            'wrong setup token: use the one printed on the console and in the "bootbox ready" line',
          );
        }
        attempt.succeeded();
        admin.setPassword(password);
        return loggedIn(ctx);
      },
    },
  ];
}
