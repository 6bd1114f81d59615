/**
 * The settings form's values (pure): the editable keys of GET /api/v1/settings, the
 * changes waiting for a restart put over them, and the nested patch PUT /api/v1/settings
 * takes (`null` gives a key back to the config file).
 */

/** The editable keys, as dotted config paths. */
export const EDITABLE = [
  'boot.unknown',
  'boot.namingPattern',
  'boot.defaultImage',
  'dhcp.mode',
  'dhcp.range',
  'mqtt.url',
] as const;
export type SettingKey = (typeof EDITABLE)[number];
type Key = SettingKey;

export type SettingValues = {
  'boot.unknown': string;
  'boot.namingPattern': string;
  'boot.defaultImage': Record<string, string>;
  'dhcp.mode': string;
  'dhcp.range': string;
  'mqtt.url': string;
};

function get(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const p of path.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

export function valuesOf(settings: unknown): SettingValues {
  const s = (v: unknown) => (typeof v === 'string' ? v : '');
  const di = get(settings, 'boot.defaultImage');
  return {
    'boot.unknown': s(get(settings, 'boot.unknown')) || 'approve',
    'boot.namingPattern': s(get(settings, 'boot.namingPattern')),
    'boot.defaultImage':
      typeof di === 'object' && di !== null
        ? Object.fromEntries(Object.entries(di).filter((e): e is [string, string] => typeof e[1] === 'string'))
        : {},
    'dhcp.mode': s(get(settings, 'dhcp.mode')) || 'full',
    'dhcp.range': s(get(settings, 'dhcp.range')),
    'mqtt.url': s(get(settings, 'mqtt.url')),
  };
}

/** The changed keys as a nested patch: {boot: {unknown: …}, mqtt: {url: null}}; empty text clears. */
export function patchOf(before: SettingValues, after: SettingValues): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const k of EDITABLE) {
    const a = before[k];
    const b = after[k];
    if (JSON.stringify(a) === JSON.stringify(b)) continue;
    const [section, field] = k.split('.') as [string, string];
    let v: unknown = b;
    if (k === 'boot.defaultImage') {
      v = Object.fromEntries(Object.entries(b as Record<string, string>).filter(([, x]) => x));
    } else if (b === '') v = null;
    out[section] = { ...(out[section] ?? {}), [field]: v };
  }
  return out;
}

/** The values with the changes that wait for a restart put over them. */
export function withPending(v: SettingValues, pending: Record<string, unknown> | undefined): SettingValues {
  const out = { ...v };
  for (const [k, x] of Object.entries(pending ?? {})) {
    if (!(EDITABLE as readonly string[]).includes(k)) continue;
    const key = k as Key;
    if (key === 'boot.defaultImage')
      out[key] = typeof x === 'object' && x !== null ? (x as Record<string, string>) : {};
    else (out as Record<string, unknown>)[key] = typeof x === 'string' ? x : '';
  }
  return out;
}

/**
 * Which field an API error is about: the first validation issue's field (details.issues),
 * details.key/field, else a key the message names ("boot.namingPattern" …).
 */
export function fieldOf(e: { message: string; details?: Record<string, unknown> | undefined }): SettingKey | undefined {
  const d = e.details ?? {};
  const issues = Array.isArray(d.issues) ? (d.issues as { field?: unknown }[]) : [];
  for (const c of [issues[0]?.field, d.key, d.field]) {
    if (typeof c === 'string') {
      const k = EDITABLE.find((x) => c === x || c.startsWith(`${x}.`));
      if (k) return k;
    }
  }
  return EDITABLE.find((k) => e.message.includes(`"${k}`) || e.message.includes(k));
}
