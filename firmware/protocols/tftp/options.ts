/**
 * TFTP option negotiation (RFC 2347), pure. One table entry per option, in the
 * iPXE style; unknown options are ignored; names are case-insensitive (RFC 2347).
 *
 * What a bad value does, option by option (RFC 2347 lets the server either omit
 * an option it does not accept from the OACK, or refuse the request with ERROR 8):
 *
 * | case                                 | decision                                                        |
 * |--------------------------------------|-----------------------------------------------------------------|
 * | unknown option                       | ignored (RFC 2347: "the server ... should not include it")      |
 * | value not a decimal number           | ignored: the transfer goes on without it                        |
 * | the same known option twice          | every copy ignored: we cannot tell which one the client meant   |
 * | blksize < 8                          | **ERROR 8**: RFC 2348 forbids answering more than was asked     |
 * | blksize > 65464                      | clamped (a smaller answer is allowed by RFC 2348)               |
 * | windowsize 0                         | ignored: lock-step, the RFC 7440 default                        |
 * | windowsize > 65535                   | clamped (a smaller answer is allowed by RFC 7440 §3)            |
 * | timeout outside 1..255               | ignored (RFC 2349: the server answers the same value or omits)  |
 * | msftwindow other than 31416          | ignored; also ignored without a granted windowsize              |
 *
 * Only blksize < 8 refuses, because every other case has an answer the client
 * can live with, and a refused request is a failed boot.
 */
import type { TftpOption } from './codec.ts';

/** RFC 2348: "valid values range between 8 and 65464 octets, inclusive". */
export const BLKSIZE_MIN = 8;
export const BLKSIZE_MAX = 65464;
/** RFC 1350: without the option, blocks are 512 bytes. */
export const BLKSIZE_DEFAULT = 512;
/** RFC 7440 §3: "valid values range between 1 and 65535 blocks, inclusive". */
export const WINDOWSIZE_MIN = 1;
export const WINDOWSIZE_MAX = 65535;
/** RFC 2349: "valid values range between 1 and 255 seconds, inclusive". */
export const TIMEOUT_MIN_S = 1;
export const TIMEOUT_MAX_S = 255;
/**
 * Microsoft's variable-window extension (Wireshark packet-tftp.c): the client
 * asks with msftwindow=31416 (round(pi * 10000)), the server agrees with
 * 27182 (floor(e * 10000)); each ACK then carries the next window size.
 */
export const MSFTWINDOW_REQUEST = '31416';
export const MSFTWINDOW_GRANT = '27182';
/** IPv4 (20) + UDP (8) + TFTP DATA header (4). */
export const HEADER_OVERHEAD = 32;

/** The default blksize ceiling: one unfragmented datagram on the private link. */
export function blksizeMaxForMtu(mtu: number): number {
  return Math.max(BLKSIZE_MIN, Math.min(BLKSIZE_MAX, Math.floor(mtu) - HEADER_OVERHEAD));
}

export interface OptionLimits {
  /** Largest blksize granted. Default: blksizeMaxForMtu(private MTU); larger only when configured. */
  blksizeMax: number;
  /** Largest windowsize granted. */
  windowsizeMax: number;
  /** Bound on windowsize × blksize: the transfer keeps one buffer per window slot. */
  windowBytesMax: number;
}

export interface NegotiationContext {
  /** Bytes the transfer will send (after netascii conversion): the tsize answer. */
  fileSize: number;
  limits: OptionLimits;
}

export type IgnoreReason =
  | 'unknown'
  | 'not-a-number'
  | 'out-of-range'
  | 'duplicate'
  | 'unexpected-value'
  | 'needs-windowsize';

export interface IgnoredOption {
  name: string;
  value: string;
  reason: IgnoreReason;
}

export interface Negotiated {
  blksize: number;
  windowsize: number;
  /** Retransmission timeout the client asked for (RFC 2349), in seconds. */
  timeoutS?: number;
  /** The size announced in the OACK, when tsize was asked. */
  tsize?: number;
  /** Microsoft variable window agreed: ACKs carry the next window size. */
  msftWindow: boolean;
  /** OACK content in the client's order; empty means no OACK (RFC 2347: answer with DATA 1). */
  oack: TftpOption[];
  ignored: IgnoredOption[];
}

export type NegotiationResult =
  | { kind: 'ok'; negotiated: Negotiated }
  | { kind: 'refuse'; option: string; value: string; message: string };

type Verdict = { grant: string } | { ignore: IgnoreReason } | { refuse: string };

interface OptionHandler {
  /** Lower-case option name. */
  readonly name: string;
  /** Runs in table order, so later entries see earlier grants in `out`. */
  negotiate(value: string, ctx: NegotiationContext, out: Negotiated): Verdict;
}

/** Decimal digits only; leading zeros allowed; too many digits reads as Infinity (out of range). */
export function parseDecimal(s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const digits = s.replace(/^0+(?=.)/, '');
  return digits.length > 15 ? Number.POSITIVE_INFINITY : Number(digits);
}

export const OPTION_TABLE: readonly OptionHandler[] = [
  {
    // RFC 2348
    name: 'blksize',
    negotiate(value, ctx, out) {
      const n = parseDecimal(value);
      if (n === undefined) return { ignore: 'not-a-number' };
      if (n < BLKSIZE_MIN) return { refuse: `blksize ${value} is below ${BLKSIZE_MIN} (RFC 2348)` };
      out.blksize = Math.min(n, BLKSIZE_MAX, ctx.limits.blksizeMax);
      return { grant: String(out.blksize) };
    },
  },
  {
    // RFC 2349 §"Transfer Size Option": in a RRQ the client sends 0 and the
    // server answers the size. We answer the real size whatever number came.
    name: 'tsize',
    negotiate(value, ctx, out) {
      if (parseDecimal(value) === undefined) return { ignore: 'not-a-number' };
      out.tsize = ctx.fileSize;
      return { grant: String(ctx.fileSize) };
    },
  },
  {
    // RFC 2349 §"Timeout Interval Option"
    name: 'timeout',
    negotiate(value, _ctx, out) {
      const n = parseDecimal(value);
      if (n === undefined) return { ignore: 'not-a-number' };
      if (n < TIMEOUT_MIN_S || n > TIMEOUT_MAX_S) return { ignore: 'out-of-range' };
      out.timeoutS = n;
      return { grant: String(n) };
    },
  },
  {
    // RFC 7440 (after blksize: the window-bytes bound needs the granted blksize)
    name: 'windowsize',
    negotiate(value, ctx, out) {
      const n = parseDecimal(value);
      if (n === undefined) return { ignore: 'not-a-number' };
      if (n < WINDOWSIZE_MIN) return { ignore: 'out-of-range' };
      const byBytes = Math.max(1, Math.floor(ctx.limits.windowBytesMax / out.blksize));
      out.windowsize = Math.max(1, Math.min(n, WINDOWSIZE_MAX, ctx.limits.windowsizeMax, byBytes));
      return { grant: String(out.windowsize) };
    },
  },
  {
    // Wireshark packet-tftp.c: Windows boot managers send windowsize plus
    // msftwindow=31416; the server echoes 27182 to agree (after windowsize).
    name: 'msftwindow',
    negotiate(value, _ctx, out) {
      if (value !== MSFTWINDOW_REQUEST) return { ignore: 'unexpected-value' };
      if (!out.oack.some((o) => o.name.toLowerCase() === 'windowsize')) return { ignore: 'needs-windowsize' };
      out.msftWindow = true;
      return { grant: MSFTWINDOW_GRANT };
    },
  },
];

const HANDLERS = new Map(OPTION_TABLE.map((h) => [h.name, h]));

/** Decides every option of a request. Pure; the result says what the OACK holds. */
export function negotiate(requested: readonly TftpOption[], ctx: NegotiationContext): NegotiationResult {
  const out: Negotiated = { blksize: BLKSIZE_DEFAULT, windowsize: 1, msftWindow: false, oack: [], ignored: [] };
  const seen = new Map<string, TftpOption[]>();
  for (const o of requested) {
    const key = o.name.toLowerCase();
    const list = seen.get(key);
    if (list) list.push(o);
    else seen.set(key, [o]);
  }
  const granted = new Map<string, string>();
  for (const [key, list] of seen) {
    if (!HANDLERS.has(key)) for (const o of list) out.ignored.push({ ...o, reason: 'unknown' });
    else if (list.length > 1) for (const o of list) out.ignored.push({ ...o, reason: 'duplicate' });
  }
  for (const h of OPTION_TABLE) {
    const list = seen.get(h.name);
    if (list?.length !== 1) continue;
    const o = list[0]!;
    const v = h.negotiate(o.value, ctx, out);
    if ('refuse' in v) return { kind: 'refuse', option: o.name, value: o.value, message: v.refuse };
    if ('ignore' in v) out.ignored.push({ ...o, reason: v.ignore });
    else {
      granted.set(h.name, v.grant);
      // msftwindow looks at the OACK built so far: keep it current in table order.
      out.oack.push({ name: o.name, value: v.grant });
    }
  }
  // RFC 2347: the OACK echoes the client's options; keep the client's order and spelling.
  out.oack = requested
    .filter((o) => granted.has(o.name.toLowerCase()) && seen.get(o.name.toLowerCase())!.length === 1)
    .map((o) => ({ name: o.name, value: granted.get(o.name.toLowerCase())! }));
  return { kind: 'ok', negotiated: out };
}
