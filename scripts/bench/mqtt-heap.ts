/**
 * The MQTT side of the box alone (setupMqtt: embedded broker on 127.0.0.1, link, telemetry)
 * with N machines, to tell live memory from garbage: run with --expose-gc, it waits until
 * every state is published, collects garbage and prints one JSON line
 * {machines, published, rssMiB, peakRssMiB, heapAfterGcMiB}.
 *   node --expose-gc mqtt-heap.ts <machines>
 */
import { readFileSync } from 'node:fs';
import { systemClock } from '../../firmware/core/clock.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import { setupMqtt } from '../../firmware/telemetry/mqtt/setup.ts';

const n = Number(process.argv[2] ?? 1000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const since = new Date().toISOString();
const machines = Array.from({ length: n }, (_, i) => ({
  mac: `52:54:00:aa:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
  name: `NODE${String(i + 1).padStart(5, '0')}`,
  state: 'pending',
  reason: 'first seen',
  since,
}));
const mqtt = setupMqtt({
  mqtt: {
    keepaliveSec: 30,
    healthIntervalSec: 3600,
    eventBuffer: 1000,
    broker: { port: 0, users: {} },
    allow: {},
  },
  boxId: 'bench',
  version: 'bench',
  brokerHosts: ['127.0.0.1'],
  events: { onAny: () => () => {} },
  machines: () => machines,
  health: { startedAt: Date.now(), dirs: [], interfaces: [], servicesStatus: () => ({}) },
  clock: systemClock,
  log: silentLogger,
});
for (const s of mqtt.services) await s.start();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// settled: the published count stops moving
let last = -1;
while (mqtt.link.counters.published !== last || !mqtt.link.connected) {
  last = mqtt.link.counters.published;
  await sleep(500);
}
gc();
await sleep(200);
gc();
const status = readFileSync('/proc/self/status', 'utf8');
const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN);
const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
process.stdout.write(
  `${JSON.stringify({
    machines: n,
    published: mqtt.link.counters.published,
    rssMiB: mib(kb('VmRSS') * 1024),
    peakRssMiB: mib(kb('VmHWM') * 1024),
    heapAfterGcMiB: mib(process.memoryUsage().heapUsed),
  })}\n`,
);
for (const s of [...mqtt.services].reverse()) await s.stop();
process.exit(0);
