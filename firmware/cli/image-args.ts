/**
 * `bootbox image …`: the image store from the command line (pure parsing).
 *
 *   bootbox image import FILE|- [--group G] [--kind boot|install] [--name N]
 *                               [--description TEXT] [--arch A] [--os windows|linux]
 *   bootbox image list [--json]
 *   bootbox image scan
 *
 * Each takes the serve flags that locate the store: --config FILE, --data DIR, --images DIR, --lab.
 */
import { parseArgs } from 'node:util';
import { BootboxError } from '../core/errors.ts';

export type ImageCommand =
  | {
      cmd: 'image-import';
      file: string;
      group?: string;
      kind: 'boot' | 'install';
      name?: string;
      description?: string;
      arch?: string;
      os?: 'windows' | 'linux';
      store: StoreFlags;
    }
  | { cmd: 'image-list'; json: boolean; store: StoreFlags }
  | { cmd: 'image-scan'; store: StoreFlags };

export interface StoreFlags {
  configFile?: string;
  dataDir?: string;
  imagesDir?: string;
  lab: boolean;
}

const usage = (m: string) => new BootboxError('USAGE', `image: ${m}`);
const NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;
const ARCHES = ['x86', 'x64', 'arm', 'arm64', 'ia64', 'any'];

export function parseImageCommand(args: string[]): ImageCommand {
  const [action, ...rest] = args;
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string' },
        data: { type: 'string' },
        images: { type: 'string' },
        lab: { type: 'boolean' },
        group: { type: 'string' },
        kind: { type: 'string' },
        name: { type: 'string' },
        description: { type: 'string' },
        arch: { type: 'string' },
        os: { type: 'string' },
        json: { type: 'boolean' },
      },
    });
  } catch (e) {
    throw usage((e as Error).message.split('. ')[0]!.replace(/^Unknown option/, 'unknown flag'));
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const store: StoreFlags = {
    ...(v.config ? { configFile: v.config as string } : {}),
    ...(v.data ? { dataDir: v.data as string } : {}),
    ...(v.images ? { imagesDir: v.images as string } : {}),
    lab: Boolean(v.lab),
  };
  const only = (allowed: string[]) => {
    for (const k of Object.keys(v)) {
      if (!['config', 'data', 'images', 'lab', ...allowed].includes(k))
        throw usage(`${action}: --${k} is not a flag of "image ${action}"`);
    }
  };
  switch (action) {
    case 'import': {
      only(['group', 'kind', 'name', 'description', 'arch', 'os']);
      const [file, extra] = parsed.positionals;
      if (!file) throw usage('import needs a file: bootbox image import FILE [--group G] [--kind boot|install]');
      if (extra) throw usage(`import takes one file (got also "${extra}")`);
      const kind = (v.kind as string | undefined) ?? 'install';
      if (kind !== 'boot' && kind !== 'install') throw usage(`--kind must be boot or install (got "${kind}")`);
      for (const k of ['group', 'name'] as const) {
        const x = v[k] as string | undefined;
        if (x !== undefined && !NAME.test(x))
          throw usage(`--${k} must be 1-64 letters, digits, space, . _ or - (got "${x}")`);
      }
      if (kind === 'boot' && v.group !== undefined)
        throw usage('--group is for install images (boot images have no groups)');
      if (file === '-' && v.name === undefined) throw usage('importing from standard input needs --name');
      const arch = v.arch as string | undefined;
      if (arch !== undefined && !ARCHES.includes(arch))
        throw usage(`--arch must be one of ${ARCHES.join(', ')} (got "${arch}")`);
      const os = v.os as string | undefined;
      if (os !== undefined && os !== 'windows' && os !== 'linux')
        throw usage(`--os must be windows or linux (got "${os}")`);
      return {
        cmd: 'image-import',
        file,
        kind,
        ...(v.group ? { group: v.group as string } : {}),
        ...(v.name ? { name: v.name as string } : {}),
        ...(v.description !== undefined ? { description: v.description as string } : {}),
        ...(arch ? { arch } : {}),
        ...(os ? { os: os as 'windows' | 'linux' } : {}),
        store,
      };
    }
    case 'list':
      only(['json']);
      if (parsed.positionals.length) throw usage(`list takes no arguments (got "${parsed.positionals[0]}")`);
      return { cmd: 'image-list', json: Boolean(v.json), store };
    case 'scan':
      only([]);
      if (parsed.positionals.length) throw usage(`scan takes no arguments (got "${parsed.positionals[0]}")`);
      return { cmd: 'image-scan', store };
    default:
      throw usage(`unknown action "${action ?? ''}" (try: import, list, scan)`);
  }
}
