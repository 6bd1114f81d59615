/**
 * The box's one MQTT connection (MqttPort), to the site broker (`mqtt.url`) or to the
 * embedded broker in-process.
 *
 * - MQTT 5 first, MQTT 3.1.1 when the broker refuses 5 (protocolAfterFailure).
 * - Retained last will `{"state":"offline"}` on `<root>status`; retained
 *   `{"state":"online", ...}` after each connect; `{"state":"offline"}` on a clean stop.
 * - Reconnects with capped exponential backoff and jitter (backoff.ts): MQTT.js's
 *   reconnectPeriod is fixed, so it is 0 here and every attempt is a fresh client.
 * - While away: events in a bounded buffer (oldest dropped, counted), retained topics as
 *   the latest per topic, both replayed on reconnect (outbox.ts).
 * - publish() and subscribe() never throw and never wait; start() waits for nothing but
 *   the TLS files, so the boot services never wait on MQTT.
 */
import type { Duplex } from 'node:stream';
import {
  connect,
  type IClientOptions,
  type IClientPublishOptions,
  type IConnackPacket,
  type IPublishPacket,
  MqttClient,
} from 'mqtt';
import type { TlsMaterial } from '../../config/tls-files.ts';
import type { Clock } from '../../core/clock.ts';
import { BootboxError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { Outbox, type OutMessage } from './outbox.ts';
import type { InboundSource, MqttMessage, MqttPort, PublishOptions } from './port.ts';
import { isValidTopicFilter, isValidTopicName, topicMatches } from './topics.ts';

export type ProtocolVersion = 4 | 5;

/** MQTT 3.1.1 §3.2.2.3, CONNACK return code 1: unacceptable protocol version. */
const CONNACK_UNACCEPTABLE_PROTOCOL = 1;
/** MQTT 5.0 §3.2.2.2, CONNACK reason code 0x84: unsupported protocol version. */
const REASON_UNSUPPORTED_PROTOCOL = 0x84;
/** MQTT 3.1.1 return codes 4, 5 and MQTT 5.0 reason codes 0x86, 0x87: the login was refused. */
const LOGIN_REFUSED = new Set([4, 5, 0x86, 0x87]);

export interface AttemptOutcome {
  /** A CONNACK accepting the connection arrived. */
  connacked: boolean;
  /** The transport (TCP/TLS) was up, so the broker heard the CONNECT. */
  transportUp: boolean;
  /** The CONNACK's refusal code, when the broker refused. */
  refusedCode?: number;
  /** Consecutive attempts (this one included) that the broker closed without any CONNACK. */
  silentCloses: number;
}

/**
 * The protocol version of the next attempt. A broker that speaks only 3.1.1 answers a
 * version-5 CONNECT with return code 1 (3.1.1 §3.2.2.3), a newer one that disabled 5 with
 * 0x84; some close the connection without a CONNACK (3.1.1 §3.1.4: "the Server MAY
 * disconnect"), so two such silent closes in a row count as a refusal too. The fallback
 * lasts until the link is stopped.
 */
export function protocolAfterFailure(current: ProtocolVersion, o: AttemptOutcome): ProtocolVersion {
  if (current !== 5 || o.connacked) return current;
  if (o.refusedCode === CONNACK_UNACCEPTABLE_PROTOCOL || o.refusedCode === REASON_UNSUPPORTED_PROTOCOL) return 4;
  if (o.transportUp && o.refusedCode === undefined && o.silentCloses >= 2) return 4;
  return current;
}

export interface MqttLinkOptions {
  /** `bootbox/<boxId>/` */
  root: string;
  boxId: string;
  version: string;
  /** Site broker URL (mqtt:// or mqtts://). */
  url?: string;
  /** Or: a fresh in-process connection per attempt (the embedded broker). */
  connectStream?: () => Duplex;
  /** With connectStream: subscriptions served by the embedded broker, with identities. */
  inbound?: InboundSource;
  username?: string;
  password?: string;
  tls?: TlsMaterial;
  /** Default `bootbox-<boxId>`. */
  clientId?: string;
  keepaliveSec: number;
  /** Events kept while away. */
  eventBuffer: number;
  /** First version tried (default 5). */
  protocolVersion?: ProtocolVersion;
  /** Where a received message's identity comes from on a site broker (default the v5 user property "identity"). */
  identity?: 'user-property' | 'none';
  backoff?: Partial<BackoffOptions>;
  connectTimeoutMs?: number;
  /** Extra fields of the online status. */
  statusExtra?: () => Record<string, unknown>;
  clock: Clock;
  log: Logger;
}

export interface LinkCounters {
  /** Messages the broker accepted (QoS 1) or that were written (QoS 0). */
  published: number;
  /** Events dropped: buffer full, unserialisable payload or invalid topic. */
  dropped: number;
  /** Periodic messages not sent while away (publish with buffer: false). */
  skipped: number;
  /** Successful connects after the first. */
  reconnects: number;
  connects: number;
  /** Connection attempts, successful or not. */
  attempts: number;
  received: number;
  handlerErrors: number;
}

interface Attempt {
  client: MqttClient;
  version: ProtocolVersion;
  connacked: boolean;
  transportUp: boolean;
  refusedCode?: number;
  error?: Error;
  closed: boolean;
}

type Handler = (msg: MqttMessage) => void;

export class MqttLink implements MqttPort {
  readonly root: string;
  private readonly o: MqttLinkOptions;
  private readonly log: Logger;
  private readonly outbox: Outbox;
  private readonly backoff: Backoff;
  private readonly subs = new Map<string, Set<Handler>>();
  private readonly connectListeners = new Set<() => void>();
  private readonly counters_: LinkCounters = {
    published: 0,
    dropped: 0,
    skipped: 0,
    reconnects: 0,
    connects: 0,
    attempts: 0,
    received: 0,
    handlerErrors: 0,
  };
  private protocol: ProtocolVersion;
  private current: Attempt | undefined;
  private timer: NodeJS.Timeout | undefined;
  private isConnected = false;
  private started = false;
  private stopped = false;
  private seq = 0;
  private silentCloses = 0;
  private lastError: string | undefined;
  private connectedSince: Date | undefined;
  private awaySince: number | undefined;
  private lastLoggedError: string | undefined;

  constructor(o: MqttLinkOptions) {
    this.o = o;
    this.root = o.root;
    this.log = o.log;
    this.outbox = new Outbox(o.eventBuffer);
    this.backoff = new Backoff(o.clock, o.backoff);
    this.protocol = o.protocolVersion ?? 5;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  get counters(): Readonly<LinkCounters & { buffered: number; retainedTopics: number }> {
    return {
      ...this.counters_,
      dropped: this.counters_.dropped + this.outbox.counters.dropped,
      buffered: this.outbox.size,
      retainedTopics: this.outbox.retainedCount,
    };
  }

  /** For health and the service list. */
  status(): Record<string, unknown> {
    return {
      broker: this.where(),
      connected: this.isConnected,
      protocol: this.protocolName(this.protocol),
      clientId: this.clientId(),
      ...(this.connectedSince && this.isConnected ? { since: this.connectedSince.toISOString() } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
      counters: this.counters,
    };
  }

  /** Starts connecting; returns at once. */
  async start(): Promise<void> {
    if (this.started) return;
    if (!this.o.url && !this.o.connectStream) {
      throw new BootboxError('CONFIG_INVALID', 'the MQTT link needs "mqtt.url" or the embedded broker');
    }
    if (this.o.url && !this.o.url.startsWith('mqtts:') && (this.o.tls?.ca || this.o.tls?.cert)) {
      this.log.warn(`mqtt.ca/mqtt.cert are set but ${this.o.url} is not mqtts://: they are not used`);
    }
    this.started = true;
    this.stopped = false;
    this.attempt();
  }

  /** Publishes `{"state":"offline"}` (when connected) and disconnects cleanly. */
  async stop(timeoutMs = 2000): Promise<void> {
    if (!this.started) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.started = false;
    const a = this.current;
    if (!a) return;
    if (this.isConnected) {
      const offline = this.message(
        this.o.root + 'status',
        { state: 'offline', reason: 'stopped', boxId: this.o.boxId },
        {
          retain: true,
          qos: 1,
        },
      );
      if (offline) {
        await withTimeout(
          new Promise<void>((resolve) =>
            a.client.publish(offline.topic, offline.payload, this.pubOpts(offline), () => resolve()),
          ),
          timeoutMs,
        );
      }
      await withTimeout(new Promise<void>((resolve) => a.client.end(false, {}, () => resolve())), timeoutMs);
    }
    a.client.end(true);
    this.isConnected = false;
    this.current = undefined;
  }

  onConnect(fn: () => void): () => void {
    this.connectListeners.add(fn);
    return () => this.connectListeners.delete(fn);
  }

  publish(topic: string, payload: unknown, opts: PublishOptions = {}): void {
    try {
      const m = this.message(topic, payload, opts);
      if (!m) return;
      if (opts.retain) this.outbox.remember(m);
      if (this.isConnected) this.send(m);
      else if (!opts.retain) {
        if (opts.buffer === false) this.counters_.skipped++;
        else this.outbox.enqueue(m);
      }
    } catch (e) {
      this.counters_.dropped++;
      this.log.error(`publish to ${topic} failed: ${(e as Error).message}`);
    }
  }

  subscribe(filter: string, handler: Handler): () => void {
    if (!isValidTopicFilter(filter)) {
      this.log.error(`not subscribing to ${JSON.stringify(filter)}: not a valid MQTT topic filter`);
      return () => {};
    }
    const safe: Handler = (msg) => this.callHandler(handler, msg);
    if (this.o.inbound) {
      try {
        return this.o.inbound.subscribe(filter, (msg) => {
          this.counters_.received++;
          safe(msg);
        });
      } catch (e) {
        this.log.error(`subscribing to ${filter} failed: ${(e as Error).message}`);
        return () => {};
      }
    }
    let set = this.subs.get(filter);
    if (!set) {
      set = new Set();
      this.subs.set(filter, set);
      if (this.isConnected) this.sendSubscribe([filter]);
    }
    set.add(safe);
    const handlers = set;
    return () => {
      handlers.delete(safe);
      if (handlers.size === 0 && this.subs.get(filter) === handlers) {
        this.subs.delete(filter);
        if (this.isConnected) this.current?.client.unsubscribe(filter, () => {});
      }
    };
  }

  // --- connection lifecycle ---

  private attempt(): void {
    this.timer = undefined;
    if (this.stopped) return;
    const version = this.protocol;
    const opts: IClientOptions = {
      protocolVersion: version,
      clientId: this.clientId(),
      clean: true,
      keepalive: this.o.keepaliveSec,
      reconnectPeriod: 0,
      connectTimeout: this.o.connectTimeoutMs ?? 10000,
      resubscribe: false,
      queueQoSZero: false,
      ...(this.o.username !== undefined ? { username: this.o.username } : {}),
      ...(this.o.password !== undefined ? { password: this.o.password } : {}),
      ...(this.o.tls?.ca ? { ca: this.o.tls.ca } : {}),
      ...(this.o.tls?.cert ? { cert: this.o.tls.cert } : {}),
      ...(this.o.tls?.key ? { key: this.o.tls.key } : {}),
      rejectUnauthorized: true,
      will: {
        topic: this.o.root + 'status',
        // The broker sends this later, when the connection is lost; `ts` is when it was set.
        payload: Buffer.from(
          JSON.stringify({
            state: 'offline',
            reason: 'connection lost',
            boxId: this.o.boxId,
            ts: this.o.clock.date().toISOString(),
          }),
        ),
        qos: 1,
        retain: true,
      },
    };
    this.counters_.attempts++;
    let client: MqttClient;
    try {
      const build = this.o.connectStream;
      client = build ? new MqttClient(() => build() as never, opts) : connect(this.o.url!, opts);
    } catch (e) {
      this.noteError(`cannot connect to ${this.where()}: ${(e as Error).message}`);
      this.scheduleReconnect(false);
      return;
    }
    const a: Attempt = { client, version, connacked: false, transportUp: Boolean(this.o.connectStream), closed: false };
    this.current = a;
    const stream = client.stream as unknown as Partial<NodeJS.EventEmitter> | undefined;
    const up = () => {
      a.transportUp = true;
    };
    stream?.once?.('connect', up);
    stream?.once?.('secureConnect', up);
    client.on('connect', (connack) => this.onConnected(a, connack));
    client.on('error', (e) => {
      a.error = e;
      const code = (e as { code?: unknown }).code;
      if (typeof code === 'number' && !a.connacked) a.refusedCode = code;
    });
    client.on('close', () => this.onClosed(a));
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet));
  }

  private onConnected(a: Attempt, _connack: IConnackPacket): void {
    if (this.current !== a || a.closed || this.stopped) return;
    a.connacked = true;
    this.silentCloses = 0;
    this.isConnected = true;
    this.connectedSince = this.o.clock.date();
    this.backoff.connected();
    this.counters_.connects++;
    if (this.counters_.connects > 1) this.counters_.reconnects++;
    const away =
      this.awaySince !== undefined ? ` after ${Math.round((this.o.clock.now() - this.awaySince) / 1000)} s away` : '';
    this.awaySince = undefined;
    this.lastLoggedError = undefined;
    this.log.info(`connected to ${this.where()} (MQTT ${this.protocolName(a.version)})${away}`, {
      clientId: this.clientId(),
      buffered: this.outbox.size,
    });
    try {
      if (this.subs.size > 0) this.sendSubscribe([...this.subs.keys()]);
      const online = this.message(
        this.o.root + 'status',
        {
          state: 'online',
          boxId: this.o.boxId,
          version: this.o.version,
          protocol: this.protocolName(a.version),
          since: this.connectedSince.toISOString(),
          ...(this.o.statusExtra?.() ?? {}),
        },
        { retain: true, qos: 1 },
      );
      if (online) this.send(online);
      for (const m of this.outbox.retained()) this.send(m);
    } catch (e) {
      this.log.error(`republishing after connect failed: ${(e as Error).message}`);
    }
    for (const fn of this.connectListeners) {
      try {
        fn();
      } catch (e) {
        this.log.error(`connect listener failed: ${(e as Error).message}`);
      }
    }
    for (const m of this.outbox.drain()) this.send(m);
  }

  private onClosed(a: Attempt): void {
    if (a.closed) return;
    a.closed = true;
    const wasUp = a.connacked;
    if (this.current === a) {
      this.isConnected = false;
    }
    // Unacknowledged QoS 1 events come back to the buffer through their callbacks (see send).
    a.client.end(true);
    if (this.current !== a || this.stopped) return;
    if (wasUp) {
      this.backoff.disconnected();
      this.awaySince = this.o.clock.now();
      this.noteError(`lost the connection to ${this.where()}${a.error ? `: ${a.error.message}` : ''}`);
    } else {
      if (a.transportUp && a.refusedCode === undefined) this.silentCloses++;
      else this.silentCloses = 0;
      this.awaySince ??= this.o.clock.now();
      this.noteError(this.describeFailure(a));
    }
    const next = protocolAfterFailure(a.version, {
      connacked: a.connacked,
      transportUp: a.transportUp,
      refusedCode: a.refusedCode,
      silentCloses: this.silentCloses,
    });
    if (next !== this.protocol) {
      this.log.info(`${this.where()} does not speak MQTT 5: using MQTT 3.1.1`);
      this.protocol = next;
      this.silentCloses = 0;
      this.scheduleReconnect(true);
      return;
    }
    this.scheduleReconnect(false);
  }

  private scheduleReconnect(now: boolean): void {
    if (this.stopped || this.timer) return;
    const delay = now ? 0 : this.backoff.next();
    this.log.debug(`next MQTT connection attempt in ${delay} ms`, { attempts: this.backoff.attempts });
    this.timer = setTimeout(() => this.attempt(), delay);
  }

  private describeFailure(a: Attempt): string {
    const code = a.refusedCode;
    if (code !== undefined && LOGIN_REFUSED.has(code)) {
      return `${this.where()} refused the login of "${this.o.username ?? '(anonymous)'}" (code ${code}): check mqtt.username and mqtt.password`;
    }
    if (a.error) return `cannot connect to ${this.where()}: ${a.error.message}`;
    return `${this.where()} closed the connection before accepting it`;
  }

  /** Logs a connection problem once per distinct message (warn), repeats at debug level. */
  private noteError(message: string): void {
    this.lastError = message;
    if (message === this.lastLoggedError) {
      this.log.debug(message);
      return;
    }
    this.lastLoggedError = message;
    this.log.warn(message);
  }

  // --- messages ---

  private message(topic: string, payload: unknown, opts: PublishOptions): OutMessage | undefined {
    if (!isValidTopicName(topic)) {
      this.counters_.dropped++;
      this.log.error(`not publishing to ${JSON.stringify(topic)}: not a valid MQTT topic name`);
      return undefined;
    }
    let body: Buffer;
    try {
      body = encodePayload(payload, this.o.clock);
    } catch (e) {
      this.counters_.dropped++;
      this.log.error(`not publishing to ${topic}: the payload cannot be serialised (${(e as Error).message})`);
      return undefined;
    }
    return { seq: ++this.seq, topic, payload: body, opts };
  }

  private pubOpts(m: OutMessage): IClientPublishOptions {
    const o: IClientPublishOptions = { qos: m.opts.qos ?? 1, retain: Boolean(m.opts.retain) };
    if (this.current?.version === 5 && m.opts.properties) {
      o.properties = {
        ...(m.opts.properties.correlationData ? { correlationData: m.opts.properties.correlationData } : {}),
        ...(m.opts.properties.userProperties ? { userProperties: m.opts.properties.userProperties } : {}),
      };
    }
    return o;
  }

  private send(m: OutMessage): void {
    const a = this.current;
    if (!a || !this.isConnected) {
      if (!m.opts.retain && m.opts.buffer !== false) this.outbox.enqueue(m);
      return;
    }
    a.client.publish(m.topic, m.payload, this.pubOpts(m), (err) => {
      if (!err) {
        this.counters_.published++;
        return;
      }
      // Retained topics are replayed from the outbox anyway; events go back in order.
      if (!m.opts.retain && m.opts.buffer !== false) this.outbox.requeue([m]);
    });
  }

  private sendSubscribe(filters: string[]): void {
    const client = this.current?.client;
    if (!client) return;
    client.subscribe(filters, { qos: 1 }, (err, _granted, suback) => {
      if (err) {
        this.log.error(`subscribing to ${filters.join(', ')} failed: ${err.message}`);
        return;
      }
      const codes = (suback as { granted?: unknown } | undefined)?.granted;
      if (!Array.isArray(codes)) return;
      codes.forEach((code, i) => {
        // MQTT 3.1.1 §3.9.3 (0x80) and MQTT 5.0 §3.9.3 (reason codes >= 0x80): refused.
        if (typeof code === 'number' && code >= 0x80) {
          this.log.error(`the broker refused the subscription to ${filters[i]} (code ${code})`);
        }
      });
    });
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    this.counters_.received++;
    const props = packet.properties;
    const userProperties = props?.userProperties as Record<string, string | string[]> | undefined;
    const claimed = userProperties?.identity;
    const msg: MqttMessage = {
      topic,
      payload,
      ...((this.o.identity ?? 'user-property') === 'user-property' && typeof claimed === 'string'
        ? { identity: claimed }
        : {}),
      ...(props
        ? {
            properties: {
              ...(props.responseTopic ? { responseTopic: props.responseTopic } : {}),
              ...(props.correlationData ? { correlationData: props.correlationData } : {}),
              ...(userProperties ? { userProperties } : {}),
            },
          }
        : {}),
    };
    for (const [filter, handlers] of this.subs) {
      if (!topicMatches(filter, topic)) continue;
      for (const h of handlers) h(msg);
    }
  }

  private callHandler(handler: Handler, msg: MqttMessage): void {
    try {
      handler(msg);
    } catch (e) {
      this.counters_.handlerErrors++;
      this.log.error(`MQTT handler for ${msg.topic} failed: ${(e as Error).message}`);
    }
  }

  private clientId(): string {
    return this.o.clientId ?? `bootbox-${this.o.boxId}`;
  }

  private where(): string {
    return this.o.url ? redactUrl(this.o.url) : 'the embedded broker';
  }

  private protocolName(v: ProtocolVersion): string {
    return v === 5 ? '5' : '3.1.1';
  }
}

/**
 * The payload as UTF-8 JSON; an object without `ts` gets one (ISO 8601), as every
 * payload of the contract carries it. BigInts become strings.
 */
export function encodePayload(payload: unknown, clock: Clock): Buffer {
  let value = payload;
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value)) {
    const o = value as Record<string, unknown>;
    if (o.ts === undefined) value = { ...o, ts: clock.date().toISOString() };
  }
  const text = JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  if (text === undefined) throw new Error(`${typeof payload} is not JSON`);
  return Buffer.from(text, 'utf8');
}

/** A URL for logs: without the password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<void>((resolve) => (t = setTimeout(resolve, ms)))]).finally(() =>
    clearTimeout(t),
  );
}
