/**
 * Network namespaces for lab tests: each test makes its own, with unique names,
 * and removes them. Traffic stays inside them.
 */
import { type ChildProcess, execFile, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
let counter = 0;

/** A short unique prefix (interface names are limited to 15 characters). */
export function uniqueId(): string {
  counter++;
  return `${(process.pid % 100000).toString(36)}${counter.toString(36)}`;
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class Netns {
  readonly name: string;
  private readonly children = new Set<ChildProcess>();

  constructor(name: string) {
    this.name = name;
    sh('ip', ['netns', 'add', name]);
    this.ip('link', 'set', 'lo', 'up');
  }

  ip(...args: string[]): string {
    return sh('ip', ['-n', this.name, ...args]);
  }

  /** Runs a command inside the namespace and waits for it. */
  async exec(
    cmd: string,
    args: string[],
    opts: { timeoutMs?: number } = {},
  ): Promise<{ stdout: string; stderr: string }> {
    return execFileP('ip', ['netns', 'exec', this.name, cmd, ...args], {
      timeout: opts.timeoutMs ?? 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  }

  /** Starts a command inside the namespace; it is killed by destroy(). */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts,
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  async destroy(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    await Promise.all(
      [...this.children].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))),
    );
    try {
      sh('ip', ['netns', 'del', this.name]);
    } catch {
      // already gone
    }
  }
}

/** A veth pair between two namespaces, with optional addresses, both ends up. */
export function vethPair(
  a: Netns,
  aIf: string,
  aAddr: string | undefined,
  b: Netns,
  bIf: string,
  bAddr: string | undefined,
): void {
  a.ip('link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name);
  if (aAddr) a.ip('addr', 'add', aAddr, 'dev', aIf);
  if (bAddr) b.ip('addr', 'add', bAddr, 'dev', bIf);
  a.ip('link', 'set', aIf, 'up');
  b.ip('link', 'set', bIf, 'up');
}

/** Waits until `pattern` appears on the child's stdout (or stderr); rejects on exit or timeout. */
export function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const m = buf.split('\n').find((l) => pattern.test(l));
      if (m !== undefined) {
        cleanup();
        resolve(m);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`process exited (${code}) before ${pattern}; output:\n${buf}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for ${pattern}; output:\n${buf}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', onExit);
  });
}

/** Collects a child's stdout lines. */
export function collectLines(child: ChildProcess): string[] {
  const lines: string[] = [];
  let rest = '';
  child.stdout?.on('data', (d: Buffer) => {
    const parts = (rest + d.toString()).split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
  });
  return lines;
}

export const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
export const ROOT = new URL('../..', import.meta.url).pathname;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** tcpdump in a namespace, writing text lines; stop() returns them. */
export async function capture(ns: Netns, iface: string, filter: string): Promise<{ stop(): Promise<string[]> }> {
  // --immediate-mode: otherwise packets wait in the kernel's ring buffer (up to a second)
  // and those of the last moments are lost on SIGINT, so a "nothing leaked" check could
  // miss a late leak.
  const child = ns.spawn('tcpdump', ['-i', iface, '-n', '-l', '--immediate-mode', '-U', '-q', filter]);
  const lines = collectLines(child);
  await waitForLine(child, /listening on/);
  return {
    async stop() {
      await sleep(300);
      child.kill('SIGINT');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      return lines.filter((l) => l.trim() !== '');
    },
  };
}
