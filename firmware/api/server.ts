/**
 * The UI/API host: `/api/v1` (../../shared/CONTRACT.md) and the web UI's files.
 *
 * Routes are a table (route.ts); handlers return `{status, body}`; errors are
 * `{error:{code,message}}` from the one registry. Who may call what (route.ts `Access`):
 * - changes (POST, PUT, DELETE) need `Authorization: Bearer <token>` (api.tokens), or the
 *   session cookie of a logged-in browser plus `X-CSRF-Token: <the session's csrfToken>`;
 *   only logging in and the first setup are open;
 * - reads (GET) need the same credentials (no CSRF token), except /api/v1/health and
 *   /api/v1/session; with `openReadOnly` they are open to loopback and the private network;
 * - every change that reached its route is written to the audit log (via "api").
 * Every answer carries the security headers (CSP, X-Frame-Options, nosniff, no referrer).
 *
 * `inject()` runs a request through the same code without a socket (tests).
 */
import { chmodSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import os from 'node:os';
import { Readable } from 'node:stream';
import type { Service } from '../app.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { BootboxError, ErrorCodes } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { normalizeMac } from '../core/net.ts';
import { equalSecrets } from '../core/password.ts';
import type { AuditInput } from '../services/audit.ts';
import { type AuditReader, auditRoutes } from './audit-routes.ts';
import {
  type AdminAccount,
  CSRF_HEADER,
  clearedSessionCookie,
  cookieValue,
  LoginLimiter,
  type LoginLimits,
  SESSION_COOKIE,
  type Session,
  SessionStore,
} from './auth.ts';
import { buildOpenApi } from './openapi.ts';
import {
  accessOf,
  type Caller,
  errorBody,
  fromError,
  type Route,
  type RouteContext,
  type RouteResult,
} from './route.ts';
import { sessionRoutes } from './session-routes.ts';
import { StaticFiles } from './static.ts';
import { describeIssue, parseQuery, validate } from './validate.ts';

export type { Access, Caller, Route, RouteContext, RouteResult } from './route.ts';
export { errorBody, fromError } from './route.ts';

/** Live stream source for GET /api/v1/events. */
export type EventSource = (send: (type: string, event: unknown) => void) => () => void;

/** Where API changes are recorded (AuditLog). */
export interface AuditSink extends AuditReader {
  record(input: AuditInput): unknown;
}

export interface ApiServerOptions {
  port: number;
  /** Addresses to listen on (the uplink and/or private address, or 127.0.0.1 in tests). */
  hosts: string[];
  tokens: string[];
  routes: Route[];
  events?: EventSource;
  maxBodyBytes?: number;
  /** The admin account: with it, the web UI can log in (session routes, setup). */
  admin?: AdminAccount;
  /** Idle minutes after which a UI session ends (ui.sessionTtlMin, default 60). */
  sessionTtlMin?: number;
  /** GETs without credentials from loopback and the private network (ui.openReadOnly). */
  openReadOnly?: boolean;
  /** True for addresses on the private network (board.isPrivatePeer). Loopback always counts. */
  isPrivatePeer?: (address: string) => boolean;
  /**
   * Names the box answers open reads for, besides IP literals, localhost and its host name
   * (ui.hostNames): the DNS rebinding guard of `openReadOnly`.
   */
  hostNames?: string[];
  /** Where UI sessions outlive a restart (<data>/sessions.json); without it a restart ends them. */
  sessionsFile?: string;
  /** A Unix socket (mode 0600) for the box's own command line: plain HTTP, token needed. */
  socketPath?: string;
  /** HTTPS: the certificate (chain) and key, PEM (ui.tls). Session cookies then carry Secure. */
  tls?: { cert: Buffer; key: Buffer };
  /** The web UI's built files (index.html, assets/); without it only /api is served. */
  uiDir?: string;
  /** The audit log: API changes are recorded, and GET /api/v1/audit reads it. */
  audit?: AuditSink;
  loginLimits?: Partial<LoginLimits>;
  /** For /api/v1/openapi.json. */
  version?: string;
  clock?: Clock;
  log?: Logger;
}

/** The headers every answer carries (static files, JSON, errors, the event stream). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

export interface InjectRequest {
  method: string;
  url: string;
  headers?: Record<string, string>;
  /** An object or array is sent as JSON; a string or Buffer as it is. */
  body?: unknown;
  /** The peer's address (default 127.0.0.1). */
  remoteAddress?: string;
}

export interface InjectResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string;
  /** The body parsed as JSON, when it is JSON. */
  json: unknown;
}

interface CompiledRoute extends Route {
  re: RegExp;
  names: string[];
  /** The event stream: answered by `stream`, not by the handler. */
  sse?: boolean;
}

/** The part of http.ServerResponse the server uses (inject() gives its own). */
interface Res {
  readonly headersSent: boolean;
  setHeader(name: string, value: string | number): unknown;
  writeHead(status: number, headers?: Record<string, string | number>): unknown;
  write(chunk: string | Buffer): unknown;
  end(chunk?: string | Buffer): unknown;
  destroy(): unknown;
}

export class ApiServer implements Service {
  readonly name = 'api';
  private readonly opts: ApiServerOptions;
  private readonly routes: CompiledRoute[];
  private readonly clock: Clock;
  private readonly sessions: SessionStore;
  private readonly staticFiles: StaticFiles | undefined;
  private servers: http.Server[] = [];
  private readonly sockets = new Set<Socket>();
  /** Open event streams: how to end each, and the session it was opened with (if any). */
  private readonly streams = new Map<() => void, Session | undefined>();
  private readonly counters = { requests: 0, unauthorized: 0, csrfRefused: 0, hostRefused: 0, audited: 0 };
  private readonly hostNames: Set<string>;

  constructor(opts: ApiServerOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.sessions = new SessionStore({
      clock: this.clock,
      ttlMs: (opts.sessionTtlMin ?? 60) * 60_000,
      onEnded: () => this.sweepStreams(),
      ...(opts.sessionsFile ? { file: opts.sessionsFile } : {}),
      ...(opts.log ? { log: opts.log } : {}),
    });
    this.staticFiles = opts.uiDir ? new StaticFiles(opts.uiDir) : undefined;
    const own = os.hostname().toLowerCase();
    this.hostNames = new Set([own, `${own}.local`, ...(opts.hostNames ?? []).map(hostName)]);
    const builtIn: (Route & { sse?: boolean })[] = [];
    if (opts.admin) {
      builtIn.push(
        ...sessionRoutes({
          admin: opts.admin,
          sessions: this.sessions,
          limiter: new LoginLimiter(this.clock, opts.loginLimits),
        }),
      );
    }
    if (opts.events) {
      builtIn.push({
        method: 'GET',
        path: '/api/v1/events',
        auth: false,
        sse: true,
        summary: 'Server-sent events: the live stream of boot, transfer and machine events (?mac= filters)',
        querySchema: { mac: { type: 'string', maxLength: 17 } },
        responseDescription: 'text/event-stream; each event is `event: <type>` and `data: <JSON>`',
        handler: () => errorBody('INTERNAL', 'the event stream is answered by the server'),
      });
    }
    if (opts.audit) builtIn.push(...auditRoutes(opts.audit));
    builtIn.push({
      method: 'GET',
      path: '/api/v1/openapi.json',
      auth: false,
      summary: 'This API as an OpenAPI 3.1 document, made from the route table',
      responseDescription: 'OpenAPI 3.1 document',
      handler: () => ({
        status: 200,
        body: buildOpenApi(this.routes, { version: opts.version ?? '0.0.0', openReadOnly: opts.openReadOnly }),
      }),
    });
    this.routes = [...opts.routes, ...builtIn].map((r) => {
      const names: string[] = [];
      const re = new RegExp(
        `^${r.path
          .replace(/[.*+?^${}()|[\]\\]/g, (c) => (c === '{' || c === '}' ? c : `\\${c}`))
          .replace(/\{(\w+)\}/g, (_m, n) => {
            names.push(n);
            return '([^/]+)';
          })}$`,
      );
      return { ...r, re, names };
    });
  }

  async start(): Promise<void> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch((e) => this.crashed(res, e));
    };
    for (const host of this.opts.hosts) {
      let srv: http.Server;
      try {
        srv = this.opts.tls
          ? https.createServer({ cert: this.opts.tls.cert, key: this.opts.tls.key }, handler)
          : http.createServer(handler);
      } catch (e) {
        // a key that does not fit the certificate, or PEM that is not a certificate
        throw new BootboxError('CONFIG_INVALID', `"ui.tls": ${(e as Error).message}`);
      }
      await this.listen(srv, `ui.port ${this.opts.port} on ${host}`, (s) => s.listen(this.opts.port, host));
    }
    if (this.opts.socketPath) {
      // The local socket for the box's own command line (plain HTTP, whatever ui.tls says);
      // callers still need a token. A socket left by a box that died is replaced.
      const file = this.opts.socketPath;
      rmSync(file, { force: true });
      await this.listen(http.createServer(handler), file, (s) => s.listen(file));
      chmodSync(file, 0o600);
    }
  }

  private async listen(srv: http.Server, what: string, listen: (s: http.Server) => void): Promise<void> {
    srv.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'EADDRINUSE' ? new BootboxError('ADDRESS_IN_USE', `${what} is already in use`) : e),
      );
      srv.once('listening', () => resolve());
      listen(srv);
    });
    this.servers.push(srv);
  }

  async stop(): Promise<void> {
    this.sessions.close();
    for (const end of [...this.streams.keys()]) end();
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            for (const sock of this.sockets) sock.destroy();
          }),
      ),
    );
    this.servers = [];
  }

  status(): Record<string, unknown> {
    return {
      scheme: this.opts.tls ? 'https' : 'http',
      listen: this.servers.map((s) => {
        const a = s.address() as AddressInfo | string;
        return typeof a === 'string' ? a : `${a.address}:${a.port}`;
      }),
      streams: this.streams.size,
      sessions: this.sessions.size,
      setupRequired: this.opts.admin?.setupRequired ?? false,
      counters: { ...this.counters },
    };
  }

  /** Runs one request through the same code as a socket would, and collects the answer. */
  async inject(r: InjectRequest): Promise<InjectResponse> {
    const data =
      r.body === undefined
        ? []
        : [
            Buffer.isBuffer(r.body)
              ? r.body
              : Buffer.from(typeof r.body === 'string' ? r.body : JSON.stringify(r.body)),
          ];
    const headers: http.IncomingHttpHeaders = {};
    for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = v;
    if (data.length && headers['content-length'] === undefined) headers['content-length'] = String(data[0]!.length);
    const stream = Readable.from(data);
    const req = Object.assign(stream, {
      method: r.method.toUpperCase(),
      url: r.url,
      headers,
      socket: { remoteAddress: r.remoteAddress ?? '127.0.0.1', encrypted: false },
    });
    Object.defineProperty(req, 'complete', { get: () => stream.readableEnded });
    const res = new InjectedResponse();
    const done = res.finished.then(() => undefined);
    await this.handle(req as unknown as http.IncomingMessage, res).catch((e) => this.crashed(res, e));
    // The event stream never ends by itself: answer with what came so far and close it.
    if (res.streaming) stream.emit('close');
    await done;
    const body = Buffer.concat(res.chunks).toString('utf8');
    let json: unknown;
    if ((res.headers['content-type'] ?? '').startsWith('application/json') && body) {
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
    }
    return { status: res.statusCode, headers: res.headers, body, json };
  }

  private crashed(res: Res, e: unknown): void {
    this.opts.log?.error('API request failed', { error: (e as Error)?.stack ?? String(e) });
    if (!res.headersSent) send(res, errorBody('INTERNAL', (e as Error).message));
    else res.destroy();
  }

  /** Bearer token, else session cookie, else nobody. */
  private identify(req: http.IncomingMessage, peer: string): Caller & { badToken?: boolean } {
    const h = req.headers.authorization;
    if (h !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(h);
      if (m) {
        const given = Buffer.from(m[1]!);
        // Every token is compared (no early exit), each in constant time.
        let who: string | undefined;
        for (const [i, t] of this.opts.tokens.entries()) {
          if (equalSecrets(Buffer.from(t), given) && !who) who = `token#${i + 1}`;
        }
        if (who) return { kind: 'token', actor: who };
      }
      return { kind: 'anonymous', actor: `anonymous@${peer}`, badToken: true };
    }
    const id = this.opts.admin ? cookieValue(req.headers.cookie, SESSION_COOKIE) : undefined;
    if (id) {
      const s = this.sessions.lookup(id);
      if (s.state === 'valid') return { kind: 'session', actor: 'admin', session: s.session };
      return { kind: 'anonymous', actor: `anonymous@${peer}`, expired: true };
    }
    return { kind: 'anonymous', actor: `anonymous@${peer}` };
  }

  private openToPeer(peer: string): boolean {
    if (!this.opts.openReadOnly) return false;
    return isLoopback(peer) || (this.opts.isPrivatePeer?.(peer) ?? false);
  }

  private async handle(req: http.IncomingMessage, res: Res): Promise<void> {
    this.counters.requests++;
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://box');
    } catch {
      return send(res, errorBody('INVALID_REQUEST', 'malformed URL'));
    }
    if (url.pathname !== '/api' && !url.pathname.startsWith('/api/')) return this.serveStatic(req, res, url);
    res.setHeader('Cache-Control', 'no-store');
    const peer = unmapped(req.socket?.remoteAddress ?? '');
    const secure = Boolean((req.socket as { encrypted?: boolean } | undefined)?.encrypted);

    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.re.exec(url.pathname);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== req.method) continue;

      const caller = this.identify(req, peer);
      const access = accessOf(r);
      const mutation = r.method !== 'GET';
      if (access !== 'public') {
        const refused = this.refusal(caller, access, peer, secure, req.headers.host);
        if (refused) {
          this.counters.unauthorized++;
          return send(res, refused);
        }
        if (
          mutation &&
          caller.kind === 'session' &&
          !this.sessions.csrfMatches(caller.session, req.headers[CSRF_HEADER])
        ) {
          this.counters.csrfRefused++;
          const out = errorBody(
            'CSRF_FAILED',
            `this change was sent with the session cookie but without its CSRF token: send the header X-CSRF-Token (csrfToken of GET /api/v1/session)`,
          );
          this.audit(r, {}, caller.actor, out);
          return send(res, out);
        }
      }

      const params: Record<string, string> = {};
      for (const [i, n] of r.names.entries()) {
        try {
          params[n] = decodeURIComponent(m[i + 1]!);
        } catch {
          return send(res, errorBody('INVALID_REQUEST', `malformed path parameter ${n}`));
        }
      }
      const q = parseQuery(r.querySchema ?? {}, url.searchParams);
      if (q.issues.length) {
        return send(res, errorBody('INVALID_REQUEST', `query parameter ${describeIssue(q.issues[0]!)}`));
      }
      let body: unknown;
      if ((req.method === 'POST' || req.method === 'PUT') && !r.raw) {
        const b = await readBody(req, this.opts.maxBodyBytes ?? 64 * 1024);
        if (b instanceof BootboxError) return send(res, fromError(b));
        body = b;
        if (r.requestSchema) {
          const issues = validate(r.requestSchema, body);
          if (issues.length) {
            const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
            const out = errorBody('INVALID_REQUEST', `${describeIssue(issues[0]!)}${more}`);
            (out.body as { error: Record<string, unknown> }).error.details = { issues };
            if (mutation && access !== 'public') this.audit(r, params, caller.actor, out);
            return send(res, out);
          }
        }
      }
      if (r.sse && this.opts.events) {
        return this.stream(
          req,
          res,
          q.values.mac as string | undefined,
          caller.kind === 'session' ? caller.session : undefined,
        );
      }

      const ctx: RouteContext = {
        params,
        query: url.searchParams,
        queryValues: q.values,
        body,
        actor: caller.actor,
        caller,
        peer,
        secure,
        headers: req.headers,
        req,
      };
      let out: RouteResult;
      try {
        out = await r.handler(ctx);
      } catch (e) {
        if (!(e instanceof BootboxError)) throw e;
        out = fromError(e);
      }
      if (mutation && !(access === 'public' && out.status === ErrorCodes.RATE_LIMITED.http)) {
        this.audit(r, params, out.actor ?? caller.actor, out);
      }
      if (r.raw && !req.complete) {
        // the body was not (fully) read: answer, then close so no stray bytes are parsed as a request
        res.setHeader('Connection', 'close');
      }
      return send(res, out);
    }
    if (pathMatched)
      return send(res, {
        status: 405,
        body: { error: { code: 'INVALID_REQUEST', message: `${req.method} is not allowed on ${url.pathname}` } },
      });
    return send(res, errorBody('NOT_FOUND', `no route for ${req.method} ${url.pathname}`));
  }

  /** Why a caller may not use a route of this access level, or undefined when it may. */
  private refusal(
    caller: Caller & { badToken?: boolean },
    access: 'read' | 'admin',
    peer: string,
    secure: boolean,
    host: string | undefined,
  ): RouteResult | undefined {
    if (caller.kind !== 'anonymous') return undefined;
    if (access === 'read' && !caller.badToken && this.openToPeer(peer)) {
      // A page elsewhere could point a name of its own at the box (DNS rebinding) and have a
      // browser on the private network read the API: open reads answer only the box's names.
      // Sessions are safe without this: their cookie belongs to the name the admin logged in by.
      if (hostAllowed(host, this.hostNames)) return undefined;
      this.counters.hostRefused++;
      return errorBody(
        'HOST_NOT_ALLOWED',
        `reads without credentials answer requests addressed to the box by IP address, localhost, its host name or a name in ui.hostNames, not "${hostName(host ?? '')}": add the name to ui.hostNames, or log in`,
      );
    }
    if (caller.badToken) return errorBody('UNAUTHORIZED', 'the bearer token is not one of api.tokens');
    if (caller.expired) {
      const r = errorBody('SESSION_EXPIRED', 'session expired: log in again');
      r.headers = { 'Set-Cookie': clearedSessionCookie(secure) };
      return r;
    }
    return errorBody(
      'UNAUTHORIZED',
      access === 'admin'
        ? 'this call changes state: log in, or send Authorization: Bearer <api token>'
        : 'this call needs credentials: log in, or send Authorization: Bearer <api token>',
    );
  }

  private audit(r: Route, params: Record<string, string>, identity: string, out: RouteResult): void {
    if (!this.opts.audit) return;
    const code = (out.body as { error?: { code?: string } } | undefined)?.error?.code;
    try {
      this.opts.audit.record({
        via: 'api',
        identity,
        command: `${r.method} ${r.path}`,
        ...(Object.keys(params).length ? { targets: params } : {}),
        result: out.status < 400 ? 'ok' : 'error',
        ...(code ? { code } : {}),
      });
      this.counters.audited++;
    } catch (e) {
      this.opts.log?.warn('audit entry not recorded', { error: (e as Error).message });
    }
  }

  private async serveStatic(req: http.IncomingMessage, res: Res, url: URL): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, {
        status: 405,
        body: { error: { code: 'INVALID_REQUEST', message: `${req.method} is not allowed on ${url.pathname}` } },
      });
    }
    if (!this.staticFiles) return send(res, errorBody('NOT_FOUND', `no web UI here; the API is at /api/v1`));
    const inm = req.headers['if-none-match'];
    const r = await this.staticFiles.serve(url.pathname, typeof inm === 'string' ? inm : undefined);
    if (r.error) {
      res.setHeader('Cache-Control', 'no-store');
      return send(res, { status: r.status, body: { error: r.error } });
    }
    res.writeHead(r.status, r.headers);
    res.end(req.method === 'HEAD' ? undefined : r.body);
  }

  /** Ends the event streams of sessions that have ended (logout, password change). */
  private sweepStreams(): void {
    for (const [end, session] of [...this.streams]) if (session && !this.sessions.holds(session)) end();
  }

  private stream(req: http.IncomingMessage, res: Res, rawFilter: string | undefined, session?: Session): void {
    if (this.streams.size >= MAX_STREAMS) {
      send(res, errorBody('RATE_LIMITED', `too many open event streams (${MAX_STREAMS}); close one and retry`));
      return;
    }
    const filter = rawFilter === undefined ? undefined : (normalizeMac(rawFilter) ?? rawFilter);
    res.writeHead(200, { 'Content-Type': 'text/event-stream', Connection: 'keep-alive' });
    res.write(': bootbox events\n\n');
    const unsubscribe = this.opts.events!((type, event) => {
      if (filter && (event as { mac?: string }).mac !== filter) return;
      // A client that does not read is cut off rather than buffered without bound.
      const backlog = (res as unknown as { writableLength?: number }).writableLength ?? 0;
      if (backlog > MAX_STREAM_BACKLOG) {
        end();
        return;
      }
      res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...(event as object) })}\n\n`);
    });
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    const end = () => {
      clearInterval(ping);
      unsubscribe();
      this.streams.delete(end);
      res.end();
    };
    this.streams.set(end, session);
    req.on('close', end);
  }
}

/** Event streams open at once, and the bytes one may have unsent before it is cut off. */
const MAX_STREAMS = 64;
const MAX_STREAM_BACKLOG = 1024 * 1024;

/** A response collected in memory, for inject(). */
class InjectedResponse implements Res {
  statusCode = 200;
  readonly headers: Record<string, string> = {};
  readonly chunks: Buffer[] = [];
  headersSent = false;
  streaming = false;
  private resolve!: () => void;
  readonly finished = new Promise<void>((r) => {
    this.resolve = r;
  });

  setHeader(name: string, value: string | number): void {
    this.headers[name.toLowerCase()] = String(value);
  }
  writeHead(status: number, headers: Record<string, string | number> = {}): void {
    this.statusCode = status;
    for (const [k, v] of Object.entries(headers)) this.setHeader(k, v);
    this.headersSent = true;
    if ((this.headers['content-type'] ?? '').startsWith('text/event-stream')) this.streaming = true;
  }
  write(chunk: string | Buffer): void {
    this.headersSent = true;
    this.chunks.push(Buffer.from(chunk));
  }
  end(chunk?: string | Buffer): void {
    if (chunk !== undefined) this.write(chunk);
    this.headersSent = true;
    this.resolve();
  }
  destroy(): void {
    this.resolve();
  }
}

function send(res: Res, r: RouteResult): void {
  const text = JSON.stringify(r.body);
  res.writeHead(r.status, {
    ...r.headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** `::ffff:10.0.0.5` → `10.0.0.5`. */
function unmapped(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** The name in a Host header: lower case, without port or final dot; IPv6 literals keep their brackets. */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  return h.replace(/:\d*$/, '').replace(/\.$/, '');
}

/**
 * Whether a request's Host header addresses the box: no header (not a browser), an IP
 * literal, localhost (browsers keep *.localhost on loopback), or a name in `names`.
 */
export function hostAllowed(host: string | undefined, names: Set<string>): boolean {
  if (host === undefined || host === '') return true;
  const name = hostName(host);
  if (/^\[[0-9a-f:.]+\]$/.test(name) && net.isIPv6(name.slice(1, -1))) return true;
  if (net.isIPv4(name)) return true;
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  return names.has(name);
}

function isLoopback(a: string): boolean {
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a);
}

async function readBody(req: http.IncomingMessage, max: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) return new BootboxError('INVALID_REQUEST', `request body larger than ${max} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return new BootboxError('INVALID_REQUEST', 'the request body is not valid JSON');
  }
}
