/**
 * Runs inside a test namespace: opens the board on the given interfaces and one raw
 * endpoint, prints every datagram as a JSON line, and sends what stdin asks:
 *   raw <addr> <port> <text>       send from the raw (device-bound) endpoint
 *   unicast <addr> <port> <text>   send from a guarded dgram endpoint
 */
import readline from 'node:readline';
import { openBoard } from '../../board/board.ts';

const [privateIf, uplinkIf, portArg] = process.argv.slice(2);
const board = await openBoard({ privateInterface: privateIf!, uplinkInterface: uplinkIf });
const raw = await board.raw.open({ port: Number(portArg ?? 67), broadcast: true });
const uni = await board.unicast.open({ port: 0 });
raw.onMessage((d) => {
  process.stdout.write(`${JSON.stringify({ ...d, data: d.data.toString() })}\n`);
});
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [kind, addr, port, ...text] = line.split(' ');
  const ep = kind === 'raw' ? raw : uni;
  ep.send(Buffer.from(text.join(' ')), addr!, Number(port), (err) => {
    process.stdout.write(`${JSON.stringify({ sent: kind, error: err ? err.message : null })}\n`);
  });
});
rl.on('close', () => {
  board.close();
  process.exit(0);
});
process.stdout.write(`ready ${raw.port}\n`);
