/**
 * Small process and file helpers for the build. Everything that can fail for a
 * reason the user can fix throws BuildError, whose message says what to do;
 * build.ts prints it without a stack trace.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, createReadStream } from 'node:fs';
import path from 'node:path';

export class BuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BuildError';
  }
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** What the command is for, in error messages ("cross-compile raw-socket for arm64"). */
  what: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output; a non-zero exit is a BuildError showing the output's tail. */
export function run(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(
        new BuildError(
          e.code === 'ENOENT' ? `${opts.what}: ${cmd} not found` : `${opts.what}: cannot run ${cmd}: ${e.message}`,
        ),
      );
    });
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString();
      const stderr = Buffer.concat(err).toString();
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const tail = `${stdout}\n${stderr}`.trim().split('\n').slice(-25).join('\n');
      const how = signal ? `killed by ${signal}` : `exit ${code}`;
      reject(new BuildError(`${opts.what} failed (${how}): ${cmd} ${args.join(' ')}\n${tail}`));
    });
  });
}

/** Full path of an executable on PATH, or undefined. */
export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Checks that every tool is on PATH; one BuildError lists all that are missing, with the Debian package to install. */
export function requireTools(why: string, tools: Record<string, string>): void {
  const missing = Object.entries(tools).filter(([cmd]) => !which(cmd));
  if (missing.length === 0) return;
  const names = missing.map(([cmd]) => cmd).join(', ');
  const pkgs = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
  throw new BuildError(
    `missing ${names}, needed to ${why}. Install with: apt-get install ${pkgs} (scripts/setup-system.sh installs them)`,
  );
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (b) => h.update(b))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Seconds since `t0` (from performance.now()), one decimal. */
export function secondsSince(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`;
}

export function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
