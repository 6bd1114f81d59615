/**
 * A small JSON Schema subset for API request bodies and query strings. The schemas are
 * plain JSON Schema 2020-12 objects (the dialect of OpenAPI 3.1), so the same object is
 * checked here and published in /api/v1/openapi.json.
 *
 * Supported: `type` (object, string, integer, number, boolean, array, null, or a list of
 * them), `enum`, `properties`, `required`, `additionalProperties: false`, `minLength`,
 * `maxLength`, `pattern`, `minimum`, `maximum`, `items`, `minItems`, `maxItems`,
 * `description`. Every issue names the field it is about (`"boot.unknown"`, `"items[2]"`).
 */
import { BootboxError } from '../core/errors.ts';

export type SchemaType = 'object' | 'string' | 'integer' | 'number' | 'boolean' | 'array' | 'null';

export interface Schema {
  type?: SchemaType | SchemaType[];
  enum?: readonly (string | number | boolean | null)[];
  properties?: Record<string, Schema>;
  required?: readonly string[];
  additionalProperties?: boolean;
  minLength?: number;
  maxLength?: number;
  /** An ECMAScript regular expression the whole string must match (anchor it yourself). */
  pattern?: string;
  minimum?: number;
  maximum?: number;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  description?: string;
}

export interface ValidationIssue {
  /** Dotted path of the field ("" for the value itself). */
  field: string;
  message: string;
  /** The field is not in the schema (`additionalProperties: false`). */
  unknownField?: true;
}

/** All issues of `value` against `schema`; empty when it conforms. */
export function validate(schema: Schema, value: unknown, field = ''): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  check(schema, value, field, issues);
  return issues;
}

/** Throws INVALID_REQUEST naming the first offending field (all issues in `details.issues`). */
export function assertValid(schema: Schema, value: unknown, what = 'the request body'): void {
  const issues = validate(schema, value);
  if (issues.length === 0) return;
  const first = issues[0]!;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  throw new BootboxError('INVALID_REQUEST', `${describeIssue(first, what)}${more}`, { issues });
}

export function describeIssue(i: ValidationIssue, what = 'the request body'): string {
  if (i.unknownField) return `unknown field "${i.field}"`;
  return i.field === '' ? `${what} ${i.message}` : `"${i.field}" ${i.message}`;
}

const MAX_DEPTH = 32;

function check(s: Schema, v: unknown, field: string, out: ValidationIssue[], depth = 0): void {
  if (depth > MAX_DEPTH) {
    out.push({ field, message: 'is nested too deeply' });
    return;
  }
  const types = s.type === undefined ? undefined : Array.isArray(s.type) ? s.type : [s.type];
  if (types && !types.some((t) => isType(t, v))) {
    out.push({ field, message: `must be ${types.map(typeName).join(' or ')} (got ${describe(v)})` });
    return;
  }
  if (s.enum && !s.enum.some((e) => e === v)) {
    out.push({
      field,
      message: `must be one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')} (got ${describe(v)})`,
    });
    return;
  }
  if (typeof v === 'string') {
    // Lengths in code points, as JSON Schema counts them.
    const len = [...v].length;
    if (s.minLength !== undefined && len < s.minLength) {
      out.push({ field, message: `must be at least ${s.minLength} characters long` });
    } else if (s.maxLength !== undefined && len > s.maxLength) {
      out.push({ field, message: `must be at most ${s.maxLength} characters long` });
    } else if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) {
      out.push({ field, message: `has the wrong form (must match ${s.pattern})` });
    }
    return;
  }
  if (typeof v === 'number') {
    if (s.minimum !== undefined && v < s.minimum)
      out.push({ field, message: `must be at least ${s.minimum} (got ${v})` });
    else if (s.maximum !== undefined && v > s.maximum)
      out.push({ field, message: `must be at most ${s.maximum} (got ${v})` });
    return;
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) {
      out.push({ field, message: `must have at least ${s.minItems} items` });
      return;
    }
    if (s.maxItems !== undefined && v.length > s.maxItems) {
      out.push({ field, message: `must have at most ${s.maxItems} items` });
      return;
    }
    if (s.items) for (let i = 0; i < v.length; i++) check(s.items, v[i], `${field}[${i}]`, out, depth + 1);
    return;
  }
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    const props = s.properties ?? {};
    for (const k of Object.keys(o)) {
      if (!Object.hasOwn(props, k) && s.additionalProperties === false) {
        out.push({ field: join(field, k), message: 'is not a known field', unknownField: true });
      }
    }
    for (const k of s.required ?? []) {
      if (o[k] === undefined) out.push({ field: join(field, k), message: 'is required' });
    }
    for (const [k, ps] of Object.entries(props)) {
      if (Object.hasOwn(o, k) && o[k] !== undefined) check(ps, o[k], join(field, k), out, depth + 1);
    }
  }
}

function join(field: string, key: string): string {
  return field === '' ? key : `${field}.${key}`;
}

function isType(t: SchemaType, v: unknown): boolean {
  switch (t) {
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isSafeInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'null':
      return v === null;
  }
}

function typeName(t: SchemaType): string {
  switch (t) {
    case 'object':
      return 'an object';
    case 'array':
      return 'a list';
    case 'integer':
      return 'an integer';
    case 'null':
      return 'null';
    default:
      return `a ${t}`;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/**
 * Query string values against a map of schemas: integers and booleans are converted from
 * their text first. Unknown parameters are ignored (caches and tools add their own).
 */
export function parseQuery(
  schemas: Record<string, Schema>,
  query: URLSearchParams,
): { values: Record<string, unknown>; issues: ValidationIssue[] } {
  const values: Record<string, unknown> = {};
  const issues: ValidationIssue[] = [];
  for (const [name, s] of Object.entries(schemas)) {
    const raw = query.get(name);
    if (raw === null) continue;
    const types = s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
    let v: unknown = raw;
    if ((types.includes('integer') || types.includes('number')) && /^-?\d+(\.\d+)?$/.test(raw)) v = Number(raw);
    else if (types.includes('boolean') && (raw === 'true' || raw === 'false')) v = raw === 'true';
    const found = validate(s, v, name);
    if (found.length) issues.push(...found);
    else values[name] = v;
  }
  return { values, issues };
}
