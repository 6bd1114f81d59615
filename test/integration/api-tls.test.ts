/**
 * The UI and API over HTTPS (ui.tls): a throw-away CA and server certificate from openssl,
 * a client that trusts only that CA, the Secure session cookie, and what bad files get.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { AdminAccount } from '../../firmware/api/auth.ts';
import { ApiServer } from '../../firmware/api/server.ts';
import { readTlsFiles } from '../../firmware/config/tls-files.ts';
import { ManualClock } from '../../firmware/core/clock.ts';
import { BootboxError } from '../../firmware/core/errors.ts';
import { listenPort, request } from '../helpers/api-server.ts';
import { makePki } from '../helpers/pki.ts';

const PASSWORD = 'correct horse battery';

function tmpdir(t: ExecutionContext): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'bootbox-api-tls-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function admin(dir: string): AdminAccount {
  const a = new AdminAccount({ configured: PASSWORD, file: path.join(dir, 'admin.json'), clock: new ManualClock() });
  a.load();
  return a;
}

test('with ui.tls the UI port speaks HTTPS: a client trusting the CA logs in and gets a Secure cookie', async (t) => {
  const dir = tmpdir(t);
  const pki = makePki(path.join(dir, 'pki'));
  const tls = readTlsFiles({ cert: pki.serverCert, key: pki.serverKey }, undefined, 'ui.tls');
  const api = new ApiServer({
    port: 0,
    hosts: ['127.0.0.1'],
    tokens: ['api-tls-test-token-0123456789'],
    admin: admin(dir),
    routes: [],
    tls: { cert: tls.cert!, key: tls.key! },
  });
  await api.start();
  t.teardown(() => api.stop());
  t.is(api.status().scheme, 'https');
  const port = listenPort(api);
  const ca = fs.readFileSync(pki.ca);

  const login = await request(https, { port, method: 'POST', path: '/api/v1/session', ca }, { password: PASSWORD });
  t.is(login.status, 200, login.body);
  const cookie = login.headers['set-cookie']![0]!;
  t.regex(cookie, /^bootbox_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Secure$/);
  const session = await request(https, {
    port,
    path: '/api/v1/session',
    ca,
    headers: { cookie: cookie.split(';')[0]! },
  });
  t.like(JSON.parse(session.body), { authenticated: true });

  // A client that does not trust the CA stops at the handshake; plain HTTP gets no answer.
  const untrusted = await t.throwsAsync(request(https, { port, path: '/api/v1/session' }));
  t.regex(untrusted!.message, /self[- ]signed|unable to (get|verify)/i);
  await t.throwsAsync(request(http, { port, path: '/api/v1/session' }));
});

test('ui.tls: a key that does not fit the certificate stops the start naming the key; so do unreadable and non-PEM files', async (t) => {
  const dir = tmpdir(t);
  const a = makePki(path.join(dir, 'a'));
  const b = makePki(path.join(dir, 'b'));
  const api = new ApiServer({
    port: 0,
    hosts: ['127.0.0.1'],
    tokens: [],
    routes: [],
    tls: { cert: fs.readFileSync(a.serverCert), key: fs.readFileSync(b.serverKey) },
  });
  const err = await t.throwsAsync(api.start(), { instanceOf: BootboxError });
  t.is(err!.code, 'CONFIG_INVALID');
  t.regex(err!.message, /"ui\.tls"/);

  const missing = t.throws(() =>
    readTlsFiles({ cert: path.join(dir, 'nope.pem'), key: a.serverKey }, undefined, 'ui.tls'),
  );
  t.regex(missing!.message, /"ui\.tls\.cert" .*nope\.pem cannot be read \(ENOENT\)/);
  fs.writeFileSync(path.join(dir, 'junk.pem'), 'not a certificate');
  const junk = t.throws(() =>
    readTlsFiles({ cert: a.serverCert, key: path.join(dir, 'junk.pem') }, undefined, 'ui.tls'),
  );
  t.regex(junk!.message, /"ui\.tls\.key" .* is not a PEM file/);
  const half = t.throws(() => readTlsFiles({ cert: a.serverCert }, undefined, 'ui.tls'));
  t.regex(half!.message, /"ui\.tls\.cert" and "ui\.tls\.key" go together/);
});
