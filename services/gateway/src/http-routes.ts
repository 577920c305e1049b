// HTTP on the gateway port: /healthz (process), /readyz (upstream live and,
// with api-key auth, the customer service reachable), /metrics, and the live
// page. GET and HEAD only; unknown paths are 404.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { HealthMonitor } from '@tickmesh/kit';
import { SECURITY_HEADERS, type StaticFile } from './static-files.js';

export interface HttpRoutesOptions {
  registry: Registry;
  health: HealthMonitor;
  /** Undefined: the page is not served (SERVE_STATIC=false). */
  staticFiles?: Map<string, StaticFile>;
}

export function createHttpHandler(
  opts: HttpRoutesOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const head = req.method === 'HEAD';
    if (path === '/healthz' || path === '/readyz') {
      const report = path === '/healthz' ? opts.health.liveness() : opts.health.readiness();
      const body = JSON.stringify(report);
      res.writeHead(report.ok ? 200 : 503, {
        'content-type': 'application/json',
        'cache-control': 'no-store',
      });
      res.end(head ? undefined : body);
      return;
    }
    if (path === '/metrics') {
      opts.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': opts.registry.contentType, 'cache-control': 'no-store' });
          res.end(head ? undefined : body);
        },
        () => res.writeHead(500).end(),
      );
      return;
    }
    const file = opts.staticFiles?.get(path);
    if (!file) {
      res
        .writeHead(404, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS })
        .end('not found\n');
      return;
    }
    const headers = {
      'content-type': file.contentType,
      etag: file.etag,
      // Revalidate every time: a deploy is visible at once, an unchanged file costs a 304.
      'cache-control': 'no-cache',
      ...SECURITY_HEADERS,
    };
    if (req.headers['if-none-match'] === file.etag) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': file.body.length });
    res.end(head ? undefined : file.body);
  };
}
