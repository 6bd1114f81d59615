/**
 * MQTT commands: requests on `<root>request/<command>`, answered on `<root>response/<command>`
 * (and on the MQTT 5 response topic with the correlation data, when the request has one).
 * Every answer echoes the request's `transaction`:
 *
 *   { transaction, status: "ok", data: { targets: [{ mac, name, from, to, changed }] }, ts }
 *   { transaction?, status: "error", error: { code, message }, data?, ts }
 *
 * Commands are a lookup table (COMMANDS below), one definition each. A request goes through:
 *   1. on arrival, O(1): rate limit per identity and overall (a refusal is answered at most
 *      once a second per identity), the size limit (before any parsing), a bounded queue;
 *   2. later, in slices of a few ms (setImmediate) so a flood never starves the event loop the
 *      DHCP and TFTP servers share: JSON, command, allow-list, schema, idempotency;
 *   3. all-or-nothing validation of every target (exists, confirm rule, state allows it), so
 *      one bad target refuses the whole command and nothing changes;
 *   4. apply to the registry, then (reimage mode "wipe") the node action on
 *      `<root>nodes/<name>/cmd`;
 *   5. answer, audit, and remember the answer for the transaction (same identity, same
 *      transaction within the window → the same answer again, without acting).
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../core/clock.ts';
import { BootboxError, type ErrorCode } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { type Machine, type MachineEvent, type StateChange, transition } from '../../domain/machine.ts';
import type { AuditInput } from '../../services/audit.ts';
import {
  COMMAND_NAMES,
  type CommandName,
  type CommandRequests,
  isCommandName,
  type Transaction,
  transactionOf,
  validateRequest,
} from './command-schemas.ts';
import { buildWipeAction, guessImageOs, type NodeOs, type WipeAction, windowsWipeScript } from './node-actions.ts';
import type { MqttMessage, MqttPort } from './port.ts';
import { RateLimiter, type RateLimitOptions } from './rate-limit.ts';
import { type Resolved, resolveTargets } from './targets.ts';

/** The part of the machine registry commands use (services/machines.ts MachineRegistry). */
export interface CommandRegistry {
  list(): Machine[];
  apply(mac: string, event: MachineEvent): { machine: Machine; change: StateChange } | BootboxError;
  update(mac: string, patch: { image?: string | null }): Machine | BootboxError;
}

/** Where commands are recorded (AuditLog). */
export interface AuditSink {
  record(e: AuditInput): unknown;
}

export interface CommandServiceOptions {
  port: MqttPort;
  registry: CommandRegistry;
  /** The box id in `<root>`, sent in node actions so agents can check the sender. */
  boxId: string;
  /** Image names in the catalog (images named by a command must be one of them). */
  images: () => string[];
  audit: AuditSink;
  /** `mqtt.allow`: identities allowed per command, "*" for every command. Empty: nobody. */
  allow: Record<string, readonly string[]>;
  clock: Clock;
  log: Logger;
  /** The OS an image installs; undefined means Linux. Default: guessImageOs over the name. */
  imageOs?: (image: string) => NodeOs | undefined;
  /** The image a machine runs or will get (default: its own `image`). */
  imageOf?: (m: Machine) => string | undefined;
  /** The OS disk per OS for node actions (diskpart number / block device); else the defaults. */
  wipeDisk?: { windows?: number; linux?: string };
  rateLimits?: Partial<RateLimitOptions>;
  /** Largest request payload; bigger ones are refused unparsed. */
  maxPayloadBytes?: number;
  /** How long a transaction's answer is remembered (per identity and command). */
  idempotencyWindowMs?: number;
  idempotencyMax?: number;
  /** Requests waiting to be processed; beyond it they are refused as RATE_LIMITED. */
  queueMax?: number;
  /** Longest a processing slice runs before yielding to the event loop (ms). */
  sliceMs?: number;
  /** Most requests handled in one slice. */
  sliceMax?: number;
}

export const MAX_PAYLOAD_BYTES = 64 * 1024;
/** Memory for remembered answers (a command on 1,000 machines answers with ~150 KB). */
const CACHE_MAX_BYTES = 16 * 1024 * 1024;

export interface CommandResponse {
  transaction?: Transaction;
  status: 'ok' | 'error';
  data?: Record<string, unknown>;
  error?: { code: ErrorCode; message: string };
  ts: string;
}

/** One target's outcome in `data.targets`. */
export interface TargetResult {
  mac: string;
  name?: string;
  from?: unknown;
  to?: unknown;
  changed?: boolean;
  note?: string;
  /** The topic a node action was published on. */
  nodeAction?: string;
  error?: { code: ErrorCode; message: string };
}

/** What a command does to one machine, decided before anything changes. */
type Plan =
  | { kind: 'event'; event: MachineEvent; action?: WipeAction }
  | { kind: 'image'; image: string | null }
  | { kind: 'noop'; note: string; action?: WipeAction }
  | { kind: 'refuse'; error: BootboxError };

interface Ctx {
  identity: string;
  /** `by` on timeline entries. */
  by: string;
  transaction: Transaction;
}

interface CommandDef {
  /** Several machines need "confirm": true (patterns and groups always do). */
  destructive: boolean;
  /** Checks on the request as a whole (images in the catalog …). */
  check?(req: CommandRequests[CommandName], svc: CommandService): BootboxError | undefined;
  plan(m: Machine, req: CommandRequests[CommandName], svc: CommandService, ctx: Ctx): Plan;
}

const POST_APPROVAL = ['approved', 'deploying', 'deployed', 'reimage-requested'];

/** The command table. */
const COMMANDS: Record<CommandName, CommandDef> = {
  reimage: {
    destructive: true,
    check: (r, svc) => svc.checkImage((r as CommandRequests['reimage']).image),
    plan: (m, r, svc, ctx) => {
      const req = r as CommandRequests['reimage'];
      let action: WipeAction | undefined;
      if (req.mode === 'wipe') {
        const a = svc.wipeActionFor(m, req.image, ctx.transaction);
        if (a instanceof BootboxError) return { kind: 'refuse', error: a };
        action = a;
      }
      if (m.state === 'reimage-requested' && m.reimage) {
        if (m.reimage.mode === req.mode && m.reimage.image === req.image) {
          return { kind: 'noop', note: 'a reimage with this mode and image is already requested', action };
        }
        return {
          kind: 'refuse',
          error: new BootboxError(
            'INVALID_STATE',
            `${who(m)} already has a reimage request (mode ${m.reimage.mode}` +
              `${m.reimage.image ? `, image ${m.reimage.image}` : ''}); cancel it first`,
          ),
        };
      }
      const event: MachineEvent = { type: 'reimage', mode: req.mode, by: ctx.by };
      if (req.image !== undefined) event.image = req.image;
      return svc.planEvent(m, event, action);
    },
  },
  approve: {
    destructive: false,
    plan: (m, _r, svc, ctx) =>
      POST_APPROVAL.includes(m.state)
        ? { kind: 'noop', note: `already approved (${m.state})` }
        : svc.planEvent(m, { type: 'approve', by: ctx.by }),
  },
  reject: {
    destructive: true,
    plan: (m, _r, svc, ctx) =>
      m.state === 'rejected'
        ? { kind: 'noop', note: 'already rejected' }
        : svc.planEvent(m, { type: 'reject', by: ctx.by }),
  },
  'set-image': {
    destructive: true,
    check: (r, svc) => {
      const img = (r as CommandRequests['set-image']).image;
      return img === null ? undefined : svc.checkImage(img);
    },
    plan: (m, r) => {
      const img = (r as CommandRequests['set-image']).image;
      return (m.image ?? null) === img
        ? { kind: 'noop', note: img === null ? 'has no image of its own' : `already has image ${img}` }
        : { kind: 'image', image: img };
    },
  },
  cancel: {
    destructive: false,
    plan: (m, _r, svc, ctx) =>
      m.state === 'reimage-requested'
        ? svc.planEvent(m, { type: 'cancel-reimage', by: ctx.by })
        : { kind: 'noop', note: `no reimage request to cancel (${m.state})` },
  },
};

function who(m: Machine): string {
  return m.name ? `${m.name} (${m.mac})` : m.mac;
}

type Item =
  | { kind: 'request'; command: string; identity: string; msg: MqttMessage }
  | { kind: 'oversized'; command: string; identity: string; size: number; props: MqttMessage['properties'] }
  | { kind: 'limited'; command: string; identity: string; dropped: number; scope: string };

interface Cached {
  at: number;
  hash: string;
  body: CommandResponse;
  /** Size of the answer as JSON, for the cache's byte budget. */
  bytes: number;
}

const ANONYMOUS = '(anonymous)';

export class CommandService {
  readonly name = 'mqtt-commands';
  private readonly o: CommandServiceOptions;
  private readonly limiter: RateLimiter;
  private readonly queue: Item[] = [];
  private queueHead = 0;
  private scheduled = false;
  private unsubscribe: (() => void) | undefined;
  private unsubscribeReports: (() => void) | undefined;
  private readonly cache = new Map<string, Cached>();
  private cacheBytes = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private lastQueueNotice: number | undefined;
  readonly counters = {
    received: 0,
    processed: 0,
    ok: 0,
    errors: 0,
    /** Dropped by the rate limiter or a full queue, without an answer of their own. */
    dropped: 0,
    replays: 0,
    nodeActions: 0,
    /** Reports of node agents received on nodes/<name>/response. */
    nodeReports: 0,
    byCode: {} as Record<string, number>,
    /** Processing slices run, and the longest one (ms): what the dispatcher held the event loop. */
    slices: 0,
    longestSliceMs: 0,
  };

  /** Besides keeping its options, the constructor does nothing: start() subscribes. */
  constructor(o: CommandServiceOptions) {
    this.o = o;
    this.limiter = new RateLimiter(o.clock, o.rateLimits);
  }

  get requestPrefix(): string {
    return `${this.o.port.root}request/`;
  }

  async start(): Promise<void> {
    this.unsubscribe ??= this.o.port.subscribe(`${this.requestPrefix}#`, (m) => this.receive(m));
    this.unsubscribeReports ??= this.o.port.subscribe(`${this.o.port.root}nodes/+/response`, (m) => this.report(m));
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.unsubscribeReports?.();
    this.unsubscribeReports = undefined;
    const pending = this.queue.length - this.queueHead;
    if (pending) this.o.log.warn(`stopping with ${pending} command(s) not processed`);
    this.queue.length = 0;
    this.queueHead = 0;
    this.wakeIdle();
  }

  status(): Record<string, unknown> {
    return {
      subscribed: this.unsubscribe !== undefined ? `${this.requestPrefix}#` : false,
      queued: this.queue.length - this.queueHead,
      counters: { ...this.counters, rateLimit: { ...this.limiter.counters } },
    };
  }

  /**
   * The same commands for another front end (the REST API): validated, applied and audited
   * like an MQTT request, without the allow-list (the caller authenticated and authorised the
   * user) and without the transaction cache. `body` has the request's fields, transaction
   * included (the API makes one up when its client sent none).
   */
  invoke(command: CommandName, body: unknown, identity: string, via: 'api' | 'mqtt' = 'api'): CommandResponse {
    const transaction = transactionOf(body);
    const targets = typeof body === 'object' && body !== null ? (body as { targets?: unknown }).targets : undefined;
    const item: Item = { kind: 'request', command, identity, msg: { topic: '', payload: Buffer.alloc(0) } };
    const req = validateRequest(command, body);
    if (req instanceof BootboxError) {
      const res = this.error(req.code, req.message, transaction);
      this.audit(item, transaction, targets, res, { via });
      return res;
    }
    const { body: res, macs } = this.execute(command, req, identity, via === 'api' ? identity : `mqtt:${identity}`);
    this.audit(item, req.transaction, targets, res, { via, ...(macs && { macs }) });
    return res;
  }

  /** A node agent's report on nodes/<name>/response: logged, counted and audited (rate-limited). */
  private report(msg: MqttMessage): void {
    const identity = msg.identity || ANONYMOUS;
    if (!this.limiter.check(identity).ok) {
      this.counters.dropped++;
      return;
    }
    this.counters.nodeReports++;
    const name = msg.topic.slice(`${this.o.port.root}nodes/`.length).split('/')[0] ?? '';
    let r: { transaction?: unknown; status?: unknown; dryRun?: unknown; error?: { code?: unknown; message?: unknown } };
    try {
      if (msg.payload.length > MAX_PAYLOAD_BYTES) throw new Error(`${msg.payload.length} bytes`);
      r = JSON.parse(msg.payload.toString('utf8'));
      if (typeof r !== 'object' || r === null) throw new Error('not an object');
    } catch (e) {
      this.o.log.warn(`node ${name}: unreadable report (${(e as Error).message})`);
      return;
    }
    const ok = r.status === 'ok';
    const t = transactionOf(r);
    const code = typeof r.error?.code === 'string' ? r.error.code : undefined;
    const what = `node ${name} reports ${ok ? 'ok' : `error${code ? ` ${code}` : ''}`} for transaction ${JSON.stringify(t)}`;
    const detail = {
      ...(r.dryRun === true && { dryRun: true }),
      ...(typeof r.error?.message === 'string' && { error: r.error.message.slice(0, 300) }),
    };
    if (ok) this.o.log.info(what, detail);
    else this.o.log.warn(what, detail);
    try {
      this.o.audit.record({
        via: 'mqtt',
        identity,
        command: 'node-report',
        ...(t !== undefined && { transaction: t }),
        targets: { name },
        result: ok ? 'ok' : 'error',
        ...(code !== undefined && { code: code.slice(0, 64) }),
      });
    } catch (e) {
      this.o.log.error(`audit failed: ${(e as Error).message}`);
    }
  }

  /** Resolves once every request received so far has been processed (tests, orderly stop). */
  idle(): Promise<void> {
    if (this.queue.length === this.queueHead && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Step 1, on arrival: O(1) work only. */
  receive(msg: MqttMessage): void {
    this.counters.received++;
    const command = msg.topic.slice(this.requestPrefix.length);
    const identity = msg.identity || ANONYMOUS;
    const d = this.limiter.check(identity);
    if (!d.ok) {
      if (d.notify) this.enqueue({ kind: 'limited', command, identity, dropped: d.dropped, scope: d.scope });
      else this.counters.dropped++;
      return;
    }
    if (this.queue.length - this.queueHead >= (this.o.queueMax ?? 1024)) {
      const now = this.o.clock.now();
      this.counters.dropped++;
      if (this.lastQueueNotice === undefined || now - this.lastQueueNotice >= 1000) {
        this.lastQueueNotice = now;
        // one answer past the limit, so the sender learns why
        this.enqueue({ kind: 'limited', command, identity, dropped: 1, scope: 'queue' });
      }
      return;
    }
    const max = this.o.maxPayloadBytes ?? MAX_PAYLOAD_BYTES;
    if (msg.payload.length > max) {
      // the payload is not kept, let alone parsed
      this.enqueue({ kind: 'oversized', command, identity, size: msg.payload.length, props: msg.properties });
      return;
    }
    this.enqueue({ kind: 'request', command, identity, msg });
  }

  private enqueue(item: Item): void {
    this.queue.push(item);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  /** Step 2: a slice of the queue, then yield. */
  private drain(): void {
    this.scheduled = false;
    const start = this.o.clock.now();
    const maxItems = this.o.sliceMax ?? 32;
    const maxMs = this.o.sliceMs ?? 4;
    let n = 0;
    while (this.queueHead < this.queue.length && n < maxItems && this.o.clock.now() - start < maxMs) {
      const item = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as unknown as Item;
      n++;
      try {
        this.process(item);
      } catch (e) {
        // A bug must not stop the queue; the sender still gets an answer.
        this.o.log.error(`command ${item.command} failed: ${(e as Error).message}`);
        this.answer(item, undefined, undefined, this.error('INTERNAL', 'the command failed inside the box'));
      }
    }
    const took = this.o.clock.now() - start;
    this.counters.slices++;
    if (took > this.counters.longestSliceMs) this.counters.longestSliceMs = Math.round(took * 10) / 10;
    if (this.queueHead >= this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
      this.wakeIdle();
    } else {
      if (this.queueHead > 4096) {
        this.queue.splice(0, this.queueHead);
        this.queueHead = 0;
      }
      this.schedule();
    }
  }

  private wakeIdle(): void {
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private process(item: Item): void {
    this.counters.processed++;
    if (item.kind === 'limited') {
      const why =
        item.scope === 'identity'
          ? `too many requests from "${item.identity}"`
          : item.scope === 'global'
            ? 'too many requests to this box'
            : 'too many requests waiting';
      const body = this.error(
        'RATE_LIMITED',
        `${why}: ${item.dropped} request(s) dropped since the last notice; slow down and retry`,
      );
      this.respond(item.command, undefined, body);
      this.audit(item, undefined, undefined, body, { dropped: item.dropped });
      return;
    }
    const rt = item.kind === 'request' ? item.msg.properties?.responseTopic : item.props?.responseTopic;
    const rtProblem = rt === undefined ? undefined : this.responseTopicProblem(rt);
    if (rtProblem) {
      // answered on the plain response topic only
      const body = this.error('INVALID_REQUEST', `response topic ${JSON.stringify(rt)} ${rtProblem}`);
      this.respond(item.command, undefined, body);
      this.audit(item, undefined, undefined, body);
      return;
    }
    if (item.kind === 'oversized') {
      const max = this.o.maxPayloadBytes ?? MAX_PAYLOAD_BYTES;
      const body = this.error('PAYLOAD_TOO_LARGE', `the payload is ${item.size} bytes; the limit is ${max}`);
      this.answer(item, undefined, undefined, body);
      return;
    }
    // JSON
    let parsed: unknown;
    try {
      parsed = JSON.parse(item.msg.payload.toString('utf8'));
    } catch (e) {
      this.answer(
        item,
        undefined,
        undefined,
        this.error('INVALID_REQUEST', `the payload is not JSON: ${(e as Error).message}`),
      );
      return;
    }
    const transaction = transactionOf(parsed);
    const targets =
      typeof parsed === 'object' && parsed !== null ? (parsed as { targets?: unknown }).targets : undefined;
    const command = item.command;
    if (!isCommandName(command)) {
      const body = this.error(
        'UNKNOWN_COMMAND',
        `unknown command "${command}" (commands: ${COMMAND_NAMES.join(', ')})`,
        transaction,
      );
      this.answer(item, transaction, targets, body);
      return;
    }
    if (!this.allowed(item.identity, command)) {
      const body = this.error(
        'FORBIDDEN',
        item.identity === ANONYMOUS
          ? `an unauthenticated publisher may not send ${command}`
          : `"${item.identity}" may not send ${command} (mqtt.allow)`,
        transaction,
      );
      this.answer(item, transaction, targets, body);
      return;
    }
    const req = validateRequest(command, parsed);
    if (req instanceof BootboxError) {
      this.answer(item, transaction, targets, this.error(req.code, req.message, transaction));
      return;
    }
    // idempotency
    const key = `${item.identity}\u0000${command}\u0000${typeof req.transaction}:${req.transaction}`;
    const hash = createHash('sha256').update(item.msg.payload).digest('hex');
    const now = this.o.clock.now();
    const hit = this.cachedAnswer(key, now);
    if (hit) {
      if (hit.hash !== hash) {
        const body = this.error(
          'CONFLICT',
          `transaction ${JSON.stringify(req.transaction)} was already used for a different ${command} request; use a new transaction`,
          req.transaction,
        );
        this.answer(item, req.transaction, targets, body);
        return;
      }
      this.counters.replays++;
      this.answer(item, req.transaction, targets, hit.body, { replay: true });
      return;
    }
    const { body, macs, acted } = this.execute(command, req, item.identity, `mqtt:${item.identity}`);
    if (acted) this.remember(key, { at: now, hash, body, bytes: JSON.stringify(body).length });
    this.answer(item, req.transaction, targets, body, macs ? { macs } : {});
  }

  /** Steps 3 and 4 for a valid request. */
  private execute(
    command: CommandName,
    req: CommandRequests[CommandName],
    identity: string,
    /** `by` on the timeline: mqtt:<identity>, or the API's actor. */
    by: string,
  ): { body: CommandResponse; macs?: string[]; acted: boolean } {
    const def = COMMANDS[command];
    const t = req.transaction;
    const refused = def.check?.(req, this);
    if (refused) return { body: this.error(refused.code, refused.message, t), acted: false };
    const resolved = resolveTargets(req.targets, this.o.registry.list());
    if (resolved instanceof BootboxError) {
      return { body: this.error(resolved.code, resolved.message, t, resolved.details), acted: false };
    }
    const macs = resolved.machines.map((m) => m.mac);
    const confirm = this.confirmProblem(command, def, req, resolved);
    if (confirm) return { body: this.error('CONFIRM_REQUIRED', confirm, t, { macs }), macs, acted: false };

    const ctx: Ctx = { identity, by, transaction: t };
    const plans = resolved.machines.map((m) => ({ m, plan: def.plan(m, req, this, ctx) }));
    const refusals = plans.filter((p) => p.plan.kind === 'refuse');
    if (refusals.length) {
      const first = (refusals[0]!.plan as { error: BootboxError }).error;
      const targets: TargetResult[] = plans.map(({ m, plan }) =>
        plan.kind === 'refuse'
          ? { mac: m.mac, name: m.name, error: { code: plan.error.code, message: plan.error.message } }
          : { mac: m.mac, name: m.name, changed: false, note: 'not changed: another target was refused' },
      );
      const message =
        refusals.length === 1
          ? first.message
          : `${refusals.length} of ${plans.length} targets refused; first: ${first.message}`;
      return { body: this.error(first.code, message, t, { targets }), macs, acted: false };
    }

    const results: TargetResult[] = [];
    for (const { m, plan } of plans) results.push(this.applyPlan(command, m, plan));
    const failed = results.find((r) => r.error);
    const changed = results.filter((r) => r.changed).length;
    const data = { targets: results, count: results.length, changed };
    const body: CommandResponse = failed
      ? { ...this.error(failed.error!.code, failed.error!.message, t), data }
      : { transaction: t, status: 'ok', data, ts: this.o.clock.date().toISOString() };
    return { body, macs, acted: true };
  }

  private applyPlan(command: CommandName, m: Machine, plan: Plan): TargetResult {
    const base: TargetResult = { mac: m.mac, ...(m.name !== undefined && { name: m.name }) };
    let r: TargetResult;
    let action: WipeAction | undefined;
    switch (plan.kind) {
      case 'event': {
        const out = this.o.registry.apply(m.mac, plan.event);
        if (out instanceof BootboxError) return { ...base, error: { code: out.code, message: out.message } };
        r = { ...base, from: out.change.from, to: out.change.to, changed: true };
        action = plan.action;
        break;
      }
      case 'image': {
        const out = this.o.registry.update(m.mac, { image: plan.image });
        if (out instanceof BootboxError) return { ...base, error: { code: out.code, message: out.message } };
        r = { ...base, from: m.image ?? null, to: out.image ?? null, changed: true };
        break;
      }
      case 'noop':
        r =
          command === 'set-image'
            ? { ...base, from: m.image ?? null, to: m.image ?? null, changed: false, note: plan.note }
            : { ...base, from: m.state, to: m.state, changed: false, note: plan.note };
        // A wipe already requested is sent again: the node may have missed the first one.
        action = plan.action;
        break;
      case 'refuse':
        return { ...base, error: { code: plan.error.code, message: plan.error.message } };
    }
    if (action && m.name) {
      // machine names are case-insensitive: the topic level is the name in lower case (agent.ts)
      const topic = `${this.o.port.root}nodes/${m.name.toLowerCase()}/cmd`;
      this.o.port.publish(topic, action, { qos: 1, retain: false });
      this.counters.nodeActions++;
      r.nodeAction = topic;
    }
    return r;
  }

  /** A transition checked on a copy (domain/machine.ts is pure), not applied yet. */
  planEvent(m: Machine, event: MachineEvent, action?: WipeAction): Plan {
    const r = transition(m, event, this.o.clock.date());
    if (r instanceof BootboxError) return { kind: 'refuse', error: r };
    return action ? { kind: 'event', event, action } : { kind: 'event', event };
  }

  checkImage(image: string | undefined): BootboxError | undefined {
    if (image === undefined || this.o.images().includes(image)) return undefined;
    return new BootboxError('NOT_FOUND', `image "${image}" is not in the catalog`);
  }

  /** The wipe-and-reboot action for a machine, or why it cannot receive one. */
  wipeActionFor(m: Machine, image: string | undefined, transaction: Transaction): WipeAction | BootboxError {
    if (!m.name) {
      return new BootboxError(
        'INVALID_REQUEST',
        `${m.mac} has no name: a wipe goes to the node agent on nodes/<name>/cmd; name the machine first`,
      );
    }
    if (/[+#/\u0000]/.test(m.name)) {
      return new BootboxError('INVALID_REQUEST', `${who(m)}: its name cannot be an MQTT topic level`);
    }
    const img = image ?? (this.o.imageOf ? this.o.imageOf(m) : m.image);
    const os: NodeOs = (img !== undefined ? this.imageOs(img) : undefined) ?? 'linux';
    const disk = this.o.wipeDisk?.[os];
    const a = buildWipeAction({
      box: this.o.boxId,
      transaction,
      ts: this.o.clock.date().toISOString(),
      os,
      ...(disk !== undefined && { disk }),
    });
    if (typeof a === 'string') return new BootboxError('CONFIG_INVALID', `wipe disk for ${os}: ${a}`);
    return a;
  }

  private imageOs(image: string): NodeOs | undefined {
    return this.o.imageOs ? this.o.imageOs(image) : guessImageOs(image);
  }

  private confirmProblem(
    command: CommandName,
    def: CommandDef,
    req: CommandRequests[CommandName],
    r: Resolved,
  ): string | undefined {
    if (req.confirm) return undefined;
    const names = r.machines.map((m) => m.name ?? m.mac);
    const list =
      names.length > 10 ? `${names.slice(0, 10).join(', ')} and ${names.length - 10} more` : names.join(', ');
    if (r.wide) {
      return `${command} by group or pattern needs "confirm": true (it matches ${names.length} machine(s): ${list})`;
    }
    if (def.destructive && r.machines.length > 1) {
      return `${command} of ${names.length} machines needs "confirm": true (${list})`;
    }
    return undefined;
  }

  private allowed(identity: string, command: CommandName): boolean {
    if (identity === ANONYMOUS) return false;
    return Boolean(this.o.allow['*']?.includes(identity) || this.o.allow[command]?.includes(identity));
  }

  /**
   * A response topic must name one topic outside the box namespaces: otherwise a requester
   * could make the box publish its answer where nodes or other subscribers take orders.
   */
  private responseTopicProblem(t: string): string | undefined {
    if (t.length === 0 || t.length > 256) return 'must be 1-256 characters';
    if (/[+#\u0000]/.test(t)) return 'must not contain wildcards';
    if (t.startsWith('$')) return 'must not be a $ topic';
    if (t.startsWith('bootbox/') && !t.startsWith(`${this.o.port.root}response/`)) {
      return `must not be inside bootbox/ (except ${this.o.port.root}response/…)`;
    }
    return undefined;
  }

  private cachedAnswer(key: string, now: number): Cached | undefined {
    const window = this.o.idempotencyWindowMs ?? 10 * 60_000;
    // Entries are in arrival order: expire from the front.
    for (const [k, c] of this.cache) {
      if (now - c.at < window) break;
      this.forget(k, c);
    }
    return this.cache.get(key);
  }

  /** Keeps an answer; the oldest go first past idempotencyMax entries or CACHE_MAX_BYTES. */
  private remember(key: string, c: Cached): void {
    this.cache.set(key, c);
    this.cacheBytes += c.bytes;
    for (const [k, old] of this.cache) {
      if (this.cache.size <= (this.o.idempotencyMax ?? 10_000) && this.cacheBytes <= CACHE_MAX_BYTES) break;
      this.forget(k, old);
    }
  }

  private forget(key: string, c: Cached): void {
    this.cache.delete(key);
    this.cacheBytes -= c.bytes;
  }

  private error(
    code: ErrorCode,
    message: string,
    transaction?: Transaction,
    data?: Record<string, unknown>,
  ): CommandResponse {
    return {
      ...(transaction !== undefined && { transaction }),
      status: 'error',
      error: { code, message },
      ...(data !== undefined && { data }),
      ts: this.o.clock.date().toISOString(),
    };
  }

  /** Step 5: answer and audit. */
  private answer(
    item: Item,
    transaction: Transaction | undefined,
    targets: unknown,
    body: CommandResponse,
    extra: { replay?: true; macs?: string[] } = {},
  ): void {
    const props = item.kind === 'request' ? item.msg.properties : item.kind === 'oversized' ? item.props : undefined;
    this.respond(item.command, props, body);
    this.audit(item, transaction, targets, body, extra);
  }

  private respond(command: string, props: MqttMessage['properties'], body: CommandResponse): void {
    if (body.status === 'ok') this.counters.ok++;
    else {
      this.counters.errors++;
      const c = body.error!.code;
      this.counters.byCode[c] = (this.counters.byCode[c] ?? 0) + 1;
    }
    const root = this.o.port.root;
    const safe = command.length <= 128 && !/[+#\u0000]/.test(command) ? command : '_invalid';
    this.o.port.publish(`${root}response/${safe}`, body, { qos: 1 });
    const rt = props?.responseTopic;
    if (rt !== undefined) {
      const cd = props?.correlationData;
      this.o.port.publish(rt, body, { qos: 1, ...(cd !== undefined && { properties: { correlationData: cd } }) });
    }
  }

  private audit(
    item: Item,
    transaction: Transaction | undefined,
    targets: unknown,
    body: CommandResponse,
    extra: { replay?: true; macs?: string[]; dropped?: number; via?: 'api' | 'mqtt' } = {},
  ): void {
    try {
      this.o.audit.record({
        via: extra.via ?? 'mqtt',
        identity: item.identity,
        command: item.command.slice(0, 64),
        ...(transaction !== undefined && { transaction }),
        ...(targets !== undefined && { targets }),
        ...(extra.macs !== undefined && { macs: extra.macs }),
        result: body.status,
        ...(body.error && { code: body.error.code }),
        ...(extra.replay && { replay: true as const }),
        ...(extra.dropped !== undefined && { dropped: extra.dropped }),
      });
    } catch (e) {
      this.o.log.error(`audit failed: ${(e as Error).message}`);
    }
  }
}

export interface WipeScriptDeps {
  /** Finds a machine by name or MAC (MachineRegistry.get). */
  get(id: string): Machine | undefined;
  boxId: string;
  /** The configured Windows OS disk (diskpart number); 0 otherwise. */
  disk?: number;
}

export interface TextResult {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * The handler behind `GET /actions/<name>/wipe.cmd`: the Windows wipe-and-reboot batch file
 * (node-actions.ts windowsWipeScript) for a known machine, 404 for any other name. The text
 * holds no secret and changes nothing by being fetched; running it is what wipes.
 */
export function wipeScriptHandler(d: WipeScriptDeps): (name: string) => TextResult {
  return (name): TextResult => {
    const m = d.get(name);
    if (!m?.name) {
      return {
        status: 404,
        headers: { 'Content-Type': 'text/plain; charset=utf-8' },
        body: `no machine named "${name.slice(0, 64)}"\n`,
      };
    }
    const body = windowsWipeScript({ name: m.name, box: d.boxId, ...(d.disk !== undefined && { disk: d.disk }) });
    return {
      status: 200,
      headers: {
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Disposition': 'attachment; filename="wipe.cmd"',
        'Content-Length': String(Buffer.byteLength(body)),
      },
      body,
    };
  };
}
