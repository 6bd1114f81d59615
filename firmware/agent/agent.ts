/**
 * `bootbox agent`: the small program that runs on a node and carries out what the box asks
 * of it over MQTT (today: wipe-and-reboot, see telemetry/mqtt/node-actions.ts).
 *
 * It subscribes to `bootbox/<box or +>/nodes/<name>/cmd`, checks each action (run-action.ts:
 * right box, known action, fresh, steps equal to its own plan), runs it (or with --dry-run
 * prints the plan, one line per command) and reports on `bootbox/<box>/nodes/<name>/response`:
 *
 *   { transaction, name, status: "ok" | "error", dryRun, steps: [{ cmd, exit }], error?, ts }
 *
 * A restart is the last step of every plan: the report goes out just before it, with that
 * step's exit left null. Topic levels use the name in lower case (machine names are
 * case-insensitive; the box publishes the same form). Without --box the agent takes orders
 * from any box on the broker: the broker's ACL is then what keeps others out.
 *
 * Stdout carries `bootbox agent ready: <topic>` once subscribed, then the plan lines; logs go
 * to stderr. Errors: USAGE (bad flags, bad URL), CONFIG_UNREADABLE (--ca), MQTT_UNREACHABLE
 * (cannot connect or subscribe), each with the registry's exit code.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { type Clock, systemClock } from '../core/clock.ts';
import { BootboxError } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import type { NodeOs } from '../telemetry/mqtt/node-actions.ts';
import { type ActionReport, checkAction, runAction, type StepRunner } from './run-action.ts';

export interface AgentOptions {
  /** Broker URL: mqtt://, mqtts://, ws:// or wss://. */
  mqtt: string;
  /** The machine's name as the box knows it (any case). */
  name: string;
  /** Take orders only from this box id. */
  box?: string;
  username?: string;
  password?: string;
  /** CA certificate file for mqtts:// and wss://. */
  ca?: string;
  dryRun: boolean;
  clock?: Clock;
  /** Logs (stderr by default). */
  log?: Logger;
  /** Plan and ready lines (stdout by default). */
  out?: (line: string) => void;
  /** Stops the agent; without it SIGTERM and SIGINT do. */
  signal?: AbortSignal;
  runner?: StepRunner;
  /** How long the first connection may take. */
  connectTimeoutMs?: number;
  /** The OS the agent runs on (default: this host's). */
  hostOs?: NodeOs;
}

const URL_PROTOCOLS = ['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:', 'ssl:'];
const LEVEL_RE = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_ACTION_BYTES = 64 * 1024;

function usage(msg: string): BootboxError {
  return new BootboxError('USAGE', msg);
}

/** Checks the options; returns the parsed URL. */
export function checkAgentOptions(o: Pick<AgentOptions, 'mqtt' | 'name' | 'box'>): URL {
  let url: URL;
  try {
    url = new URL(o.mqtt);
  } catch {
    throw usage(`--mqtt: "${o.mqtt}" is not a URL (e.g. mqtt://box.example:1883)`);
  }
  if (!URL_PROTOCOLS.includes(url.protocol)) {
    throw usage(`--mqtt: "${url.protocol}" is not a broker URL scheme (mqtt, mqtts, ws, wss)`);
  }
  if (!url.hostname) throw usage(`--mqtt: "${o.mqtt}" names no host`);
  if (!LEVEL_RE.test(o.name)) throw usage(`--name: must be 1-64 letters, digits, . _ or - (got "${o.name}")`);
  if (o.box !== undefined && !LEVEL_RE.test(o.box)) {
    throw usage(`--box: must be 1-64 letters, digits, . _ or - (got "${o.box}")`);
  }
  return url;
}

/** The URL without its password, for messages. */
function shown(url: URL): string {
  const u = new URL(url.href);
  u.password = '';
  u.username = '';
  return u.href.replace(/\/$/, '');
}

/** Spawns one command without a shell; its output goes to the agent's stderr. */
export const spawnRunner: StepRunner = (argv) =>
  new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 2, 2] });
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });

/**
 * Runs the agent until stopped (resolves) or until the first connection fails (rejects with
 * a BootboxError whose code gives the exit code). After a first connection, lost
 * connections are retried every few seconds.
 */
export async function runAgent(o: AgentOptions): Promise<void> {
  const url = checkAgentOptions(o);
  const name = o.name.toLowerCase();
  const log = o.log ?? createLogger('agent', { write: (l) => process.stderr.write(`${l}\n`) });
  const out = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const clock = o.clock ?? systemClock;
  const hostOs: NodeOs = o.hostOs ?? (process.platform === 'win32' ? 'windows' : 'linux');
  let ca: Buffer | undefined;
  if (o.ca !== undefined) {
    try {
      ca = readFileSync(o.ca);
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new BootboxError('CONFIG_UNREADABLE', `--ca ${o.ca}: cannot read the CA certificate (${why})`);
    }
  }
  const opts: IClientOptions = {
    clientId: `bootbox-agent-${name}-${randomBytes(3).toString('hex')}`,
    clean: true,
    reconnectPeriod: 5000,
    connectTimeout: o.connectTimeoutMs ?? 15_000,
    ...(o.username !== undefined && { username: o.username }),
    ...(o.password !== undefined && { password: o.password }),
    ...(ca !== undefined && { ca }),
  };
  const filter = `bootbox/${o.box ?? '+'}/nodes/${name}/cmd`;
  const client = await connectOnce(url, opts, o.connectTimeoutMs ?? 15_000);
  try {
    await subscribe(client, filter);
  } catch (e) {
    client.end(true);
    throw new BootboxError('MQTT_UNREACHABLE', `${shown(url)}: cannot subscribe to ${filter}: ${(e as Error).message}`);
  }
  client.on('error', (e) => log.warn(`mqtt: ${e.message}`));
  client.on('offline', () => log.warn(`lost ${shown(url)}; reconnecting`));
  client.on('connect', () => log.info(`connected to ${shown(url)}`));

  // One action at a time, in arrival order; duplicates (QoS 1 redelivery) run once.
  let chain: Promise<void> = Promise.resolve();
  const seen = new Set<string>();
  client.on('message', (topic, payload) => {
    chain = chain.then(() => handle(topic, payload)).catch((e) => log.error(`action failed: ${(e as Error).message}`));
  });

  const report = (box: string, r: ActionReport | (Omit<ActionReport, 'transaction'> & { transaction?: unknown })) =>
    new Promise<void>((resolve) => {
      const body = JSON.stringify({ ...r, ts: clock.date().toISOString() });
      client.publish(`bootbox/${box}/nodes/${name}/response`, body, { qos: 1 }, (err) => {
        if (err) log.warn(`cannot send the report: ${err.message}`);
        resolve();
      });
    });

  const handle = async (topic: string, payload: Buffer): Promise<void> => {
    const topicBox = topic.split('/')[1] ?? '';
    let body: unknown;
    try {
      if (payload.length > MAX_ACTION_BYTES) throw new Error(`${payload.length} bytes`);
      body = JSON.parse(payload.toString('utf8'));
    } catch (e) {
      log.warn(`ignored a message on ${topic} that is not a JSON action: ${(e as Error).message}`);
      return;
    }
    const t = (body as { transaction?: unknown } | null)?.transaction;
    // echoed in a refusal only when it is one (never an arbitrary object back onto the broker)
    const transaction = (typeof t === 'string' && t.length <= 128) || Number.isSafeInteger(t) ? t : undefined;
    const refused = (code: string, message: string) => {
      log.warn(`refused action on ${topic}: ${message}`);
      out(`refused: ${message}`);
      return report(topicBox, {
        transaction,
        name,
        status: 'error',
        dryRun: o.dryRun,
        steps: [],
        error: { code, message },
      });
    };
    const a = checkAction(body, { topicBox, ...(o.box !== undefined && { expectedBox: o.box }), now: clock.date() });
    if (a instanceof BootboxError) return refused(a.code, a.message);
    const key = `${topicBox}\u0000${a.transaction}\u0000${a.ts}`;
    if (seen.has(key)) {
      log.info(`action ${a.transaction} from ${topicBox} already handled; ignored`);
      return;
    }
    seen.add(key);
    if (seen.size > 1000) seen.delete(seen.values().next().value!);
    if (!o.dryRun && a.os !== hostOs) {
      return refused('ACTION_REFUSED', `the action is for ${a.os} but this node runs ${hostOs}`);
    }
    log.info(`${a.action} ${a.transaction} from box ${topicBox}${o.dryRun ? ' (dry run)' : ''}`);
    const r = await runAction(a, {
      name,
      dryRun: o.dryRun,
      runner: o.runner ?? spawnRunner,
      print: out,
      tmpDir: os.tmpdir(),
      beforeRestart: (partial) => report(topicBox, partial),
    });
    if (r) await report(topicBox, r);
  };

  out(`bootbox agent ready: ${filter}`);
  log.info(`listening on ${filter} at ${shown(url)}${o.dryRun ? ' (dry run: nothing is executed)' : ''}`);

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    if (o.signal) {
      if (o.signal.aborted) resolve();
      o.signal.addEventListener('abort', stop, { once: true });
    } else {
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    }
  });
  await chain;
  await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
  log.info('stopped');
}

/** Connects once; any failure before the first CONNACK is MQTT_UNREACHABLE (no retrying). */
function connectOnce(url: URL, opts: IClientOptions, timeoutMs: number): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url.href, { ...opts, reconnectPeriod: 0 });
    const off = () => {
      clearTimeout(timer);
      client.off('error', fail);
      client.off('close', closed);
      client.off('connect', connected);
    };
    const fail = (e: Error) => {
      off();
      client.on('error', () => {});
      client.end(true);
      const code = (e as NodeJS.ErrnoException).code;
      const why = code && !e.message.includes(code) ? `${code} ${e.message}` : e.message;
      reject(new BootboxError('MQTT_UNREACHABLE', `cannot connect to ${shown(url)}: ${why}`));
    };
    const closed = () => fail(new Error('the connection closed before the broker answered'));
    const connected = () => {
      off();
      // From now on, lost connections are retried.
      client.options.reconnectPeriod = opts.reconnectPeriod ?? 5000;
      resolve(client);
    };
    const timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    client.on('error', fail);
    client.on('close', closed);
    client.on('connect', connected);
  });
}

function subscribe(client: MqttClient, filter: string): Promise<void> {
  return new Promise((resolve, reject) => {
    client.subscribe(filter, { qos: 1 }, (err, granted) => {
      if (err) return reject(err);
      const g = granted?.[0];
      if (!g || g.qos === 128) return reject(new Error('the broker refused the subscription'));
      resolve();
    });
  });
}
