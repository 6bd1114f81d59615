/**
 * What an API route is: method, path, who may call it, its schemas and its handler.
 * Handlers return `{status, body}`; errors are `{error:{code,message}}` from the one registry.
 */
import type http from 'node:http';
import { type BootboxError, type ErrorCode, ErrorCodes } from '../core/errors.ts';
import type { Session } from './auth.ts';
import type { Schema } from './validate.ts';

/** How the caller proved who it is. */
export type Caller =
  | { kind: 'token'; actor: string }
  | { kind: 'session'; actor: 'admin'; session: Session }
  /** No credentials (or a session cookie that has expired: `expired`). */
  | { kind: 'anonymous'; actor: string; expired?: boolean };

export interface RouteContext {
  params: Record<string, string>;
  query: URLSearchParams;
  /** Query parameters converted and checked against `querySchema`. */
  queryValues: Record<string, unknown>;
  body: unknown;
  /** Who made the call (`token#N`, `admin`, or `anonymous@<address>`), for the audit trail. */
  actor: string;
  caller: Caller;
  /** The peer's address (IPv4-mapped IPv6 addresses unwrapped). */
  peer: string;
  /** The request came over TLS (cookies get `Secure`). */
  secure: boolean;
  headers: http.IncomingHttpHeaders;
  /** The request itself, for `raw` routes that stream their body (uploads). */
  req: http.IncomingMessage;
}

export interface RouteResult {
  status: number;
  body: unknown;
  /** Extra response headers (Set-Cookie, Retry-After …). */
  headers?: Record<string, string>;
  /** The identity to audit this call under, when the handler learnt it (a login). */
  actor?: string;
}

/**
 * Who may call a route:
 * - `public`: anyone (health, the session calls, setup);
 * - `read`: a GET that needs credentials unless `ui.openReadOnly` is on and the peer is on
 *   the private network or loopback;
 * - `admin`: always credentials (a bearer token, or a session cookie plus X-CSRF-Token for
 *   changes).
 */
export type Access = 'public' | 'read' | 'admin';

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path with `{name}` parameters, e.g. /api/v1/machines/{id}/approve */
  path: string;
  /**
   * true: credentials always (`admin`). false: for a GET, `read` access; a change (POST, PUT,
   * DELETE) needs credentials whatever this says, unless the route is `public`.
   */
  auth: boolean;
  /** Anyone may call it, without credentials. */
  public?: boolean;
  /** One line for /api/v1/openapi.json. */
  summary?: string;
  /** JSON body schema, checked before the handler runs (the handler may check more). */
  requestSchema?: Schema;
  /** Query parameters, converted and checked before the handler runs. */
  querySchema?: Record<string, Schema>;
  /** What a successful answer holds, for /api/v1/openapi.json. */
  responseDescription?: string;
  /** The handler reads the body itself from `req` (streamed uploads); no JSON parsing. */
  raw?: boolean;
  handler(ctx: RouteContext): RouteResult | Promise<RouteResult>;
}

export function accessOf(r: Pick<Route, 'method' | 'auth' | 'public'>): Access {
  if (r.public) return 'public';
  if (r.method === 'GET' && !r.auth) return 'read';
  return 'admin';
}

export function errorBody(code: ErrorCode, message: string): RouteResult {
  return { status: ErrorCodes[code].http, body: { error: { code, message } } };
}

export function fromError(e: BootboxError): RouteResult {
  const r = errorBody(e.code, e.message);
  if (e.details) (r.body as { error: Record<string, unknown> }).error.details = e.details;
  return r;
}
