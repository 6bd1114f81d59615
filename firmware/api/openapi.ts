/**
 * GET /api/v1/openapi.json: an OpenAPI 3.1 document made from the route table, so it lists
 * exactly the routes the server answers, with their path parameters, who may call them
 * (`security`, and `x-bootbox-access`: public, read or admin) and their request schemas.
 */
import { accessOf, type Route } from './route.ts';
import type { Schema } from './validate.ts';

export interface OpenApiInfo {
  version: string;
  /** `ui.openReadOnly`: read routes are open to the private network. */
  openReadOnly?: boolean;
}

const ERROR_SCHEMA: Schema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string', description: 'A code from the one registry (firmware/core/errors.ts)' },
        message: { type: 'string' },
      },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
};

export function buildOpenApi(routes: readonly Route[], info: OpenApiInfo): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const access = accessOf(r);
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    const query = Object.entries(r.querySchema ?? {}).map(([name, schema]) => ({
      name,
      in: 'query',
      required: false,
      schema,
      ...(schema.description ? { description: schema.description } : {}),
    }));
    const op: Record<string, unknown> = {
      operationId: operationId(r),
      summary: r.summary ?? `${r.method} ${r.path}`,
      'x-bootbox-access': access,
      // Either scheme; a change made with the session cookie also needs the CSRF header.
      security:
        access === 'public' ? [] : [{ bearer: [] }, r.method === 'GET' ? { session: [] } : { session: [], csrf: [] }],
      responses: {
        '2XX': {
          description: r.responseDescription ?? 'OK',
          content: r.path === '/api/v1/events' ? { 'text/event-stream': {} } : { 'application/json': {} },
        },
        default: {
          description: 'An error',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
    };
    if (params.length || query.length) op.parameters = [...params, ...query];
    if (r.requestSchema) {
      op.requestBody = { required: true, content: { 'application/json': { schema: r.requestSchema } } };
    } else if (r.raw) {
      op.requestBody = { required: true, content: { 'application/octet-stream': {} } };
    }
    paths[r.path] ??= {};
    paths[r.path]![r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'bootbox',
      version: info.version,
      description:
        'Changes need a bearer token (Authorization: Bearer <api token>) or the web UI session cookie ' +
        'plus the header X-CSRF-Token. Read routes need either too' +
        (info.openReadOnly ? ', except from the private network (ui.openReadOnly).' : '.'),
    },
    paths,
    components: {
      schemas: { Error: ERROR_SCHEMA },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'api.tokens, or <data>/api-token' },
        session: { type: 'apiKey', in: 'cookie', name: 'bootbox_session', description: 'POST /api/v1/session' },
        csrf: {
          type: 'apiKey',
          in: 'header',
          name: 'X-CSRF-Token',
          description: 'The csrfToken of the session, on every change made with the session cookie',
        },
      },
    },
  };
}

function operationId(r: Route): string {
  const words = r.path
    .replace(/^\/api\/v1\//, '')
    .split(/[/.-]/)
    .filter(Boolean)
    .map((w) => (w.startsWith('{') ? `By${cap(w.slice(1, -1))}` : cap(w)));
  return r.method.toLowerCase() + words.join('');
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
