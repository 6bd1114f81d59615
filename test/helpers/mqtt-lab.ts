/**
 * MQTT in the lab: `bootbox serve` (bin/bootbox.mjs) in the box namespace of a switch lab,
 * a site mosquitto in the uplink namespace (password file, TLS with a CA made here, on
 * 10.78.0.50), mosquitto_sub / mosquitto_pub and an MQTT.js client run inside namespaces,
 * PXE DHCP requests from real udhcpc clients, and the box's REST API over curl.
 *
 *   [client hosts] ── switch ── [box priv 10.77.0.1 | upl 10.78.0.1] ── [up 10.78.0.50: mosquitto]
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BoxLab } from './box.ts';
import { readEvents, writeClientScript } from './dhcp-clients.ts';
import { writeMosquittoConfig } from './mosquitto-config.ts';
import type { MqttLabClientOptions } from './mqtt-lab-client.ts';
import { type Netns, NODE, ROOT, sleep, waitForLine } from './netns.ts';
import type { Pki } from './pki.ts';

export const BIN = path.join(ROOT, 'bin/bootbox.mjs');
/** The site side: the box's uplink address and the site broker's host. */
export const BOX_UPLINK = '10.78.0.1';
export const BOX_PRIVATE = '10.77.0.1';
export const SITE_HOST = '10.78.0.50';

/** Polls `fn` until it returns a truthy value; throws naming `what` after `timeoutMs`. */
export async function until<T>(
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  what: string | (() => string),
  timeoutMs = 15_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    }
    await sleep(50);
  }
}

// --- the box -------------------------------------------------------------------------

/**
 * Starts `node bin/bootbox.mjs serve --config <file>` in the lab's box namespace (the
 * lab's proc and log are set, so lab.destroy() stops it) and waits for "bootbox ready".
 */
export async function serveBox(lab: BoxLab, config: Record<string, unknown>): Promise<ChildProcess> {
  const file = path.join(lab.dataDir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({
      privateInterface: 'priv',
      uplinkInterface: 'upl',
      dataDir: lab.dataDir,
      ui: { port: lab.uiPort },
      http: { port: 8081 },
      ...config,
    }),
  );
  const p = lab.box.spawn(NODE, [BIN, 'serve', '--config', file]);
  lab.proc = p;
  const log: string[] = [];
  lab.log = log;
  let rest = '';
  const take = (d: Buffer) => {
    const parts = (rest + d.toString()).split('\n');
    rest = parts.pop()!;
    log.push(...parts);
  };
  p.stdout?.on('data', take);
  p.stderr?.on('data', take);
  await waitForLine(p, /^bootbox ready/, 30_000);
  return p;
}

/** Stops the box: SIGTERM, SIGKILL after 5 s; safe after a kill -9. Clears lab.proc. */
export async function stopBox(lab: BoxLab): Promise<void> {
  const p = lab.proc;
  lab.proc = undefined;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(t);
}

/** The default box id: the private interface's MAC without colons (CONTRACT, MQTT topics). */
export function defaultBoxId(lab: BoxLab): string {
  const mac = /link\/ether (\S+)/.exec(lab.box.ip('link', 'show', 'priv'))![1]!;
  return mac.replace(/:/g, '');
}

/** The API token the box wrote to <data>/api-token (no api.tokens configured). */
export function apiToken(lab: BoxLab): string {
  return readFileSync(path.join(lab.dataDir, 'api-token'), 'utf8').trim();
}

// biome-ignore lint/suspicious/noExplicitAny: tests read deep into API answers
export type Json = Record<string, any>;

/**
 * A REST call from the site side (the `up` namespace) to the box's uplink address, with the
 * box's own API token unless `token` is given ('' for none).
 */
export async function api(
  lab: BoxLab,
  method: string,
  p: string,
  token: string = apiToken(lab),
  body?: unknown,
): Promise<{ status: number; json: Json }> {
  const { stdout } = await lab.up.exec('curl', [
    '-sS',
    '-m',
    '10',
    '-w',
    '\n%{http_code}',
    '-X',
    method,
    ...(token ? ['-H', `Authorization: Bearer ${token}`] : []),
    ...(body !== undefined ? ['-H', 'Content-Type: application/json', '--data', JSON.stringify(body)] : []),
    `http://${BOX_UPLINK}:${lab.uiPort}${p}`,
  ]);
  const i = stdout.lastIndexOf('\n');
  const text = stdout.slice(0, i);
  let json: Json = {};
  try {
    json = JSON.parse(text);
  } catch {
    json = { text };
  }
  return { status: Number(stdout.slice(i + 1)), json };
}

// --- DHCP clients --------------------------------------------------------------------

/**
 * A BIOS PXE ROM's DHCP exchange (vendor class PXEClient, arch 0) by busybox udhcpc on a
 * switch host with MAC `mac`: the box learns the machine from it. Resolves with the lease.
 */
export async function pxeLease(host: Netns, dir: string, mac: string): Promise<{ ip: string; server: string }> {
  host.ip('link', 'set', 'eth0', 'address', mac);
  const sub = path.join(dir, `udhcpc-${mac.replace(/:/g, '')}`);
  mkdirSync(sub, { recursive: true });
  const { script, out } = writeClientScript(sub, 'udhcpc');
  await host.exec(
    'busybox',
    [
      'udhcpc',
      '-i',
      'eth0',
      '-n',
      '-q',
      '-f',
      '-t',
      '5',
      '-T',
      '1',
      '-s',
      script,
      '-V',
      'PXEClient:Arch:00000:UNDI:002001',
      '-x',
      '0x5d:0000',
    ],
    { timeoutMs: 30_000 },
  );
  const bound = readEvents(out).find((e) => e.reason === 'bound');
  if (!bound) throw new Error(`udhcpc (${mac}) got no lease: ${JSON.stringify(readEvents(out))}`);
  return { ip: bound.ip, server: bound.server };
}

// --- site mosquitto ------------------------------------------------------------------

export interface LabMosquittoOptions {
  ns: Netns;
  dir: string;
  host: string;
  port: number;
  users: Record<string, string>;
  tls?: Pki;
  /** Keep retained messages and persistent sessions across a stop/start. */
  persistence?: boolean;
}

/** Debian's mosquitto in a namespace: password file, no anonymous access, optional TLS. */
export class LabMosquitto {
  readonly o: LabMosquittoOptions;
  readonly log: string[] = [];
  private proc: ChildProcess | undefined;

  constructor(o: LabMosquittoOptions) {
    this.o = o;
    writeMosquittoConfig({
      dir: o.dir,
      host: o.host,
      port: o.port,
      users: o.users,
      persistence: o.persistence,
      ...(o.tls ? { tls: { ca: o.tls.ca, cert: o.tls.serverCert, key: o.tls.serverKey } } : {}),
    });
  }

  get url(): string {
    return `${this.o.tls ? 'mqtts' : 'mqtt'}://${this.o.host}:${this.o.port}`;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  /** mosquitto_sub / mosquitto_pub connection arguments for `user`. */
  clientArgs(user: string): string[] {
    const pw = this.o.users[user];
    if (pw === undefined) throw new Error(`no mosquitto user ${user}`);
    return [
      '-h',
      this.o.host,
      '-p',
      String(this.o.port),
      '-u',
      user,
      '-P',
      pw,
      ...(this.o.tls ? ['--cafile', this.o.tls.ca] : []),
    ];
  }

  async start(): Promise<void> {
    if (this.proc) return;
    const p = this.o.ns.spawn('mosquitto', ['-c', path.join(this.o.dir, 'mosquitto.conf')]);
    this.proc = p;
    p.stderr?.on('data', (d) => this.log.push(...String(d).split('\n').filter(Boolean)));
    p.once('exit', () => {
      if (this.proc === p) this.proc = undefined;
    });
    await waitForLine(p, /mosquitto version .* running/, 10_000);
  }

  /** SIGTERM (a service stop: with persistence the database is saved first). */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await gone;
    this.proc = undefined;
  }
}

// --- subscribers and publishers inside namespaces ----------------------------------

export interface LabMessage {
  topic: string;
  retain: boolean;
  // biome-ignore lint/suspicious/noExplicitAny: tests read deep into payloads
  json: Record<string, any>;
  text: string;
}

function parsePayload(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text);
    return typeof v === 'object' && v !== null ? v : { value: v };
  } catch {
    return {};
  }
}

/** A running subscriber (mosquitto_sub or the MQTT.js client) that records every message. */
export class Subscriber {
  readonly messages: LabMessage[] = [];
  readonly lines: string[] = [];
  readonly proc: ChildProcess;

  constructor(proc: ChildProcess, parse: (line: string) => LabMessage | undefined) {
    this.proc = proc;
    let rest = '';
    proc.stdout?.on('data', (d: Buffer) => {
      const parts = (rest + d.toString()).split('\n');
      rest = parts.pop()!;
      for (const l of parts) {
        if (!l) continue;
        this.lines.push(l);
        const m = parse(l);
        if (m) this.messages.push(m);
      }
    });
    proc.stderr?.on('data', (d) => this.lines.push(...String(d).split('\n').filter(Boolean)));
  }

  on(topic: string): LabMessage[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  waitFor(pred: (m: LabMessage) => boolean, what: string, timeoutMs = 15_000): Promise<LabMessage> {
    return until(() => this.messages.find(pred), `${what}\nsubscriber output:\n${this.lines.join('\n')}`, timeoutMs);
  }

  waitLine(pred: (l: string) => boolean, what: string, timeoutMs = 15_000): Promise<string> {
    return until(() => this.lines.find(pred), `${what}\nsubscriber output:\n${this.lines.join('\n')}`, timeoutMs);
  }

  async close(): Promise<void> {
    const p = this.proc;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(t);
  }
}

/** mosquitto_sub -F %j in `ns`, running until closed; waits until it has subscribed. */
export async function mosquittoSub(
  ns: Netns,
  conn: string[],
  topics: string[],
  extra: string[] = [],
): Promise<Subscriber> {
  // line-buffered: otherwise stdio holds the debug lines (SUBACK) back while piped
  const p = ns.spawn('stdbuf', [
    '-oL',
    'mosquitto_sub',
    ...conn,
    '-d',
    '-q',
    '1',
    '-F',
    '%j',
    ...extra,
    ...topics.flatMap((t) => ['-t', t]),
  ]);
  const s = new Subscriber(p, (l) => {
    if (!l.startsWith('{')) return undefined;
    const j = JSON.parse(l) as { topic: string; retain: number; payload: string };
    return { topic: j.topic, retain: j.retain === 1, text: j.payload, json: parsePayload(j.payload) };
  });
  await s.waitLine((l) => /received SUBACK/.test(l), 'mosquitto_sub to subscribe', 10_000);
  return s;
}

/** The first message on `topic` read by a fresh mosquitto_sub (the retained one, if any). */
export async function mosquittoSubOnce(ns: Netns, conn: string[], topic: string, waitSec = 10): Promise<LabMessage> {
  const { stdout } = await ns.exec(
    'mosquitto_sub',
    [...conn, '-F', '%j', '-t', topic, '-C', '1', '-W', String(waitSec)],
    {
      timeoutMs: (waitSec + 5) * 1000,
    },
  );
  const l = stdout.split('\n').find((x) => x.startsWith('{'));
  if (!l) throw new Error(`mosquitto_sub -t ${topic}: no message\n${stdout}`);
  const j = JSON.parse(l) as { topic: string; retain: number; payload: string };
  return { topic: j.topic, retain: j.retain === 1, text: j.payload, json: parsePayload(j.payload) };
}

/** mosquitto_pub in `ns`; resolves with its exit code and output (a refusal is not thrown). */
export async function mosquittoPub(
  ns: Netns,
  conn: string[],
  topic: string,
  payload: unknown,
  extra: string[] = [],
): Promise<{ code: number; output: string }> {
  try {
    const r = await ns.exec(
      'mosquitto_pub',
      [...conn, '-d', '-q', '1', ...extra, '-t', topic, '-m', JSON.stringify(payload)],
      { timeoutMs: 15_000 },
    );
    return { code: 0, output: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : 1, output: `${x.stdout ?? ''}${x.stderr ?? ''}` };
  }
}

/** The MQTT.js client (mqtt-lab-client.ts) in `ns`; resolves once connected (and subscribed). */
export async function mqttJs(ns: Netns, o: MqttLabClientOptions): Promise<Subscriber> {
  const p = ns.spawn(NODE, [path.join(ROOT, 'test/helpers/mqtt-lab-client.ts'), JSON.stringify(o)]);
  const s = new Subscriber(p, (l) => {
    const j = JSON.parse(l) as { event: string; topic: string; retain: boolean; payload: string };
    if (j.event !== 'message') return undefined;
    return { topic: j.topic, retain: j.retain, text: j.payload, json: parsePayload(j.payload) };
  });
  await s.waitLine(
    (l) => (o.subscribe?.length ? l.includes('"subscribed"') : l.includes('"connect"')),
    'the MQTT.js client to connect',
    15_000,
  );
  return s;
}
