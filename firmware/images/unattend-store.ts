/**
 * Where unattend templates live on the image store and how a machine's is found.
 *
 *   <imagesDir>/unattend/<arch>.xml | .inf     client unattend per architecture (WDS "client
 *                                              unattend": which image, disk layout), arch as
 *                                              MachineArch names it (bios, uefi-x64, arm64-uefi …)
 *   <imagesDir>/unattend/default.xml | .inf    for every architecture without its own
 *   <image file>.unattend.xml | .unattend.inf  image unattend, beside the image it belongs to
 *                                              (install-images/hpc/win11.wim.unattend.xml)
 *
 * A template is checked when it is saved (an unknown variable or broken XML is refused at
 * upload, not at boot) and again when it is read, since the volume may be edited by hand.
 * Saving writes a temporary file, fsyncs it and renames it over the old one, so a power cut
 * leaves the old template or the new one, never half of one.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BootboxError } from '../core/errors.ts';
import type { Machine, MachineArch } from '../domain/machine.ts';
import {
  parseTemplate,
  renderTemplate,
  type Template,
  type TemplateFormat,
  type UnattendBoxSettings,
  unattendValues,
} from './unattend.ts';

export type UnattendKind = 'client' | 'image';

/** The client templates' folder under imagesDir. */
export const UNATTEND_DIR = 'unattend';
/** Largest template accepted (real answer files are a few KiB). */
export const MAX_TEMPLATE_BYTES = 1024 * 1024;

/** Every architecture (a Record so that a new MachineArch cannot be forgotten here). */
const ARCHES: Record<MachineArch, true> = {
  bios: true,
  'uefi-ia32': true,
  'uefi-x64': true,
  'uefi-ebc': true,
  'arm32-uefi': true,
  'arm64-uefi': true,
  'riscv32-uefi': true,
  'riscv64-uefi': true,
  'loongarch64-uefi': true,
  'arm32-uboot': true,
  'arm64-uboot': true,
  rpi: true,
  unknown: true,
};

const EXTENSION: Record<TemplateFormat, string> = { xml: '.xml', ini: '.inf' };

/** The format a template file is in, from its name: `.xml` or `.inf`. */
export function formatOf(file: string): TemplateFormat | undefined {
  const ext = path.extname(file).toLowerCase();
  return ext === '.xml' ? 'xml' : ext === '.inf' ? 'ini' : undefined;
}

export interface UnattendStoreOptions {
  imagesDir: string;
  /** The machine with this MAC (normalised, aa:bb:cc:dd:ee:ff), if registered. */
  machine(mac: string): Machine | undefined;
  /** The image the machine deploys (e.g. boot-policy's resolveImage), if any. */
  imageFor(machine: Machine): string | undefined;
  /** The absolute path of an image's file in the store, if the catalog has it. */
  imageFile(image: string): string | undefined;
  /** Box-wide values: domain, organisation, time zone, the box URL. */
  settings(): UnattendBoxSettings;
}

export interface RenderedUnattend {
  body: string;
  format: TemplateFormat;
  contentType: string;
  /** The template file it came from. */
  template: string;
}

export class UnattendStore {
  private readonly o: UnattendStoreOptions;

  constructor(o: UnattendStoreOptions) {
    this.o = o;
  }

  /** `<imagesDir>/unattend/<arch>.xml|.inf`; `arch` may be `default`. */
  clientTemplatePath(arch: MachineArch | 'default', format: TemplateFormat): string {
    if (arch !== 'default' && !Object.hasOwn(ARCHES, arch)) {
      throw new BootboxError(
        'INVALID_REQUEST',
        `unknown architecture ${JSON.stringify(arch)} for a client unattend (known: default, ${Object.keys(ARCHES).join(', ')})`,
      );
    }
    return path.join(path.resolve(this.o.imagesDir), UNATTEND_DIR, `${arch}${EXTENSION[format]}`);
  }

  /** `<image file>.unattend.xml|.unattend.inf`. */
  imageTemplatePath(imageFile: string, format: TemplateFormat): string {
    return `${imageFile}.unattend${EXTENSION[format]}`;
  }

  /** The client template for an architecture: its own, else `default`; undefined if neither exists. */
  async findClientTemplate(arch: MachineArch, format: TemplateFormat): Promise<string | undefined> {
    for (const a of [arch, 'default'] as const) {
      const p = this.clientTemplatePath(a, format);
      if (await isFile(p)) return p;
    }
    return undefined;
  }

  async saveClientTemplate(arch: MachineArch | 'default', format: TemplateFormat, text: string): Promise<string> {
    const p = this.clientTemplatePath(arch, format);
    await saveTemplate(p, text);
    return p;
  }

  async saveImageTemplate(image: string, format: TemplateFormat, text: string): Promise<string> {
    const file = this.o.imageFile(image);
    if (!file) throw new BootboxError('NOT_FOUND', `image ${image} is not in the catalog`);
    const p = this.imageTemplatePath(file, format);
    await saveTemplate(p, text);
    return p;
  }

  /**
   * The unattend file for a machine: its architecture's client template or its image's
   * template, in the format `file` names (`client.xml`, `sysprep.inf` …), rendered with
   * its values. BootboxError NOT_FOUND (unknown machine, no image, no template),
   * FORBIDDEN (rejected machine), INVALID_TEMPLATE (the stored template is broken),
   * UNATTEND_VALUE_MISSING or UNSAFE_SCRIPT_VALUE otherwise.
   */
  async renderFor(mac: string, which: UnattendKind, file: string): Promise<RenderedUnattend> {
    const format = formatOf(file);
    if (!format) throw new BootboxError('NOT_FOUND', `${file}: an unattend file is .xml or .inf`);
    const machine = this.o.machine(mac);
    if (!machine || machine.state === 'unknown') {
      throw new BootboxError('NOT_FOUND', `no machine ${mac} is registered`, { mac });
    }
    const who = machine.name ? `${machine.name} (${mac})` : mac;
    if (machine.state === 'rejected') {
      throw new BootboxError('FORBIDDEN', `machine ${who} is rejected: it gets no unattend file`, { mac });
    }
    const image = this.o.imageFor(machine);
    let templatePath: string | undefined;
    if (which === 'client') {
      templatePath = await this.findClientTemplate(machine.arch, format);
      if (!templatePath) {
        throw new BootboxError(
          'NOT_FOUND',
          `no client unattend for ${who}: neither ${this.clientTemplatePath(machine.arch, format)} nor ${this.clientTemplatePath('default', format)} exists`,
          { mac, arch: machine.arch },
        );
      }
    } else {
      if (!image) throw new BootboxError('NOT_FOUND', `${who} has no image, so it has no image unattend`, { mac });
      const imageFile = this.o.imageFile(image);
      if (!imageFile)
        throw new BootboxError('NOT_FOUND', `image ${image} of ${who} is not in the catalog`, { mac, image });
      templatePath = this.imageTemplatePath(imageFile, format);
      if (!(await isFile(templatePath))) {
        throw new BootboxError('NOT_FOUND', `image ${image} has no unattend template ${templatePath}`, { mac, image });
      }
    }
    const template = await loadTemplate(templatePath);
    const body = renderTemplate(template, unattendValues(machine, this.o.settings(), image));
    return {
      body,
      format,
      contentType: format === 'xml' ? 'application/xml; charset=utf-8' : 'text/plain; charset=utf-8',
      template: templatePath,
    };
  }
}

/** Reads and checks a stored template. */
export async function loadTemplate(file: string): Promise<Template> {
  const format = formatOf(file);
  if (!format) throw new BootboxError('INVALID_TEMPLATE', `${file}: an unattend template is .xml or .inf`);
  let buf: Buffer;
  try {
    const st = await fs.promises.stat(file);
    if (st.size > MAX_TEMPLATE_BYTES) {
      throw new BootboxError(
        'INVALID_TEMPLATE',
        `${file} is ${st.size} bytes: templates are at most ${MAX_TEMPLATE_BYTES}`,
      );
    }
    buf = await fs.promises.readFile(file);
  } catch (e) {
    if (e instanceof BootboxError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new BootboxError('NOT_FOUND', `unattend template ${file} does not exist`);
    throw new BootboxError(
      'VOLUME_UNAVAILABLE',
      `cannot read unattend template ${file}: ${code ?? (e as Error).message}`,
    );
  }
  return parseTemplate(decodeUtf8(buf, file), { format, source: path.basename(file) });
}

/**
 * Checks a template and writes it atomically (temporary file, fsync, rename, fsync of the
 * folder). The format follows the file name (`.xml` or `.inf`). Returns the parsed template.
 */
export async function saveTemplate(file: string, text: string): Promise<Template> {
  const format = formatOf(file);
  if (!format) throw new BootboxError('INVALID_REQUEST', `${file}: an unattend template must be named .xml or .inf`);
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > MAX_TEMPLATE_BYTES) {
    throw new BootboxError(
      'INVALID_TEMPLATE',
      `${path.basename(file)} is ${bytes.length} bytes: templates are at most ${MAX_TEMPLATE_BYTES}`,
    );
  }
  const template = parseTemplate(text, { format, source: path.basename(file) });
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await fs.promises.mkdir(dir, { recursive: true });
    const fh = await fs.promises.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true }).catch(() => {});
    throw writeError(e, file);
  }
  await syncDir(dir);
  return template;
}

function writeError(e: unknown, file: string): BootboxError {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EROFS':
      return new BootboxError('VOLUME_READ_ONLY', `cannot save ${file}: the image volume is mounted read-only`, {
        file,
      });
    case 'ENOSPC':
    case 'EDQUOT':
      return new BootboxError('DISK_FULL', `cannot save ${file}: the image volume is full`, { file });
    case 'ENOENT':
    case 'ENOTDIR':
      return new BootboxError('NOT_FOUND', `cannot save ${file}: its folder does not exist`, { file });
    default:
      return new BootboxError('INTERNAL', `cannot save ${file}: ${code ?? (e as Error).message}`, { file });
  }
}

/** Makes a rename durable. Some file systems (FUSE exFAT/NTFS) refuse to fsync a folder: not an error. */
async function syncDir(dir: string): Promise<void> {
  try {
    const dh = await fs.promises.open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // best effort
  }
}

function decodeUtf8(buf: Buffer, file: string): string {
  if ((buf[0] === 0xff && buf[1] === 0xfe) || (buf[0] === 0xfe && buf[1] === 0xff)) {
    throw new BootboxError('INVALID_TEMPLATE', `${file} is saved as UTF-16: save it as UTF-8`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw new BootboxError('INVALID_TEMPLATE', `${file} is not valid UTF-8: save it as UTF-8`);
  }
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fs.promises.stat(p)).isFile();
  } catch {
    return false;
  }
}
