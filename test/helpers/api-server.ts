/** An ApiServer on a real socket, 127.0.0.1 and a free port, stopped when the test ends. */
import type http from 'node:http';
import type https from 'node:https';
import { ApiServer, type ApiServerOptions } from '../../firmware/api/server.ts';

export async function startApi(
  t: { teardown(fn: () => Promise<void> | void): void },
  opts: Omit<ApiServerOptions, 'port' | 'hosts'>,
): Promise<{ api: ApiServer; port: number }> {
  const api = new ApiServer({ port: 0, hosts: ['127.0.0.1'], ...opts });
  await api.start();
  t.teardown(() => api.stop());
  return { api, port: listenPort(api) };
}

/** The TCP port the server listens on (its first listener). */
export function listenPort(api: ApiServer): number {
  return Number(
    String((api.status().listen as string[])[0])
      .split(':')
      .pop(),
  );
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request to 127.0.0.1 (http or https), a JSON body if given; the answer collected. */
export function request(mod: typeof http | typeof https, o: https.RequestOptions, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = mod.request(
      {
        host: '127.0.0.1',
        ...o,
        headers: {
          ...o.headers,
          ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}
