/**
 * The embedded MQTT broker (aedes), run when no site broker is configured so a fresh
 * box works alone. It listens on the given hosts (the box's private address and
 * 127.0.0.1) and applies acl.ts:
 *
 * - users from `mqtt.broker.users` (plain or scrypt-hashed passwords) log in; anyone may
 *   connect anonymously, but only to read telemetry;
 * - the box's own link connects in-process (connectInternal: one end of a duplex pair
 *   handed to aedes) and has every right; so does a holder of a credential issued by
 *   issueInternalCredential() (random, per start, kept in memory only);
 * - the publisher's identity of every accepted publish is its authenticated username,
 *   taken from the session and never from anything the client sends; MQTT 3.1.1 cannot
 *   carry it to a subscriber, so the box reads publishes through `inbound` (in-process).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { type Duplex, duplexPair } from 'node:stream';
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import { BootboxError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { equalSecrets, verifyPassword } from '../../core/password.ts';
import { type AclDecision, canPublish, canSubscribe, type Principal } from './acl.ts';
import type { InboundSource, MqttMessage } from './port.ts';
import { isValidTopicFilter, topicMatches } from './topics.ts';

/** MQTT 3.1.1 §3.2.2.3, CONNACK return code 4: bad user name or password. */
const CONNACK_BAD_LOGIN = 4;

export interface EmbeddedBrokerOptions {
  /** `bootbox/<boxId>/` */
  root: string;
  /** Addresses to listen on (the private address and 127.0.0.1). */
  hosts: string[];
  /** 1883 by default in the config; 0 picks a free port per host (tests). */
  port: number;
  /** username -> plain password or `scrypt$...` hash. */
  users: Record<string, string>;
  log: Logger;
  maxConnections?: number;
  /**
   * An address that cannot be listened on (port in use …) fails start(). By default it is
   * logged and reported in status() instead: the box and its in-process link work on.
   */
  failOnListenError?: boolean;
}

export interface BrokerCounters {
  connections: number;
  loginsRefused: number;
  publishesRefused: number;
  subscriptionsRefused: number;
}

const BOX: Principal = { kind: 'box' };
const ANONYMOUS: Principal = { kind: 'anonymous' };

export class EmbeddedBroker {
  private readonly o: EmbeddedBrokerOptions;
  private readonly log: Logger;
  private aedes: Aedes | undefined;
  private servers: net.Server[] = [];
  private listenErrors: string[] = [];
  private readonly principals = new WeakMap<Client, Principal>();
  private readonly internalConns = new WeakSet<object>();
  private readonly inboundSubs = new Set<{ filter: string; handler: (msg: MqttMessage) => void }>();
  private internalCredential: { username: string; password: string } | undefined;
  readonly counters: BrokerCounters = {
    connections: 0,
    loginsRefused: 0,
    publishesRefused: 0,
    subscriptionsRefused: 0,
  };
  /** Publishes accepted by the broker, with the publisher's identity, for the box's link. */
  readonly inbound: InboundSource;

  constructor(o: EmbeddedBrokerOptions) {
    this.o = o;
    this.log = o.log;
    this.inbound = {
      subscribe: (filter, handler) => {
        if (!isValidTopicFilter(filter)) throw new Error(`${JSON.stringify(filter)} is not a valid topic filter`);
        const entry = { filter, handler };
        this.inboundSubs.add(entry);
        return () => this.inboundSubs.delete(entry);
      },
    };
  }

  get name(): string {
    return 'mqtt-broker';
  }

  async start(): Promise<void> {
    if (this.aedes) return;
    const aedes = await Aedes.createBroker({
      connectTimeout: 10000,
      authenticate: (client, username, password, done) => this.authenticate(client, username, password, done),
      authorizePublish: (client, packet, done) => this.authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => this.authorizeSubscribe(client, sub, done),
    });
    this.aedes = aedes;
    aedes.on('publish', (packet, client) => this.deliverInbound(packet, client));
    aedes.on('clientReady', () => this.counters.connections++);
    aedes.on('clientError', (client, err) => this.log.debug(`client ${client.id}: ${err.message}`));
    aedes.on('connectionError', (client, err) => this.log.debug(`connection ${remote(client)}: ${err.message}`));
    for (const host of this.o.hosts) {
      const server = net.createServer((socket) => {
        socket.on('error', () => {});
        aedes.handle(socket);
      });
      server.maxConnections = this.o.maxConnections ?? 1000;
      const failed = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        server.once('error', resolve);
        server.listen({ host, port: this.o.port }, () => {
          server.off('error', resolve);
          resolve(undefined);
        });
      });
      if (failed) {
        const message = `the embedded MQTT broker cannot listen on ${host}:${this.o.port} (mqtt.broker.port): ${failed.code ?? failed.message}`;
        if (this.o.failOnListenError) {
          await this.stop();
          throw new BootboxError(failed.code === 'EADDRINUSE' ? 'ADDRESS_IN_USE' : 'INTERNAL', message);
        }
        // The box keeps working (its own link is in-process); only outside clients miss this address.
        this.listenErrors.push(message);
        this.log.error(message);
        continue;
      }
      server.on('error', (e) => this.log.error(`MQTT listener ${host}: ${e.message}`));
      this.servers.push(server);
    }
    const where = this.addresses().map((a) => `${a.host}:${a.port}`);
    this.log.info(`embedded MQTT broker on ${where.length ? where.join(', ') : 'no address (in-process only)'}`, {
      users: Object.keys(this.o.users).length,
    });
  }

  async stop(): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    this.listenErrors = [];
    const aedes = this.aedes;
    this.aedes = undefined;
    this.internalCredential = undefined;
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
  }

  addresses(): { host: string; port: number }[] {
    return this.servers.map((s) => {
      const a = s.address() as net.AddressInfo;
      return { host: a.address, port: a.port };
    });
  }

  status(): Record<string, unknown> {
    return {
      listen: this.addresses().map((a) => `${a.host}:${a.port}`),
      ...(this.listenErrors.length ? { errors: [...this.listenErrors] } : {}),
      clients: this.aedes?.connectedClients ?? 0,
      users: Object.keys(this.o.users).length,
      counters: { ...this.counters },
    };
  }

  /** A fresh in-process connection with the box's rights (the link's stream builder). */
  connectInternal(): Duplex {
    const [outside, inside] = duplexPair();
    if (!this.aedes) {
      outside.destroy();
      return outside;
    }
    this.internalConns.add(inside);
    this.aedes.handle(inside);
    return outside;
  }

  /**
   * A random credential with the box's rights, valid until stop(): for a box-side
   * process that must connect over TCP. Never written anywhere.
   */
  issueInternalCredential(): { username: string; password: string } {
    this.internalCredential ??= {
      username: `bootbox-internal-${randomBytes(4).toString('hex')}`,
      password: randomBytes(24).toString('base64url'),
    };
    return { ...this.internalCredential };
  }

  // --- aedes hooks ---

  private authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const accept = (who: Principal) => {
      this.principals.set(client, who);
      done(null, true);
    };
    const refuse = (why: string) => {
      this.counters.loginsRefused++;
      this.log.warn(`refused MQTT login from ${remote(client)} (client id ${JSON.stringify(client.id)}): ${why}`);
      const e = Object.assign(new Error('bad user name or password'), { returnCode: CONNACK_BAD_LOGIN });
      done(e as AuthenticateError, false);
    };
    this.login(client, username, password).then(
      (r) => (typeof r === 'string' ? refuse(r) : accept(r)),
      (e: Error) => refuse(`password check failed: ${e.message}`),
    );
  }

  /** The session's principal, or why the login is refused. */
  private async login(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
  ): Promise<Principal | string> {
    if (this.internalConns.has(client.conn)) return BOX;
    if (username === undefined || username === '') {
      return password !== undefined && password.length > 0 ? 'a password without a user name' : ANONYMOUS;
    }
    const given = password ?? Buffer.alloc(0);
    const internal = this.internalCredential;
    if (internal && username === internal.username) {
      return equalSecrets(Buffer.from(internal.password), given) ? BOX : 'wrong internal credential';
    }
    const stored = Object.hasOwn(this.o.users, username) ? this.o.users[username] : undefined;
    if (stored === undefined) return `unknown user ${JSON.stringify(username)} (mqtt.broker.users)`;
    return (await verifyPassword(stored, given))
      ? { kind: 'user', name: username }
      : `wrong password for ${JSON.stringify(username)}`;
  }

  private authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    // A will of a client that is gone (only with shared persistence) has no session to judge by.
    const who = client ? (this.principals.get(client) ?? ANONYMOUS) : ANONYMOUS;
    const d = canPublish(who, packet.topic, Boolean(packet.retain), this.o.root);
    if (d.allow) {
      done(null);
      return;
    }
    this.refused('publish to', packet.topic, who, client, d);
    // MQTT 3.1.1 §3.3.5: the server has no way to refuse a PUBLISH but closing the connection.
    done(new Error(d.reason));
  }

  private authorizeSubscribe(
    client: Client,
    sub: Subscription,
    done: (error: Error | null, subscription?: Subscription | null) => void,
  ): void {
    const who = this.principals.get(client) ?? ANONYMOUS;
    const d = canSubscribe(who, sub.topic, this.o.root);
    if (d.allow) {
      done(null, sub);
      return;
    }
    this.refused('subscription to', sub.topic, who, client, d);
    // A null subscription is a refusal in the SUBACK (0x80, MQTT 3.1.1 §3.9.3); the session stays.
    done(null, null);
  }

  private refused(what: string, topic: string, who: Principal, client: Client | null, d: AclDecision): void {
    if (what.startsWith('publish')) this.counters.publishesRefused++;
    else this.counters.subscriptionsRefused++;
    const by = who.kind === 'user' ? `user ${JSON.stringify(who.name)}` : who.kind;
    this.log.warn(`refused ${what} ${topic} by ${by} from ${client ? remote(client) : 'a closed session'}`, {
      reason: d.allow ? '' : d.reason,
    });
  }

  private deliverInbound(packet: { topic: string; payload: Buffer | string }, client: Client | null): void {
    if (this.inboundSubs.size === 0 || packet.topic.startsWith('$')) return;
    const who = client ? this.principals.get(client) : undefined;
    const msg: MqttMessage = {
      topic: packet.topic,
      payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
      ...(who?.kind === 'user' ? { identity: who.name } : {}),
    };
    const targets = [...this.inboundSubs].filter((s) => topicMatches(s.filter, msg.topic));
    if (targets.length === 0) return;
    // Delivered after the broker's publish completes, as a network subscriber would see it.
    setImmediate(() => {
      for (const s of targets) {
        try {
          s.handler(msg);
        } catch (e) {
          this.log.error(`handler for ${msg.topic} failed: ${(e as Error).message}`);
        }
      }
    });
  }
}

function remote(client: Client | null | undefined): string {
  const conn = client?.conn as Partial<net.Socket> | undefined;
  if (!conn?.remoteAddress) return 'in-process';
  return `${conn.remoteAddress}:${conn.remotePort}`;
}
