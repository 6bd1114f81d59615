/**
 * The UI/API host (`/api/v1`, ../../shared/CONTRACT.md). Routes are a table; handlers
 * return `{status, body}`; errors are `{error:{code,message}}` from the one registry.
 * Calls that change anything need `Authorization: Bearer <token>` (api.tokens).
 */
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Service } from '../app.ts';
import { BootboxError, type ErrorCode, ErrorCodes } from '../core/errors.ts';

export interface RouteContext {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  /** Who made the call (token label), for the audit trail. */
  actor: string;
  headers: http.IncomingHttpHeaders;
  /** The request itself, for `raw` routes that stream their body (uploads). */
  req: http.IncomingMessage;
}

export interface RouteResult {
  status: number;
  body: unknown;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path with `{name}` parameters, e.g. /api/v1/machines/{id}/approve */
  path: string;
  /** Mutations require a token. */
  auth: boolean;
  /** The handler reads the body itself from `req` (streamed uploads); no JSON parsing. */
  raw?: boolean;
  handler(ctx: RouteContext): RouteResult | Promise<RouteResult>;
}

/** Live stream source for GET /api/v1/events. */
export type EventSource = (send: (type: string, event: unknown) => void) => () => void;

export interface ApiServerOptions {
  port: number;
  /** Addresses to listen on (the uplink and/or private address, or 127.0.0.1 in tests). */
  hosts: string[];
  tokens: string[];
  routes: Route[];
  events?: EventSource;
  maxBodyBytes?: number;
}

interface CompiledRoute extends Route {
  re: RegExp;
  names: string[];
}

export function errorBody(code: ErrorCode, message: string): RouteResult {
  return { status: ErrorCodes[code].http, body: { error: { code, message } } };
}

export function fromError(e: BootboxError): RouteResult {
  const r = errorBody(e.code, e.message);
  if (e.details) (r.body as { error: Record<string, unknown> }).error.details = e.details;
  return r;
}

export class ApiServer implements Service {
  readonly name = 'api';
  private readonly opts: ApiServerOptions;
  private readonly routes: CompiledRoute[];
  private servers: http.Server[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly streams = new Set<() => void>();

  constructor(opts: ApiServerOptions) {
    this.opts = opts;
    this.routes = opts.routes.map((r) => {
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
    for (const host of this.opts.hosts) {
      const srv = http.createServer((req, res) => {
        this.handle(req, res).catch((e) => {
          if (!res.headersSent) send(res, errorBody('INTERNAL', (e as Error).message));
          else res.destroy();
        });
      });
      // Uploads of large images stream for a long time: no overall request deadline, but
      // headers must come promptly.
      srv.requestTimeout = 0;
      srv.headersTimeout = 15_000;
      srv.on('connection', (s) => {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
      });
      await new Promise<void>((resolve, reject) => {
        srv.once('error', (e: NodeJS.ErrnoException) =>
          reject(
            e.code === 'EADDRINUSE'
              ? new BootboxError('ADDRESS_IN_USE', `ui.port ${this.opts.port} on ${host} is already in use`)
              : e,
          ),
        );
        srv.listen(this.opts.port, host, () => resolve());
      });
      this.servers.push(srv);
    }
  }

  async stop(): Promise<void> {
    for (const end of this.streams) end();
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
      listen: this.servers.map((s) => {
        const a = s.address() as AddressInfo;
        return `${a.address}:${a.port}`;
      }),
      streams: this.streams.size,
    };
  }

  private authorized(req: http.IncomingMessage): string | undefined {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    if (!m) return undefined;
    const given = Buffer.from(m[1]!);
    for (const [i, t] of this.opts.tokens.entries()) {
      const want = Buffer.from(t);
      if (want.length === given.length && timingSafeEqual(want, given)) return `token#${i + 1}`;
    }
    return undefined;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://box');
    } catch {
      return send(res, errorBody('INVALID_REQUEST', 'malformed URL'));
    }
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Frame-Options', 'DENY');
    if (url.pathname === '/api/v1/events' && req.method === 'GET' && this.opts.events) {
      return this.stream(req, res);
    }
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.re.exec(url.pathname);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== req.method) continue;
      let actor = 'anonymous';
      if (r.auth) {
        const who = this.authorized(req);
        if (!who) {
          return send(
            res,
            errorBody('UNAUTHORIZED', 'this call changes state: send Authorization: Bearer <api token>'),
          );
        }
        actor = who;
      }
      let body: unknown;
      if ((req.method === 'POST' || req.method === 'PUT') && !r.raw) {
        const b = await readBody(req, this.opts.maxBodyBytes ?? 64 * 1024);
        if (b instanceof BootboxError) return send(res, fromError(b));
        body = b;
      }
      const params: Record<string, string> = {};
      for (const [i, n] of r.names.entries()) {
        try {
          params[n] = decodeURIComponent(m[i + 1]!);
        } catch {
          return send(res, errorBody('INVALID_REQUEST', `malformed path parameter ${n}`));
        }
      }
      let out: RouteResult;
      try {
        out = await r.handler({ params, query: url.searchParams, body, actor, headers: req.headers, req });
      } catch (e) {
        if (!(e instanceof BootboxError)) throw e;
        out = fromError(e);
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

  private stream(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', Connection: 'keep-alive' });
    res.write(': bootbox events\n\n');
    const filter = new URL(req.url ?? '/', 'http://box').searchParams.get('mac');
    const unsubscribe = this.opts.events!((type, event) => {
      if (filter && (event as { mac?: string }).mac !== filter) return;
      res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...(event as object) })}\n\n`);
    });
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    const end = () => {
      clearInterval(ping);
      unsubscribe();
      this.streams.delete(end);
      res.end();
    };
    this.streams.add(end);
    req.on('close', end);
  }
}

function send(res: http.ServerResponse, r: RouteResult): void {
  const text = JSON.stringify(r.body);
  res.writeHead(r.status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
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
