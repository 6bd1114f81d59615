/**
 * N concurrent TFTP reads of one file (lock-step, blksize option only, so every server is
 * measured the same way). Prints one JSON line: completed, failed, total time.
 *   node tftp-many.ts <server> <port> <file> <clients> <expectedBytes> [blksize] [firstSourceAddr]
 * With firstSourceAddr, client i sends from that address + i, like N distinct nodes.
 */
import dgram from 'node:dgram';

const [server, portArg, file, nArg, sizeArg, blkArg, firstSrc] = process.argv.slice(2);
const n = Number(nArg);
const expected = Number(sizeArg);
const blksize = Number(blkArg ?? 1468);

function rrq(): Buffer {
  return Buffer.concat([Buffer.from([0, 1]), Buffer.from(`${file}\0octet\0blksize\0${blksize}\0`)]);
}

function sourceFor(i: number): string | undefined {
  if (!firstSrc) return undefined;
  const p = firstSrc.split('.').map(Number);
  const n = ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) + i;
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function one(i: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    let got = 0;
    let expectBlock = 1;
    let size = 512;
    let peerPort = 0;
    let lastSent: Buffer = rrq();
    let lastTo = Number(portArg);
    let tries = 0;
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      s.close();
      resolve(ok);
    };
    let timer = setTimeout(function retry() {
      if (++tries > 8) return finish(false);
      s.send(lastSent, lastTo, server!);
      timer = setTimeout(retry, 1000);
    }, 1000);
    const ack = (block: number) => {
      const b = Buffer.from([0, 4, (block >> 8) & 255, block & 255]);
      lastSent = b;
      lastTo = peerPort;
      s.send(b, peerPort, server!);
    };
    s.on('message', (m, r) => {
      const op = m.readUInt16BE(0);
      if (peerPort === 0) peerPort = r.port;
      if (r.port !== peerPort) return;
      tries = 0;
      if (op === 6) {
        const parts = m.subarray(2).toString().split('\0');
        const i = parts.indexOf('blksize');
        if (i >= 0) size = Number(parts[i + 1]);
        ack(0);
      } else if (op === 3) {
        const block = m.readUInt16BE(2);
        if (block === (expectBlock & 0xffff)) {
          got += m.length - 4;
          expectBlock++;
          ack(block);
          if (m.length - 4 < size) finish(got === expected);
        } else {
          ack((expectBlock - 1) & 0xffff);
        }
      } else if (op === 5) {
        finish(false);
      }
    });
    s.bind(0, sourceFor(i), () => s.send(lastSent, lastTo, server!));
  });
}

const t0 = performance.now();
const results = await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
const ms = performance.now() - t0;
const ok = results.filter(Boolean).length;
process.stdout.write(`${JSON.stringify({ clients: n, completed: ok, failed: n - ok, totalMs: Math.round(ms) })}\n`);
