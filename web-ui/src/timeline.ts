/**
 * A machine's boot timeline in words: each event becomes one sentence in a phase
 * (DHCP → TFTP → HTTP → deploy, plus lifecycle changes), and the events are grouped into
 * boots, so "why didn't node 17 boot?" reads as a short account. Pure: no DOM.
 *
 * Entries are the API's timeline entries (GET /api/v1/machines/{id}) and the live events
 * (SSE): `{ts, type, ...fields}`; a DHCP message type is `messageType`.
 */
import { archLabel, bytes, duration, rate, stateLabel } from './format.ts';

export type Phase = 'dhcp' | 'tftp' | 'http' | 'deploy' | 'state' | 'other';
export type Level = 'ok' | 'info' | 'warn' | 'error';

export interface TimelineEntry {
  ts: string;
  type: string;
  [k: string]: unknown;
}

export interface Step {
  ts: string;
  type: string;
  phase: Phase;
  level: Level;
  text: string;
}

export const PHASES: { phase: Phase; label: string }[] = [
  { phase: 'dhcp', label: 'DHCP' },
  { phase: 'tftp', label: 'TFTP' },
  { phase: 'http', label: 'HTTP' },
  { phase: 'deploy', label: 'Deploy' },
  { phase: 'state', label: 'Approval and state' },
  { phase: 'other', label: 'Other' },
];

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** What kind of client sent a DHCP request, in words. */
function clientKind(e: TimelineEntry): string {
  const arch = archLabel(str(e.arch));
  if (e.ipxe === true) return `iPXE (${arch})`;
  return arch === 'unknown' ? 'a network boot ROM' : `the ${arch} network boot ROM`;
}

const TFTP_REFUSALS: Record<string, string> = {
  'not-found': 'the file is not in the boot tree',
  'bad-name': 'the file name is not acceptable',
  traversal: 'the name tries to leave the boot tree',
  'symlink-escape': 'the file is a link that points outside the boot tree',
  'not-regular-file': 'it is not a regular file',
  unreadable: 'the box cannot read the file',
  malformed: 'the request was malformed',
  'upload-disabled': 'uploads over TFTP are not accepted',
  'mode-unsupported': 'the transfer mode is not supported',
  'bad-option': 'an option in the request is invalid',
  'busy-client': 'this node already has too many transfers running',
  'busy-server': 'the box is serving its maximum number of transfers',
};

const TFTP_FAILURES: Record<string, string> = {
  timeout: 'the node stopped answering (timeout)',
  'too-slow': 'the node acknowledged too slowly',
  'source-error': 'the box could not read the file',
  'endpoint-failed': 'the network socket failed',
  shutdown: 'the box was shutting down',
};

const BOOT_ACTIONS: Record<string, string> = {
  'first-stage': 'load the first-stage boot program',
  'ipxe-script': 'run its boot script',
  local: 'boot from its local disk',
  deploy: 'start the deploy environment',
  menu: 'show the boot menu',
  wait: 'wait for approval',
  rejected: 'go on to the next boot device (rejected)',
  ignore: 'nothing (not answered)',
};

/** One timeline entry or live event as a sentence, in its phase. */
export function describeEvent(e: TimelineEntry): Step {
  const base = { ts: e.ts, type: e.type };
  const file = str(e.filename) ?? str(e.path) ?? '';
  switch (e.type) {
    case 'dhcp.request': {
      const mt = str(e.messageType) ?? 'request';
      return {
        ...base,
        phase: 'dhcp',
        level: 'info',
        text: `${mt} from ${clientKind(e)}${e.relayed === true ? ' (through a relay)' : ''}`,
      };
    }
    case 'dhcp.reply': {
      const mt = str(e.messageType) ?? 'reply';
      if (mt === 'NAK') {
        return { ...base, phase: 'dhcp', level: 'warn', text: 'NAK: the box refused the address the node asked for' };
      }
      const parts: string[] = [];
      const ip = str(e.yiaddr);
      if (ip && ip !== '0.0.0.0') parts.push(`address ${ip}`);
      const bf = str(e.bootFile);
      if (bf) parts.push(`boot file ${bf}`);
      return {
        ...base,
        phase: 'dhcp',
        level: 'ok',
        text: `${mt} sent${parts.length ? `: ${parts.join(', ')}` : ''}${e.retransmit === true ? ' (repeated)' : ''}`,
      };
    }
    case 'dhcp.ignored':
      return {
        ...base,
        phase: 'dhcp',
        level: 'warn',
        text: `The box did not answer${str(e.messageType) ? ` a ${str(e.messageType)}` : ''}: ${str(e.reason) ?? 'no reason given'}`,
      };
    case 'dhcp.pool-exhausted':
      return {
        ...base,
        phase: 'dhcp',
        level: 'error',
        text: `No free address left in ${str(e.subnet) ?? 'the DHCP range'}: widen dhcp.range or free leases`,
      };
    case 'boot.decision': {
      const action = str(e.action) ?? 'unknown';
      const what = BOOT_ACTIONS[action] ?? action;
      const level: Level = action === 'ignore' || action === 'rejected' ? 'warn' : 'ok';
      const extra = [str(e.image) ? `image ${str(e.image)}` : '', str(e.file) ? `${str(e.file)}` : '']
        .filter(Boolean)
        .join(', ');
      return {
        ...base,
        phase: e.phase === 'script' ? 'deploy' : 'dhcp',
        level,
        text: `Told to ${what}${extra ? ` (${extra})` : ''}${str(e.reason) ? `: ${str(e.reason)}` : ''}`,
      };
    }
    case 'boot.report':
      return e.accepted === false
        ? {
            ...base,
            phase: 'deploy',
            level: 'error',
            text: `The box refused the node's report "${str(e.state) ?? '?'}": ${str(e.reason) ?? 'no reason given'}`,
          }
        : {
            ...base,
            phase: 'deploy',
            level: str(e.state) === 'failed' ? 'error' : 'ok',
            text: `The node reported: ${str(e.state) ?? '?'}${str(e.reason) ? ` (${str(e.reason)})` : ''}`,
          };
    case 'tftp.request':
      return { ...base, phase: 'tftp', level: 'info', text: `Asked for ${file}` };
    case 'tftp.options':
      return {
        ...base,
        phase: 'tftp',
        level: 'info',
        text: `Sending ${file} (${bytes(num(e.size))}, blocks of ${num(e.blksize) ?? 512} bytes, window ${num(e.windowsize) ?? 1})`,
      };
    case 'tftp.complete': {
      const retx = num(e.retransmits) ?? 0;
      return {
        ...base,
        phase: 'tftp',
        level: 'ok',
        text: `Sent ${file}: ${bytes(num(e.bytes))} in ${duration(num(e.durationMs))} (${rate(num(e.rate))})${retx ? `, ${retx} blocks sent again` : ''}`,
      };
    }
    case 'tftp.aborted':
      return e.probe === true
        ? { ...base, phase: 'tftp', level: 'info', text: `Size check of ${file} (normal for UEFI firmware)` }
        : {
            ...base,
            phase: 'tftp',
            level: 'error',
            text: `The node stopped the transfer of ${file} after ${bytes(num(e.bytes))}: ${str(e.message) ?? `error ${num(e.code) ?? '?'}`}`,
          };
    case 'tftp.error':
      return {
        ...base,
        phase: 'tftp',
        level: 'error',
        text: `Transfer of ${file} failed after ${bytes(num(e.bytes))}: ${TFTP_FAILURES[str(e.reason) ?? ''] ?? str(e.message) ?? str(e.reason) ?? 'unknown error'}`,
      };
    case 'tftp.refused':
      return {
        ...base,
        phase: 'tftp',
        level: 'error',
        text: `Refused ${file}: ${TFTP_REFUSALS[str(e.reason) ?? ''] ?? str(e.message) ?? str(e.reason) ?? 'no reason given'}`,
      };
    case 'http.request': {
      const status = num(e.status) ?? 0;
      const p = str(e.path) ?? '?';
      const phase: Phase = /\/(images|unattend|nodes)\//.test(p) ? 'deploy' : 'http';
      if (status === 404) return { ...base, phase, level: 'error', text: `${p} is not on the box (404 not found)` };
      if (status >= 400) return { ...base, phase, level: 'error', text: `${p} failed with HTTP status ${status}` };
      const ms = num(e.ms);
      return {
        ...base,
        phase,
        level: 'ok',
        text: `Fetched ${p}: ${bytes(num(e.bytes))}${ms !== undefined ? ` in ${duration(ms)}` : ''}${str(e.range) ? ` (part ${str(e.range)})` : ''}`,
      };
    }
    case 'http.refused':
      return {
        ...base,
        phase: 'http',
        level: 'error',
        text: `Refused ${str(e.path) ?? '?'}: ${str(e.reason) ?? `HTTP status ${num(e.status) ?? '?'}`}`,
      };
    case 'machine.created':
      return {
        ...base,
        phase: 'state',
        level: 'info',
        text: `First seen${str(e.name) ? `, named ${str(e.name)}` : ''}`,
      };
    case 'machine.state':
      return {
        ...base,
        phase: 'state',
        level: str(e.to) === 'rejected' ? 'warn' : 'ok',
        text: `Now ${stateLabel(str(e.to))} (was ${stateLabel(str(e.from))}): ${str(e.reason) ?? ''}`.replace(
          /: $/,
          '',
        ),
      };
    default:
      return { ...base, phase: 'other', level: 'info', text: summarize(e) };
  }
}

/** The plain fields of an unknown event, "key=value" joined. */
export function summarize(e: TimelineEntry): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(e)) {
    if (k === 'ts' || k === 'type' || k === 'mac') continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') parts.push(`${k}=${v}`);
  }
  return parts.length ? `${e.type}: ${parts.join(', ')}` : e.type;
}

export interface Boot {
  start: string;
  end: string;
  /** True when the group holds network activity (else it is only admin changes). */
  netboot: boolean;
  steps: Step[];
  /** One sentence: how this boot ended, or its first problem. */
  outcome: { level: Level; text: string };
}

/** A ROM's first DHCP message (not iPXE's, which continues the same boot). */
function startsBoot(e: TimelineEntry): boolean {
  return e.type === 'dhcp.request' && e.messageType === 'DISCOVER' && e.ipxe !== true;
}

/**
 * Groups entries (oldest first, as the API gives them) into boots: a new boot starts at a
 * ROM's DISCOVER or after a quiet gap. Returns the newest boot first.
 */
export function groupBoots(entries: TimelineEntry[], gapMs = 10 * 60_000): Boot[] {
  const groups: TimelineEntry[][] = [];
  let last = Number.NEGATIVE_INFINITY;
  for (const e of entries) {
    const t = Date.parse(e.ts);
    const cur = groups.at(-1);
    const gap = Number.isFinite(t) && t - last > gapMs;
    let split = !cur || gap;
    if (cur && !split && startsBoot(e)) {
      const asked = cur.some((x) => x.type === 'dhcp.request');
      // The ROM sent its DISCOVER again before getting anywhere: the same boot.
      const again = asked && cur.some(startsBoot) && !cur.some(afterDhcp) && t - last < 30_000;
      // The registry records what the DISCOVER caused (machine created, decision) before the DISCOVER itself.
      const prelude = !asked && t - last < 5_000;
      split = !again && !prelude;
    }
    if (split || !cur) groups.push([e]);
    else cur.push(e);
    if (Number.isFinite(t)) last = t;
  }
  return groups.map(toBoot).reverse();
}

const afterDhcp = (e: TimelineEntry) => e.type.startsWith('tftp.') || e.type.startsWith('http.');

function toBoot(entries: TimelineEntry[]): Boot {
  const steps = entries.map(describeEvent);
  const netboot = steps.some((s) => s.phase !== 'state' && s.phase !== 'other');
  return {
    start: entries[0]!.ts,
    end: entries.at(-1)!.ts,
    netboot,
    steps,
    outcome: outcomeOf(entries, steps),
  };
}

function outcomeOf(entries: TimelineEntry[], steps: Step[]): { level: Level; text: string } {
  const problem = steps.find((s) => s.level === 'error');
  if (problem) return { level: 'error', text: `Problem: ${problem.text}` };
  const report = [...entries].reverse().find((e) => e.type === 'boot.report' && e.accepted !== false);
  if (report) return { level: 'ok', text: `The node reported: ${str(report.state) ?? '?'}` };
  const decision = [...entries].reverse().find((e) => e.type === 'boot.decision');
  const action = str(decision?.action);
  if (action === 'wait') return { level: 'warn', text: 'Waiting for an administrator to approve it' };
  if (action === 'deploy')
    return {
      level: 'ok',
      text: `Deploy environment started${str(decision?.image) ? ` for image ${str(decision?.image)}` : ''}`,
    };
  if (action === 'local') return { level: 'ok', text: 'Booted from its local disk' };
  if (action === 'ignore' || action === 'rejected') {
    return { level: 'warn', text: `Not booted: ${str(decision?.reason) ?? BOOT_ACTIONS[action]}` };
  }
  if (entries.some((e) => e.type === 'tftp.complete')) return { level: 'ok', text: 'Loaded its boot program' };
  if (entries.some((e) => e.type === 'dhcp.reply')) return { level: 'info', text: 'Got an answer from the box' };
  const change = [...entries].reverse().find((e) => e.type === 'machine.state');
  if (change) return { level: 'info', text: `Now ${stateLabel(str(change.to))}` };
  if (entries.some((e) => e.type === 'dhcp.request'))
    return { level: 'warn', text: 'Asked for an address; no answer yet' };
  return { level: 'info', text: steps.at(-1)?.text ?? '' };
}
