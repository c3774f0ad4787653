// The agent's HTTP endpoints: /metrics (Prometheus), /healthz (the process
// serves), /readyz (links up, store open), /status (JSON for `dwcp status`),
// /wal/<stream>/<file> (spooled WAL for restore_command, see wal-file-server.ts).

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WAL_FILE_PATH_PREFIX, serveWalFile, type SpoolLookup } from '../streams/pg-wal/wal-file-server.ts';
import type { Metrics } from './metrics.ts';

/** Options of the HTTP server. */
export interface HttpServerOptions {
  host: string;
  port: number;
  metrics: Metrics;
  healthy(): boolean;
  ready(): boolean;
  status(): unknown;
  /** Spools of pg-wal streams landing here, served under /wal/ (absent: /wal/ is 404). */
  walSpools?: SpoolLookup;
}

/** A started HTTP server. */
export interface HttpServer {
  port: number;
  close(): Promise<void>;
}

/** Serve the agent's HTTP endpoints. */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET') return reply(405, 'method not allowed\n');
    if (path.startsWith(WAL_FILE_PATH_PREFIX) && options.walSpools) {
      const lookup = options.walSpools;
      void serveWalFile(req, res, lookup).catch(() => res.destroy());
      return;
    }
    switch (path) {
      case '/metrics':
        options.metrics.registry.metrics().then(
          (text) => reply(200, text, options.metrics.registry.contentType),
          (err: Error) => reply(500, `metrics: ${err.message}\n`),
        );
        return;
      case '/healthz':
        return options.healthy() ? reply(200, 'ok\n') : reply(503, 'stopped\n');
      case '/readyz':
        return options.ready() ? reply(200, 'ready\n') : reply(503, 'not ready\n');
      case '/status':
        return reply(200, JSON.stringify(options.status(), null, 2) + '\n', 'application/json');
      default:
        return reply(404, 'not found: try /metrics, /healthz, /readyz, /status\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
