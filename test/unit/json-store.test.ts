import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { silentLogger } from '../../firmware/core/logger.ts';
import { JsonStore } from '../../firmware/store/json-store.ts';

const dir = () => mkdtempSync(path.join(os.tmpdir(), 'bootbox-store-'));

test('many changes make one write; the file holds the last state', async (t) => {
  const d = dir();
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  const file = path.join(d, 'state.json');
  const s = new JsonStore<{ n: number }>({ file, defaults: () => ({ n: 0 }), flushIntervalMs: 50 });
  await s.load();
  for (let i = 1; i <= 100; i++) {
    s.data.n = i;
    s.markDirty();
  }
  t.false(existsSync(file), 'nothing written synchronously');
  await new Promise((r) => setTimeout(r, 200));
  t.is(s.writes, 1);
  t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { n: 100 });
  const again = new JsonStore<{ n: number }>({ file, defaults: () => ({ n: 0 }) });
  await again.load();
  t.is(again.data.n, 100);
});

test('a failed write keeps the change pending and the old file intact', async (t) => {
  const d = dir();
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  const sub = path.join(d, 'vol');
  const file = path.join(sub, 'state.json');
  const s = new JsonStore<{ n: number }>({ file, defaults: () => ({ n: 0 }), log: silentLogger });
  await s.load();
  s.data.n = 1;
  s.markDirty();
  await s.flush();
  // The volume goes away: writes fail, state stays in memory, then comes back.
  rmSync(sub, { recursive: true });
  s.data.n = 2;
  s.markDirty();
  await s.flush();
  t.truthy(s.lastError);
  t.false(existsSync(file));
  const { mkdirSync } = await import('node:fs');
  mkdirSync(sub);
  writeFileSync(file, JSON.stringify({ n: 1 }));
  await s.flush();
  t.is(s.lastError, undefined);
  t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { n: 2 });
  await s.close();
});

test('a corrupt or invalid file is kept aside, never silently overwritten', async (t) => {
  const d = dir();
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  const file = path.join(d, 'state.json');
  writeFileSync(file, '{"n": ');
  const s = new JsonStore<{ n: number }>({ file, defaults: () => ({ n: 0 }), log: silentLogger });
  await s.load();
  t.is(s.data.n, 0);
  t.true(readdirSync(d).some((f) => f.startsWith('state.json.corrupt-')));
  writeFileSync(file, '{"n": "x"}');
  const v = new JsonStore<{ n: number }>({
    file,
    defaults: () => ({ n: 0 }),
    log: silentLogger,
    validate: (x) => (typeof (x as { n: unknown }).n === 'number' ? undefined : 'n must be a number'),
  });
  await v.load();
  t.is(v.data.n, 0);
  t.true(readdirSync(d).some((f) => f.startsWith('state.json.invalid-')));
});
