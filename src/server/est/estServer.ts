/**
 * The server's HTTPS listener for EST (estRoutes.ts): its certificate from the
 * TLS CA (tally pki issue server), client certificates requested but not
 * required (simpleenroll has none yet; simplereenroll needs one from our CA).
 */
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { handleEst, type EstContext } from './estRoutes.js';

export interface RunningEst {
  readonly url: string;
  close(): Promise<void>;
}

function peerPem(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const raw = socket.getPeerCertificate()?.raw;
  if (!raw || raw.length === 0) return undefined;
  return `-----BEGIN CERTIFICATE-----\n${raw.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
}

export async function startEstServer(options: { host: string; port: number; certPem: string; keyPem: string; context: EstContext }): Promise<RunningEst> {
  const server: Server = createServer({ cert: options.certPem, key: options.keyPem, ca: options.context.pki.caCertPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (req, res) => {
    let body = '';
    let tooLarge = false;
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > 65_536) tooLarge = true;
    });
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'https://est').pathname;
      const pem = peerPem(req.socket as TLSSocket);
      const answer = tooLarge
        ? Promise.resolve({ status: 413, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { code: 'PKI_REFUSED', message: 'request too large' } }) })
        : handleEst({ method: req.method ?? 'GET', path, headers: req.headers, body, ...(pem ? { peerCertificatePem: pem } : {}) }, options.context);
      void answer.then((a) => {
        if (!a) {
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'USAGE', message: 'not an EST path' } }));
          return;
        }
        res.writeHead(a.status, a.headers).end(a.body);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `https://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
