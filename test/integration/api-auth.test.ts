/**
 * The API's front door, driven through ApiServer.inject (the same code path as a socket):
 * the setup token, logins and their rate limit, sessions (cookie, CSRF, idle expiry), bearer
 * tokens, ui.openReadOnly, schema checks, the audit trail, settings, the web UI's files, and
 * the security headers on every answer. One test goes over a real socket on loopback.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { AdminAccount } from '../../firmware/api/auth.ts';
import { imageRoutes } from '../../firmware/api/images-routes.ts';
import { machineRoutes } from '../../firmware/api/machines-routes.ts';
import { ApiServer, type InjectResponse, SECURITY_HEADERS } from '../../firmware/api/server.ts';
import { settingsRoutes } from '../../firmware/api/settings-routes.ts';
import { defaultConfig, mergeConfig } from '../../firmware/config/schema.ts';
import { ManualClock } from '../../firmware/core/clock.ts';
import { BootboxError } from '../../firmware/core/errors.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import type { Catalog, CatalogImage } from '../../firmware/images/catalog.ts';
import type { Uploads } from '../../firmware/images/uploads.ts';
import { AuditLog } from '../../firmware/services/audit.ts';
import { MachineRegistry } from '../../firmware/services/machines.ts';
import { request, startApi } from '../helpers/api-server.ts';

const TOKEN = 'api-auth-test-token-0123456789';
const SETUP_TOKEN = 'ABCD-EFGH-JKMN-PQRS';
const PASSWORD = 'correct horse battery';
const MAC = '52:54:00:aa:00:01';
const PRIVATE_PEER = '10.77.0.50';
const UPLINK_PEER = '192.0.2.7';
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

interface BoxOptions {
  openReadOnly?: boolean;
  hostNames?: string[];
  configured?: string;
}

function tmpdir(t: ExecutionContext): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'bootbox-api-auth-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A catalog with one image; only what the image routes call. */
function catalogStub(): Catalog {
  const img = {
    id: 'install/Lab/Win A',
    name: 'Win A',
    group: 'Lab',
    kind: 'install',
    format: 'wim',
    description: '',
    architecture: 'x64',
    size: 1,
    source: { file: 'Lab/a.wim' },
    enabled: true,
    available: true,
  } as unknown as CatalogImage;
  return {
    list: () => [img],
    groups: () => [],
    problems: () => [],
    volumeState: () => ({ state: 'attached' }),
    lastScan: () => undefined,
    get: (id: string) => (id === img.id || id === img.name ? img : undefined),
    update: (_id: string, patch: Partial<CatalogImage>) => Object.assign(img, patch),
  } as unknown as Catalog;
}

async function makeBox(t: ExecutionContext, o: BoxOptions = {}) {
  const dir = tmpdir(t);
  const clock = new ManualClock();
  const admin = new AdminAccount({
    ...(o.configured ? { configured: o.configured } : {}),
    file: path.join(dir, 'admin.json'),
    clock,
    makeSetupToken: () => SETUP_TOKEN,
    hashParams: { N: 1024, r: 8, p: 1 },
  });
  admin.load();
  const registry = new MachineRegistry({
    file: path.join(dir, 'machines.json'),
    namingPattern: 'NODE%03#',
    clock,
    log: silentLogger,
    events: { emit() {} },
  });
  await registry.load();
  registry.create({ mac: MAC, arch: 'bios', firmware: 'bios' });
  registry.apply(MAC, { type: 'seen', policy: 'approve' });
  const audit = new AuditLog({ file: path.join(dir, 'audit.json'), clock });
  await audit.load();
  t.teardown(async () => {
    await registry.close();
    await audit.close();
  });
  const uiDir = path.join(dir, 'ui');
  fs.mkdirSync(path.join(uiDir, 'assets'), { recursive: true });
  fs.writeFileSync(
    path.join(uiDir, 'index.html'),
    '<!doctype html><title>bootbox</title><script src="/assets/app-4F2KQZ7A.js"></script>',
  );
  fs.writeFileSync(path.join(uiDir, 'assets', 'app-4F2KQZ7A.js'), 'console.log("ui")');
  fs.writeFileSync(path.join(uiDir, 'assets', 'style.css'), 'body{margin:0}');
  fs.writeFileSync(path.join(uiDir, '.env'), 'SECRET-DOTFILE');
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'SECRET-OUTSIDE');
  fs.symlinkSync(path.join(dir, 'secret.txt'), path.join(uiDir, 'assets', 'link.txt'));
  const base = mergeConfig(defaultConfig(), {
    dataDir: dir,
    privateInterface: 'priv',
    api: { tokens: [TOKEN] },
    mqtt: {
      url: 'mqtt://box:hunter2hunter2@broker.example:1883',
      password: 'mqtt-secret',
      broker: { users: { node: 'pw-of-node' } },
    },
    ui: { adminPassword: 'plain-admin-password' },
  });
  const api = new ApiServer({
    port: 0,
    hosts: [],
    tokens: [TOKEN],
    admin,
    clock,
    audit,
    uiDir,
    openReadOnly: o.openReadOnly ?? false,
    ...(o.hostNames ? { hostNames: o.hostNames } : {}),
    isPrivatePeer: (a) => a.startsWith('10.77.0.'),
    sessionTtlMin: 60,
    version: '9.9.9',
    events: () => () => {},
    routes: [
      {
        method: 'GET',
        path: '/api/v1/health',
        auth: false,
        public: true,
        summary: 'health',
        handler: () => ({ status: 200, body: { ok: true } }),
      },
      ...machineRoutes(registry, () => ['rocky-9']),
      ...imageRoutes(catalogStub(), {} as Uploads),
      ...settingsRoutes({
        file: path.join(dir, 'settings.json'),
        base,
        running: base,
        overlay: {},
        fixed: ['dhcp.mode'],
      }),
    ],
  });
  return { api, clock, admin, audit, dir, uiDir };
}

type Box = Awaited<ReturnType<typeof makeBox>>;

// biome-ignore lint/suspicious/noExplicitAny: tests read into JSON answers
const j = (r: InjectResponse): any => r.json;

async function setUp(b: Box): Promise<void> {
  const r = await b.api.inject({
    method: 'POST',
    url: '/api/v1/setup',
    body: { token: SETUP_TOKEN, password: PASSWORD },
  });
  if (r.status !== 200) throw new Error(`setup: ${r.status} ${r.body}`);
}

async function login(b: Box, peer = '127.0.0.1'): Promise<{ cookie: string; csrf: string; res: InjectResponse }> {
  const res = await b.api.inject({
    method: 'POST',
    url: '/api/v1/session',
    body: { password: PASSWORD },
    remoteAddress: peer,
  });
  if (res.status !== 200) throw new Error(`login: ${res.status} ${res.body}`);
  const cookie = res.headers['set-cookie']!.split(';')[0]!;
  return { cookie, csrf: j(res).csrfToken, res };
}

test('first start: the setup token sets the admin password once, stored as a scrypt hash (0600)', async (t) => {
  const b = await makeBox(t);
  t.true(b.admin.setupRequired);
  t.is(b.admin.setupToken, SETUP_TOKEN);
  t.deepEqual(j(await b.api.inject({ method: 'GET', url: '/api/v1/session' })), {
    authenticated: false,
    setupRequired: true,
  });
  const early = await b.api.inject({ method: 'POST', url: '/api/v1/session', body: { password: PASSWORD } });
  t.is(early.status, 409);
  t.is(j(early).error.code, 'SETUP_REQUIRED');

  const wrong = await b.api.inject({
    method: 'POST',
    url: '/api/v1/setup',
    body: { token: 'WXYZ-WXYZ-WXYZ-WXYZ', password: PASSWORD },
  });
  t.is(wrong.status, 403);
  t.is(j(wrong).error.code, 'SETUP_REFUSED');
  const weak = await b.api.inject({
    method: 'POST',
    url: '/api/v1/setup',
    body: { token: SETUP_TOKEN, password: 'short' },
  });
  t.is(weak.status, 400);
  t.is(j(weak).error.code, 'WEAK_PASSWORD');
  t.regex(j(weak).error.message, /"password" must be at least 10 characters/);
  t.true(b.admin.setupRequired, 'a refused password does not use the token up');

  // Typed back from the console: case and dashes do not matter.
  const ok = await b.api.inject({
    method: 'POST',
    url: '/api/v1/setup',
    body: { token: 'abcdefghjkmnpqrs', password: PASSWORD },
  });
  t.is(ok.status, 200, ok.body);
  t.regex(ok.headers['set-cookie']!, /^bootbox_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/$/);
  t.false(b.admin.setupRequired);
  t.is(b.admin.setupToken, undefined);

  const file = path.join(b.dir, 'admin.json');
  t.is(fs.statSync(file).mode & 0o777, 0o600);
  const stored = fs.readFileSync(file, 'utf8');
  t.regex(JSON.parse(stored).password, /^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
  t.false(stored.includes(PASSWORD));

  const again = await b.api.inject({
    method: 'POST',
    url: '/api/v1/setup',
    body: { token: SETUP_TOKEN, password: 'another password!' },
  });
  t.is(again.status, 403);
  t.is(j(again).error.code, 'SETUP_REFUSED');

  // After a restart the stored hash is used and no setup token is made.
  const restarted = new AdminAccount({ file, clock: b.clock, makeSetupToken: () => 'NOPE' });
  restarted.load();
  t.false(restarted.setupRequired);
  t.is(restarted.setupToken, undefined);
  t.true(await restarted.verify(PASSWORD));
  t.false(await restarted.verify(`${PASSWORD}x`));
});

test('a configured ui.adminPassword (plain or hash) needs no setup', async (t) => {
  const b = await makeBox(t, { configured: 'configured-password' });
  t.false(b.admin.setupRequired);
  t.is(b.admin.setupToken, undefined);
  t.is(j(await b.api.inject({ method: 'GET', url: '/api/v1/session' })).setupRequired, false);
  const r = await b.api.inject({ method: 'POST', url: '/api/v1/session', body: { password: 'configured-password' } });
  t.is(r.status, 200);
});

test('login: the right password gives the session cookie and CSRF token; a wrong one is refused', async (t) => {
  const b = await makeBox(t);
  await setUp(b);
  const bad = await b.api.inject({ method: 'POST', url: '/api/v1/session', body: { password: 'not the password' } });
  t.is(bad.status, 401);
  t.is(j(bad).error.code, 'INVALID_CREDENTIALS');
  t.false('set-cookie' in bad.headers);
  const missing = await b.api.inject({ method: 'POST', url: '/api/v1/session', body: {} });
  t.is(missing.status, 400);
  t.regex(j(missing).error.message, /"password" is required/);

  const { cookie, csrf, res } = await login(b);
  t.deepEqual(Object.keys(j(res)).sort(), ['csrfToken', 'expiresAt', 'user']);
  t.is(j(res).user, 'admin');
  t.regex(csrf, /^[A-Za-z0-9_-]{43}$/);
  t.is(j(res).expiresAt, new Date(b.clock.date().getTime() + 60 * 60_000).toISOString());
  t.regex(res.headers['set-cookie']!, /^bootbox_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/$/);
  t.notRegex(res.headers['set-cookie']!, /Secure/, 'plain HTTP: a Secure cookie would never come back');
  t.not(cookie.split('=')[1], csrf);

  const s = j(await b.api.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } }));
  t.like(s, { authenticated: true, user: 'admin', csrfToken: csrf, setupRequired: false });
  const machines = await b.api.inject({ method: 'GET', url: '/api/v1/machines', headers: { cookie } });
  t.is(machines.status, 200, 'GETs with the session cookie are authenticated');
  const viaToken = j(
    await b.api.inject({ method: 'GET', url: '/api/v1/session', headers: { authorization: `Bearer ${TOKEN}` } }),
  );
  t.like(viaToken, { authenticated: true, via: 'token' });
  t.is(viaToken.csrfToken, undefined);
});

test('logins are rate limited per address and for everyone, with Retry-After', async (t) => {
  const b = await makeBox(t);
  await setUp(b);
  const attempt = (peer: string, password = 'wrong password!') =>
    b.api.inject({ method: 'POST', url: '/api/v1/session', body: { password }, remoteAddress: peer });
  for (let i = 0; i < 5; i++) t.is((await attempt('10.77.0.9')).status, 401);
  const limited = await attempt('10.77.0.9');
  t.is(limited.status, 429);
  t.is(j(limited).error.code, 'RATE_LIMITED');
  const retry = Number(limited.headers['retry-after']);
  t.true(retry >= 1 && retry <= 60, String(retry));
  t.is((await attempt('10.77.0.9', PASSWORD)).status, 429, 'even the right password waits');
  t.is((await attempt('::ffff:10.77.0.10', PASSWORD)).status, 200, 'another address is not held up');
  b.clock.advance(retry * 1000);
  t.is((await attempt('10.77.0.9', PASSWORD)).status, 200, 'allowed again after Retry-After');

  // Everyone together: 30 failures a minute, from any number of addresses.
  b.clock.advance(61_000);
  for (let i = 0; i < 30; i++) t.is((await attempt(`10.77.1.${i}`)).status, 401);
  const global = await attempt('10.77.2.1', PASSWORD);
  t.is(global.status, 429);
  t.regex(j(global).error.message, /too many failed attempts: try again in \d+ s/);
  // Failed logins are audited (bounded by the limit); refusals by the limiter are not.
  const entries = b.audit.list({ command: 'POST /api/v1/session', limit: 1000 });
  t.is(entries.filter((e) => e.code === 'INVALID_CREDENTIALS').length, 35);
  t.is(entries.filter((e) => e.code === 'RATE_LIMITED').length, 0);
  t.is(entries.filter((e) => e.result === 'ok' && e.identity === 'admin').length, 2);
});

test('password change: needs the current password and CSRF; ends every session; the new password is stored', async (t) => {
  const b = await makeBox(t);
  await setUp(b);
  const me = await login(b);
  const other = await login(b, '10.77.0.20');
  const NEW = 'a brand new passphrase';
  const change = (body: unknown, headers: Record<string, string> = { cookie: me.cookie, 'x-csrf-token': me.csrf }) =>
    b.api.inject({ method: 'POST', url: '/api/v1/session/password', body, headers });
  const before = fs.readFileSync(path.join(b.dir, 'admin.json'), 'utf8');
  const state = await b.api.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie: me.cookie } });
  t.is(j(state).passwordFrom, 'file');
  t.is(
    j(await b.api.inject({ method: 'GET', url: '/api/v1/session' })).passwordFrom,
    undefined,
    'not told to strangers',
  );

  t.is((await change({ currentPassword: PASSWORD, newPassword: NEW }, {})).status, 401, 'no credentials');
  const noCsrf = await change({ currentPassword: PASSWORD, newPassword: NEW }, { cookie: me.cookie });
  t.is(j(noCsrf).error.code, 'CSRF_FAILED');
  const wrong = await change({ currentPassword: 'not the password', newPassword: NEW });
  t.is(wrong.status, 403);
  t.is(j(wrong).error.code, 'WRONG_PASSWORD');
  t.regex(j(wrong).error.message, /"currentPassword"/);
  const weak = await change({ currentPassword: PASSWORD, newPassword: 'short' });
  t.is(j(weak).error.code, 'WEAK_PASSWORD');
  t.regex(j(weak).error.message, /"newPassword" must be at least 10 characters/);
  const same = await change({ currentPassword: PASSWORD, newPassword: PASSWORD });
  t.is(j(same).error.code, 'WEAK_PASSWORD');
  const missing = await change({ currentPassword: PASSWORD });
  t.is(missing.status, 400);
  t.regex(j(missing).error.message, /newPassword/);
  t.is(fs.readFileSync(path.join(b.dir, 'admin.json'), 'utf8'), before, 'nothing changed on disk');
  t.is((await b.api.inject({ method: 'GET', url: '/api/v1/machines', headers: { cookie: other.cookie } })).status, 200);

  const ok = await change({ currentPassword: PASSWORD, newPassword: NEW });
  t.is(ok.status, 200, ok.body);
  // the setup's session, this one and the other browser's
  t.like(j(ok), { changed: true, sessionsEnded: 3, user: 'admin' });
  const fresh = ok.headers['set-cookie']!.split(';')[0]!;
  t.not(fresh, me.cookie);
  // every earlier session has ended, the one handed back works
  for (const old of [me.cookie, other.cookie]) {
    t.is((await b.api.inject({ method: 'GET', url: '/api/v1/machines', headers: { cookie: old } })).status, 401);
  }
  const approve = await b.api.inject({
    method: 'POST',
    url: `/api/v1/machines/${MAC}/approve`,
    headers: { cookie: fresh, 'x-csrf-token': j(ok).csrfToken },
  });
  t.is(approve.status, 200, approve.body);
  const oldLogin = await b.api.inject({ method: 'POST', url: '/api/v1/session', body: { password: PASSWORD } });
  t.is(oldLogin.status, 401);
  const newLogin = await b.api.inject({ method: 'POST', url: '/api/v1/session', body: { password: NEW } });
  t.is(newLogin.status, 200);
  const stored = fs.readFileSync(path.join(b.dir, 'admin.json'), 'utf8');
  t.false(stored.includes(NEW));
  t.is(fs.statSync(path.join(b.dir, 'admin.json')).mode & 0o777, 0o600);
  const restarted = new AdminAccount({ file: path.join(b.dir, 'admin.json'), clock: b.clock });
  restarted.load();
  t.true(await restarted.verify(NEW));

  // a script with a bearer token may change it too; it gets no cookie
  const byToken = await b.api.inject({
    method: 'POST',
    url: '/api/v1/session/password',
    body: { currentPassword: NEW, newPassword: PASSWORD },
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  t.is(byToken.status, 200, byToken.body);
  t.false('set-cookie' in byToken.headers);
  // audited, without the passwords
  const entries = b.audit.list({ command: 'POST /api/v1/session/password', limit: 100 });
  t.deepEqual(
    entries.map((e) => e.code ?? e.result),
    // newest first
    ['ok', 'ok', 'INVALID_REQUEST', 'WEAK_PASSWORD', 'WEAK_PASSWORD', 'WRONG_PASSWORD', 'CSRF_FAILED'],
  );
  t.false(JSON.stringify(entries).includes(NEW));
});

test('event streams end with their session: after a password change or a logout; token streams stay', async (t) => {
  const b = await makeBox(t);
  await setUp(b);
  const { api, port } = await startApi(t, { tokens: [TOKEN], admin: b.admin, events: () => () => {}, routes: [] });
  // Logged in through this server (its own sessions), over the socket.
  const loginHere = async () => {
    const r = await api.inject({ method: 'POST', url: '/api/v1/session', body: { password: PASSWORD } });
    return { cookie: r.headers['set-cookie']!.split(';')[0]!, csrf: j(r).csrfToken as string };
  };
  const open = (headers: Record<string, string>) =>
    new Promise<{ ended: Promise<void> }>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/api/v1/events', headers }, (res) => {
        const ended = new Promise<void>((done) => res.on('end', done).on('close', done));
        res.once('data', () => resolve({ ended }));
        res.resume();
      });
      req.on('error', reject);
      t.teardown(() => req.destroy());
    });
  const within = (p: Promise<void>, ms: number) =>
    Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

  const a = await loginHere();
  const other = await loginHere();
  const streamA = await open({ cookie: a.cookie });
  const streamToken = await open({ authorization: `Bearer ${TOKEN}` });
  t.is(api.status().streams, 2);
  const change = await api.inject({
    method: 'POST',
    url: '/api/v1/session/password',
    body: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase' },
    headers: { cookie: other.cookie, 'x-csrf-token': other.csrf },
  });
  t.is(change.status, 200, change.body);
  t.true(await within(streamA.ended, 2000), "the other browser's stream ended with its session");
  t.false(await within(streamToken.ended, 300), 'a token stream is not a session');

  const fresh = change.headers['set-cookie']!.split(';')[0]!;
  const streamFresh = await open({ cookie: fresh });
  const out = await api.inject({
    method: 'DELETE',
    url: '/api/v1/session',
    headers: { cookie: fresh, 'x-csrf-token': j(change).csrfToken },
  });
  t.is(out.status, 200);
  t.true(await within(streamFresh.ended, 2000), 'logout ends its stream');
  t.is(api.status().streams, 1);
});

test('sessions outlive a restart, kept as hashes in sessions.json (0600); ended and idle-expired ones do not', async (t) => {
  const dir = tmpdir(t);
  const clock = new ManualClock();
  const admin = new AdminAccount({ configured: PASSWORD, file: path.join(dir, 'admin.json'), clock });
  admin.load();
  const file = path.join(dir, 'sessions.json');
  const box = () =>
    new ApiServer({
      port: 0,
      hosts: [],
      tokens: [TOKEN],
      admin,
      clock,
      sessionTtlMin: 60,
      sessionsFile: file,
      routes: [],
    });
  const signIn = async (api: ApiServer) => {
    const r = await api.inject({ method: 'POST', url: '/api/v1/session', body: { password: PASSWORD } });
    return { cookie: r.headers['set-cookie']!.split(';')[0]!, csrf: j(r).csrfToken as string };
  };
  const state = async (api: ApiServer, cookie: string) =>
    j(await api.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } }));

  const a = box();
  const idle = await signIn(a);
  const out = await signIn(a);
  const used = await signIn(a);
  const bye = await a.inject({
    method: 'DELETE',
    url: '/api/v1/session',
    headers: { cookie: out.cookie, 'x-csrf-token': out.csrf },
  });
  t.is(bye.status, 200);
  t.is(fs.statSync(file).mode & 0o777, 0o600);
  const stored = fs.readFileSync(file, 'utf8');
  for (const c of [idle, out, used]) t.false(stored.includes(c.cookie.split('=')[1]!), 'no cookie value on disk');
  t.is(JSON.parse(stored).sessions.length, 2, 'the logged-out one is gone at once');
  clock.advance(10 * 60_000);
  t.true((await state(a, used.cookie)).authenticated);
  await a.stop();

  // 55 minutes later the box is back: `used` was idle 55 minutes, `idle` 65.
  clock.advance(55 * 60_000);
  const b = box();
  t.like(await state(b, used.cookie), { authenticated: true, csrfToken: used.csrf });
  t.false((await state(b, idle.cookie)).authenticated);
  t.false((await state(b, out.cookie)).authenticated);
  const change = await b.inject({
    method: 'DELETE',
    url: '/api/v1/session',
    headers: { cookie: used.cookie, 'x-csrf-token': 'not-the-token' },
  });
  t.is(change.status, 403, 'its CSRF token still guards changes');

  // A damaged file: everybody logs in again, nothing else breaks.
  await b.stop();
  fs.writeFileSync(file, '{"version": 1, "sessions": ');
  const c = box();
  t.false((await state(c, used.cookie)).authenticated);
  t.true((await state(c, (await signIn(c)).cookie)).authenticated);
});

test('password change: wrong current passwords count against the login limit', async (t) => {
  const b = await makeBox(t);
  await setUp(b);
  const me = await login(b, '10.77.0.9');
  const change = (currentPassword: string) =>
    b.api.inject({
      method: 'POST',
      url: '/api/v1/session/password',
      body: { currentPassword, newPassword: 'a brand new passphrase' },
      headers: { cookie: me.cookie, 'x-csrf-token': me.csrf },
      remoteAddress: '10.77.0.9',
    });
  for (let i = 0; i < 5; i++) t.is((await change(`guess number ${i}`)).status, 403);
  const limited = await change(PASSWORD);
  t.is(limited.status, 429, 'even the right password waits');
  t.truthy(limited.headers['retry-after']);
});

test('password change: refused while the password comes from the config, and when admin.json cannot be written', async (t) => {
  const configured = await makeBox(t, { configured: 'configured-password' });
  const c = await configured.api.inject({
    method: 'POST',
    url: '/api/v1/session',
    body: { password: 'configured-password' },
  });
  const r = await configured.api.inject({
    method: 'POST',
    url: '/api/v1/session/password',
    body: { currentPassword: 'configured-password', newPassword: 'a brand new passphrase' },
    headers: { cookie: c.headers['set-cookie']!.split(';')[0]!, 'x-csrf-token': j(c).csrfToken },
  });
  t.is(r.status, 409);
  t.is(j(r).error.code, 'PASSWORD_FROM_CONFIG');
  t.regex(j(r).error.message, /ui\.adminPassword/);
  const state = await configured.api.inject({
    method: 'GET',
    url: '/api/v1/session',
    headers: { cookie: c.headers['set-cookie']!.split(';')[0]! },
  });
  t.is(j(state).passwordFrom, 'config', 'the UI can tell before offering a change');

  // the data directory turns read-only (a failing or full disk): the old password stays
  const b = await makeBox(t);
  await setUp(b);
  const me = await login(b);
  const file = path.join(b.dir, 'admin.json');
  const before = fs.readFileSync(file, 'utf8');
  // a directory where the temp file would go makes the write fail, as a full disk would
  fs.mkdirSync(`${file}.tmp-${process.pid}`);
  const failed = await b.api.inject({
    method: 'POST',
    url: '/api/v1/session/password',
    body: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase' },
    headers: { cookie: me.cookie, 'x-csrf-token': me.csrf },
  });
  t.is(failed.status, 500);
  t.regex(j(failed).error.message, /could not be saved .*the old one stays in force/);
  t.is(fs.readFileSync(file, 'utf8'), before);
  t.true(await b.admin.verify(PASSWORD));
  t.is(
    (await b.api.inject({ method: 'GET', url: '/api/v1/machines', headers: { cookie: me.cookie } })).status,
    200,
    'sessions kept',
  );
});

test('changes made with the session cookie need its X-CSRF-Token', async (t) => {
  const b = await makeBox(t);
  await setUp(b);
  const { cookie, csrf } = await login(b);
  const approve = (headers: Record<string, string>) =>
    b.api.inject({ method: 'POST', url: `/api/v1/machines/${MAC}/approve`, headers });
  const none = await approve({ cookie });
  t.is(none.status, 403);
  t.is(j(none).error.code, 'CSRF_FAILED');
  t.regex(j(none).error.message, /X-CSRF-Token/);
  const wrong = await approve({ cookie, 'x-csrf-token': `${csrf.slice(0, -1)}A` });
  t.is(wrong.status, 403);
  const other = await login(b);
  t.is((await approve({ cookie, 'x-csrf-token': other.csrf })).status, 403, "another session's token");
  t.is((await approve({ 'x-csrf-token': csrf })).status, 401, 'a CSRF token alone is no credential');
  const ok = await approve({ cookie, 'X-CSRF-Token': csrf });
  t.is(ok.status, 200, ok.body);
  t.is(j(ok).machine.state, 'approved');
  const [last, ...before] = b.audit.list({ command: 'POST /api/v1/machines/{id}/approve' });
  t.like(last, { via: 'api', identity: 'admin', result: 'ok', targets: { id: MAC } });
  t.deepEqual(
    before.map((e) => e.code),
    ['CSRF_FAILED', 'CSRF_FAILED', 'CSRF_FAILED'],
  );
});

test('an idle session expires: 401 "session expired: log in again", and the cookie is cleared', async (t) => {
  const b = await makeBox(t);
  await setUp(b);
  const { cookie, csrf } = await login(b);
  const get = () => b.api.inject({ method: 'GET', url: '/api/v1/machines', headers: { cookie } });
  // Each request keeps it alive for another ttl.
  b.clock.advance(59 * 60_000);
  t.is((await get()).status, 200);
  b.clock.advance(59 * 60_000);
  t.is((await get()).status, 200);
  b.clock.advance(60 * 60_000);
  const expired = await get();
  t.is(expired.status, 401);
  t.is(j(expired).error.code, 'SESSION_EXPIRED');
  t.is(j(expired).error.message, 'session expired: log in again');
  t.regex(expired.headers['set-cookie']!, /^bootbox_session=; .*Max-Age=0/);
  const change = await b.api.inject({
    method: 'POST',
    url: `/api/v1/machines/${MAC}/approve`,
    headers: { cookie, 'x-csrf-token': csrf },
  });
  t.is(change.status, 401);
  t.is(j(change).error.code, 'SESSION_EXPIRED');
  const s = j(await b.api.inject({ method: 'GET', url: '/api/v1/session', headers: { cookie } }));
  t.like(s, { authenticated: false, expired: true });
});

test('logout drops the session (with CSRF) and clears the cookie', async (t) => {
  const b = await makeBox(t);
  await setUp(b);
  const { cookie, csrf } = await login(b);
  t.is((await b.api.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie } })).status, 403);
  const out = await b.api.inject({
    method: 'DELETE',
    url: '/api/v1/session',
    headers: { cookie, 'x-csrf-token': csrf },
  });
  t.is(out.status, 200);
  t.regex(out.headers['set-cookie']!, /^bootbox_session=; HttpOnly; SameSite=Strict; Path=\/; Max-Age=0$/);
  const after = await b.api.inject({ method: 'GET', url: '/api/v1/machines', headers: { cookie } });
  t.is(after.status, 401);
  t.is(j(after).error.code, 'SESSION_EXPIRED');
});

test('bearer tokens work for reads and changes without CSRF; wrong ones and no credentials are refused', async (t) => {
  const b = await makeBox(t);
  const auth = { authorization: `Bearer ${TOKEN}` };
  t.is((await b.api.inject({ method: 'GET', url: '/api/v1/machines', headers: auth })).status, 200);
  const ok = await b.api.inject({ method: 'POST', url: `/api/v1/machines/${MAC}/approve`, headers: auth });
  t.is(ok.status, 200, ok.body);
  t.like(b.audit.list({ limit: 1 })[0], { identity: 'token#1', command: 'POST /api/v1/machines/{id}/approve' });

  const refused: Record<string, string>[] = [
    {},
    { authorization: `Bearer ${TOKEN}x` },
    { authorization: TOKEN },
    { cookie: 'x=1' },
  ];
  for (const headers of refused) {
    for (const [method, url] of [
      ['GET', '/api/v1/machines'],
      ['POST', `/api/v1/machines/${MAC}/reject`],
      ['PUT', `/api/v1/machines/${MAC}`],
      ['GET', '/api/v1/audit'],
      ['GET', '/api/v1/settings'],
      ['GET', '/api/v1/events'],
      ['GET', '/api/v1/openapi.json'],
    ] as const) {
      const r = await b.api.inject({ method, url, headers, body: method === 'PUT' ? { name: 'x' } : undefined });
      t.is(r.status, 401, `${method} ${url} ${JSON.stringify(headers)}`);
      t.is(j(r).error.code, 'UNAUTHORIZED');
    }
  }
  t.is(b.audit.list({ identity: 'anonymous@127.0.0.1' }).length, 0, 'refused callers do not fill the audit log');
  // Open to anyone: health and the session state.
  t.is((await b.api.inject({ method: 'GET', url: '/api/v1/health' })).status, 200);
  t.is((await b.api.inject({ method: 'GET', url: '/api/v1/session' })).status, 200);
  const events = await b.api.inject({ method: 'GET', url: '/api/v1/events', headers: auth });
  t.is(events.status, 200);
  t.regex(events.headers['content-type']!, /^text\/event-stream/);
});

test('ui.openReadOnly opens GETs to loopback and the private network only; changes never', async (t) => {
  const closed = await makeBox(t);
  t.is((await closed.api.inject({ method: 'GET', url: '/api/v1/machines', remoteAddress: PRIVATE_PEER })).status, 401);
  t.is((await closed.api.inject({ method: 'GET', url: '/api/v1/machines' })).status, 401, 'loopback too');

  const open = await makeBox(t, { openReadOnly: true });
  for (const peer of [PRIVATE_PEER, '127.0.0.1', '::1', `::ffff:${PRIVATE_PEER}`]) {
    const r = await open.api.inject({ method: 'GET', url: `/api/v1/machines/${MAC}`, remoteAddress: peer });
    t.is(r.status, 200, peer);
  }
  t.is(
    (await open.api.inject({ method: 'GET', url: '/api/v1/machines', remoteAddress: UPLINK_PEER })).status,
    401,
    'the site side still needs credentials',
  );
  const change = await open.api.inject({
    method: 'POST',
    url: `/api/v1/machines/${MAC}/approve`,
    remoteAddress: PRIVATE_PEER,
  });
  t.is(change.status, 401);
  for (const url of ['/api/v1/audit', '/api/v1/settings']) {
    t.is((await open.api.inject({ method: 'GET', url, remoteAddress: PRIVATE_PEER })).status, 401, url);
  }
  t.is(
    (
      await open.api.inject({
        method: 'GET',
        url: '/api/v1/machines',
        remoteAddress: PRIVATE_PEER,
        headers: { authorization: 'Bearer wrong-token-0000000000' },
      })
    ).status,
    401,
    'a wrong token is refused, not ignored',
  );
});

test('open reads answer only the names the box goes by (DNS rebinding); sessions and tokens work by any name', async (t) => {
  const open = await makeBox(t, { openReadOnly: true, hostNames: ['Bootbox.Cluster.Example'] });
  const read = (host: string, headers: Record<string, string> = {}) =>
    open.api.inject({
      method: 'GET',
      url: '/api/v1/machines',
      remoteAddress: PRIVATE_PEER,
      headers: { host, ...headers },
    });
  for (const host of [
    '10.77.0.1',
    '10.77.0.1:8080',
    '[fe80::1]:8080',
    '[::1]',
    'localhost:8080',
    'ui.localhost',
    'bootbox.cluster.example',
    'BOOTBOX.cluster.example.:8080',
    `${os.hostname()}:8080`,
  ]) {
    t.is((await read(host)).status, 200, host);
  }
  for (const host of ['attacker.example', 'attacker.example:8080', '10.77.0.1.attacker.example', '[not-ipv6]']) {
    const r = await read(host);
    t.is(r.status, 403, host);
    t.is(j(r).error.code, 'HOST_NOT_ALLOWED');
    t.regex(j(r).error.message, /ui\.hostNames/);
  }
  // A name in the Host header does not matter once the caller has credentials.
  t.is((await read('attacker.example', { authorization: `Bearer ${TOKEN}` })).status, 200);
  await setUp(open);
  const { cookie } = await login(open);
  t.is((await read('bootbox.lan', { cookie })).status, 200);
});

test('bad input: malformed JSON, unknown fields and out-of-range values are refused, naming the field', async (t) => {
  const b = await makeBox(t);
  const auth = { authorization: `Bearer ${TOKEN}` };
  const send = (method: string, url: string, body: unknown) => b.api.inject({ method, url, headers: auth, body });
  const cases: [string, string, unknown, number, string, RegExp][] = [
    ['POST', `/api/v1/machines/${MAC}/reimage`, '{"mode": ', 400, 'INVALID_REQUEST', /not valid JSON/],
    ['POST', `/api/v1/machines/${MAC}/reimage`, undefined, 400, 'INVALID_REQUEST', /must be an object/],
    ['POST', `/api/v1/machines/${MAC}/reimage`, { mode: 'soon' }, 400, 'INVALID_REQUEST', /"mode" must be one of/],
    [
      'POST',
      `/api/v1/machines/${MAC}/reimage`,
      { mode: 'next-boot', x: 1 },
      400,
      'INVALID_REQUEST',
      /unknown field "x"/,
    ],
    ['PUT', `/api/v1/machines/${MAC}`, { group: 'bad group!' }, 400, 'INVALID_REQUEST', /"group" has the wrong form/],
    ['PUT', `/api/v1/machines/${MAC}`, { firstStage: 'grub.efi' }, 400, 'INVALID_REQUEST', /"firstStage"/],
    ['PUT', `/api/v1/machines/${MAC}`, { name: 'x'.repeat(65) }, 400, 'INVALID_REQUEST', /"name" must be at most 64/],
    ['PUT', `/api/v1/machines/${MAC}`, { name: 42 }, 400, 'INVALID_REQUEST', /"name" must be a string/],
    ['PUT', '/api/v1/images/Win%20A', { description: 'd'.repeat(1025) }, 400, 'INVALID_REQUEST', /"description"/],
    ['PUT', '/api/v1/images/Win%20A', { enabled: 'yes' }, 400, 'INVALID_REQUEST', /"enabled" must be a boolean/],
    ['PUT', '/api/v1/settings', { boot: { unknown: 'sometimes' } }, 400, 'INVALID_REQUEST', /"boot.unknown"/],
    ['PUT', '/api/v1/settings', { http: { port: 1 } }, 400, 'INVALID_REQUEST', /unknown field "http"/],
    ['PUT', '/api/v1/settings', { dhcp: { range: '10.0.0.9-10.0.0.1x' } }, 400, 'INVALID_REQUEST', /"dhcp.range"/],
    [
      'PUT',
      '/api/v1/settings',
      { boot: { namingPattern: 'N%99#' } },
      400,
      'INVALID_REQUEST',
      /"boot.namingPattern" naming pattern/,
    ],
    ['PUT', '/api/v1/settings', { mqtt: { url: 'http://x' } }, 400, 'INVALID_REQUEST', /"mqtt.url" must be an mqtt/],
    ['PUT', '/api/v1/settings', {}, 400, 'INVALID_REQUEST', /nothing to change/],
    ['POST', '/api/v1/machines/nobody/approve', undefined, 404, 'NOT_FOUND', /no machine "nobody"/],
  ];
  for (const [method, url, body, status, code, message] of cases) {
    const r = await send(method, url, body);
    t.is(r.status, status, `${method} ${url} ${JSON.stringify(body)}: ${r.body}`);
    t.is(j(r)?.error?.code, code, r.body);
    t.regex(j(r).error.message, message);
  }
  const big = await send('POST', `/api/v1/machines/${MAC}/reimage`, { mode: 'wipe', image: 'x'.repeat(70_000) });
  t.is(big.status, 400);
  t.regex(j(big).error.message, /larger than 65536 bytes/);
  for (const q of ['limit=0', 'limit=1001', 'limit=many', 'via=smtp']) {
    const r = await b.api.inject({ method: 'GET', url: `/api/v1/audit?${q}`, headers: auth });
    t.is(r.status, 400, q);
    t.regex(j(r).error.message, /^query parameter "(limit|via)"/);
  }
  t.is(
    j(await b.api.inject({ method: 'GET', url: `/api/v1/machines/${MAC}`, headers: auth })).machine.state,
    'pending',
  );
});

test('HTML in names and descriptions is only ever JSON data', async (t) => {
  const b = await makeBox(t);
  const auth = { authorization: `Bearer ${TOKEN}` };
  const html = '<script>alert(1)</script><img src=x onerror="alert(2)">&amp;';
  const put = await b.api.inject({
    method: 'PUT',
    url: '/api/v1/images/Win%20A',
    headers: auth,
    body: { description: html },
  });
  t.is(put.status, 200, put.body);
  const got = await b.api.inject({ method: 'GET', url: '/api/v1/images/Win%20A', headers: auth });
  t.is(got.headers['content-type'], 'application/json; charset=utf-8');
  t.is(got.headers['x-content-type-options'], 'nosniff');
  t.is(j(got).image.description, html, 'stored and returned as given: escaping is the UI’s job');
  t.is(got.body, JSON.stringify(j(got)), 'the body is exactly the JSON document');

  // Machine names must be host names: markup is refused (as JSON).
  const name = await b.api.inject({
    method: 'PUT',
    url: `/api/v1/machines/${MAC}`,
    headers: auth,
    body: { name: '<b>x</b>' },
  });
  t.is(name.status, 400);
  t.is(name.headers['content-type'], 'application/json; charset=utf-8');
  t.is(j(name).error.code, 'INVALID_NAME');
  // Markup in a path comes back inside a JSON string, never as a page.
  const nf = await b.api.inject({
    method: 'GET',
    url: '/api/v1/machines/%3Cscript%3Ealert(1)%3C%2Fscript%3E',
    headers: auth,
  });
  t.is(nf.status, 404);
  t.is(nf.headers['content-type'], 'application/json; charset=utf-8');
  t.regex(j(nf).error.message, /no machine "<script>alert\(1\)<\/script>"/);
});

test('every API change is audited once, under the caller; GET /api/v1/audit reads it', async (t) => {
  const b = await makeBox(t);
  const auth = { authorization: `Bearer ${TOKEN}` };
  await b.api.inject({ method: 'POST', url: `/api/v1/machines/${MAC}/approve`, headers: auth });
  await b.api.inject({ method: 'POST', url: `/api/v1/machines/${MAC}/approve`, headers: auth });
  await b.api.inject({ method: 'PUT', url: `/api/v1/machines/${MAC}`, headers: auth, body: { group: 'rack1' } });
  await b.api.inject({ method: 'GET', url: '/api/v1/machines', headers: auth });
  const r = await b.api.inject({ method: 'GET', url: '/api/v1/audit?limit=10&via=api', headers: auth });
  t.is(r.status, 200);
  t.deepEqual(
    j(r).entries.map((e: { command: string; result: string; code?: string; identity: string }) => [
      e.command,
      e.result,
      e.code,
      e.identity,
    ]),
    [
      ['PUT /api/v1/machines/{id}', 'ok', undefined, 'token#1'],
      ['POST /api/v1/machines/{id}/approve', 'error', 'INVALID_STATE', 'token#1'],
      ['POST /api/v1/machines/{id}/approve', 'ok', undefined, 'token#1'],
    ],
  );
  t.is(j(await b.api.inject({ method: 'GET', url: '/api/v1/audit?limit=1', headers: auth })).count, 1);
});

test('settings: secrets redacted; a change is checked, kept in settings.json and waits for a restart', async (t) => {
  const b = await makeBox(t);
  const auth = { authorization: `Bearer ${TOKEN}` };
  const g = await b.api.inject({ method: 'GET', url: '/api/v1/settings', headers: auth });
  t.is(g.status, 200);
  const s = j(g);
  t.deepEqual(s.settings.api.tokens, ['***']);
  t.is(s.settings.mqtt.password, '***');
  t.deepEqual(s.settings.mqtt.broker.users, { node: '***' });
  t.is(s.settings.ui.adminPassword, '***');
  t.is(s.settings.mqtt.url, 'mqtt://box:***@broker.example:1883');
  for (const secret of [TOKEN, 'mqtt-secret', 'pw-of-node', 'plain-admin-password', 'hunter2hunter2']) {
    t.false(g.body.includes(secret), secret);
  }
  t.deepEqual(s.editable, [
    'boot.unknown',
    'boot.namingPattern',
    'boot.defaultImage',
    'dhcp.mode',
    'dhcp.range',
    'mqtt.url',
  ]);
  t.false(s.restartRequired);

  const put = await b.api.inject({
    method: 'PUT',
    url: '/api/v1/settings',
    headers: auth,
    body: {
      boot: { unknown: 'auto', namingPattern: 'RACK%02#', defaultImage: { bios: 'rocky-9' } },
      dhcp: { mode: 'proxy' },
    },
  });
  t.is(put.status, 200, put.body);
  const p = j(put);
  t.deepEqual(p.changed, ['boot.unknown', 'boot.namingPattern', 'boot.defaultImage', 'dhcp.mode']);
  t.true(p.restartRequired);
  t.deepEqual(p.restartKeys, ['boot.unknown', 'boot.namingPattern', 'boot.defaultImage']);
  t.deepEqual(p.shadowedByFlags, ['dhcp.mode'], 'a flag set dhcp.mode: it wins at the next start');
  t.deepEqual(p.pending, {
    'boot.unknown': 'auto',
    'boot.namingPattern': 'RACK%02#',
    'boot.defaultImage': { bios: 'rocky-9' },
  });
  const file = path.join(b.dir, 'settings.json');
  t.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), {
    boot: { unknown: 'auto', namingPattern: 'RACK%02#', defaultImage: { bios: 'rocky-9' } },
    dhcp: { mode: 'proxy' },
  });
  t.is(fs.statSync(file).mode & 0o777, 0o600);

  // null removes a change; the file then holds only what is left.
  const undo = await b.api.inject({
    method: 'PUT',
    url: '/api/v1/settings',
    headers: auth,
    body: { boot: { unknown: null, namingPattern: null, defaultImage: null }, dhcp: { mode: null } },
  });
  t.is(undo.status, 200, undo.body);
  t.false(j(undo).restartRequired);
  t.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), {});
  const audited = b.audit.list({ command: 'PUT /api/v1/settings' });
  t.is(audited.length, 2);
});

test('settings: the boot policy keys go into service at once; a change the service refuses is not kept', async (t) => {
  const dir = tmpdir(t);
  const base = mergeConfig(defaultConfig(), { dataDir: dir, privateInterface: 'priv' });
  const file = path.join(dir, 'settings.json');
  const applied: unknown[] = [];
  let refuse = false;
  const api = new ApiServer({
    port: 0,
    hosts: [],
    tokens: [TOKEN],
    routes: settingsRoutes({
      file,
      base,
      running: base,
      overlay: {},
      fixed: [],
      apply: (next) => {
        if (refuse) throw new BootboxError('CONFIG_INVALID', '"boot.namingPattern" refused by the service');
        applied.push(structuredClone(next.boot));
      },
    }),
  });
  const put = (body: unknown) =>
    api.inject({ method: 'PUT', url: '/api/v1/settings', headers: { authorization: `Bearer ${TOKEN}` }, body });
  const r = await put({ boot: { unknown: 'auto', namingPattern: 'RACK%02#' }, dhcp: { mode: 'proxy' } });
  t.is(r.status, 200, r.body);
  t.deepEqual(j(r).applied, ['boot.unknown', 'boot.namingPattern']);
  t.deepEqual(j(r).restartKeys, ['dhcp.mode']);
  t.like(applied[0], { unknown: 'auto', namingPattern: 'RACK%02#' });
  const g = j(
    await api.inject({ method: 'GET', url: '/api/v1/settings', headers: { authorization: `Bearer ${TOKEN}` } }),
  );
  t.is(g.settings.boot.unknown, 'auto', 'what the box runs with now');
  t.deepEqual(g.restartKeys, ['dhcp.mode']);
  t.deepEqual(g.live, ['boot.unknown', 'boot.namingPattern', 'boot.defaultImage']);
  // Setting a value again changes nothing in service.
  const same = await put({ boot: { unknown: 'auto' } });
  t.deepEqual(j(same).applied, []);
  t.is(applied.length, 1);

  const kept = fs.readFileSync(file, 'utf8');
  refuse = true;
  const no = await put({ boot: { namingPattern: 'OTHER%02#' } });
  t.is(no.status, 400);
  t.regex(j(no).error.message, /refused by the service/);
  t.is(fs.readFileSync(file, 'utf8'), kept, 'settings.json unchanged');
});

test('the web UI files: index.html for client routes, ETag and caching, nothing outside the directory', async (t) => {
  const b = await makeBox(t);
  const get = (url: string, headers: Record<string, string> = {}, method = 'GET') =>
    b.api.inject({ method, url, headers });
  const index = await get('/');
  t.is(index.status, 200);
  t.is(index.headers['content-type'], 'text/html; charset=utf-8');
  t.is(index.headers['cache-control'], 'no-cache');
  t.regex(index.headers.etag!, /^"[A-Za-z0-9_-]{32}"$/);
  t.regex(index.body, /<title>bootbox<\/title>/);
  const again = await get('/', { 'if-none-match': index.headers.etag! });
  t.is(again.status, 304);
  t.is(again.body, '');
  t.is((await get('/', { 'if-none-match': '"other"' })).status, 200);

  const js = await get('/assets/app-4F2KQZ7A.js');
  t.is(js.status, 200);
  t.is(js.headers['content-type'], 'text/javascript; charset=utf-8');
  t.is(js.headers['cache-control'], 'public, max-age=31536000, immutable');
  t.is(js.body, 'console.log("ui")');
  const css = await get('/assets/style.css');
  t.is(css.headers['content-type'], 'text/css; charset=utf-8');
  t.is(css.headers['cache-control'], 'no-cache', 'no hash in the name: revalidated');

  for (const route of ['/machines', '/machines/52:54:00:aa:00:01', '/settings/']) {
    const r = await get(route);
    t.is(r.status, 200, route);
    t.is(r.body, index.body, `${route} is a client-side route`);
  }
  t.is((await get('/assets/missing.js')).status, 404);
  const head = await get('/', {}, 'HEAD');
  t.is(head.status, 200);
  t.is(head.body, '');
  t.is((await get('/', {}, 'POST')).status, 405);
  const api404 = await get('/api/v1/nothing-here');
  t.is(api404.status, 404);
  t.is(j(api404).error.code, 'NOT_FOUND');
  t.is((await get('/api')).status, 404);

  for (const evil of [
    '/../secret.txt',
    '/%2e%2e/secret.txt',
    '/assets/..%2f..%2fsecret.txt',
    '/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
    '/assets/..%5c..%5csecret.txt',
    '/assets/link.txt',
    '/.env',
    '/assets/%00',
    '/%2fetc%2fpasswd',
    '//etc/passwd',
  ]) {
    const r = await get(evil);
    t.false(r.body.includes('SECRET'), `${evil}: ${r.status}`);
    t.false(r.body.includes('root:'), evil);
    t.true(r.status === 400 || r.body === index.body, `${evil}: refused, or the plain index (${r.status})`);
  }
  t.is((await get('/assets/link.txt')).status, 400, 'a symlink out of the directory is refused');
  t.is((await get('/.env')).status, 400, 'dot-files are refused');
});

test('without a built UI, / says so as JSON', async (t) => {
  const b = await makeBox(t);
  fs.rmSync(path.join(b.uiDir, 'index.html'));
  const r = await b.api.inject({ method: 'GET', url: '/' });
  t.is(r.status, 404);
  t.regex(j(r).error.message, /the web UI is not installed/);
});

test('every answer carries the security headers', async (t) => {
  const b = await makeBox(t);
  await setUp(b);
  const { cookie } = await login(b);
  const auth = { authorization: `Bearer ${TOKEN}` };
  const index = await b.api.inject({ method: 'GET', url: '/' });
  const answers: [string, Promise<InjectResponse>][] = [
    ['static', Promise.resolve(index)],
    ['304', b.api.inject({ method: 'GET', url: '/', headers: { 'if-none-match': index.headers.etag! } })],
    ['asset 404', b.api.inject({ method: 'GET', url: '/assets/nope.js' })],
    ['traversal', b.api.inject({ method: 'GET', url: '/assets/..%2fx' })],
    ['405', b.api.inject({ method: 'DELETE', url: '/' })],
    ['health', b.api.inject({ method: 'GET', url: '/api/v1/health' })],
    ['401', b.api.inject({ method: 'GET', url: '/api/v1/machines' })],
    ['403', b.api.inject({ method: 'POST', url: `/api/v1/machines/${MAC}/approve`, headers: { cookie } })],
    ['400', b.api.inject({ method: 'POST', url: '/api/v1/session', body: '{' })],
    ['api 404', b.api.inject({ method: 'GET', url: '/api/v1/nope', headers: auth })],
    ['api 405', b.api.inject({ method: 'PATCH', url: '/api/v1/machines', headers: auth })],
    ['openapi', b.api.inject({ method: 'GET', url: '/api/v1/openapi.json', headers: auth })],
    ['events', b.api.inject({ method: 'GET', url: '/api/v1/events', headers: auth })],
  ];
  for (const [name, p] of answers) {
    const r = await p;
    t.is(r.headers['content-security-policy'], CSP, name);
    t.is(r.headers['x-frame-options'], 'DENY', name);
    t.is(r.headers['x-content-type-options'], 'nosniff', name);
    t.is(r.headers['referrer-policy'], 'no-referrer', name);
  }
  t.deepEqual(Object.keys(SECURITY_HEADERS).sort(), [
    'Content-Security-Policy',
    'Referrer-Policy',
    'X-Content-Type-Options',
    'X-Frame-Options',
  ]);
});

test('GET /api/v1/openapi.json lists every route with its parameters, access and request schema', async (t) => {
  const b = await makeBox(t);
  const r = await b.api.inject({
    method: 'GET',
    url: '/api/v1/openapi.json',
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  t.is(r.status, 200);
  const doc = j(r);
  t.is(doc.openapi, '3.1.0');
  t.is(doc.info.version, '9.9.9');
  const ops = Object.entries(doc.paths as Record<string, Record<string, Record<string, unknown>>>).flatMap(
    ([p, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${p}`),
  );
  for (const want of [
    'GET /api/v1/health',
    'GET /api/v1/session',
    'POST /api/v1/session',
    'DELETE /api/v1/session',
    'POST /api/v1/setup',
    'GET /api/v1/machines',
    'GET /api/v1/machines/{id}',
    'PUT /api/v1/machines/{id}',
    'POST /api/v1/machines/{id}/approve',
    'POST /api/v1/machines/{id}/reject',
    'POST /api/v1/machines/{id}/reimage',
    'GET /api/v1/images',
    'PUT /api/v1/uploads/{id}',
    'GET /api/v1/events',
    'GET /api/v1/audit',
    'GET /api/v1/settings',
    'PUT /api/v1/settings',
    'GET /api/v1/openapi.json',
  ]) {
    t.true(ops.includes(want), want);
  }
  const reimage = doc.paths['/api/v1/machines/{id}/reimage'].post;
  t.is(reimage['x-bootbox-access'], 'admin');
  t.deepEqual(reimage.parameters, [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }]);
  t.deepEqual(reimage.requestBody.content['application/json'].schema.required, ['mode']);
  t.deepEqual(reimage.security, [{ bearer: [] }, { session: [], csrf: [] }]);
  t.deepEqual(doc.paths['/api/v1/health'].get.security, []);
  t.is(doc.paths['/api/v1/machines'].get['x-bootbox-access'], 'read');
  t.is(doc.paths['/api/v1/audit'].get.parameters[0].name, 'limit');
  t.truthy(doc.paths['/api/v1/uploads/{id}'].put.requestBody.content['application/octet-stream']);
  const ids = ops.map((o) => {
    const [m, p] = o.split(' ');
    return doc.paths[p!][m!.toLowerCase()].operationId;
  });
  t.is(new Set(ids).size, ids.length, 'operation ids are unique');
});

test('over a real socket: log in, change with the cookie and CSRF token, load the UI', async (t) => {
  const b = await makeBox(t);
  await setUp(b);
  const { port } = await startApi(t, { tokens: [TOKEN], admin: b.admin, uiDir: b.uiDir, routes: [] });
  const call = (method: string, p: string, headers: Record<string, string> = {}, body?: unknown) =>
    request(http, { port, method, path: p, headers }, body);
  const login = await call('POST', '/api/v1/session', {}, { password: PASSWORD });
  t.is(login.status, 200, login.body);
  const setCookie = login.headers['set-cookie']![0]!;
  t.regex(setCookie, /^bootbox_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/$/);
  const cookie = setCookie.split(';')[0]!;
  const csrf = JSON.parse(login.body).csrfToken;
  const session = JSON.parse((await call('GET', '/api/v1/session', { cookie })).body);
  t.like(session, { authenticated: true, user: 'admin', csrfToken: csrf });
  t.is((await call('DELETE', '/api/v1/session', { cookie })).status, 403);
  const out = await call('DELETE', '/api/v1/session', { cookie, 'x-csrf-token': csrf });
  t.is(out.status, 200);
  const page = await call('GET', '/machines');
  t.is(page.status, 200);
  t.is(page.headers['content-type'], 'text/html; charset=utf-8');
  t.is(page.headers['content-security-policy'], CSP);
  t.is(page.headers['x-frame-options'], 'DENY');
  t.regex(page.body, /<title>bootbox<\/title>/);
  t.is((await call('GET', '/api/v1/nothing')).status, 404);
});
