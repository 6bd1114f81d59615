/**
 * Who may publish and subscribe to what on the embedded broker (pure).
 *
 * - The box itself (its in-process link or a box credential): everything.
 * - Anonymous clients may connect, but only to read the box's telemetry: status,
 *   health, machine states and events. They publish nothing.
 * - Authenticated users may also publish commands to `<root>request/<command>` (not
 *   retained: a retained command would run again at every restart) and read responses
 *   and node commands. Which user may run which command is the command module's
 *   allow-list (mqtt.allow), not this file's.
 * - A node agent, logged in as its machine's (lower-case) name, reports on
 *   `<root>nodes/<name>/response`.
 * - Nobody but the box publishes anything else under `bootbox/`, so status, health,
 *   states, events, responses and node commands can be trusted by their readers.
 * - Outside `bootbox/` the broker is an ordinary broker for authenticated users.
 *   `$` topics (§4.7.2, the broker's own) are read-only and only for the box.
 */
import { filterCovered, isValidTopicFilter, TOPIC_PREFIX, topicMatches } from './topics.ts';

export type Principal = { kind: 'box' } | { kind: 'user'; name: string } | { kind: 'anonymous' };

export type AclDecision = { allow: true } | { allow: false; reason: string };

const ALLOW: AclDecision = { allow: true };
const deny = (reason: string): AclDecision => ({ allow: false, reason });

/** Read-only telemetry under the root: what anyone may subscribe to. */
export function telemetryFilters(root: string): string[] {
  return [`${root}status`, `${root}health`, `${root}machines/+/state`, `${root}events`];
}

/**
 * What authenticated users may subscribe to under the root, besides telemetry. A node agent
 * started without --box subscribes to `bootbox/+/nodes/<name>/cmd`; here only this box
 * publishes under `bootbox/` (canPublish), so that filter reads exactly this box's node
 * commands and is allowed like `<root>nodes/+/cmd`.
 */
export function userFilters(root: string): string[] {
  return [`${root}response/+`, `${root}nodes/+/cmd`, `${TOPIC_PREFIX}/+/nodes/+/cmd`];
}

const inBootbox = (topic: string) => topic === TOPIC_PREFIX || topic.startsWith(`${TOPIC_PREFIX}/`);

export function canPublish(who: Principal, topic: string, retain: boolean, root: string): AclDecision {
  if (who.kind === 'box') return ALLOW;
  if (topic.startsWith('$')) return deny(`${topic} is reserved for the broker`);
  if (who.kind === 'anonymous') return deny('anonymous clients may only subscribe to telemetry; log in to publish');
  if (topicMatches(`${root}request/+`, topic)) {
    return retain ? deny('commands must not be retained (a retained command would run again on restart)') : ALLOW;
  }
  // A node agent logs in as its machine's name and reports on its own response topic only.
  if (topicMatches(`${root}nodes/+/response`, topic)) {
    const node = topic.slice(`${root}nodes/`.length, -'/response'.length);
    if (node === who.name.toLowerCase() && !retain) return ALLOW;
    return deny(`only the agent logged in as "${node}" reports on ${topic} (not retained)`);
  }
  if (inBootbox(topic)) return deny(`only the box publishes to ${topic}; commands go to ${root}request/<command>`);
  return ALLOW;
}

export function canSubscribe(who: Principal, filter: string, root: string): AclDecision {
  if (!isValidTopicFilter(filter)) return deny(`${JSON.stringify(filter)} is not a valid topic filter`);
  if (who.kind === 'box') return ALLOW;
  const allowed = who.kind === 'user' ? [...telemetryFilters(root), ...userFilters(root)] : telemetryFilters(root);
  if (allowed.some((p) => filterCovered(p, filter))) return ALLOW;
  if (who.kind === 'user') {
    const first = filter.split('/')[0]!;
    // A literal first level other than bootbox cannot match any box topic (nor $ ones).
    if (first !== TOPIC_PREFIX && first !== '+' && first !== '#' && !first.startsWith('$')) return ALLOW;
  }
  return deny(
    who.kind === 'anonymous'
      ? `anonymous clients may subscribe only to ${allowed.join(', ')}`
      : `${filter} reaches topics reserved to the box; allowed under ${root}: ${allowed.join(', ')}`,
  );
}
