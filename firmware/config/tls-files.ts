/** TLS material named in the configuration: read once at start, checked, with errors naming the key. */
import { readFileSync } from 'node:fs';
import { BootboxError } from '../core/errors.ts';

export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * Reads the PEM files a config section names (`mqtt.ca/cert/key`, `ui.tls.cert/key`; `prefix`
 * is the section); an unreadable or non-PEM file is a configuration error naming the key
 * and the file.
 */
export function readTlsFiles(
  files: { ca?: string; cert?: string; key?: string },
  readFile: (file: string) => Buffer = (f) => readFileSync(f),
  prefix = 'mqtt',
): TlsMaterial {
  const out: TlsMaterial = {};
  for (const k of ['ca', 'cert', 'key'] as const) {
    const file = files[k];
    if (!file) continue;
    let data: Buffer;
    try {
      data = readFile(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new BootboxError('CONFIG_UNREADABLE', `"${prefix}.${k}" ${file} cannot be read (${code})`);
    }
    if (!data.includes('-----BEGIN ')) {
      throw new BootboxError('CONFIG_INVALID', `"${prefix}.${k}" ${file} is not a PEM file`);
    }
    out[k] = data;
  }
  if (Boolean(out.cert) !== Boolean(out.key)) {
    throw new BootboxError('CONFIG_INVALID', `"${prefix}.cert" and "${prefix}.key" go together: give both or neither`);
  }
  return out;
}
