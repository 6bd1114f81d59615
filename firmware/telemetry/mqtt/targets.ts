/**
 * Which machines a command names. Pure: a target spec and the registry's list in, the
 * machines out, or what was asked and not found.
 *
 * A spec combines selectors; the result is their union (each machine once, sorted by name
 * then MAC). Every selector must match at least one machine, so a typo never silently
 * shrinks a command:
 * - `mac` / `macs`: MACs in any common notation (aa:bb:…, AA-BB-…, aabbccddeeff);
 * - `name` / `names`: machine names, case-insensitive (names are unique that way);
 * - `group`: the machines whose group is exactly this (groups are config keys: case matters);
 * - `pattern`: a glob over names, case-insensitive, anchored at both ends: `*` any run of
 *   characters, `?` one character; nothing else is special (`node-0?`, `rack2-*`).
 */
import { BootboxError } from '../../core/errors.ts';
import { normalizeMac } from '../../core/net.ts';
import type { Machine } from '../../domain/machine.ts';

export interface TargetSpec {
  mac?: string;
  macs?: string[];
  name?: string;
  names?: string[];
  group?: string;
  pattern?: string;
}

export const TARGET_KEYS = ['mac', 'macs', 'name', 'names', 'group', 'pattern'] as const;

/** Longest list in `macs` / `names` (the payload limit bounds it too). */
export const MAX_TARGET_LIST = 1024;
const MAX_SELECTOR_LENGTH = 64;

/** Characters of a name pattern: those of host names plus the two wildcards. */
const PATTERN_RE = /^[A-Za-z0-9._*?-]+$/;

export interface Resolved {
  machines: Machine[];
  /** True when the spec used a group or a pattern (its extent is not what the sender wrote). */
  wide: boolean;
}

/**
 * Checks a `targets` value from a request: an object with only the keys above, each of the
 * right type, at least one. Returns the spec or an INVALID_REQUEST naming the offending key.
 */
export function parseTargets(v: unknown): TargetSpec | BootboxError {
  const bad = (msg: string) => new BootboxError('INVALID_REQUEST', msg);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    return bad('"targets" must be an object with mac, macs, name, names, group or pattern');
  }
  const o = v as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !(TARGET_KEYS as readonly string[]).includes(k));
  if (unknown.length) {
    return bad(`unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"targets.${k}"`).join(', ')}`);
  }
  if (Object.keys(o).length === 0) return bad('"targets" is empty: give mac, macs, name, names, group or pattern');
  const spec: TargetSpec = {};
  for (const key of ['mac', 'name', 'group', 'pattern'] as const) {
    if (o[key] === undefined) continue;
    const s = o[key];
    if (typeof s !== 'string' || s.length === 0 || s.length > MAX_SELECTOR_LENGTH) {
      return bad(`"targets.${key}" must be a string of 1-${MAX_SELECTOR_LENGTH} characters`);
    }
    spec[key] = s;
  }
  for (const key of ['macs', 'names'] as const) {
    if (o[key] === undefined) continue;
    const l = o[key];
    if (!Array.isArray(l) || l.length === 0 || l.length > MAX_TARGET_LIST) {
      return bad(`"targets.${key}" must be a list of 1-${MAX_TARGET_LIST} strings`);
    }
    for (const [i, s] of l.entries()) {
      if (typeof s !== 'string' || s.length === 0 || s.length > MAX_SELECTOR_LENGTH) {
        return bad(`"targets.${key}" item ${i + 1} must be a string of 1-${MAX_SELECTOR_LENGTH} characters`);
      }
    }
    spec[key] = l as string[];
  }
  for (const m of [...(spec.mac ? [spec.mac] : []), ...(spec.macs ?? [])]) {
    if (!normalizeMac(m)) return bad(`"${m}" in "targets" is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  }
  if (spec.pattern !== undefined && !PATTERN_RE.test(spec.pattern)) {
    return bad(`"targets.pattern" may hold only letters, digits, . _ - and the wildcards * ? (got "${spec.pattern}")`);
  }
  return spec;
}

/** A glob over machine names as an anchored, case-insensitive RegExp. */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'i');
}

/**
 * The machines a spec names, or NOT_FOUND listing every selector that matched nothing
 * (`details.missing`, in the sender's own spelling).
 */
export function resolveTargets(spec: TargetSpec, machines: readonly Machine[]): Resolved | BootboxError {
  const byMac = new Map<string, Machine>();
  const byName = new Map<string, Machine>();
  for (const m of machines) {
    byMac.set(m.mac, m);
    if (m.name) byName.set(m.name.toUpperCase(), m);
  }
  const out = new Map<string, Machine>();
  const missing: string[] = [];
  for (const raw of [...(spec.mac ? [spec.mac] : []), ...(spec.macs ?? [])]) {
    const m = byMac.get(normalizeMac(raw) ?? '');
    if (m) out.set(m.mac, m);
    else missing.push(`mac ${raw}`);
  }
  for (const raw of [...(spec.name ? [spec.name] : []), ...(spec.names ?? [])]) {
    const m = byName.get(raw.toUpperCase());
    if (m) out.set(m.mac, m);
    else missing.push(`name ${raw}`);
  }
  if (spec.group !== undefined) {
    const members = machines.filter((m) => m.group === spec.group);
    if (members.length === 0) missing.push(`group ${spec.group}`);
    for (const m of members) out.set(m.mac, m);
  }
  if (spec.pattern !== undefined) {
    const re = globToRegExp(spec.pattern);
    const hits = machines.filter((m) => m.name !== undefined && re.test(m.name));
    if (hits.length === 0) missing.push(`pattern ${spec.pattern}`);
    for (const m of hits) out.set(m.mac, m);
  }
  if (missing.length) {
    return new BootboxError('NOT_FOUND', `no machine matches ${missing.join(', ')}`, { missing });
  }
  const list = [...out.values()].sort(
    (a, b) => (a.name ?? '').localeCompare(b.name ?? '') || a.mac.localeCompare(b.mac),
  );
  return { machines: list, wide: spec.group !== undefined || spec.pattern !== undefined };
}
