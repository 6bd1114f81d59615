/**
 * A tiny UDP peer for namespace tests.
 *   send <addr> <port> <text> [srcPort]   one datagram (broadcast allowed)
 *   listen <port>                         print each datagram as a JSON line
 */
import dgram from 'node:dgram';

const [mode, a, b, c, d] = process.argv.slice(2);
const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
if (mode === 'send') {
  sock.bind(Number(d ?? 0), () => {
    sock.setBroadcast(true);
    sock.send(Buffer.from(c ?? ''), Number(b), a!, (err) => {
      if (err) {
        console.error(err.message);
        process.exit(1);
      }
      sock.close();
    });
  });
} else if (mode === 'listen') {
  sock.on('message', (data, rinfo) => {
    process.stdout.write(`${JSON.stringify({ data: data.toString(), from: rinfo.address, port: rinfo.port })}\n`);
  });
  sock.bind(Number(a), () => process.stdout.write('listening\n'));
} else {
  console.error('usage: udp-tool send|listen …');
  process.exit(2);
}
