/**
 * The UI/API host. For now it serves GET /api/v1/health; the machine, image and
 * event routes join it as their services land. It binds to the uplink and private
 * addresses given (never to a boot-only socket).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Service } from '../app.ts';
import { BootboxError, ErrorCodes } from '../core/errors.ts';

export type HealthProvider = () => Record<string, unknown>;

export interface ApiServerOptions {
  port: number;
  /** Addresses to listen on (the uplink and/or private address, or 127.0.0.1 in tests). */
  hosts: string[];
  health: HealthProvider;
}

export class ApiServer implements Service {
  readonly name = 'api';
  private readonly opts: ApiServerOptions;
  private servers: http.Server[] = [];

  constructor(opts: ApiServerOptions) {
    this.opts = opts;
  }

  async start(): Promise<void> {
    for (const host of this.opts.hosts) {
      const srv = http.createServer((req, res) => this.handle(req, res));
      await new Promise<void>((resolve, reject) => {
        srv.once('error', (e: NodeJS.ErrnoException) =>
          reject(
            e.code === 'EADDRINUSE'
              ? new BootboxError('ADDRESS_IN_USE', `ui.port ${this.opts.port} on ${host} is already in use`)
              : e,
          ),
        );
        srv.listen(this.opts.port, host, () => resolve());
      });
      this.servers.push(srv);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    this.servers = [];
  }

  status(): Record<string, unknown> {
    return {
      listen: this.servers.map((s) => {
        const a = s.address() as AddressInfo;
        return `${a.address}:${a.port}`;
      }),
    };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://box');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Cache-Control', 'no-store');
    if (url.pathname === '/api/v1/health' && req.method === 'GET') {
      send(res, 200, this.opts.health());
      return;
    }
    const code = 'NOT_FOUND';
    send(res, ErrorCodes[code].http, { error: { code, message: `no route for ${req.method} ${url.pathname}` } });
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}
