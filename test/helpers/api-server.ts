/** An ApiServer on a real socket, 127.0.0.1 and a free port, stopped when the test ends. */
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
