/**
 * An aedes broker in a worker thread (see mqtt-brokers.ts startAedesWorker): the flood tests
 * measure the event loop of the box's dispatcher, not the broker's own parsing of a flooded
 * socket. Relays every client publish (topic, payload, authenticated username) to the parent
 * and publishes what the parent sends.
 */
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { Aedes, type AuthenticateError, type Client } from 'aedes';

const users = workerData.users as Record<string, string>;
const identities = new WeakMap<Client, string>();
const aedes = await Aedes.createBroker({
  authenticate: (client, username, password, done) => {
    if (username === undefined) return done(null, true);
    if (users[username] !== undefined && password?.toString() === users[username]) {
      identities.set(client, username);
      return done(null, true);
    }
    const e = new Error('bad user name or password') as AuthenticateError;
    e.returnCode = 4;
    return done(e, null);
  },
});
// Publishes go to the parent in batches: one message per publish would cost the parent's
// loop more (structured clone per message) than the dispatcher under test.
let batch: { topic: string; payload: string; identity: string | undefined }[] = [];
aedes.on('publish', (packet, client) => {
  if (!client) return;
  if (batch.length === 0) setImmediate(flush);
  batch.push({
    topic: packet.topic,
    payload: Buffer.from(packet.payload).toString('latin1'),
    identity: identities.get(client),
  });
});
function flush() {
  parentPort!.postMessage({ type: 'publishes', list: batch });
  batch = [];
}
const server = net.createServer(aedes.handle);
server.listen(0, '127.0.0.1', () => {
  parentPort!.postMessage({ type: 'ready', port: (server.address() as net.AddressInfo).port });
});
parentPort!.on('message', (m: { type: string; topic: string; payload: Uint8Array; qos: 0 | 1; retain: boolean }) => {
  if (m.type === 'publish') {
    aedes.publish(
      { cmd: 'publish', topic: m.topic, payload: Buffer.from(m.payload), qos: m.qos, retain: m.retain, dup: false },
      () => {},
    );
  } else if (m.type === 'close') {
    aedes.close(() => server.close(() => process.exit(0)));
  }
});
