import { readFileSync } from 'node:fs';
import { BootboxError } from '../core/errors.ts';
import type { Config, ConfigIssue } from './schema.ts';
import { checkConfig, checkConsistency, defaultConfig, mergeConfig } from './schema.ts';

export interface ResolveOptions {
  configFile?: string;
  /** Partial config built from flags. */
  overrides?: Record<string, unknown>;
  /** Maps a config key to the flag that set it, so messages name what the user typed. */
  flagOfKey?: Record<string, string>;
  /** Defaults that depend on the situation (e.g. lab mode's data dir). */
  defaults?: Record<string, unknown>;
  readFile?: (path: string) => string;
}

/** File, then flags, over the defaults. Throws BootboxError(CONFIG_*) naming the key or flag. */
export function resolveConfig(opts: ResolveOptions): Config {
  let fromFile: unknown = {};
  if (opts.configFile) {
    const file = opts.configFile;
    let text: string;
    try {
      text = (opts.readFile ?? ((p) => readFileSync(p, 'utf8')))(file);
    } catch (e) {
      throw new BootboxError(
        'CONFIG_UNREADABLE',
        `config file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    try {
      fromFile = JSON.parse(text);
    } catch (e) {
      throw new BootboxError('CONFIG_INVALID', `config file ${file}: not valid JSON (${(e as Error).message})`);
    }
    const issues = checkConfig(fromFile);
    if (issues.length) throw invalid(issues, `config file ${file}: `);
  }
  const overrides = opts.overrides ?? {};
  const flagIssues = checkConfig(overrides);
  if (flagIssues.length) throw invalid(flagIssues, '', opts.flagOfKey);
  const config = mergeConfig(defaultConfig(), opts.defaults ?? {}, fromFile, overrides);
  const cross = checkConsistency(config);
  if (cross.length) throw invalid(cross, '', opts.flagOfKey);
  return config;
}

function invalid(issues: ConfigIssue[], prefix: string, flagOfKey: Record<string, string> = {}): BootboxError {
  const first = issues[0]!;
  const name = flagOfKey[first.key] ?? `"${first.key}"`;
  const more =
    issues.length > 1
      ? ` (and ${issues.length - 1} more: ${issues
          .slice(1)
          .map((i) => i.key)
          .join(', ')})`
      : '';
  return new BootboxError('CONFIG_INVALID', `${prefix}${name} ${first.message}${more}`, { issues });
}
