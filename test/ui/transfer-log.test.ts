/** The Transfers page's model: TFTP, HTTP and upload events folded into running and finished transfers. */
import test from 'ava';
import type { BoxEvent } from '../../web-ui/src/sse.ts';
import { applyTransferEvent, emptyLog, pruneLog, STALE_MS, throughput } from '../../web-ui/src/transfer-log.ts';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const ts = (ms: number) => new Date(T0 + ms).toISOString();
const ev = (type: string, ms: number, f: Record<string, unknown>): BoxEvent => ({ type, ts: ts(ms), ...f });

test('a TFTP transfer runs from its options to its completion, with the rate the box measured', (t) => {
  const log = emptyLog();
  const who = { client: '10.77.0.100:2071', address: '10.77.0.100', port: 2071, filename: 'undionly.kpxe' };
  applyTransferEvent(log, ev('tftp.options', 0, { ...who, size: 70_000, blksize: 1468, windowsize: 16 }), T0);
  t.is(log.active.size, 1);
  t.like([...log.active.values()][0], { kind: 'tftp', what: 'undionly.kpxe', size: 70_000, state: 'active' });
  applyTransferEvent(log, ev('tftp.complete', 50, { ...who, bytes: 70_000, durationMs: 50, rate: 1_400_000 }), T0 + 50);
  t.is(log.active.size, 0);
  t.like(log.recent[0], {
    kind: 'tftp',
    state: 'done',
    bytes: 70_000,
    rate: 1_400_000,
    startedAt: T0,
    updatedAt: T0 + 50,
  });
  t.is(throughput(log, T0 + 1000).tftp, 7000, '70,000 bytes over the 10 s window');
});

test('a size probe is not a transfer; a failure is kept with its reason', (t) => {
  const log = emptyLog();
  const who = { client: '10.77.0.100:2070', address: '10.77.0.100', port: 2070, filename: 'ipxe.efi' };
  applyTransferEvent(log, ev('tftp.options', 0, { ...who, size: 1000 }), T0);
  applyTransferEvent(log, ev('tftp.aborted', 1, { ...who, probe: true, bytes: 0, durationMs: 1 }), T0);
  t.is(log.active.size, 0);
  t.is(log.recent.length, 0);
  applyTransferEvent(log, ev('tftp.options', 2, { ...who, size: 1000 }), T0);
  applyTransferEvent(
    log,
    ev('tftp.error', 3002, { ...who, reason: 'timeout', message: 'no ACK', bytes: 512, durationMs: 3000 }),
    T0,
  );
  t.like(log.recent[0], { state: 'failed', note: 'no ACK', bytes: 512 });
});

test('uploads: progress gives a rate from consecutive reports; completion moves it to finished', (t) => {
  const log = emptyLog();
  applyTransferEvent(log, ev('upload.progress', 0, { id: 'u1', received: 0, size: 4_000_000, name: 'win11' }), T0);
  applyTransferEvent(
    log,
    ev('upload.progress', 500, { id: 'u1', received: 1_000_000, size: 4_000_000, name: 'win11' }),
    T0,
  );
  t.like(log.active.get('upload:u1'), { bytes: 1_000_000, rate: 2_000_000, state: 'active' });
  applyTransferEvent(
    log,
    ev('upload.complete', 2000, { id: 'u1', name: 'win11', images: ['install/default/win11'], size: 4_000_000 }),
    T0,
  );
  t.is(log.active.size, 0);
  t.like(log.recent[0], { kind: 'upload', state: 'done', bytes: 4_000_000, rate: 2_000_000 });
});

test('HTTP requests are finished transfers; errors are marked failed', (t) => {
  const log = emptyLog();
  applyTransferEvent(
    log,
    ev('http.request', 0, { path: '/boot/x.ipxe', status: 200, bytes: 300, peer: '10.77.0.5', ms: 3 }),
    T0,
  );
  applyTransferEvent(
    log,
    ev('http.request', 0, { path: '/nope', status: 404, bytes: 0, peer: '10.77.0.5', ms: 1 }),
    T0,
  );
  t.deepEqual(
    log.recent.map((r) => [r.what, r.state]),
    [
      ['/nope', 'failed'],
      ['/boot/x.ipxe', 'done'],
    ],
  );
});

test('a running transfer with no news is dropped after a while; old samples leave the window', (t) => {
  const log = emptyLog();
  applyTransferEvent(log, ev('tftp.options', 0, { client: 'c', address: 'a', filename: 'f', size: 1 }), T0);
  applyTransferEvent(log, ev('http.request', 0, { path: '/p', status: 200, bytes: 10, peer: 'a', ms: 1 }), T0);
  pruneLog(log, T0 + 5000);
  t.is(log.active.size, 1);
  t.is(log.samples.length, 1);
  pruneLog(log, T0 + STALE_MS + 1);
  t.is(log.active.size, 0);
  t.is(log.samples.length, 0);
});
