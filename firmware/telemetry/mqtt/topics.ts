/**
 * The box's MQTT topics (shared/CONTRACT.md, "MQTT topics") and the MQTT topic-filter
 * rules every other module relies on: matching a topic against a filter and deciding
 * whether one filter is covered by another (the broker's subscribe ACL).
 *
 * Wildcards and the `$` rule follow MQTT 3.1.1 §4.7 (identical in MQTT 5.0 §4.7).
 */
import { BootboxError } from '../../core/errors.ts';

/** MQTT 3.1.1 §4.7.1.1: `/` separates topic levels. */
const LEVEL_SEPARATOR = '/';
/** MQTT 3.1.1 §4.7.1.2: multi-level wildcard, last level only. */
const MULTI_LEVEL = '#';
/** MQTT 3.1.1 §4.7.1.3: single-level wildcard, a whole level. */
const SINGLE_LEVEL = '+';

export const TOPIC_PREFIX = 'bootbox';

/** `bootbox/<boxId>/`. */
export function rootFor(boxId: string): string {
  return `${TOPIC_PREFIX}/${topicLevel(boxId, 'boxId')}/`;
}

/**
 * One level of a topic made from a name the box did not choose (MAC, machine name,
 * command). MQTT forbids wildcards in topic names (§4.7.1) and a `/` would change the
 * topic's shape; both are refused rather than escaped so a topic always reads back as
 * the name it carries.
 */
export function topicLevel(value: string, what: string): string {
  if (value.length === 0 || /[/+#\u0000]/.test(value)) {
    throw new BootboxError(
      'INVALID_REQUEST',
      `${what} ${JSON.stringify(value)} cannot be an MQTT topic level (empty, or has / + # or NUL)`,
    );
  }
  return value;
}

export interface Topics {
  /** `bootbox/<boxId>/` */
  readonly root: string;
  /** Retained `{"state":"online"|"offline", ...}`; the last will. */
  readonly status: string;
  /** Periodic box health. */
  readonly health: string;
  /** Every timeline event. */
  readonly events: string;
  /** Retained lifecycle state of one machine. */
  machineState(mac: string): string;
  /** Filter for every machine's state: `machines/+/state`. */
  readonly machineStates: string;
  request(command: string): string;
  /** Filter for every command: `request/+`. */
  readonly requests: string;
  response(command: string): string;
  /** What the box tells one node's agent. */
  nodeCmd(machineName: string): string;
}

export function topicsFor(root: string): Topics {
  return {
    root,
    status: `${root}status`,
    health: `${root}health`,
    events: `${root}events`,
    machineState: (mac) => `${root}machines/${topicLevel(mac, 'MAC')}/state`,
    machineStates: `${root}machines/+/state`,
    request: (command) => `${root}request/${topicLevel(command, 'command')}`,
    requests: `${root}request/+`,
    response: (command) => `${root}response/${topicLevel(command, 'command')}`,
    nodeCmd: (machineName) => `${root}nodes/${topicLevel(machineName, 'machine name')}/cmd`,
  };
}

/** The command of a `<root>request/<command>` topic, or undefined for any other topic. */
export function requestCommand(root: string, topic: string): string | undefined {
  const prefix = `${root}request/`;
  if (!topic.startsWith(prefix)) return undefined;
  const cmd = topic.slice(prefix.length);
  return cmd.length > 0 && !cmd.includes(LEVEL_SEPARATOR) ? cmd : undefined;
}

/** A topic name a client may publish to (§4.7.3: non-empty, no wildcards, no NUL). */
export function isValidTopicName(topic: string): boolean {
  return topic.length > 0 && !/[+#\u0000]/.test(topic);
}

/** A topic filter as §4.7.1 allows it: `#` only as a whole last level, `+` only as a whole level. */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false;
  const levels = filter.split(LEVEL_SEPARATOR);
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    if (l.includes(MULTI_LEVEL) && (l !== MULTI_LEVEL || i !== levels.length - 1)) return false;
    if (l.includes(SINGLE_LEVEL) && l !== SINGLE_LEVEL) return false;
  }
  return true;
}

/**
 * Does `topic` match `filter`? §4.7.1: `#` matches the parent level and any number of
 * child levels, `+` exactly one level. §4.7.2: a filter starting with a wildcard does
 * not match topics that start with `$`.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split(LEVEL_SEPARATOR);
  const t = topic.split(LEVEL_SEPARATOR);
  if (topic.startsWith('$') && (f[0] === MULTI_LEVEL || f[0] === SINGLE_LEVEL)) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === MULTI_LEVEL) return true;
    if (i >= t.length) return false;
    if (level !== SINGLE_LEVEL && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * Is every topic that `filter` matches also matched by `pattern`? This is what a
 * subscribe ACL needs: `bootbox/x/machines/+/state` is covered by itself and by
 * `bootbox/x/#`, but `bootbox/x/#` is not covered by `bootbox/x/status`.
 */
export function filterCovered(pattern: string, filter: string): boolean {
  const p = pattern.split(LEVEL_SEPARATOR);
  const f = filter.split(LEVEL_SEPARATOR);
  for (let i = 0; i < p.length; i++) {
    const level = p[i]!;
    if (level === MULTI_LEVEL) return true;
    if (i >= f.length) return false;
    const fl = f[i]!;
    if (fl === MULTI_LEVEL) return false;
    if (level === SINGLE_LEVEL) continue;
    if (fl !== level) return false;
  }
  return p.length === f.length;
}
