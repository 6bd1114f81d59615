/**
 * A stand-in for the box's HTTP API in e2e tests: records every request and answers it.
 *   node report-sink.ts <addr> <port> [status]
 * Prints "listening", then one JSON line per request:
 *   {"method","url","headers","body","from"}
 * and answers `status` (default 200) with {"ok":<status < 300>}; status "hang" never answers.
 */
import http from 'node:http';

export interface SinkRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  from: string;
}

const [addr, port, status = '200'] = process.argv.slice(2);
const hang = status === 'hang';
const code = hang ? 0 : Number(status);
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const r: SinkRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: Buffer.concat(chunks).toString(),
      from: req.socket.remoteAddress ?? '',
    };
    process.stdout.write(`${JSON.stringify(r)}\n`);
    if (hang) return;
    res.writeHead(code, { 'content-type': 'application/json' }).end(`${JSON.stringify({ ok: code < 300 })}\n`);
  });
});
server.listen(Number(port), addr, () => process.stdout.write('listening\n'));
