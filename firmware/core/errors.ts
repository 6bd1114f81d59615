/**
 * The one registry of error codes. Every error the box reports (CLI, API,
 * MQTT, logs) carries one of these codes; the HTTP status and the CLI exit
 * code follow from it, so no caller invents its own.
 */
export const ErrorCodes = {
  // configuration and command line: exit 2
  CONFIG_INVALID: { http: 400, exit: 2 },
  CONFIG_UNREADABLE: { http: 400, exit: 2 },
  USAGE: { http: 400, exit: 2 },
  // board and environment
  INTERFACE_MISSING: { http: 500, exit: 2 },
  INTERFACE_NO_IPV4: { http: 500, exit: 2 },
  NO_PRIVILEGE: { http: 500, exit: 2 },
  DATA_DIR_UNWRITABLE: { http: 500, exit: 2 },
  ADDRESS_IN_USE: { http: 500, exit: 1 },
  ADDON_MISSING: { http: 500, exit: 1 },
  LAB_FAILED: { http: 500, exit: 1 },
  // wire decoding (never leaves a server: packets are dropped and counted)
  DECODE: { http: 400, exit: 1 },
  // machines, naming and boot scripts
  /** A lifecycle transition that the machine's current state does not allow (approve a non-pending machine …). */
  INVALID_STATE: { http: 409, exit: 1 },
  /** A machine name that another machine already has (names are unique, case-insensitively). */
  NAME_IN_USE: { http: 409, exit: 1 },
  /** A machine name that is not a valid Windows (NetBIOS) and DNS host name. */
  INVALID_NAME: { http: 400, exit: 1 },
  /** A naming policy that cannot be parsed or can produce invalid names. */
  INVALID_NAMING_PATTERN: { http: 400, exit: 1 },
  /** A naming policy with no free name left (counter range used up or names too long). */
  NAMES_EXHAUSTED: { http: 409, exit: 1 },
  /** A value that cannot be put into an iPXE script or grub.cfg without changing its meaning. */
  UNSAFE_SCRIPT_VALUE: { http: 500, exit: 1 },
  // image store (catalog, uploads)
  /** The image volume is missing or not answering; images on it are unavailable until it is back. */
  VOLUME_UNAVAILABLE: { http: 503, exit: 1 },
  /** An upload whose bytes do not fit, arrive out of order, or do not match what was declared. */
  UPLOAD_INVALID: { http: 400, exit: 1 },
  /** An unattend template that is not well-formed or names a variable the box does not know. */
  INVALID_TEMPLATE: { http: 400, exit: 1 },
  /** An unattend template uses a variable that has no value for this machine (no name yet, no domain set …). */
  UNATTEND_VALUE_MISSING: { http: 409, exit: 1 },
  // images
  /** An image file that is not a usable WIM (bad header, truncated, unreadable, XML metadata not UTF-16 or malformed). */
  IMAGE_INVALID: { http: 400, exit: 1 },
  /** An image of that name already exists on the image volume (import with replace to overwrite it). */
  IMAGE_EXISTS: { http: 409, exit: 1 },
  /** The image volume ran out of space while writing; nothing partial is kept. */
  DISK_FULL: { http: 507, exit: 1 },
  /** The image volume is mounted read-only (or was remounted read-only after an error). */
  VOLUME_READ_ONLY: { http: 409, exit: 1 },
  /** Stored image data that does not match its manifest (chunk hash, size, compressed data, manifest). */
  IMAGE_CORRUPT: { http: 422, exit: 1 },
  // mqtt commands and the node agent
  /** An MQTT request on `request/<command>` for a command the box does not know. */
  UNKNOWN_COMMAND: { http: 404, exit: 1 },
  /** A request payload over the size limit (refused before it is parsed). */
  PAYLOAD_TOO_LARGE: { http: 413, exit: 1 },
  /** A bulk or destructive command (several machines, a group or a name pattern) sent without `"confirm": true`. */
  CONFIRM_REQUIRED: { http: 400, exit: 1 },
  /** Too many requests from one identity (or from everyone): refused until the token bucket refills. */
  RATE_LIMITED: { http: 429, exit: 1 },
  /** A node action the agent will not run: another box, unknown action, stale or altered steps. */
  ACTION_REFUSED: { http: 403, exit: 1 },
  /** A step of a node action exited non-zero (the remaining steps were not run). */
  ACTION_FAILED: { http: 500, exit: 1 },
  /** The MQTT broker cannot be reached (refused, unresolvable, TLS or authentication failure). */
  MQTT_UNREACHABLE: { http: 502, exit: 1 },
  // board storage (the image volume's drive)
  /** The image volume's drive could not be mounted or unmounted (no driver for its filesystem, damaged filesystem, mount point taken). */
  VOLUME_MOUNT_FAILED: { http: 503, exit: 1 },
  // api auth (web UI sessions, admin password, setup token)
  /** A login with the wrong admin password. */
  INVALID_CREDENTIALS: { http: 401, exit: 1 },
  /** A session cookie whose session has expired (idle too long) or was forgotten (the box restarted): log in again. */
  SESSION_EXPIRED: { http: 401, exit: 1 },
  /** A change sent with a session cookie but without the session's X-CSRF-Token header (or a wrong one). */
  CSRF_FAILED: { http: 403, exit: 1 },
  /** No admin password is set yet: set one with the setup token the box printed at start. */
  SETUP_REQUIRED: { http: 409, exit: 1 },
  /** A setup call with a wrong setup token, or after the admin password was already set. */
  SETUP_REFUSED: { http: 403, exit: 1 },
  /** A new admin password that does not meet the policy (length). */
  WEAK_PASSWORD: { http: 400, exit: 1 },
  /** A read without credentials (ui.openReadOnly) addressed to a name the box does not know as its own (ui.hostNames). */
  HOST_NOT_ALLOWED: { http: 403, exit: 1 },
  /** A password change whose current password is wrong (the session stays). */
  WRONG_PASSWORD: { http: 403, exit: 1 },
  /** A password change while the admin password comes from the config (ui.adminPassword): change it there. */
  PASSWORD_FROM_CONFIG: { http: 409, exit: 1 },
  // generic
  NOT_FOUND: { http: 404, exit: 1 },
  CONFLICT: { http: 409, exit: 1 },
  INVALID_REQUEST: { http: 400, exit: 1 },
  UNAUTHORIZED: { http: 401, exit: 1 },
  FORBIDDEN: { http: 403, exit: 1 },
  INTERNAL: { http: 500, exit: 1 },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class BootboxError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'BootboxError';
    this.code = code;
    this.details = details;
  }
  get exitCode(): number {
    return ErrorCodes[this.code].exit;
  }
  get httpStatus(): number {
    return ErrorCodes[this.code].http;
  }
}

/** The only error a codec may throw. `reason` is a short stable token used in counters. */
export class DecodeError extends Error {
  readonly code = 'DECODE' as const;
  readonly reason: string;
  constructor(reason: string, message?: string) {
    super(message ?? reason);
    this.name = 'DecodeError';
    this.reason = reason;
  }
}

export function isBootboxError(e: unknown): e is BootboxError {
  return e instanceof BootboxError;
}

/** Exit code for any thrown value: registry code if known, else 1. */
export function exitCodeOf(e: unknown): number {
  return e instanceof BootboxError ? e.exitCode : 1;
}
