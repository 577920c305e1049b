// The live page: a fixed set of files read once at start. Only these names
// are served, so no request path ever reaches the file system (no traversal).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectPath } from '@tickmesh/kit';

export interface StaticFile {
  body: Buffer;
  contentType: string;
  etag: string;
}

/** URL path -> file name in services/gateway/public. */
export const STATIC_ROUTES: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/style.css': 'style.css',
  '/favicon.svg': 'favicon.svg',
};

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

export const PUBLIC_DIR = projectPath('services', 'gateway', 'public');

export function loadStaticFiles(dir = PUBLIC_DIR): Map<string, StaticFile> {
  const byName = new Map<string, StaticFile>();
  const routes = new Map<string, StaticFile>();
  for (const [route, name] of Object.entries(STATIC_ROUTES)) {
    let file = byName.get(name);
    if (!file) {
      const body = readFileSync(join(dir, name));
      const ext = name.slice(name.lastIndexOf('.') + 1);
      file = {
        body,
        contentType: TYPES[ext] ?? 'application/octet-stream',
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      };
      byName.set(name, file);
    }
    routes.set(route, file);
  }
  return routes;
}

/** Headers of every page response: nothing external may load, nothing may frame the page. */
export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};
