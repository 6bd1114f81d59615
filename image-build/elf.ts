import { closeSync, openSync, readSync } from 'node:fs';
import { BuildError } from './run.ts';

export type Arch = 'x64' | 'arm64';

/** ELF e_machine values (System V ABI, "Machine" table). */
const MACHINE: Record<number, Arch> = { 62: 'x64', 183: 'arm64' };

/** The architecture of a 64-bit little-endian ELF file, or a description of what else it is. */
export function elfArch(file: string): Arch | string {
  const head = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (head.readUInt32BE(0) !== 0x7f454c46) return 'not an ELF file';
  if (head[4] !== 2 || head[5] !== 1) return 'not a 64-bit little-endian ELF file';
  const machine = head.readUInt16LE(18);
  return MACHINE[machine] ?? `ELF machine 0x${machine.toString(16)}`;
}

export function assertElfArch(file: string, arch: Arch, what: string): void {
  let got: string;
  try {
    got = elfArch(file);
  } catch (e) {
    throw new BuildError(`${what}: cannot read ${file}: ${(e as Error).message}`);
  }
  if (got !== arch) throw new BuildError(`${what}: ${file} should be ELF ${arch}, but is ${got}`);
}
