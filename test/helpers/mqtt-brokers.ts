/**
 * Real MQTT brokers for integration tests, and thin MqttPort adapters over them:
 * - an aedes broker on 127.0.0.1 port 0 with username/password logins; the box's port reads
 *   publishes inside the broker, so it knows each publisher's authenticated username
 *   (`identity`), as the embedded broker of the box does;
 * - mosquitto (MQTT 5) on a Unix socket in a temp dir, for response topics and correlation
 *   data (aedes speaks MQTT 3.1.1 only); the port there is an mqtt.js v5 client, and the
 *   identity is the one the test says (a site broker vouches for it).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { MqttMessage, MqttPort, PublishOptions } from '../../firmware/telemetry/mqtt/port.ts';
import { matches } from './mqtt-commands.ts';

function encode(payload: unknown): Buffer {
  const body =
    typeof payload === 'object' && payload !== null && !('ts' in payload)
      ? { ...payload, ts: new Date().toISOString() }
      : payload;
  return Buffer.from(JSON.stringify(body));
}

export interface TestBroker {
  port: number;
  url: string;
  /** The box's port: publishes into the broker, reads client publishes with their identity. */
  boxPort(root: string): MqttPort;
  close(): Promise<void>;
}

export async function startAedes(users: Record<string, string>): Promise<TestBroker> {
  const identities = new WeakMap<Client, string>();
  const aedes = await Aedes.createBroker({
    authenticate: (client, username, password, done) => {
      if (username === undefined) return done(null, true); // anonymous: no identity
      if (users[username] !== undefined && password?.toString() === users[username]) {
        identities.set(client, username);
        return done(null, true);
      }
      const e = new Error('bad user name or password') as AuthenticateError;
      e.returnCode = 4;
      return done(e, null);
    },
  });
  const server = net.createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    boxPort(root) {
      return {
        root,
        connected: true,
        publish(topic: string, payload: unknown, opts?: PublishOptions) {
          aedes.publish(
            {
              cmd: 'publish',
              topic,
              payload: encode(payload),
              qos: opts?.qos ?? 1,
              retain: opts?.retain ?? false,
              dup: false,
            },
            () => {},
          );
        },
        subscribe(filter: string, handler: (m: MqttMessage) => void) {
          const listener = (packet: { topic: string; payload: Buffer | string }, client: Client | null) => {
            if (!client || !matches(filter, packet.topic)) return;
            const msg: MqttMessage = { topic: packet.topic, payload: Buffer.from(packet.payload) };
            const id = identities.get(client);
            if (id !== undefined) msg.identity = id;
            handler(msg);
          };
          aedes.on('publish', listener);
          return () => aedes.off('publish', listener);
        },
      };
    },
    async close() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The same broker in a worker thread, for measuring the box's own event loop under a flood:
 * the broker's parsing runs on another thread, the box's port gets each publish by message.
 */
export async function startAedesWorker(users: Record<string, string>): Promise<TestBroker> {
  const worker = new Worker(new URL('./aedes-worker.ts', import.meta.url), { workerData: { users } });
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('error', reject);
    const onReady = (m: { type: string; port: number }) => {
      if (m.type !== 'ready') return;
      worker.off('message', onReady);
      resolve(m.port);
    };
    worker.on('message', onReady);
  });
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    boxPort(root) {
      return {
        root,
        connected: true,
        publish(topic: string, payload: unknown, opts?: PublishOptions) {
          worker.postMessage({
            type: 'publish',
            topic,
            payload: encode(payload),
            qos: opts?.qos ?? 1,
            retain: opts?.retain ?? false,
          });
        },
        subscribe(filter: string, handler: (m: MqttMessage) => void) {
          type Relayed = { topic: string; payload: string; identity?: string };
          const listener = (m: { type: string; list: Relayed[] }) => {
            if (m.type !== 'publishes') return;
            for (const p of m.list) {
              if (!matches(filter, p.topic)) continue;
              const msg: MqttMessage = { topic: p.topic, payload: Buffer.from(p.payload, 'latin1') };
              if (p.identity !== undefined) msg.identity = p.identity;
              handler(msg);
            }
          };
          worker.on('message', listener);
          return () => worker.off('message', listener);
        },
      };
    },
    async close() {
      const exited = new Promise((r) => worker.once('exit', r));
      worker.postMessage({ type: 'close' });
      await exited;
    },
  };
}

export interface TestMosquitto {
  socket: string;
  /** mqtt.js options to reach it. */
  clientOptions(o?: IClientOptions): IClientOptions;
  close(): Promise<void>;
}

/** mosquitto on a Unix socket (no TCP port at all), anonymous access. */
export async function startMosquitto(): Promise<TestMosquitto> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-mosq-'));
  const socket = path.join(dir, 'mqtt.sock');
  const conf = path.join(dir, 'mosquitto.conf');
  // started as root, mosquitto switches to its own user unless told to stay (it could not bind here)
  writeFileSync(
    conf,
    `listener 0 ${socket}\nallow_anonymous true\npersistence false\nuser ${os.userInfo().username}\n`,
  );
  const proc: ChildProcess = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => {
    stderr += d;
  });
  for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(socket)) {
    proc.kill();
    throw new Error(`mosquitto did not start: ${stderr}`);
  }
  return {
    socket,
    clientOptions: (o = {}) => ({ protocol: 'mqtt', path: socket, unixSocket: true, ...o }) as IClientOptions,
    async close() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function connect(o: IClientOptions | string, extra: IClientOptions = {}): Promise<MqttClient> {
  const client =
    typeof o === 'string'
      ? mqtt.connect(o, { reconnectPeriod: 0, ...extra })
      : mqtt.connect({ reconnectPeriod: 0, ...o, ...extra });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

/** The box's port over an MQTT 5 client; every request is taken as coming from `identity`. */
export function clientPort(client: MqttClient, root: string, identity: string): MqttPort {
  return {
    root,
    connected: true,
    publish(topic, payload, opts) {
      const properties = opts?.properties?.correlationData
        ? { correlationData: opts.properties.correlationData }
        : undefined;
      client.publish(topic, encode(payload), {
        qos: opts?.qos ?? 1,
        retain: opts?.retain ?? false,
        ...(properties && { properties }),
      });
    },
    subscribe(filter, handler) {
      const listener = (topic: string, payload: Buffer, packet: mqtt.IPublishPacket) => {
        if (!matches(filter, topic)) return;
        const p = packet.properties;
        const msg: MqttMessage = { topic, payload, identity };
        if (p?.responseTopic !== undefined || p?.correlationData !== undefined) {
          msg.properties = {
            ...(p.responseTopic !== undefined && { responseTopic: p.responseTopic }),
            ...(p.correlationData !== undefined && { correlationData: Buffer.from(p.correlationData) }),
          };
        }
        handler(msg);
      };
      client.on('message', listener);
      client.subscribe(filter, { qos: 1 });
      return () => {
        client.off('message', listener);
        client.unsubscribe(filter);
      };
    },
  };
}

/** Waits for the first message on `topic` that passes `accept`. */
export function nextMessage(
  client: MqttClient,
  topic: string,
  accept: (body: Record<string, unknown>, packet: mqtt.IPublishPacket) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<{ body: Record<string, unknown>; packet: mqtt.IPublishPacket }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', on);
      reject(new Error(`no message on ${topic} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (t: string, payload: Buffer, packet: mqtt.IPublishPacket) => {
      if (t !== topic) return;
      const body = JSON.parse(payload.toString()) as Record<string, unknown>;
      if (!accept(body, packet)) return;
      clearTimeout(timer);
      client.off('message', on);
      resolve({ body, packet });
    };
    client.on('message', on);
  });
}
