/**
 * The box's /api/v1 from the browser: JSON in and out, the session cookie (same origin)
 * plus `X-CSRF-Token` on every call that changes something, and API errors as ApiError
 * with the box's own words. A 401 on any call ends the session in the UI (onUnauthorized).
 *
 * A box without the session endpoints (404) is driven with its API token instead (the
 * file <data>/api-token), sent as `Authorization: Bearer`, kept for this tab only.
 */

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds, from Retry-After (429). */
  readonly retryAfter: number | undefined;

  constructor(status: number, code: string, message: string, details?: Record<string, unknown>, retryAfter?: number) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

/** The endpoint does not exist on this box (an older firmware): the UI leaves that part out. */
export function isMissingRoute(e: unknown): boolean {
  return (
    e instanceof ApiError &&
    (e.status === 405 ||
      (e.status === 404 && (e.code === 'NOT_FOUND' || e.code === 'HTTP_404') && /^no route/.test(e.message)))
  );
}

export interface Session {
  authenticated: boolean;
  user?: string;
  expiresAt?: string;
  setupRequired: boolean;
  /** `session`: password sign-in with a cookie; `token`: the box has no sessions, the API token is used. */
  mode: 'session' | 'token';
}

const TOKEN_KEY = 'bootbox.apiToken';

const auth: { csrf?: string; bearer?: string } = {};
let unauthorized: ((message: string) => void) | undefined;

export function onUnauthorized(fn: (message: string) => void): void {
  unauthorized = fn;
}

/** Headers every authenticated call carries (also used by the upload's XHR). */
export function authHeaders(): Record<string, string> {
  const h: Record<string, string> = {};
  if (auth.csrf) h['X-CSRF-Token'] = auth.csrf;
  if (auth.bearer) h.Authorization = `Bearer ${auth.bearer}`;
  return h;
}

/** Headers for reads (only the API token, in token mode; the cookie goes by itself). */
export function readHeaders(): Record<string, string> {
  return auth.bearer ? { Authorization: `Bearer ${auth.bearer}` } : {};
}

/** Ends the session in the UI (a 401 seen outside request(), e.g. on the event stream). */
export function sessionEnded(message: string): void {
  unauthorized?.(message);
}

export interface RequestOptions {
  /** Do not end the session on 401 (the sign-in calls themselves). */
  quiet401?: boolean;
  signal?: AbortSignal;
}

/** An error response (or a non-JSON one) as an ApiError. */
export async function errorOf(res: Response): Promise<ApiError> {
  let code = `HTTP_${res.status}`;
  let message = `${res.status} ${res.statusText}`.trim();
  let details: Record<string, unknown> | undefined;
  try {
    const j = (await res.json()) as { error?: { code?: string; message?: string; details?: Record<string, unknown> } };
    if (j?.error) {
      code = j.error.code ?? code;
      message = j.error.message ?? message;
      details = j.error.details;
    }
  } catch {
    // not JSON: keep the status line
  }
  const ra = Number(res.headers.get('Retry-After'));
  return new ApiError(res.status, code, message, details, Number.isFinite(ra) && ra > 0 ? ra : undefined);
}

export async function request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  Object.assign(headers, method === 'GET' ? readHeaders() : authHeaders());
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'NETWORK', 'the box did not answer (network error); is it running and reachable?');
  }
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && !opts.quiet401) unauthorized?.(err.message);
    throw err;
  }
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const api = {
  get: <T>(path: string, opts?: RequestOptions) => request<T>('GET', path, undefined, opts),
  post: <T>(path: string, body?: unknown, opts?: RequestOptions) => request<T>('POST', path, body ?? {}, opts),
  put: <T>(path: string, body: unknown, opts?: RequestOptions) => request<T>('PUT', path, body, opts),
  del: <T>(path: string, opts?: RequestOptions) => request<T>('DELETE', path, undefined, opts),
};

interface SessionBody {
  authenticated?: boolean;
  user?: string;
  csrfToken?: string;
  expiresAt?: string;
  setupRequired?: boolean;
}

function take(b: SessionBody | undefined): void {
  if (b?.csrfToken) auth.csrf = b.csrfToken;
}

/** Where the sign-in stands. */
export async function loadSession(): Promise<Session> {
  try {
    const s = await api.get<SessionBody>('/api/v1/session', { quiet401: true });
    take(s);
    return {
      authenticated: Boolean(s.authenticated),
      setupRequired: Boolean(s.setupRequired),
      ...(s.user ? { user: s.user } : {}),
      ...(s.expiresAt ? { expiresAt: s.expiresAt } : {}),
      mode: 'session',
    };
  } catch (e) {
    if (e instanceof ApiError && e.status === 401)
      return { authenticated: false, setupRequired: false, mode: 'session' };
    if (!isMissingRoute(e)) throw e;
    auth.bearer = sessionStorage.getItem(TOKEN_KEY) ?? undefined;
    return { authenticated: Boolean(auth.bearer), setupRequired: false, mode: 'token' };
  }
}

export async function signIn(password: string): Promise<Session> {
  const s = await api.post<SessionBody>('/api/v1/session', { password }, { quiet401: true });
  take(s);
  return {
    authenticated: true,
    setupRequired: false,
    ...(s.user ? { user: s.user } : {}),
    ...(s.expiresAt ? { expiresAt: s.expiresAt } : {}),
    mode: 'session',
  };
}

/** First start: the setup token from the box's console and the new admin password; then signed in. */
export async function setUp(token: string, password: string): Promise<Session> {
  const s = await api.post<SessionBody>('/api/v1/setup', { token, password }, { quiet401: true });
  if (s?.csrfToken) {
    take(s);
    return { authenticated: true, setupRequired: false, ...(s.user ? { user: s.user } : {}), mode: 'session' };
  }
  return signIn(password);
}

/**
 * Changes the admin password. Every session on the box ends; this browser is handed a new
 * one (its cookie is set by the answer, its CSRF token taken here).
 */
export async function changePassword(currentPassword: string, newPassword: string): Promise<number> {
  const r = await api.post<SessionBody & { sessionsEnded?: number }>('/api/v1/session/password', {
    currentPassword,
    newPassword,
  });
  take(r);
  return r.sessionsEnded ?? 0;
}

/** Token mode: remember the API token for this tab. */
export function rememberApiToken(token: string): Session {
  auth.bearer = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  return { authenticated: true, setupRequired: false, user: 'API token', mode: 'token' };
}

export async function signOut(mode: Session['mode']): Promise<void> {
  if (mode === 'session') await api.del('/api/v1/session', { quiet401: true }).catch(() => undefined);
  auth.csrf = undefined;
  auth.bearer = undefined;
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Path segment for an id (MACs, image ids with slashes, names). */
export const seg = (id: string) => encodeURIComponent(id);
