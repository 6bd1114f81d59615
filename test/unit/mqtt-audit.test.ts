/** The audit log (telemetry/mqtt/audit.ts): a bounded JSON file, written in batches. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ManualClock } from '../../firmware/core/clock.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import { AuditLog, MAX_TARGETS_TEXT } from '../../firmware/services/audit.ts';

function setup(t: import('ava').ExecutionContext, max = 10_000) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-audit-'));
  const file = path.join(dir, 'audit.json');
  const clock = new ManualClock();
  const log = new AuditLog({ file, clock, log: silentLogger, max, flushIntervalMs: 60_000 });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { file, clock, log };
}

test('entries carry ts first, are batched, and survive a reload', async (t) => {
  const { file, clock, log } = setup(t);
  await log.load();
  log.record({
    via: 'mqtt',
    identity: 'ops',
    command: 'reimage',
    transaction: 't1',
    targets: { name: 'n1' },
    result: 'ok',
    macs: ['52:54:00:00:00:01'],
  });
  clock.advance(1000);
  log.record({ via: 'api', identity: 'token-1', command: 'approve', result: 'error', code: 'INVALID_STATE' });
  t.false(existsSync(file), 'not written per entry');
  await log.flush();
  const saved = JSON.parse(readFileSync(file, 'utf8'));
  t.deepEqual(saved.entries[0], {
    ts: '2026-01-01T00:00:00.000Z',
    via: 'mqtt',
    identity: 'ops',
    command: 'reimage',
    transaction: 't1',
    targets: { name: 'n1' },
    result: 'ok',
    macs: ['52:54:00:00:00:01'],
  });
  t.deepEqual(Object.keys(saved.entries[1]), ['ts', 'via', 'identity', 'command', 'result', 'code']);
  await log.close();
  const again = new AuditLog({ file, clock, log: silentLogger });
  await again.load();
  t.is(again.size, 2);
  t.deepEqual(
    again.list().map((e) => e.command),
    ['approve', 'reimage'],
    'newest first',
  );
  t.deepEqual(
    again.list({ via: 'mqtt' }).map((e) => e.identity),
    ['ops'],
  );
  await again.close();
});

test('bounded: the oldest entries go; big target lists are cut', async (t) => {
  const { log } = setup(t, 100);
  await log.load();
  for (let i = 0; i < 250; i++)
    log.record({ via: 'mqtt', identity: 'ops', command: 'approve', transaction: i, result: 'ok' });
  t.is(log.size, 100);
  t.is(log.list({ limit: 1 })[0]!.transaction, 249);
  t.is(log.list({ limit: 1000 }).at(-1)!.transaction, 150);
  const names = Array.from({ length: 1000 }, (_, i) => `node-${i}`);
  const e = log.record({
    via: 'mqtt',
    identity: 'ops',
    command: 'approve',
    targets: { names },
    macs: names,
    result: 'error',
  });
  t.is(typeof e.targets, 'string');
  t.is((e.targets as string).length, MAX_TARGETS_TEXT + 1);
  t.is(e.macs!.length, 64);
  await log.close();
});
