/**
 * Settings an admin changes from the web UI, and the effective configuration (secrets
 * redacted):
 *
 *   GET /api/v1/settings   {settings, editable, overlay, pending, restartRequired, restartKeys, shadowedByFlags}
 *   PUT /api/v1/settings   {"boot": {"unknown": "auto"}, "dhcp": {"range": null}, …}
 *
 * Only EDITABLE_SETTINGS may be changed; `null` removes a change (the config file's value
 * comes back). Changes are checked with the config schema (checkConfig) and kept in
 * `<data>/settings.json`, an overlay that the box puts over the config file at start
 * (command-line flags still win over it). The boot policy keys (LIVE_SETTINGS) take effect
 * at once through `apply`; the others are read by the services when they start, so they take
 * effect at the next start: the answer says `restartRequired` and names those keys.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { type Config, checkConfig } from '../config/schema.ts';
import { BootboxError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { parseNamingPattern } from '../policy/naming.ts';
import type { Route } from './route.ts';
import type { Schema } from './validate.ts';

export const EDITABLE_SETTINGS = [
  'boot.unknown',
  'boot.namingPattern',
  'boot.defaultImage',
  'dhcp.mode',
  'dhcp.range',
  'mqtt.url',
] as const;
export type SettingKey = (typeof EDITABLE_SETTINGS)[number];

/** The settings the running box can take at once (the boot policy reads them per boot). */
export const LIVE_SETTINGS: readonly SettingKey[] = ['boot.unknown', 'boot.namingPattern', 'boot.defaultImage'];

/** Editable key -> value, as kept in settings.json (there as nested objects). */
export type SettingsOverlay = Partial<Record<SettingKey, unknown>>;

const nullable = (s: Schema): Schema => ({ ...s, type: [s.type as 'string' | 'object', 'null'] });

/** The shape of a PUT body; the values are then checked by the config schema. */
export const SETTINGS_SCHEMA: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    boot: {
      type: 'object',
      additionalProperties: false,
      properties: {
        unknown: nullable({ type: 'string', enum: ['approve', 'auto', 'ignore', null] }),
        namingPattern: nullable({ type: 'string', minLength: 1, maxLength: 64 }),
        defaultImage: nullable({ type: 'object', description: 'architecture -> image name' }),
      },
    },
    dhcp: {
      type: 'object',
      additionalProperties: false,
      properties: {
        mode: nullable({ type: 'string', enum: ['full', 'proxy', 'off', 'auto', null] }),
        range: nullable({ type: 'string', maxLength: 64 }),
      },
    },
    mqtt: {
      type: 'object',
      additionalProperties: false,
      properties: { url: nullable({ type: 'string', maxLength: 512 }) },
    },
  },
};

// -- the overlay file -------------------------------------------------------------------

/** Reads `<data>/settings.json`; a missing file is an empty overlay. Throws CONFIG_INVALID naming the file and key. */
export function readSettingsOverlay(file: string): SettingsOverlay {
  if (!existsSync(file)) return {};
  let nested: unknown;
  try {
    nested = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BootboxError('CONFIG_INVALID', `${file}: not valid JSON (${(e as Error).message})`);
  }
  const overlay: SettingsOverlay = {};
  for (const key of leafKeys(nested)) {
    if (!(EDITABLE_SETTINGS as readonly string[]).includes(key)) {
      throw new BootboxError(
        'CONFIG_INVALID',
        `${file}: "${key}" cannot be set here (only ${EDITABLE_SETTINGS.join(', ')}); remove it`,
      );
    }
  }
  for (const key of EDITABLE_SETTINGS) {
    const v = getPath(nested, key);
    if (v !== undefined) overlay[key] = v;
  }
  const problem = checkOverlay(overlay);
  if (problem) throw new BootboxError('CONFIG_INVALID', `${file}: ${problem}`);
  return overlay;
}

/** The first problem with an overlay's values, naming the key; undefined when all are valid. */
export function checkOverlay(overlay: SettingsOverlay): string | undefined {
  const nested = nest(overlay);
  const issues = checkConfig(nested);
  if (issues.length) return `"${issues[0]!.key}" ${issues[0]!.message}`;
  if (typeof overlay['boot.namingPattern'] === 'string') {
    const p = parseNamingPattern(overlay['boot.namingPattern']);
    if (p instanceof BootboxError) return `"boot.namingPattern" ${p.message}`;
  }
  return undefined;
}

/** The config with the overlay's keys put over it, except keys set by flags (`fixed`), which win. */
export function withOverlay(base: Config, overlay: SettingsOverlay, fixed: readonly string[] = []): Config {
  const out = structuredClone(base);
  for (const [k, v] of Object.entries(overlay)) {
    if (v === undefined || fixed.includes(k)) continue;
    // Replaced, not merged: a defaultImage map from the UI is the whole map.
    setPath(out as unknown as Record<string, unknown>, k, structuredClone(v));
  }
  return out;
}

/** Dotted keys of the leaves of a nested object (lists and empty objects are leaves; `boot.defaultImage` is one). */
export function leafKeys(v: unknown, prefix = ''): string[] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return prefix ? [prefix] : [];
  if (prefix === 'boot.defaultImage') return [prefix];
  const entries = Object.entries(v);
  if (entries.length === 0) return prefix ? [prefix] : [];
  return entries.flatMap(([k, x]) => leafKeys(x, prefix ? `${prefix}.${k}` : k));
}

function writeOverlay(file: string, overlay: SettingsOverlay): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(nest(overlay), null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

// -- redaction --------------------------------------------------------------------------

export const REDACTED = '***';
const SECRET_KEY = /(password|passwd|secret|token)s?$/i;

/** A deep copy with every secret replaced by "***": passwords, tokens, broker users, passwords in URLs. */
export function redactConfig(c: Config): Record<string, unknown> {
  return redact(c, '') as Record<string, unknown>;
}

function redact(v: unknown, key: string): unknown {
  const name = key.slice(key.lastIndexOf('.') + 1);
  if (SECRET_KEY.test(name) || key === 'mqtt.broker.users') {
    if (typeof v === 'string') return REDACTED;
    if (Array.isArray(v)) return v.map(() => REDACTED);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.keys(v).map((k) => [k, REDACTED]));
  }
  if (typeof v === 'string') return v.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/\s]*):[^@/\s]*@/i, `$1:${REDACTED}@`);
  if (Array.isArray(v)) return v.map((x) => redact(x, key));
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redact(x, key ? `${key}.${k}` : k)]));
  }
  return v;
}

// -- routes -----------------------------------------------------------------------------

export interface SettingsOptions {
  /** `<data>/settings.json`. */
  file: string;
  /** The config from the file and flags, without the overlay. */
  base: Config;
  /** The config the box runs with (base + the overlay read at start). */
  running: Config;
  /**
   * Puts the LIVE_SETTINGS values of `next` into service; throws (nothing applied) if one
   * cannot be. Without it every change waits for a restart.
   */
  apply?: (next: Config) => void;
  /** The overlay as read at start. */
  overlay: SettingsOverlay;
  /** Keys set by command-line flags: they win over the overlay. */
  fixed: readonly string[];
  log?: Logger;
}

export function settingsRoutes(o: SettingsOptions): Route[] {
  let overlay: SettingsOverlay = { ...o.overlay };
  // What the box runs with: the start's configuration, then what `apply` put into service.
  const running = structuredClone(o.running);

  const state = () => {
    const next = withOverlay(o.base, overlay, o.fixed);
    const restartKeys = EDITABLE_SETTINGS.filter(
      (k) => JSON.stringify(getPath(next, k)) !== JSON.stringify(getPath(running, k)),
    );
    const redactedNext = redactConfig(next);
    return {
      overlay: redact(nest(overlay), '') as Record<string, unknown>,
      pending: Object.fromEntries(restartKeys.map((k) => [k, getPath(redactedNext, k) ?? null])),
      restartRequired: restartKeys.length > 0,
      restartKeys,
      shadowedByFlags: EDITABLE_SETTINGS.filter((k) => overlay[k] !== undefined && o.fixed.includes(k)),
    };
  };

  return [
    {
      method: 'GET',
      path: '/api/v1/settings',
      auth: true,
      summary:
        'The configuration the box runs with (secrets as "***"), the settings the UI may change, and changes waiting for a restart',
      responseDescription:
        '{settings, editable, overlay, pending: {key: value after restart}, restartRequired, restartKeys, shadowedByFlags}',
      handler: () => ({
        status: 200,
        body: { settings: redactConfig(running), editable: EDITABLE_SETTINGS, live: LIVE_SETTINGS, ...state() },
      }),
    },
    {
      method: 'PUT',
      path: '/api/v1/settings',
      auth: true,
      summary: `Change ${EDITABLE_SETTINGS.join(', ')} (kept in <data>/settings.json; null removes a change); ${LIVE_SETTINGS.join(', ')} take effect at once, the others at the next start`,
      requestSchema: SETTINGS_SCHEMA,
      responseDescription:
        '{changed, applied: keys now in service, restartRequired, restartKeys, pending, overlay, shadowedByFlags}',
      handler: ({ body }) => {
        const next: SettingsOverlay = { ...overlay };
        const changed: SettingKey[] = [];
        for (const k of EDITABLE_SETTINGS) {
          const v = getPath(body, k);
          if (v === undefined) continue;
          changed.push(k);
          if (v === null) delete next[k];
          else next[k] = v;
        }
        if (changed.length === 0) {
          throw new BootboxError('INVALID_REQUEST', `nothing to change: give one of ${EDITABLE_SETTINGS.join(', ')}`);
        }
        const problem = checkOverlay(next);
        if (problem) throw new BootboxError('INVALID_REQUEST', problem);
        const nextConfig = withOverlay(o.base, next, o.fixed);
        // Into service first (it may still refuse), then on disk: what is kept is what runs.
        const live = LIVE_SETTINGS.filter(
          (k) => JSON.stringify(getPath(nextConfig, k)) !== JSON.stringify(getPath(running, k)),
        );
        if (o.apply && live.length) o.apply(nextConfig);
        try {
          writeOverlay(o.file, next);
        } catch (e) {
          if (o.apply && live.length) o.apply(running);
          throw new BootboxError('INTERNAL', `settings not saved to ${o.file}: ${(e as Error).message}`);
        }
        overlay = next;
        const applied: SettingKey[] = [];
        if (o.apply) {
          for (const k of live) {
            setPath(running as unknown as Record<string, unknown>, k, structuredClone(getPath(nextConfig, k)));
            applied.push(k);
          }
        }
        const s = state();
        o.log?.info(`settings changed: ${changed.join(', ')}`, { applied, restartKeys: s.restartKeys });
        return { status: 200, body: { changed, applied, ...s } };
      },
    },
  ];
}

// -- dotted paths -----------------------------------------------------------------------

function getPath(obj: unknown, key: string): unknown {
  let cur = obj;
  for (const part of key.split('.')) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, part)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    const next = cur[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[part] = {};
    cur = cur[part] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

function nest(overlay: SettingsOverlay): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(overlay)) if (v !== undefined) setPath(out, k, v);
  return out;
}
