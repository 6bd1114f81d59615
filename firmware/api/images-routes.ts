/**
 * `/api/v1/images…` and `/api/v1/uploads…`: the catalog, its groups, rescans, and
 * resumable uploads.
 *
 *   POST   /api/v1/uploads            {filename, size, kind?, group?, name?, sha256?} → 201 upload
 *   PUT    /api/v1/uploads/{id}       raw bytes; `Content-Range: bytes A-B/SIZE` (A = received)
 *   GET    /api/v1/uploads/{id}       where the upload stands (`received`): resume from there
 *   DELETE /api/v1/uploads/{id}       give up; the staged bytes are removed
 */
import { BootboxError } from '../core/errors.ts';
import type { Catalog, CatalogImage } from '../images/catalog.ts';
import type { Uploads } from '../images/uploads.ts';
import { errorBody, type Route } from './server.ts';
import type { Schema } from './validate.ts';

const ARCHES = ['x86', 'x64', 'arm', 'arm64', 'ia64', 'any', 'unknown'];
const OSES = ['windows', 'linux'];

const IMAGE_PATCH: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    enabled: { type: 'boolean' },
    description: { type: 'string', maxLength: 1024 },
    architecture: { type: 'string', enum: ARCHES },
    os: { type: 'string', enum: OSES },
  },
};

const GROUP_PATCH: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: { enabled: { type: 'boolean' }, description: { type: 'string', maxLength: 1024 } },
};

/** The shape of POST /api/v1/uploads; Uploads.create checks names, sizes and free space. */
const NEW_UPLOAD: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    filename: { type: 'string', minLength: 1, maxLength: 128 },
    size: { type: 'integer', minimum: 1 },
    kind: { type: 'string', enum: ['boot', 'install'] },
    group: { type: 'string', maxLength: 64 },
    name: { type: 'string', maxLength: 128 },
    sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
  },
  required: ['filename', 'size'],
};

function view(i: CatalogImage): Record<string, unknown> {
  return i as unknown as Record<string, unknown>;
}

function obj(body: unknown, shape: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new BootboxError('INVALID_REQUEST', `body must be an object: ${shape}`);
  }
  return body as Record<string, unknown>;
}

/** `bytes A-B/SIZE` → offset and length; the total must be the upload's declared size. */
export function parseContentRange(h: string | undefined, size: number): { offset: number; length: number } {
  if (h === undefined) return { offset: 0, length: size };
  const m = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15}|\*)$/.exec(h.trim());
  if (!m)
    throw new BootboxError(
      'INVALID_REQUEST',
      `Content-Range must look like "bytes 0-1048575/${size}" (got ${JSON.stringify(h)})`,
    );
  const a = Number(m[1]);
  const b = Number(m[2]);
  if (b < a) throw new BootboxError('INVALID_REQUEST', `Content-Range ${h}: the last byte comes before the first`);
  if (m[3] !== '*' && Number(m[3]) !== size) {
    throw new BootboxError('UPLOAD_INVALID', `Content-Range ${h}: the total is not the upload's declared size ${size}`);
  }
  if (b >= size) throw new BootboxError('UPLOAD_INVALID', `Content-Range ${h} goes beyond the declared size ${size}`);
  return { offset: a, length: b - a + 1 };
}

export function imageRoutes(catalog: Catalog, uploads: Uploads): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/v1/images',
      auth: false,
      summary: 'The image catalog (?group=, ?kind= filter), its groups, problems and volume state',
      querySchema: { group: { type: 'string', maxLength: 64 }, kind: { type: 'string', maxLength: 16 } },
      responseDescription: '{images, count, groups, problems, volume, lastScan}',
      handler: ({ query }) => {
        const group = query.get('group');
        const kind = query.get('kind');
        const images = catalog
          .list()
          .filter((i) => (!group || i.group.toLowerCase() === group.toLowerCase()) && (!kind || i.kind === kind));
        return {
          status: 200,
          body: {
            images: images.map(view),
            count: images.length,
            groups: catalog.groups(),
            problems: catalog.problems(),
            volume: catalog.volumeState(),
            lastScan: catalog.lastScan() ?? null,
          },
        };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/images/{id}',
      auth: false,
      summary: 'One catalog image',
      responseDescription: '{image}',
      handler: ({ params }) => {
        const i = catalog.get(params.id!);
        return i
          ? { status: 200, body: { image: view(i) } }
          : errorBody('NOT_FOUND', `no image "${params.id}" in the catalog`);
      },
    },
    {
      method: 'PUT',
      path: '/api/v1/images/{id}',
      auth: true,
      summary: 'Enable or disable an image, or set its description, architecture or OS',
      requestSchema: IMAGE_PATCH,
      responseDescription: '{image}',
      handler: ({ params, body }) => {
        const b = obj(body, '{"enabled"?, "description"?, "architecture"?, "os"?}');
        const patch: Parameters<Catalog['update']>[1] = {};
        for (const [k, v] of Object.entries(b)) {
          if (k === 'enabled' && typeof v === 'boolean') patch.enabled = v;
          else if (
            k === 'description' &&
            typeof v === 'string' &&
            v.length <= 1024 &&
            !/[\u0000-\u001f]/.test(v.replace(/\n/g, ''))
          ) {
            patch.description = v;
          } else if (k === 'architecture' && typeof v === 'string' && ARCHES.includes(v)) patch.architecture = v;
          else if (k === 'os' && typeof v === 'string' && OSES.includes(v)) patch.os = v;
          else if (['enabled', 'description', 'architecture', 'os'].includes(k)) {
            return errorBody(
              'INVALID_REQUEST',
              k === 'enabled'
                ? '"enabled" must be true or false'
                : k === 'description'
                  ? '"description" must be text of at most 1024 characters'
                  : k === 'architecture'
                    ? `"architecture" must be one of ${ARCHES.join(', ')}`
                    : `"os" must be one of ${OSES.join(', ')}`,
            );
          } else return errorBody('INVALID_REQUEST', `unknown field "${k}"`);
        }
        return { status: 200, body: { image: view(catalog.update(params.id!, patch)) } };
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/images/{id}',
      auth: true,
      summary: 'Forget an image (its files stay on the volume)',
      responseDescription: '{forgotten}',
      handler: ({ params }) => {
        catalog.forget(params.id!);
        return { status: 200, body: { forgotten: params.id } };
      },
    },
    {
      method: 'PUT',
      path: '/api/v1/image-groups/{name}',
      auth: true,
      summary: 'Enable or disable an image group, or set its description',
      requestSchema: GROUP_PATCH,
      responseDescription: '{group}',
      handler: ({ params, body }) => {
        const b = obj(body, '{"enabled"?, "description"?}');
        const patch: { enabled?: boolean; description?: string } = {};
        for (const [k, v] of Object.entries(b)) {
          if (k === 'enabled' && typeof v === 'boolean') patch.enabled = v;
          else if (k === 'description' && typeof v === 'string' && v.length <= 1024) patch.description = v;
          else
            return errorBody(
              'INVALID_REQUEST',
              `field "${k}": expected "enabled" (true/false) or "description" (text)`,
            );
        }
        return { status: 200, body: { group: catalog.setGroup(params.name!, patch) } };
      },
    },
    {
      method: 'POST',
      path: '/api/v1/images/rescan',
      auth: true,
      summary: 'Rescan the image volume',
      responseDescription: 'the scan result',
      handler: async () => {
        const r = await catalog.scan();
        return { status: 200, body: r };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/uploads',
      auth: false,
      summary: 'Uploads in progress',
      responseDescription: '{uploads}',
      handler: () => ({ status: 200, body: { uploads: uploads.list() } }),
    },
    {
      method: 'POST',
      path: '/api/v1/uploads',
      auth: true,
      summary: 'Start a resumable upload (then PUT its bytes to /api/v1/uploads/{id})',
      requestSchema: NEW_UPLOAD,
      responseDescription: '201 {upload, put}',
      handler: async ({ body, actor }) => {
        const u = await uploads.create(body, actor);
        return { status: 201, body: { upload: u, put: `/api/v1/uploads/${u.id}` } };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/uploads/{id}',
      auth: false,
      summary: 'Where an upload stands (resume from `received`)',
      responseDescription: '{upload}',
      handler: ({ params }) => ({ status: 200, body: { upload: uploads.describe(params.id!) } }),
    },
    {
      method: 'PUT',
      path: '/api/v1/uploads/{id}',
      auth: true,
      raw: true,
      summary: 'Upload bytes: raw body with Content-Range: bytes A-B/SIZE',
      responseDescription: '{upload} (201 when complete)',
      handler: async ({ params, headers, req }) => {
        const u = uploads.get(params.id!);
        const r = parseContentRange(headers['content-range'] as string | undefined, u.size);
        const declared = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
        if (declared !== undefined && headers['content-range'] !== undefined && declared !== r.length) {
          throw new BootboxError(
            'INVALID_REQUEST',
            `Content-Length ${declared} does not match Content-Range (${r.length} bytes)`,
          );
        }
        const after = await uploads.write(u.id, r.offset, req, declared ?? r.length);
        return { status: after.state === 'complete' ? 201 : 200, body: { upload: after } };
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/uploads/{id}',
      auth: true,
      summary: 'Give up an upload; its staged bytes are removed',
      responseDescription: '{aborted}',
      handler: async ({ params }) => {
        await uploads.abort(params.id!);
        return { status: 200, body: { aborted: params.id } };
      },
    },
  ];
}
