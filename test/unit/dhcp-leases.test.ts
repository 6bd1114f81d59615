import test from 'ava';
import { ManualClock } from '../../firmware/core/clock.ts';
import { formatIPv4 } from '../../firmware/core/net.ts';
import { LeasePool, type LeasePoolConfig } from '../../firmware/protocols/dhcp/leases.ts';
import { ip } from '../helpers/dhcp.ts';

const A = { mac: '52:54:00:77:00:0a' };
const B = { mac: '52:54:00:77:00:0b' };
const C = { mac: '52:54:00:77:00:0c' };
const HOUR = 3_600_000;

function pool(config: Partial<LeasePoolConfig> = {}, clock = new ManualClock()) {
  return {
    clock,
    pool: new LeasePool({ range: { start: ip('10.77.0.10'), end: ip('10.77.0.13') }, ...config }, clock),
  };
}

test('offers hand out the range in order and hold each address for one client', (t) => {
  const { pool: p } = pool();
  t.is(p.offer(A), ip('10.77.0.10'));
  t.is(p.offer(B), ip('10.77.0.11'));
  t.is(p.offer(A), ip('10.77.0.10'), 'a repeated DISCOVER gets the same offer');
  t.is(p.lookup(A)?.state, 'offered');
  t.is(p.stats().offered, 2);
});

test('an offer expires after 30 s and its address is then reused', (t) => {
  const { pool: p, clock } = pool({ range: { start: ip('10.77.0.10'), end: ip('10.77.0.10') } });
  t.is(p.offer(A), ip('10.77.0.10'));
  t.is(p.offer(B), undefined, 'exhausted while the offer is held');
  clock.advance(29_999);
  t.is(p.offer(B), undefined);
  clock.advance(1);
  t.is(p.lookup(A), undefined);
  t.is(p.offer(B), ip('10.77.0.10'));
});

test('no address is handed out twice: commit refuses an address another client holds', (t) => {
  const { pool: p, clock } = pool();
  const a = p.offer(A)!;
  t.deepEqual(p.commit(B, a, HOUR), { ok: false, reason: 'address-taken' });
  const ok = p.commit(A, a, HOUR);
  t.true(ok.ok);
  clock.advance(HOUR - 1);
  t.deepEqual(p.commit(B, a, HOUR), { ok: false, reason: 'address-taken' });
  t.not(p.offer(B), a);
  clock.advance(1);
  t.is(p.lookup(A), undefined, 'the lease has expired');
});

test('a returning client gets its previous address, even after expiry', (t) => {
  const { pool: p, clock } = pool();
  const a = p.offer(A)!;
  p.commit(A, a, HOUR);
  clock.advance(2 * HOUR);
  p.offer(B);
  p.offer(C);
  t.is(p.offer(A), a);
});

test('a returning client is found by client id as well as by MAC', (t) => {
  const { pool: p } = pool();
  const a = p.offer({ ...A, clientId: '01525400770001' })!;
  p.commit({ ...A, clientId: '01525400770001' }, a, HOUR);
  t.is(p.lookup({ clientId: '01525400770001' })?.ip, a);
  t.is(p.lookup({ mac: A.mac.toUpperCase() })?.ip, a);
  t.is(p.offer({ ...A, clientId: 'ff00' }), a, 'a different client id on the same MAC is the same machine');
});

test('freed addresses are reused oldest first, after the never-used ones', (t) => {
  const { pool: p, clock } = pool();
  const addrs = [A, B, C].map((c) => {
    const x = p.offer(c)!;
    p.commit(c, x, HOUR);
    return x;
  });
  p.release(B, addrs[1]!);
  clock.advance(1);
  p.release(A, addrs[0]!);
  const D = { mac: '52:54:00:77:00:0d' };
  const E = { mac: '52:54:00:77:00:0e' };
  const F = { mac: '52:54:00:77:00:0f' };
  t.is(p.offer(D), ip('10.77.0.13'), 'never-used first');
  t.is(p.offer(E), addrs[1], 'then the oldest freed');
  t.is(p.offer(F), addrs[0]);
  t.is(p.offer({ mac: '52:54:00:77:00:10' }), undefined);
});

test('the requested address (option 50) is honoured when free', (t) => {
  const { pool: p } = pool();
  t.is(p.offer({ ...A, requestedIp: ip('10.77.0.12') }), ip('10.77.0.12'));
  t.is(p.offer({ ...B, requestedIp: ip('10.77.0.12') }), ip('10.77.0.10'), 'not when taken');
  t.is(p.offer({ ...C, requestedIp: ip('10.99.0.1') }), ip('10.77.0.11'), 'not when outside the range');
});

test('reservations: always offered to their MAC, never to others, even outside the range', (t) => {
  const { pool: p } = pool({
    reservations: [
      [B.mac, ip('10.77.0.10')],
      [C.mac, ip('10.77.0.200')],
    ],
  });
  t.is(p.offer(A), ip('10.77.0.11'), 'the reserved address is skipped');
  t.is(p.offer(B), ip('10.77.0.10'));
  t.is(p.offer(C), ip('10.77.0.200'));
  t.deepEqual(p.commit(A, ip('10.77.0.10'), HOUR), { ok: false, reason: 'reserved-for-other' });
  t.true(p.commit(C, ip('10.77.0.200'), HOUR).ok);
  t.deepEqual(p.commit(A, ip('10.77.0.201'), HOUR), { ok: false, reason: 'not-in-pool' });
});

test('excluded addresses are never offered or committed', (t) => {
  const { pool: p } = pool({ exclude: [ip('10.77.0.10')] });
  t.is(p.offer(A), ip('10.77.0.11'));
  t.deepEqual(p.commit(B, ip('10.77.0.10'), HOUR), { ok: false, reason: 'not-in-pool' });
});

test('DECLINE quarantines the address, and only its holder can decline it', (t) => {
  const { pool: p, clock } = pool({ range: { start: ip('10.77.0.10'), end: ip('10.77.0.11') }, declineHoldMs: 60_000 });
  const a = p.offer(A)!;
  p.commit(A, a, HOUR);
  t.false(p.decline(B, a));
  t.true(p.decline(A, a));
  t.is(p.get(a)?.state, 'declined');
  t.is(p.lookup(A), undefined);
  t.is(p.offer(A), ip('10.77.0.11'), 'the decliner gets another address');
  p.commit(A, ip('10.77.0.11'), HOUR);
  t.is(p.offer(B), undefined, 'the declined one is out of use');
  t.deepEqual(p.commit(B, a, HOUR), { ok: false, reason: 'address-taken' });
  clock.advance(60_000);
  t.is(p.offer(B), a);
});

test('RELEASE frees the address; a foreign RELEASE does nothing', (t) => {
  const { pool: p } = pool();
  const a = p.offer(A)!;
  p.commit(A, a, HOUR);
  t.false(p.release(B, a));
  t.is(p.lookup(A)?.state, 'leased');
  t.true(p.release(A, a));
  t.is(p.lookup(A), undefined);
  t.is(p.get(a)?.mac, A.mac, 'it remembers its last owner');
});

test('cancelOffer (REQUEST for another server) frees only an offer', (t) => {
  const { pool: p } = pool();
  const a = p.offer(A)!;
  t.true(p.cancelOffer(A));
  t.is(p.lookup(A), undefined);
  p.offer(A);
  p.commit(A, a, HOUR);
  t.false(p.cancelOffer(A), 'a lease is not cancelled');
  t.is(p.lookup(A)?.state, 'leased');
});

test('an offer to a client with a lease does not shorten the lease', (t) => {
  const { pool: p, clock } = pool();
  const a = p.offer(A)!;
  p.commit(A, a, HOUR);
  clock.advance(1000);
  t.is(p.offer(A), a);
  t.is(p.lookup(A)?.state, 'leased');
  t.is(p.lookup(A)?.expiresAt, HOUR);
});

test('a client that commits another address gives up its old one', (t) => {
  const { pool: p } = pool();
  const a = p.offer(A)!;
  t.true(p.commit(A, ip('10.77.0.12'), HOUR).ok);
  t.is(p.get(a)?.state, 'free');
  t.is(p.offer(B), ip('10.77.0.11'));
  t.is(p.stats().leased, 1);
});

test('dirty and generation drive batched writes', (t) => {
  const { pool: p } = pool();
  t.false(p.dirty);
  p.offer(A);
  t.true(p.dirty);
  const gen = p.generation;
  p.snapshot();
  p.markClean(gen);
  t.false(p.dirty);
  p.offer(B);
  t.true(p.dirty);
});

test('snapshot and restore round-trip through JSON, with wall-clock expiry', (t) => {
  const clock = new ManualClock(5_000);
  const { pool: p } = pool({ declineHoldMs: 10 * 60_000 }, clock);
  const a = p.offer(A)!;
  p.commit({ ...A, clientId: 'cafe' }, a, HOUR);
  const b = p.offer(B)!;
  p.commit(B, b, HOUR);
  p.release(B, b);
  const c = p.offer(C)!;
  p.commit(C, c, HOUR);
  p.decline(C, c);
  const snap = JSON.parse(JSON.stringify(p.snapshot()));
  t.is(snap.leases.length, 3);
  t.is(snap.leases[0].expiresAt, new Date(Date.UTC(2026, 0, 1) + HOUR + 5_000).toISOString());

  // A new process: the monotonic clock restarts at 0 but the wall clock moved on 10 minutes.
  const later = new ManualClock(0, Date.UTC(2026, 0, 1) + 5_000 + 10 * 60_000);
  const q = new LeasePool({ range: { start: ip('10.77.0.10'), end: ip('10.77.0.13') } }, later);
  t.deepEqual(q.restore(snap), { restored: 3, skipped: 0 });
  t.false(q.dirty);
  t.is(q.lookup({ clientId: 'cafe' })?.ip, a);
  t.is(q.lookup(A)?.expiresAt, HOUR - 10 * 60_000);
  t.is(q.get(c)?.state, undefined, 'the 10-minute quarantine ended while we were down');
  t.is(q.offer(B), b, 'B comes back to its previous address');
  t.is(q.offer(C), c, 'the quarantined address is free again');
  t.deepEqual(q.commit(C, a, HOUR), { ok: false, reason: 'address-taken' });
});

test('restore skips malformed entries and addresses no longer served', (t) => {
  const { pool: p } = pool();
  const r = p.restore({
    version: 1,
    savedAt: '2026-01-01T00:00:00.000Z',
    range: { start: '10.77.0.10', end: '10.77.0.13' },
    leases: [
      { ip: '10.77.0.10', mac: A.mac, clientId: null, state: 'leased', expiresAt: '2026-01-01T01:00:00.000Z' },
      { ip: '10.99.0.10', mac: B.mac, clientId: null, state: 'leased', expiresAt: '2026-01-01T01:00:00.000Z' },
      { ip: 'nope', mac: B.mac, clientId: null, state: 'leased', expiresAt: '2026-01-01T01:00:00.000Z' },
      {
        ip: '10.77.0.11',
        mac: B.mac,
        clientId: null,
        state: 'bogus' as 'leased',
        expiresAt: '2026-01-01T01:00:00.000Z',
      },
      { ip: '10.77.0.10', mac: C.mac, clientId: null, state: 'leased', expiresAt: '2026-01-01T01:00:00.000Z' },
    ],
  });
  t.deepEqual(r, { restored: 1, skipped: 4 });
  t.is(p.lookup(A)?.ip, ip('10.77.0.10'));
});

test('a 64k pool allocates in O(1): 65,534 offers, exhaustion, expiry and reuse stay fast', (t) => {
  const clock = new ManualClock();
  const p = new LeasePool(
    { range: { start: ip('10.77.0.1'), end: ip('10.77.255.254') }, exclude: [ip('10.77.0.1')] },
    clock,
  );
  const mac = (i: number) =>
    `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  const started = performance.now();
  const seen = new Set<number>();
  for (let i = 0; i < 65_533; i++) {
    const x = p.offer({ mac: mac(i) });
    if (x === undefined || seen.has(x)) return t.fail(`offer ${i} gave ${x === undefined ? 'nothing' : formatIPv4(x)}`);
    seen.add(x);
    if (i % 2 === 0) p.commit({ mac: mac(i) }, x, HOUR);
  }
  t.is(p.offer({ mac: mac(70_000) }), undefined, 'pool-exhausted');
  clock.advance(30_000); // the odd clients' offers expire
  for (let i = 1; i < 20_001; i += 2) {
    const x = p.offer({ mac: mac(100_000 + i) });
    if (x === undefined) return t.fail(`reuse ${i} failed`);
  }
  const ms = performance.now() - started;
  t.log(`${ms.toFixed(0)} ms for 65,533 offers, 32,767 commits and 10,000 reuses`);
  t.true(ms < 3000);
  t.is(p.stats().leased, 32_767);
});
