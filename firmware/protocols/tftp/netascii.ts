/**
 * RFC 1350 §1 / RFC 764: netascii is 8-bit ASCII with Telnet's line rules.
 * On the wire a newline is CR LF and a lone CR is CR NUL. Pure.
 *
 * Boot ROMs ask for octet; tftp-hpa's `tftp` defaults to netascii ("ascii"),
 * so people testing by hand get a correct file instead of a mangled one.
 */
const CR = 0x0d;
const LF = 0x0a;

/** Size of `toNetascii(buf)` without building it. */
export function netasciiSize(buf: Buffer): number {
  let extra = 0;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (c === LF || c === CR) extra++;
  }
  return buf.length + extra;
}

/** Local text (LF line ends) to netascii: LF -> CR LF, CR -> CR NUL. */
export function toNetascii(buf: Buffer): Buffer {
  const out = Buffer.allocUnsafe(netasciiSize(buf));
  let o = 0;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (c === LF) {
      out[o++] = CR;
      out[o++] = LF;
    } else if (c === CR) {
      out[o++] = CR;
      out[o++] = 0;
    } else {
      out[o++] = c;
    }
  }
  return out;
}

/** The inverse (what a client does on receipt); for tests and a future WRQ. */
export function fromNetascii(buf: Buffer): Buffer {
  const out = Buffer.allocUnsafe(buf.length);
  let o = 0;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (c === CR && i + 1 < buf.length && (buf[i + 1] === LF || buf[i + 1] === 0)) {
      out[o++] = buf[i + 1] === LF ? LF : CR;
      i++;
    } else {
      out[o++] = c;
    }
  }
  return out.subarray(0, o);
}
