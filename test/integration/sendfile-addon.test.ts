/**
 * The sendfile addon (board/native/sendfile) on loopback TCP: bytes and counts, how each
 * way of stopping is reported (peer gone, abort, idle timeout, file too short), that the
 * descriptors it duplicates are closed, and that bad arguments throw before any thread starts.
 * Serial: the descriptor counts are per process.
 */
import { randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { loadSendfileAddon, type SendfileError, type SendfileJob, socketFd } from '../../board/sendfile-addon.ts';

const addon = loadSendfileAddon();
const openFds = () => fs.readdirSync('/proc/self/fd').length;

function tmpFile(t: ExecutionContext, size: number): { file: string; data: Buffer; fd: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bb-sendfile-'));
  const file = path.join(dir, 'data.bin');
  const data = randomFillSync(Buffer.allocUnsafe(size));
  fs.writeFileSync(file, data);
  const fd = fs.openSync(file, 'r');
  t.teardown(() => {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { file, data, fd };
}

/** A connected pair on loopback: `server` is the side the addon writes to. */
async function pair(t: ExecutionContext): Promise<{ server: net.Socket; client: net.Socket }> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const server = await accepted;
  await new Promise<void>((r) => (client.connecting ? client.once('connect', () => r()) : r()));
  srv.close();
  t.teardown(() => {
    client.destroy();
    server.destroy();
  });
  return { server, client };
}

function send(
  server: net.Socket,
  fd: number,
  offset: number,
  length: number,
  idleMs?: number,
): { job: SendfileJob; done: Promise<{ err: SendfileError | null; n: number }> } {
  let job!: SendfileJob;
  const done = new Promise<{ err: SendfileError | null; n: number }>((resolve) => {
    job = addon.sendfile(socketFd(server)!, fd, offset, length, (err, n) => resolve({ err, n }), idleMs);
  });
  return { job, done };
}

function readAll(client: net.Socket, want: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let n = 0;
    client.on('data', (c: Buffer) => {
      chunks.push(c);
      n += c.length;
      if (n >= want) resolve(Buffer.concat(chunks));
    });
  });
}

test.serial('a range of a file arrives exactly, the count matches, and the descriptor copies are closed', async (t) => {
  const { data, fd } = tmpFile(t, 9 * 1024 * 1024 + 17);
  const { server, client } = await pair(t);
  const before = openFds();
  const offset = 12345;
  const length = data.length - offset - 99;
  const got = readAll(client, length);
  const { done } = send(server, fd, offset, length);
  const { err, n } = await done;
  t.is(err, null);
  t.is(n, length);
  t.is(openFds(), before, 'the duplicated socket, file and eventfd are closed before the callback');
  t.true((await got).equals(data.subarray(offset, offset + length)));
});

test.serial('the peer going away stops the transfer with EPIPE or ECONNRESET and a short count', async (t) => {
  const { data, fd } = tmpFile(t, 64 * 1024 * 1024);
  const { server, client } = await pair(t);
  client.once('data', () => client.resetAndDestroy());
  const { err, n } = await send(server, fd, 0, data.length).done;
  t.truthy(err);
  t.true(['EPIPE', 'ECONNRESET'].includes(err!.code), err!.code);
  t.true(n < data.length, `sent ${n}`);
  t.is(err!.bytesSent, n);
});

test.serial('abort() stops a transfer held by a reader that takes nothing: ECANCELED', async (t) => {
  const { data, fd } = tmpFile(t, 64 * 1024 * 1024);
  const { server, client } = await pair(t);
  client.pause();
  const { job, done } = send(server, fd, 0, data.length);
  setTimeout(() => job.abort(), 100);
  const { err, n } = await done;
  t.is(err?.code, 'ECANCELED');
  t.true(n < data.length);
  job.abort(); // again, after the end: nothing happens
});

test.serial('a reader that takes nothing for the idle timeout: ETIMEDOUT', async (t) => {
  const { data, fd } = tmpFile(t, 64 * 1024 * 1024);
  const { server, client } = await pair(t);
  client.pause();
  const { err, n } = await send(server, fd, 0, data.length, 200).done;
  t.is(err?.code, 'ETIMEDOUT');
  t.regex(err!.message, /200 ms/);
  t.true(n > 0 && n < data.length);
});

test.serial('a file shorter than offset + length: EOF after the bytes it has', async (t) => {
  const { data, fd } = tmpFile(t, 100_000);
  const { server, client } = await pair(t);
  const got = readAll(client, data.length - 1000);
  const { err, n } = await send(server, fd, 1000, data.length).done;
  t.is(err?.code, 'EOF');
  t.is(n, data.length - 1000);
  t.regex(err!.message, /ended at byte 100000/);
  t.true((await got).equals(data.subarray(1000)));
});

test.serial('bad arguments throw before anything starts', async (t) => {
  const { fd } = tmpFile(t, 10);
  const { server } = await pair(t);
  const sfd = socketFd(server)!;
  const before = openFds();
  const cb = () => t.fail('no callback for a call that threw');
  t.throws(() => addon.sendfile(-1, fd, 0, 1, cb), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => addon.sendfile(sfd, fd, 0.5, 1, cb), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => addon.sendfile(sfd, fd, 0, -1, cb), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => addon.sendfile(sfd, fd, 0, 1, cb, 0), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => addon.sendfile(sfd, fd, 0, 1, 'no' as unknown as () => void), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => addon.sendfile(sfd, 100_000, 0, 1, cb), { code: 'EBADF' });
  t.is(openFds(), before);
});
