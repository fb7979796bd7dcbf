/**
 * EST (RFC 7030) for the terminals, framework-free so it moves with the HTTP
 * layer: a request in (method, path, headers, body, the TLS peer's
 * certificate), an answer out. Routes under /.well-known/est:
 *   GET  cacerts         certs-only PKCS#7 of the TLS CA, base64
 *   GET  ca-record       the mother card's record for that CA (JSON; our addition)
 *   POST simpleenroll    PKCS#10 (base64) + HTTP Basic terminal-id:one-time-token -> PKCS#7 certs-only
 *   POST simplereenroll  PKCS#10 (base64), authenticated by the current certificate in the TLS handshake
 * A retired terminal (registry) or a revoked certificate gets nothing.
 */
import { X509Certificate } from 'node:crypto';
import { codeOf, isTallyError, TallyError, type ErrorName } from '../../errors.js';
import type { CertificateAuthority } from '../../pki/certificateAuthority.js';
import { certsOnlyPkcs7, decodeBase64Body, encodeBase64Body } from '../../pki/pkcs7.js';
import type { PkiStore } from '../../pki/pkiStore.js';
import type { Logger } from '../../util/logger.js';

export const EST_PREFIX = '/.well-known/est/';
const MAX_BODY = 16_384;

export interface EstRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
  /** The client certificate the TLS handshake presented (PEM), if any */
  readonly peerCertificatePem?: string;
}

export interface EstAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface EstContext {
  readonly pki: PkiStore;
  /** The unlocked CA (the server holds its passphrase) */
  readonly ca: CertificateAuthority;
  /** Whether the registry has this terminal retired */
  readonly isRetired: (terminalId: string) => Promise<boolean>;
  readonly log: Logger;
}

const STATUS: Partial<Record<ErrorName, number>> = { ENROL_TOKEN: 401, CERT_REVOKED: 403, PKI_REFUSED: 400, USAGE: 400 };

function refusal(err: unknown): EstAnswer {
  const code = codeOf(err);
  const status = STATUS[code] ?? 500;
  const message = isTallyError(err) ? err.message : 'internal error';
  return { status, headers: { 'content-type': 'application/json', ...(status === 401 ? { 'www-authenticate': 'Basic realm="tallystick EST"' } : {}) }, body: JSON.stringify({ error: { code, message } }) };
}

const pkcs7Answer = (pems: string[]): EstAnswer => ({
  status: 200,
  headers: { 'content-type': 'application/pkcs7-mime; smime-type=certs-only', 'content-transfer-encoding': 'base64' },
  body: encodeBase64Body(certsOnlyPkcs7(pems)),
});

function basicAuth(headers: EstRequest['headers']): { user: string; password: string } {
  const h = headers.authorization;
  const value = Array.isArray(h) ? h[0] : h;
  const m = value ? /^Basic ([A-Za-z0-9+/=]+)$/.exec(value) : null;
  if (!m) throw new TallyError('ENROL_TOKEN', 'simpleenroll needs HTTP Basic terminal-id:token');
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) throw new TallyError('ENROL_TOKEN', 'malformed Basic credentials');
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

async function refuseRetired(ctx: EstContext, terminalId: string): Promise<void> {
  if (await ctx.isRetired(terminalId)) throw new TallyError('CERT_REVOKED', `${terminalId} is retired in the registry`);
}

export async function handleEst(req: EstRequest, ctx: EstContext): Promise<EstAnswer | undefined> {
  if (!req.path.startsWith(EST_PREFIX)) return undefined;
  const op = req.path.slice(EST_PREFIX.length);
  try {
    if (req.method === 'GET' && op === 'cacerts') return pkcs7Answer([ctx.pki.caCertPem]);
    if (req.method === 'GET' && op === 'ca-record') {
      const record = ctx.pki.caRecord();
      return record ? { status: 200, headers: { 'content-type': 'application/json' }, body: record } : { status: 404, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { code: 'TLS_CA_NOT_VOUCHED', message: 'no mother-card record for this CA' } }) };
    }
    if (req.method === 'POST' && (op === 'simpleenroll' || op === 'simplereenroll')) {
      if (req.body.length > MAX_BODY) throw new TallyError('PKI_REFUSED', 'request too large');
      const csr = decodeBase64Body(req.body);
      if (op === 'simpleenroll') {
        const { user: terminalId, password: token } = basicAuth(req.headers);
        await refuseRetired(ctx, terminalId);
        ctx.pki.consumeToken(terminalId, token);
        const { certPem, issued } = ctx.pki.signTerminal(ctx.ca, csr, terminalId);
        ctx.log.info({ terminalId, serial: issued.serial, notAfter: issued.notAfter }, 'EST enrolled');
        return pkcs7Answer([certPem]);
      }
      if (!req.peerCertificatePem) throw new TallyError('ENROL_TOKEN', 'simplereenroll needs the current certificate in the TLS handshake');
      const current = ctx.pki.validCertificate(req.peerCertificatePem);
      if (!current || current.role !== 'terminal') throw new TallyError('CERT_REVOKED', `certificate ${new X509Certificate(req.peerCertificatePem).serialNumber} is revoked or not ours`);
      if (Date.parse(current.notAfter) <= Date.now()) throw new TallyError('CERT_REVOKED', 'the current certificate has expired: enrol again with a token');
      await refuseRetired(ctx, current.commonName);
      const { certPem, issued } = ctx.pki.signTerminal(ctx.ca, csr, current.commonName, { renews: current.serial });
      ctx.log.info({ terminalId: current.commonName, serial: issued.serial, renews: current.serial, notAfter: issued.notAfter }, 'EST re-enrolled');
      return pkcs7Answer([certPem]);
    }
    return { status: 404, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { code: 'USAGE', message: `no EST operation ${req.method} ${op}` } }) };
  } catch (err) {
    ctx.log.warn({ op, code: codeOf(err), detail: (err as Error).message }, 'EST refused');
    return refusal(err);
  }
}
