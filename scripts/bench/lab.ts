/** Namespaces for benchmarks: same shape for bootbox and for each peer. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Netns, NODE, ROOT, uniqueId, vethPair, waitForLine } from '../../test/helpers/netns.ts';

export { NODE, ROOT };

/**
 * server ns: priv 10.77.0.1/24, route to 10.88.0.0/16 via the client.
 * client ns: eth0 10.77.0.2/24 and 10.88.0.1/16 (perfdhcp/storm act as a relay from there).
 */
export function relayTopology() {
  const id = uniqueId();
  const srv = new Netns(`bbb-${id}-s`);
  const cli = new Netns(`bbb-${id}-c`);
  vethPair(srv, 'priv', '10.77.0.1/24', cli, 'eth0', '10.77.0.2/24');
  cli.ip('addr', 'add', '10.88.0.1/16', 'dev', 'eth0');
  srv.ip('route', 'add', '10.88.0.0/16', 'via', '10.77.0.2');
  return {
    srv,
    cli,
    async destroy() {
      await Promise.all([srv.destroy(), cli.destroy()]);
    },
  };
}

export function tmpDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Starts bootbox in `ns` with a config object; resolves once it prints "bootbox ready". */
export async function startBootbox(ns: Netns, config: Record<string, unknown>, dataDir: string): Promise<ChildProcess> {
  const file = path.join(dataDir, 'bench-config.json');
  writeFileSync(file, JSON.stringify({ dataDir, ...config }));
  const child = ns.spawn(NODE, [path.join(ROOT, 'firmware/main.ts'), 'serve', '--config', file]);
  await waitForLine(child, /^bootbox ready/, 30_000);
  return child;
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}

/** CPU seconds (user+sys) of a process and its peak RSS, from /proc. */
export function procStats(pid: number): { cpuSeconds: number; peakRssMiB: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const ticks = Number(stat[11]) + Number(stat[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { cpuSeconds: ticks / 100, peakRssMiB: Math.round(hwm / 1024) };
  } catch {
    return undefined;
  }
}

export { spawn };
