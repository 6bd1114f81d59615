/**
 * The request schema of each MQTT command (`<root>request/<command>`): which fields it takes,
 * which are required, and their types. Pure. Unknown fields are refused by name, so a typo
 * (`"mdoe"`) never turns into a default.
 */
import { BootboxError } from '../../core/errors.ts';
import type { ReimageMode } from '../../domain/machine.ts';
import { parseTargets, type TargetSpec } from './targets.ts';

/** A request's id, echoed in its response: a string of 1-128 characters or a safe integer. */
export type Transaction = string | number;

export const COMMAND_NAMES = ['reimage', 'approve', 'reject', 'set-image', 'cancel'] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

export interface CommandRequests {
  reimage: { transaction: Transaction; targets: TargetSpec; mode: ReimageMode; image?: string; confirm: boolean };
  approve: { transaction: Transaction; targets: TargetSpec; confirm: boolean };
  reject: { transaction: Transaction; targets: TargetSpec; confirm: boolean };
  /** `image: null` clears the machine's own image (its group's or the arch default applies). */
  'set-image': { transaction: Transaction; targets: TargetSpec; image: string | null; confirm: boolean };
  cancel: { transaction: Transaction; targets: TargetSpec; confirm: boolean };
}

type Check = (v: unknown) => string | undefined;

interface Field {
  required: boolean;
  /** Returns what is wrong, completing `"<field>" …`. */
  check: Check;
}

const MAX_TRANSACTION = 128;
const MAX_IMAGE = 128;

const transaction: Field = {
  required: true,
  check: (v) =>
    (typeof v === 'string' && v.length >= 1 && v.length <= MAX_TRANSACTION) ||
    (typeof v === 'number' && Number.isSafeInteger(v))
      ? undefined
      : `must be a string of 1-${MAX_TRANSACTION} characters or an integer`,
};
const targets: Field = { required: true, check: () => undefined /* parseTargets checks it */ };
const confirm: Field = {
  required: false,
  check: (v) => (typeof v === 'boolean' ? undefined : 'must be true or false'),
};
const imageName: Check = (v) =>
  typeof v === 'string' && v.length >= 1 && v.length <= MAX_IMAGE
    ? undefined
    : `must be an image name of 1-${MAX_IMAGE} characters`;

/** Each command's fields, in the order the error messages list them. */
export const COMMAND_SCHEMAS: Record<CommandName, Record<string, Field>> = {
  reimage: {
    transaction,
    targets,
    mode: {
      required: true,
      check: (v) => (v === 'next-boot' || v === 'wipe' ? undefined : 'must be "next-boot" or "wipe"'),
    },
    image: { required: false, check: imageName },
    confirm,
  },
  approve: { transaction, targets, confirm },
  reject: { transaction, targets, confirm },
  'set-image': {
    transaction,
    targets,
    image: {
      required: true,
      check: (v) => (v === null || imageName(v) === undefined ? undefined : `${imageName(v)}, or null`),
    },
    confirm,
  },
  cancel: { transaction, targets, confirm },
};

export function isCommandName(s: string): s is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(s);
}

/** The request's transaction when it has a valid one (to echo it even in a refusal). */
export function transactionOf(body: unknown): Transaction | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const t = (body as Record<string, unknown>).transaction;
  return transaction.check(t) === undefined ? (t as Transaction) : undefined;
}

/**
 * Validates a parsed request body against its command's schema. Returns the typed request,
 * or an INVALID_REQUEST whose message names every unknown field, or the first missing or
 * mistyped one.
 */
export function validateRequest<C extends CommandName>(command: C, body: unknown): CommandRequests[C] | BootboxError {
  const schema = COMMAND_SCHEMAS[command];
  const bad = (msg: string) => new BootboxError('INVALID_REQUEST', `request/${command}: ${msg}`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return bad(`the payload must be a JSON object (${Object.keys(schema).join(', ')})`);
  }
  const o = body as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !Object.hasOwn(schema, k));
  if (unknown.length) {
    return bad(
      `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} ` +
        `(${command} takes ${Object.keys(schema).join(', ')})`,
    );
  }
  for (const [name, f] of Object.entries(schema)) {
    if (o[name] === undefined) {
      if (f.required) return bad(`"${name}" is required`);
      continue;
    }
    const problem = f.check(o[name]);
    if (problem) return bad(`"${name}" ${problem}`);
  }
  const t = parseTargets(o.targets);
  if (t instanceof BootboxError) return bad(t.message);
  return { ...o, targets: t, confirm: o.confirm === true } as unknown as CommandRequests[C];
}
