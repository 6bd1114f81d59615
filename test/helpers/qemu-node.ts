/**
 * A QEMU node's serial console for e2e tests: the text so far (ANSI escapes and \r
 * removed), the second after power-on at which each mark first appeared, waits for a
 * mark or for QEMU to exit, and the console lines stamped with their second.
 */
import type { ChildProcess } from 'node:child_process';

export const stripConsole = (s: string) =>
  s
    .replace(/\x1b\[[0-9;?=]*[A-Za-z]/g, '')
    .replace(/\x1b[()][A-Z0-9]/g, '')
    .replace(/\r/g, '');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

export interface ConsoleNode<M extends string> {
  /** Serial console so far (ANSI escapes and \r removed). */
  text(): string;
  /** Seconds after power-on at which each mark first appeared. */
  at: Partial<Record<M, number>>;
  /** Resolves with the seconds after power-on when `mark` appears; rejects on exit or timeout. */
  waitFor(mark: M, timeoutMs: number): Promise<number>;
  /** Resolves when QEMU exits by itself; rejects after timeoutMs. */
  exited(timeoutMs: number): Promise<Exit>;
  /** Seconds since power-on. */
  secs(): number;
  /** The console's lines, each with the second it arrived at. */
  stamped(): string[];
  /** Kills QEMU (if running) and waits for it. */
  kill(): Promise<void>;
}

/**
 * Watches a QEMU process whose serial console is its stdout (`-serial stdio`), started just
 * before this call (power-on is now). Marks are single-line regular expressions.
 */
export function watchConsole<M extends string>(
  qemu: ChildProcess,
  label: string,
  marks: Record<M, RegExp>,
): ConsoleNode<M> {
  const t0 = performance.now();
  const secs = () => Number(((performance.now() - t0) / 1000).toFixed(1));
  let raw = '';
  let scanned = 0;
  const at: Partial<Record<M, number>> = {};
  const waiters = new Set<() => void>();
  let exit: Exit | undefined;
  const lines: string[] = [];
  let partial = '';
  const onData = (d: Buffer) => {
    const s = d.toString('latin1');
    raw += s;
    const parts = (partial + s).split('\n');
    partial = parts.pop()!;
    for (const l of parts) lines.push(`${secs().toFixed(1).padStart(6)} ${stripConsole(l)}`);
    // Marks are single lines: scan only the new text, with some overlap.
    const win = stripConsole(raw.slice(Math.max(0, scanned - 512)));
    scanned = raw.length;
    for (const [k, re] of Object.entries(marks) as [M, RegExp][]) {
      if (at[k] === undefined && re.test(win)) at[k] = secs();
    }
    for (const w of waiters) w();
  };
  qemu.stdout?.on('data', onData);
  qemu.stderr?.on('data', onData);
  const exitP = new Promise<Exit>((resolve) =>
    qemu.once('exit', (code, signal) => {
      exit = { code, signal, at: secs() };
      resolve(exit);
      for (const w of waiters) w();
    }),
  );
  return {
    text: () => stripConsole(raw),
    at,
    secs,
    stamped: () => [...lines, ...(partial ? [`${secs().toFixed(1).padStart(6)} ${stripConsole(partial)}`] : [])],
    waitFor(mark, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`${label}: no "${mark}" on the console after ${timeoutMs / 1000} s`));
        }, timeoutMs);
        const check = () => {
          const v = at[mark];
          if (v !== undefined) {
            finish();
            resolve(v);
          } else if (exit) {
            finish();
            reject(new Error(`${label}: QEMU exited (${exit.code ?? exit.signal}) before "${mark}"`));
          }
        };
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    exited(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([
        exitP.finally(() => clearTimeout(timer)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${label}: QEMU still running after ${timeoutMs / 1000} s`)),
            timeoutMs,
          );
        }),
      ]);
    },
    async kill() {
      if (qemu.exitCode === null && qemu.signalCode === null) {
        qemu.kill('SIGKILL');
        await exitP;
      }
    },
  };
}
