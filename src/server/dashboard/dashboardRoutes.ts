/**
 * The console's dashboard, on the HTTP API's own port: GET / is the page, /dashboard/app.js and app.css the
 * bundle that `npm run build` made with esbuild from web/dashboard (uPlot inside; nothing from a CDN), every
 * answer under a strict Content-Security-Policy (only this origin's script, style and data; no inline script,
 * no frames). The page gets its data from the same API, as the logged-in user (access/consoleAuth.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

export const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/** Where the built bundle is: dist/dashboard, seen from dist/src/server/dashboard (built) or src/server/dashboard (tests) */
export function defaultDashboardDir(): string | undefined {
  for (const relative of ['../../../dashboard/', '../../../dist/dashboard/']) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return undefined;
}

export function dashboardRoutes(dir: string | undefined) {
  const cache = new Map<string, Buffer>();
  const send = (reply: FastifyReply, name: string) => {
    void reply.header('content-security-policy', CONTENT_SECURITY_POLICY).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer').header('x-frame-options', 'DENY');
    if (!dir) return reply.code(503).type('text/plain; charset=utf-8').send('the dashboard is not built: run npm run build\n');
    let body = cache.get(name);
    if (!body) {
      body = readFileSync(`${dir}${name}`);
      cache.set(name, body);
    }
    return reply.header('cache-control', name === 'index.html' ? 'no-cache' : 'max-age=300').type(ASSETS[name]!).send(body);
  };
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/', { schema: { hide: true } }, async (_request, reply) => send(reply, 'index.html'));
    app.get('/dashboard/:file', { schema: { hide: true } }, async (request, reply) => {
      const file = (request.params as { file: string }).file;
      if (!Object.hasOwn(ASSETS, file) || file === 'index.html') return reply.code(404).send({ status: 'error', error: { code: 'not-found', message: `no asset ${file}` } });
      return send(reply, file);
    });
  };
}
