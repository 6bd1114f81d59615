/** A boot storm: 200 clients fetch 1 MiB each at the same time, on both socket layouts. */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { mibPerSecond, pattern, startServer, tftpGet } from './tftp-support.ts';

const CLIENTS = 200;
const SIZE = 1024 * 1024;

for (const singlePort of [false, true]) {
  test.serial(
    `${CLIENTS} concurrent clients × 1 MiB all complete (${singlePort ? 'single port' : 'port per transfer'})`,
    async (t) => {
      // Every client comes from 127.0.0.1: lift the per-client bound for this test only.
      const h = await startServer(t, { singlePort, maxPerClient: CLIENTS, maxTransfers: CLIENTS, rtoMs: 500 });
      const files = [pattern(SIZE, 1), pattern(SIZE, 2)];
      fs.writeFileSync(path.join(h.root, 'ipxe.efi'), files[0]!);
      fs.writeFileSync(path.join(h.root, 'undionly.kpxe'), files[1]!);
      const started = performance.now();
      const results = await Promise.all(
        Array.from({ length: CLIENTS }, (_, i) =>
          tftpGet({
            port: h.port,
            filename: i % 2 ? 'undionly.kpxe' : 'ipxe.efi',
            // a mix of lock-step and windowed clients, as in a mixed rack
            options:
              i % 4 === 0
                ? []
                : [
                    ['blksize', '1468'],
                    ['windowsize', String(4 << (i % 3))],
                  ],
            timeoutMs: 2000,
            deadlineMs: 100_000,
            // a final ACK lost in the storm is repeated when the server repeats the final block
            dallyMs: 10_000,
          }),
        ),
      );
      const ms = performance.now() - started;
      let ok = 0;
      for (const [i, r] of results.entries()) if (r.data.equals(files[i % 2]!)) ok++;
      t.is(ok, CLIENTS);
      await h.waitFor('tftp.complete', () => h.of('tftp.complete').length === CLIENTS, 20_000);
      const c = h.server.counters;
      t.is(c.completed, CLIENTS);
      t.is(c.failed, 0);
      t.is(c.refused, 0);
      t.is(c.active, 0);
      t.is(c.cacheMisses, 2, 'each file read from disk once, then served from memory');
      t.log(
        `${CLIENTS} × 1 MiB in ${Math.round(ms)} ms: ${mibPerSecond(CLIENTS * SIZE, ms)} MiB/s aggregate, ${c.retransmits} retransmits`,
      );
    },
  );
}
