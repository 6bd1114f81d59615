/**
 * Shared pieces of the MQTT integration tests: a Debian mosquitto run from a generated
 * config (password file, TLS with a throw-away CA, optional persistence), a small PKI
 * made with openssl, a collecting MQTT.js client, the mosquitto_pub/mosquitto_sub
 * clients, and the box-side child process for last-will tests. Everything listens on
 * 127.0.0.1 only.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { writeMosquittoConfig } from '../helpers/mosquitto-config.ts';
import { NODE, ROOT } from '../helpers/netns.ts';
import type { Pki } from '../helpers/pki.ts';

export const LOCALHOST = '127.0.0.1';
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A port nobody listens on now, for programs that cannot be given port 0 and report
 * the one they got (mosquitto); the same port is reused when the broker restarts.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, LOCALHOST, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Polls until `fn` returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(fn: () => T | undefined | null | false, what: string, timeoutMs = 15000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export interface MosquittoOptions {
  dir: string;
  port: number;
  users: Record<string, string>;
  tls?: Pki;
  /** Keep sessions and retained messages across restarts (mosquitto.db in dir). */
  persistence?: boolean;
}

/** Debian's mosquitto on 127.0.0.1 with a generated config: no anonymous access. */
export class Mosquitto {
  readonly o: MosquittoOptions;
  readonly log: string[] = [];
  private proc: ChildProcess | undefined;

  constructor(o: MosquittoOptions) {
    this.o = o;
    writeMosquittoConfig({
      dir: o.dir,
      host: LOCALHOST,
      port: o.port,
      users: o.users,
      persistence: o.persistence,
      ...(o.tls
        ? { tls: { ca: o.tls.ca, cert: o.tls.serverCert, key: o.tls.serverKey, requireClientCert: true } }
        : {}),
    });
  }

  get conf(): string {
    return path.join(this.o.dir, 'mosquitto.conf');
  }

  get url(): string {
    return `${this.o.tls ? 'mqtts' : 'mqtt'}://${LOCALHOST}:${this.o.port}`;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  async start(): Promise<void> {
    if (this.proc) return;
    const p = spawn('mosquitto', ['-c', this.conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = p;
    const collect = (b: Buffer) => this.log.push(...b.toString().split('\n').filter(Boolean));
    p.stdout?.on('data', collect);
    p.stderr?.on('data', collect);
    let exited = false;
    p.once('exit', () => {
      exited = true;
      if (this.proc === p) this.proc = undefined;
    });
    let listening = false;
    await waitFor(
      () => {
        if (!exited && !listening) void canConnect(this.o.port).then((ok) => (listening ||= ok));
        return exited || listening;
      },
      'mosquitto to listen',
      10000,
    );
    if (exited) throw new Error(`mosquitto did not start:\n${this.log.join('\n')}`);
  }

  /** SIGTERM, as a service stop; with persistence it saves its database first. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGTERM');
    await gone;
    this.proc = undefined;
  }

  /** Forgets everything the broker kept (retained messages, sessions). */
  wipe(): void {
    rmSync(path.join(this.o.dir, 'mosquitto.db'), { force: true });
  }
}

/** Stops the broker, runs `during` while it is away, and restarts it after `outageMs` in all. */
export async function brokerOutage(
  broker: { stop(): Promise<void>; start(): Promise<void> },
  outageMs: number,
  during: () => Promise<void> | void,
): Promise<void> {
  await broker.stop();
  const t0 = Date.now();
  await during();
  await sleep(Math.max(0, outageMs - (Date.now() - t0)));
  await broker.start();
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: LOCALHOST, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface Received {
  topic: string;
  text: string;
  retain: boolean;
  json: Record<string, unknown>;
}

/** An MQTT.js client that records every message it gets. */
export class Collector {
  readonly client: MqttClient;
  readonly messages: Received[] = [];

  private constructor(client: MqttClient) {
    this.client = client;
    client.on('message', (topic, payload, packet) => {
      const text = payload.toString();
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      this.messages.push({ topic, text, retain: packet.retain, json });
    });
  }

  static async open(url: string, filters: string[], opts: IClientOptions = {}): Promise<Collector> {
    const client = connect(url, { reconnectPeriod: 200, connectTimeout: 5000, ...opts });
    client.on('error', () => {});
    const c = new Collector(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    if (filters.length) await client.subscribeAsync(filters, { qos: 1 });
    return c;
  }

  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  waitFor(pred: (m: Received) => boolean, what: string, timeoutMs = 15000): Promise<Received> {
    return waitFor(() => this.messages.find(pred), what, timeoutMs);
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a client program (mosquitto_pub, mosquitto_sub) to completion. */
export function runTool(cmd: string, args: string[], timeoutMs = 15000): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b) => (stdout += b));
    p.stderr.on('data', (b) => (stderr += b));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('error', reject);
    // 'close', not 'exit': only then has all output been read.
    p.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * The first message on `topic` (the retained one, if any) read by mosquitto_sub, as JSON.
 * Runs with -d so that a failure shows the client's side of the conversation.
 */
export async function subscribeOnce(args: string[], topic: string): Promise<Record<string, unknown>> {
  const r = await runTool('mosquitto_sub', [...args, '-d', '-t', topic, '-C', '1', '-W', '10']);
  const data = r.stdout.split('\n').filter((l) => l && !/^(Client |Subscribed )/.test(l));
  if (r.code !== 0 || data.length === 0) {
    throw new Error(`mosquitto_sub -t ${topic}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  }
  return JSON.parse(data[0]!);
}

export interface BoxChildConfig {
  url: string;
  root: string;
  boxId: string;
  username?: string;
  password?: string;
  ca?: string;
  cert?: string;
  key?: string;
  keepaliveSec: number;
}

/** Starts the box-side child (mqtt-box-child.ts) and waits until its link is online. */
export async function spawnBoxChild(cfg: BoxChildConfig): Promise<ChildProcess> {
  const child = spawn(NODE, [path.join(ROOT, 'test/integration/mqtt-box-child.ts'), JSON.stringify(cfg)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (b) => (out += b));
  child.stderr?.on('data', (b) => (err += b));
  let exited = false;
  child.once('exit', () => (exited = true));
  await waitFor(() => exited || out.includes('online'), 'the box child to connect', 20000).catch((e) => {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\n${err}`);
  });
  if (exited) throw new Error(`the box child exited:\n${err}`);
  return child;
}
