/**
 * Test fixtures for MQTT commands: an in-memory MqttPort (the dispatcher's own adapter, for
 * unit tests of the dispatcher only) and a real MachineRegistry on a temp file with machines
 * in chosen states.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { type Clock, ManualClock } from '../../firmware/core/clock.ts';
import { BootboxError } from '../../firmware/core/errors.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import type { MachineEvent, MachineState } from '../../firmware/domain/machine.ts';
import { MachineRegistry } from '../../firmware/services/machines.ts';
import type { MqttMessage, MqttPort, PublishOptions } from '../../firmware/telemetry/mqtt/port.ts';

/** MQTT topic filter matching (§4.7), for the fakes. */
export function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export interface Published {
  topic: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read deep into published payloads
  payload: Record<string, any>;
  opts: PublishOptions | undefined;
}

export class FakePort implements MqttPort {
  readonly root: string;
  connected = true;
  readonly published: Published[] = [];
  private readonly subs = new Set<{ filter: string; handler: (m: MqttMessage) => void }>();

  constructor(root = 'bootbox/box1/') {
    this.root = root;
  }

  publish(topic: string, payload: unknown, opts?: PublishOptions): void {
    // as the real link does: JSON, so a test sees what a subscriber would
    this.published.push({ topic, payload: JSON.parse(JSON.stringify(payload)), opts });
  }

  subscribe(filter: string, handler: (m: MqttMessage) => void): () => void {
    const e = { filter, handler };
    this.subs.add(e);
    return () => this.subs.delete(e);
  }

  get subscriptions(): number {
    return this.subs.size;
  }

  /** A publish from a client, as the broker hands it to the box. */
  deliver(
    sub: string,
    payload: unknown,
    o: { identity?: string; properties?: MqttMessage['properties']; raw?: boolean } = {},
  ): void {
    const topic = `${this.root}${sub}`;
    const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(o.raw ? String(payload) : JSON.stringify(payload));
    const msg: MqttMessage = { topic, payload: buf };
    if (o.identity !== undefined) msg.identity = o.identity;
    if (o.properties !== undefined) msg.properties = o.properties;
    for (const s of this.subs) if (matches(s.filter, topic)) s.handler(msg);
  }

  /** Messages published on `<root><sub>`. */
  on(sub: string): Published[] {
    return this.published.filter((p) => p.topic === `${this.root}${sub}`);
  }
}

export interface MachineSpec {
  mac: string;
  name?: string;
  state: MachineState;
  group?: string;
  image?: string;
}

/** The events that take a new machine to a state. */
const PATH: Record<MachineState, MachineEvent[]> = {
  unknown: [],
  pending: [{ type: 'seen', policy: 'approve' }],
  approved: [{ type: 'seen', policy: 'auto' }],
  rejected: [{ type: 'seen', policy: 'approve' }, { type: 'reject' }],
  deploying: [{ type: 'seen', policy: 'auto' }, { type: 'deploy-started' }],
  deployed: [{ type: 'seen', policy: 'auto' }, { type: 'deploy-started' }, { type: 'deployed' }],
  'reimage-requested': [
    { type: 'seen', policy: 'auto' },
    { type: 'deploy-started' },
    { type: 'deployed' },
    { type: 'reimage', mode: 'next-boot' },
  ],
};

/** A real registry on a temp file holding these machines (removed at teardown). */
export async function registryWith(
  t: ExecutionContext,
  machines: MachineSpec[],
  clock: Clock = new ManualClock(),
): Promise<{ registry: MachineRegistry; dir: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-cmd-'));
  const registry = new MachineRegistry({
    file: path.join(dir, 'machines.json'),
    namingPattern: 'NODE%03#',
    clock,
    log: silentLogger,
    events: { emit: () => {} },
  });
  await registry.load();
  t.teardown(async () => {
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const s of machines) {
    registry.create({ mac: s.mac, arch: 'uefi-x64', firmware: 'uefi' });
    const patch: { name?: string; image?: string; group?: string } = {};
    if (s.name !== undefined) patch.name = s.name;
    if (s.image !== undefined) patch.image = s.image;
    if (s.group !== undefined) patch.group = s.group;
    const u = registry.update(s.mac, patch);
    if (u instanceof BootboxError) throw u;
    for (const e of PATH[s.state]) {
      const r = registry.apply(s.mac, e);
      if (r instanceof BootboxError) throw r;
    }
  }
  return { registry, dir };
}

/** The registry's machines as mac → state/image/reimage, to compare before and after. */
export function snapshot(registry: MachineRegistry): Record<string, unknown> {
  return Object.fromEntries(
    registry.list().map((m) => [m.mac, { state: m.state, image: m.image, reimage: m.reimage && { ...m.reimage } }]),
  );
}
