/**
 * The HTTP Range header (RFC 9110 §14), for one byte range. Firmware HTTP clients
 * (iPXE, edk2, GRUB) and resuming deploy clients ask for single ranges; a multi-range
 * request is served whole (§14.2 lets a server ignore Range).
 */
export type RangeResult =
  | { kind: 'none' }
  | { kind: 'range'; start: number; end: number }
  | { kind: 'unsatisfiable' }
  | { kind: 'malformed' };

const SPEC = /^bytes=(\d*)-(\d*)$/;

export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'none' };
  const h = header.trim();
  if (!h.toLowerCase().startsWith('bytes=')) return { kind: 'malformed' };
  if (h.includes(',')) {
    // Several ranges: valid syntax, served as one whole response.
    return h
      .slice(6)
      .split(',')
      .every((p) => /^\s*(\d*)-(\d*)\s*$/.test(p) && p.trim() !== '-')
      ? { kind: 'none' }
      : { kind: 'malformed' };
  }
  const m = SPEC.exec(h.replace(/^bytes=/i, 'bytes='));
  if (!m) return { kind: 'malformed' };
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return { kind: 'malformed' };
  if (a.length > 15 || b.length > 15) return { kind: 'unsatisfiable' }; // beyond any file we hold
  if (a === '') {
    // Suffix range: the last b bytes.
    const n = Number(b);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (b !== '' && Number(b) < start) return { kind: 'malformed' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'range', start, end };
}
