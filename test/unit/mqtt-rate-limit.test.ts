/** Token buckets of MQTT commands (telemetry/mqtt/rate-limit.ts), on a manual clock. */
import test from 'ava';
import { ManualClock } from '../../firmware/core/clock.ts';
import { RateLimiter, TokenBucket } from '../../firmware/telemetry/mqtt/rate-limit.ts';

test('a bucket serves its burst, then refills at its rate, never above the burst', (t) => {
  const b = new TokenBucket({ ratePerSec: 10, burst: 3 }, 0);
  t.deepEqual([b.take(0), b.take(0), b.take(0), b.take(0)], [true, true, true, false]);
  t.false(b.take(50), 'half a token after 50 ms');
  t.true(b.take(100), 'one token after 100 ms');
  t.false(b.take(100));
  t.true(b.full(10_000));
  t.deepEqual([b.take(10_000), b.take(10_000), b.take(10_000), b.take(10_000)], [true, true, true, false]);
});

test('per identity: one flooder is limited, another identity is served', (t) => {
  const clock = new ManualClock();
  const r = new RateLimiter(clock, {
    perIdentity: { ratePerSec: 20, burst: 50 },
    global: { ratePerSec: 200, burst: 400 },
  });
  const results = Array.from({ length: 1000 }, () => r.check('flood'));
  t.is(results.filter((x) => x.ok).length, 50);
  const notices = results.filter((x) => !x.ok && x.notify);
  t.is(notices.length, 1, 'one notice per second');
  t.deepEqual(notices[0], { ok: false, scope: 'identity', notify: true, dropped: 1 });
  t.true(r.check('calm').ok);
  clock.advance(1000);
  const next = Array.from({ length: 100 }, () => r.check('flood'));
  t.is(next.filter((x) => x.ok).length, 20, '20 per second');
  const n2 = next.find((x) => !x.ok && x.notify);
  t.deepEqual(n2, { ok: false, scope: 'identity', notify: true, dropped: 949 + 1 });
  t.deepEqual(r.counters, { accepted: 50 + 1 + 20, limitedIdentity: 950 + 80, limitedGlobal: 0, notices: 2 });
});

test('global: many identities together are limited by the global bucket', (t) => {
  const clock = new ManualClock();
  const r = new RateLimiter(clock, {
    perIdentity: { ratePerSec: 20, burst: 50 },
    global: { ratePerSec: 200, burst: 100 },
  });
  let ok = 0;
  for (let i = 0; i < 10; i++) for (let j = 0; j < 50; j++) if (r.check(`id${i}`).ok) ok++;
  t.is(ok, 100);
  t.is(r.counters.limitedGlobal, 400);
  const d = r.check('id0');
  t.like(d, { ok: false, scope: 'identity' }, 'id0 also used up its own bucket');
});

test('identities tracked are bounded; idle ones go first', (t) => {
  const clock = new ManualClock();
  const r = new RateLimiter(clock, { maxIdentities: 100 });
  for (let i = 0; i < 1000; i++) r.check(`id${i}`);
  t.true(r.tracked <= 100);
});
