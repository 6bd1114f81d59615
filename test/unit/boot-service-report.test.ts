/**
 * BootService's deploy-environment report (services/boot-service.ts): a `deployed` report
 * changes the machine's state and emits boot.report, and the events it emits stay in time
 * order on the timeline. Found by test/e2e/boot-e2e.test.ts: boot.report carried the stamp
 * taken before the state change, so on a busy box it sorted before the machine.state event
 * emitted ahead of it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { defaultConfig } from '../../firmware/config/schema.ts';
import type { Clock } from '../../firmware/core/clock.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import { BootService } from '../../firmware/services/boot-service.ts';
import { MachineRegistry } from '../../firmware/services/machines.ts';

const MAC = '52:54:00:77:e2:11';
const PEER = '10.77.0.100';

/** A busy box: every reading of the wall clock is one millisecond later than the last. */
function tickingClock(): Clock {
  let ms = Date.UTC(2026, 0, 1);
  return { now: () => ms - Date.UTC(2026, 0, 1), date: () => new Date(ms++) };
}

interface Emitted {
  type: string;
  ts: string;
  [k: string]: unknown;
}

async function setup(t: ExecutionContext) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-boot-service-'));
  const clock = tickingClock();
  const emitted: Emitted[] = [];
  const events = {
    emit: (type: string, e: object) => {
      emitted.push({ type, ...(e as { ts: string }) });
    },
  };
  const registry = new MachineRegistry({
    file: path.join(dir, 'machines.json'),
    namingPattern: 'HPC-NODE%03#',
    clock,
    log: silentLogger,
    events,
  });
  await registry.load();
  t.teardown(async () => {
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const env = { kernel: 'deploy/vmlinuz', initrd: 'deploy/initrd.img', params: ['console=ttyS0'] };
  const boot = {
    ...defaultConfig().boot,
    unknown: 'auto' as const,
    images: { img: {} },
    defaultImage: { bios: 'img' },
    deployEnvironments: { bios: env },
  };
  const service = new BootService({
    boot,
    serverAddr: '10.77.0.1',
    httpPort: 8081,
    boxName: 'lab',
    registry,
    events,
    clock,
    log: silentLogger,
  });
  registry.create({ mac: MAC, arch: 'bios', firmware: 'bios' });
  registry.apply(MAC, { type: 'seen', policy: 'auto' });
  const h = service.handlers(async () => ({ kind: 'refused', reason: 'not-found' }));
  const script = h.ipxeScript(MAC, 1, `http://10.77.0.1:8081/boot/${MAC}.ipxe`, PEER);
  const token = /bootbox\.token=([0-9a-f]+)/.exec(script.body)?.[1];
  if (!token) throw new Error(`no token in the deploy script:\n${script.body}`);
  return { h, token, emitted, registry };
}

test('a deployed report: the state change, then boot.report, in time order', async (t) => {
  const { h, token, emitted, registry } = await setup(t);
  const from = emitted.length;
  const r = h.report(MAC, { state: 'deployed', image: 'img', token }, PEER);
  t.is(r.status, 200);
  t.like(r.body as object, { ok: true, state: 'deployed', name: 'HPC-NODE001' });
  t.is(registry.get(MAC)?.state, 'deployed');
  const mine = emitted.slice(from);
  t.deepEqual(
    mine.map((e) => e.type),
    ['machine.state', 'boot.report'],
  );
  t.like(mine[1], { state: 'deployed', accepted: true, peer: PEER });
  const all = emitted.map((e) => e.ts);
  t.deepEqual(all, [...all].sort(), 'every event stamped no earlier than the one before');
});

test('refused reports are stamped when they are emitted too', async (t) => {
  const { h, emitted } = await setup(t);
  const from = emitted.length;
  t.is(h.report(MAC, { state: 'deployed', token: 'wrong' }, PEER).status, 403);
  t.is(h.report(MAC, { state: 'bogus' }, PEER).status, 400);
  const mine = emitted.slice(from);
  t.deepEqual(
    mine.map((e) => [e.type, e.accepted]),
    [
      ['boot.report', false],
      ['boot.report', false],
    ],
  );
  t.true(mine[0]!.ts < mine[1]!.ts);
});
