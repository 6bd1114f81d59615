/** Shared helpers for the DHCP unit tests. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseIPv4 } from '../../firmware/core/net.ts';

export const FIXTURE_DIR = join(import.meta.dirname, '../fixtures/dhcp');

/** A `.hex` fixture: `#` comment lines, then hex (any whitespace). */
export function loadHex(name: string): Buffer {
  const text = readFileSync(join(FIXTURE_DIR, name.endsWith('.hex') ? name : `${name}.hex`), 'utf8');
  const hex = text
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('')
    .replace(/\s+/g, '');
  return Buffer.from(hex, 'hex');
}

export function hexFixtureNames(): string[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.hex'))
    .map((f) => f.slice(0, -4))
    .sort();
}

/** Zero bytes. */
export const z = (n: number): number[] => new Array<number>(n).fill(0);
/** The four bytes of a dotted quad. */
export const ipb = (s: string): number[] => {
  const n = parseIPv4(s)!;
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
};
/** latin1 character codes. */
export const str = (s: string): number[] => [...Buffer.from(s, 'latin1')];
/** The address as a number. */
export const ip = (s: string): number => parseIPv4(s)!;
/** count bytes counting up from `from` (mod 256). */
export const seq = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => (from + i) & 255);
