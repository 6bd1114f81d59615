/**
 * `/api/v1/unattend…`: the unattend templates an admin writes once and the box renders
 * per machine (images/unattend*.ts). A template is checked when it is saved: an unknown
 * variable is refused here, naming it and its line, never at a node's boot.
 *
 *   GET /api/v1/unattend                               the templates there are
 *   GET /api/v1/unattend/client/{arch}.{xml|inf}       one client template (text)
 *   PUT /api/v1/unattend/client/{arch}.{xml|inf}       {"text": "..."}  (arch: an architecture or "default")
 *   GET /api/v1/images/{id}/unattend.{xml|inf}         an image's template
 *   PUT /api/v1/images/{id}/unattend.{xml|inf}         {"text": "..."}
 */
import fs from 'node:fs';
import path from 'node:path';
import { BootboxError } from '../core/errors.ts';
import type { MachineArch } from '../domain/machine.ts';
import type { Catalog } from '../images/catalog.ts';
import type { TemplateFormat } from '../images/unattend.ts';
import { MAX_TEMPLATE_BYTES, UNATTEND_DIR, type UnattendStore } from '../images/unattend-store.ts';
import type { Route } from './route.ts';
import type { Schema } from './validate.ts';

const TEMPLATE_BODY: Schema = {
  type: 'object',
  required: ['text'],
  additionalProperties: false,
  properties: { text: { type: 'string', maxLength: MAX_TEMPLATE_BYTES } },
};

function split(file: string): { name: string; format: TemplateFormat } {
  const m = /^([A-Za-z0-9-]{1,32})\.(xml|inf)$/.exec(file);
  if (!m) throw new BootboxError('INVALID_REQUEST', `"${file}": name a template as <arch>.xml or <arch>.inf`);
  return { name: m[1]!, format: m[2] === 'xml' ? 'xml' : 'ini' };
}

async function readText(file: string): Promise<string> {
  try {
    return await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new BootboxError('NOT_FOUND', `no template ${file}`);
    throw new BootboxError('VOLUME_UNAVAILABLE', `cannot read ${file} (${(e as NodeJS.ErrnoException).code})`);
  }
}

function textOf(body: unknown): string {
  return (body as { text: string }).text;
}

export function unattendRoutes(store: UnattendStore, catalog: Catalog): Route[] {
  const imageFile = (id: string): string => {
    const i = catalog.get(id);
    if (!i) throw new BootboxError('NOT_FOUND', `no image "${id}" in the catalog`);
    return path.join(catalog.imagesDir, i.source.file);
  };
  const format = (ext: string): TemplateFormat => {
    if (ext !== 'xml' && ext !== 'inf')
      throw new BootboxError('INVALID_REQUEST', 'an unattend template is .xml or .inf');
    return ext === 'xml' ? 'xml' : 'ini';
  };
  return [
    {
      method: 'GET',
      path: '/api/v1/unattend',
      auth: false,
      summary: 'The unattend templates: client templates per architecture, and images that have one',
      handler: async () => {
        const dir = path.join(catalog.imagesDir, UNATTEND_DIR);
        const client = (await fs.promises.readdir(dir).catch(() => [] as string[]))
          .filter((f) => /\.(xml|inf)$/.test(f))
          .sort();
        const images = catalog
          .list()
          .filter((i) => i.available)
          .flatMap((i) =>
            ['xml', 'inf']
              .filter((ext) => fs.existsSync(`${path.join(catalog.imagesDir, i.source.file)}.unattend.${ext}`))
              .map((ext) => ({ image: i.id, file: `unattend.${ext}` })),
          );
        return { status: 200, body: { client, images } };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/unattend/client/{file}',
      auth: false,
      summary: 'One client unattend template, as stored',
      handler: async ({ params }) => {
        const { name, format } = split(params.file!);
        const p = store.clientTemplatePath(name as MachineArch | 'default', format);
        return { status: 200, body: { file: params.file, text: await readText(p) } };
      },
    },
    {
      method: 'PUT',
      path: '/api/v1/unattend/client/{file}',
      auth: true,
      summary: 'Save a client unattend template (checked: unknown variables are refused)',
      requestSchema: TEMPLATE_BODY,
      handler: async ({ params, body }) => {
        const { name, format } = split(params.file!);
        const p = await store.saveClientTemplate(name as MachineArch | 'default', format, textOf(body));
        return { status: 200, body: { saved: path.relative(catalog.imagesDir, p) } };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/images/{id}/unattend.{ext}',
      auth: false,
      summary: "An image's unattend template, as stored",
      handler: async ({ params }) => {
        const f = format(params.ext!);
        const p = store.imageTemplatePath(imageFile(params.id!), f);
        return { status: 200, body: { image: params.id, text: await readText(p) } };
      },
    },
    {
      method: 'PUT',
      path: '/api/v1/images/{id}/unattend.{ext}',
      auth: true,
      summary: "Save an image's unattend template, beside the image (checked: unknown variables are refused)",
      requestSchema: TEMPLATE_BODY,
      handler: async ({ params, body }) => {
        const f = format(params.ext!);
        const img = catalog.get(params.id!);
        if (!img) throw new BootboxError('NOT_FOUND', `no image "${params.id}" in the catalog`);
        const p = await store.saveImageTemplate(img.id, f, textOf(body));
        return { status: 200, body: { saved: path.relative(catalog.imagesDir, p) } };
      },
    },
  ];
}
