import { readFileSync } from 'node:fs';

const CAP_NET_BIND_SERVICE = 10;
const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

/** Effective capabilities of this process (Linux), from /proc/self/status. */
export function effectiveCaps(): bigint {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? BigInt(`0x${m[1]}`) : 0n;
  } catch {
    return 0n;
  }
}

function has(cap: number): boolean {
  return (effectiveCaps() & (1n << BigInt(cap))) !== 0n;
}

export const canRawSocket = (): boolean => has(CAP_NET_RAW);
export const canBindLowPorts = (): boolean => has(CAP_NET_BIND_SERVICE);
export const canAdminNetwork = (): boolean => has(CAP_NET_ADMIN);
