/**
 * A box under test: namespaces for the box, a private-side client and an uplink-side
 * peer, and `bootbox serve` running in the box namespace.
 *   [cli eth0] ── [priv 10.77.0.1/24  box  upl 10.78.0.1/24] ── [up eth0 10.78.0.50/24]
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { collectLines, Netns, NODE, ROOT, uniqueId, vethPair, waitForLine } from './netns.ts';

export const MAIN = path.join(ROOT, 'firmware/main.ts');

export interface BoxLab {
  box: Netns;
  cli: Netns;
  up: Netns;
  dataDir: string;
  uiPort: number;
  proc: ChildProcess | undefined;
  log: string[];
  start(config?: Record<string, unknown>): Promise<void>;
  stop(): Promise<number | null>;
  // biome-ignore lint/suspicious/noExplicitAny: tests read deep into the health document
  health(): Promise<Record<string, any>>;
  destroy(): Promise<void>;
}

export async function boxLab(): Promise<BoxLab> {
  const id = uniqueId();
  const box = new Netns(`bbt-${id}-box`);
  const cli = new Netns(`bbt-${id}-cli`);
  const up = new Netns(`bbt-${id}-up`);
  vethPair(box, 'priv', '10.77.0.1/24', cli, 'eth0', undefined);
  vethPair(box, 'upl', '10.78.0.1/24', up, 'eth0', '10.78.0.50/24');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-lab-'));
  const lab: BoxLab = {
    box,
    cli,
    up,
    dataDir,
    uiPort: 8080,
    proc: undefined,
    log: [],
    async start(config = {}) {
      const file = path.join(dataDir, 'config.json');
      writeFileSync(
        file,
        JSON.stringify({
          privateInterface: 'priv',
          uplinkInterface: 'upl',
          dataDir,
          ui: { port: lab.uiPort },
          http: { port: 8081 },
          ...config,
        }),
      );
      const p = box.spawn(NODE, [MAIN, 'serve', '--config', file]);
      lab.proc = p;
      lab.log = collectLines(p);
      p.stderr?.on('data', (d) => lab.log.push(String(d)));
      await waitForLine(p, /^bootbox ready/, 30_000);
    },
    async stop() {
      const p = lab.proc;
      // a box already ended (by its own exit or by a signal) has nothing left to stop
      if (!p || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null;
      const exited = new Promise<number | null>((r) => p.once('exit', r));
      p.kill('SIGTERM');
      return exited;
    },
    async health() {
      const { stdout } = await up.exec('curl', ['-sS', '-m', '5', `http://10.78.0.1:${lab.uiPort}/api/v1/health`]);
      return JSON.parse(stdout);
    },
    async destroy() {
      await lab.stop();
      await Promise.all([box.destroy(), cli.destroy(), up.destroy()]);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return lab;
}
