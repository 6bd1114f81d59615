/**
 * DgramEndpoint on 127.0.0.1: the peer mode a TFTP transfer uses (a socket connected to the
 * client beside the unconnected one, same port), and sends to IP literals and names.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import test from 'ava';
import { DgramEndpoint } from '../../board/dgram-endpoint.ts';
import type { Datagram } from '../../board/udp-endpoint.ts';

const LOCALHOST = '127.0.0.1';

async function udp(t: {
  teardown(fn: () => void): void;
}): Promise<{ sock: dgram.Socket; port: number; got: Buffer[] }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, LOCALHOST, r));
  t.teardown(() => sock.close());
  const got: Buffer[] = [];
  sock.on('message', (m, rinfo) => got.push(Buffer.concat([Buffer.from(`${rinfo.port}:`), m])));
  return { sock, port: sock.address().port, got };
}

const until = async (cond: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
};

test('peer mode: the peer and a stranger both reach the listener and are answered from the same port', async (t) => {
  const client = await udp(t);
  const stranger = await udp(t);
  const ep = await DgramEndpoint.open({
    port: 0,
    ifname: 'lo',
    address: LOCALHOST,
    peer: { address: LOCALHOST, port: client.port },
  });
  t.teardown(() => ep.close());
  t.true(ep.peerConnected);
  const seen: Datagram[] = [];
  ep.onMessage((d) => seen.push(d));
  client.sock.send('from-client', ep.port, LOCALHOST);
  stranger.sock.send('from-stranger', ep.port, LOCALHOST);
  await until(() => seen.length === 2);
  const bySource = Object.fromEntries(seen.map((d) => [d.srcPort, d.data.toString()]));
  t.deepEqual(bySource, { [client.port]: 'from-client', [stranger.port]: 'from-stranger' });
  for (const d of seen) t.is(d.dstPort, ep.port);

  ep.send(Buffer.from('to-client'), LOCALHOST, client.port);
  ep.send(Buffer.from('to-stranger'), LOCALHOST, stranger.port);
  await until(() => client.got.length === 1 && stranger.got.length === 1);
  t.deepEqual(client.got.map(String), [`${ep.port}:to-client`]);
  t.deepEqual(stranger.got.map(String), [`${ep.port}:to-stranger`]);
  t.is(ep.stats.sent, 2);
  t.is(ep.stats.received, 2);
});

test('peer mode: send callbacks report success on both paths', async (t) => {
  const client = await udp(t);
  const other = await udp(t);
  const ep = await DgramEndpoint.open({
    port: 0,
    ifname: 'lo',
    address: LOCALHOST,
    peer: { address: LOCALHOST, port: client.port },
  });
  t.teardown(() => ep.close());
  const results = await Promise.all(
    [client.port, other.port].map(
      (port) => new Promise<Error | null>((r) => ep.send(Buffer.from('x'), LOCALHOST, port, r)),
    ),
  );
  t.deepEqual(results, [null, null]);
});

test('peer mode: a peer the guard refuses is not connected, and sends to it are refused', async (t) => {
  const client = await udp(t);
  const ep = await DgramEndpoint.open({
    port: 0,
    ifname: 'lo',
    address: LOCALHOST,
    allowPeer: () => false,
    peer: { address: LOCALHOST, port: client.port },
  });
  t.teardown(() => ep.close());
  t.false(ep.peerConnected);
  const err = await new Promise<Error | null>((r) => ep.send(Buffer.from('x'), LOCALHOST, client.port, r));
  t.regex(String(err?.message), /not on the private network/);
  t.is(ep.stats.refused, 1);
});

test('peer mode: close() frees the port (both sockets are closed)', async (t) => {
  const client = await udp(t);
  const ep = await DgramEndpoint.open({
    port: 0,
    ifname: 'lo',
    address: LOCALHOST,
    peer: { address: LOCALHOST, port: client.port },
  });
  const port = ep.port;
  await ep.close();
  const again = await DgramEndpoint.open({ port, ifname: 'lo', address: LOCALHOST });
  t.is(again.port, port);
  await again.close();
});

test('without peer the socket is exclusive: a second endpoint cannot take the port', async (t) => {
  const ep = await DgramEndpoint.open({ port: 0, ifname: 'lo', address: LOCALHOST });
  t.teardown(() => ep.close());
  await t.throwsAsync(DgramEndpoint.open({ port: ep.port, ifname: 'lo', address: LOCALHOST }), {
    message: /EADDRINUSE/,
  });
});

test('sends to an IP literal go out at once; a name still resolves', async (t) => {
  const client = await udp(t);
  const ep = await DgramEndpoint.open({ port: 0, ifname: 'lo', address: LOCALHOST });
  t.teardown(() => ep.close());
  ep.send(Buffer.from('literal'), LOCALHOST, client.port);
  const viaName = await new Promise<Error | null>((r) => ep.send(Buffer.from('name'), 'localhost', client.port, r));
  t.is(viaName, null);
  await until(() => client.got.length === 2);
  t.deepEqual(client.got.map((b) => String(b).split(':')[1]).sort(), ['literal', 'name']);
});

test('asked buffer sizes are granted up to the kernel maximum; too large an ask is clamped, not an error', async (t) => {
  const max = Number(fs.readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
  const plain = await DgramEndpoint.open({ port: 0, ifname: 'lo', address: LOCALHOST });
  t.teardown(() => plain.close());
  const asked = 4 * 1024 * 1024;
  const big = await DgramEndpoint.open({ port: 0, ifname: 'lo', address: LOCALHOST, recvBufferSize: asked });
  t.teardown(() => big.close());
  // Linux doubles the ask for its bookkeeping and clamps the ask to rmem_max first
  t.is(big.bufferSizes().recv, 2 * Math.min(asked, max));
  if (max > plain.bufferSizes().recv / 2) t.true(big.bufferSizes().recv > plain.bufferSizes().recv);
  const huge = await DgramEndpoint.open({ port: 0, ifname: 'lo', address: LOCALHOST, recvBufferSize: 2 ** 30 });
  t.teardown(() => huge.close());
  t.is(huge.bufferSizes().recv, 2 * max);
});
