/**
 * The terminal's TLS identity in its data folder (DATA/tls/):
 *   key.pem        its TLS key, made at provisioning; never leaves the terminal (mode 0600)
 *   csr.pem        the PKCS#10 request for it (CN = terminal id): what the factory signs
 *   cert.pem       its certificate, from the factory (tally pki sign) or online (EST)
 *   ca.pem         the TLS CA; trusted only with ...
 *   ca-record.json the mother card's record naming ca.pem's fingerprint (caVouch.ts)
 *
 * The EST client (RFC 7030): GET /.well-known/est/cacerts, then POST
 * simpleenroll (authenticated by a one-time token as HTTP Basic: terminal id
 * and token) or simplereenroll (authenticated by the current certificate in
 * the TLS handshake); PKCS#10 in, certs-only PKCS#7 out, both base64.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { isTallyError, TallyError } from '../errors.js';
import { checkCaVouched } from './caVouch.js';
import { createKeyAndCsr } from './certificateAuthority.js';
import { certificatesFromPkcs7, csrPemToDer, decodeBase64Body, encodeBase64Body } from './pkcs7.js';

export const EST_PATH = '/.well-known/est';
/** Not in RFC 7030: the mother card's record for the CA that /cacerts returns */
export const EST_CA_RECORD_PATH = `${EST_PATH}/ca-record`;

export function terminalTlsPaths(dataDir: string): { dir: string; key: string; csr: string; cert: string; ca: string; record: string } {
  const dir = join(dataDir, 'tls');
  return { dir, key: join(dir, 'key.pem'), csr: join(dir, 'csr.pem'), cert: join(dir, 'cert.pem'), ca: join(dir, 'ca.pem'), record: join(dir, 'ca-record.json') };
}

function writeAtomic(path: string, text: string, mode: number): void {
  writeFileSync(`${path}.tmp`, text, { mode });
  renameSync(`${path}.tmp`, path);
}

/** At provisioning: the terminal's TLS key and CSR (kept if already there) */
export function prepareTerminalTls(dataDir: string, terminalId: string): { csrPath: string; made: boolean } {
  const p = terminalTlsPaths(dataDir);
  if (existsSync(p.key) && existsSync(p.csr)) return { csrPath: p.csr, made: false };
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  const { keyPem, csrPem } = createKeyAndCsr(terminalId);
  writeAtomic(p.key, keyPem, 0o600);
  writeAtomic(p.csr, csrPem, 0o644);
  return { csrPath: p.csr, made: true };
}

export interface CertificateExpiry {
  readonly notAfter: string;
  readonly daysLeft: number;
}

export function certificateExpiryOf(certPem: string | Buffer, now = Date.now()): CertificateExpiry {
  const notAfter = new Date(new X509Certificate(certPem).validTo);
  return { notAfter: notAfter.toISOString(), daysLeft: Math.floor((notAfter.getTime() - now) / 86_400_000) };
}

interface EstAnswer {
  readonly status: number;
  readonly body: string;
}

function estRequest(
  serverUrl: string,
  path: string,
  options: { method: 'GET' | 'POST'; ca?: string; cert?: string; key?: string; body?: string; auth?: string; timeoutMs?: number },
): Promise<EstAnswer> {
  const url = new URL(path, serverUrl);
  if (url.protocol !== 'https:') throw new TallyError('ENROL_FAILED', `${serverUrl}: EST runs over https only`);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method,
        // before the CA is vouched for, only /cacerts and /ca-record are read, and both are checked against the root
        rejectUnauthorized: options.ca !== undefined,
        ...(options.ca ? { ca: options.ca } : {}),
        ...(options.cert ? { cert: options.cert, key: options.key } : {}),
        headers: {
          ...(options.body !== undefined ? { 'content-type': 'application/pkcs10', 'content-transfer-encoding': 'base64' } : {}),
          ...(options.auth ? { authorization: `Basic ${Buffer.from(options.auth).toString('base64')}` } : {}),
        },
        timeout: options.timeoutMs ?? 15_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
          if (body.length > 1_000_000) req.destroy(new Error('answer too large'));
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => reject(new TallyError('ENROL_FAILED', `${url.origin}${path}: ${err.message}`, {}, { cause: err })));
    req.end(options.body);
  });
}

function refusal(answer: EstAnswer, what: string): TallyError {
  // our server answers refusals as JSON {error: {code, message}}
  let code: string | undefined;
  let message = answer.body.slice(0, 300);
  try {
    const parsed = JSON.parse(answer.body) as { error?: { code?: string; message?: string } };
    code = parsed.error?.code;
    message = parsed.error?.message ?? message;
  } catch {
    // not JSON
  }
  if (code === 'ENROL_TOKEN' || code === 'CERT_REVOKED' || code === 'PKI_REFUSED') return new TallyError(code, message);
  return new TallyError('ENROL_FAILED', `${what}: HTTP ${answer.status} ${message}`);
}

/** Fetches the CA and the mother card's record for it; keeps them only when the record verifies with the root */
export async function fetchVouchedCa(serverUrl: string, dataDir: string, rootPublicKey: Uint8Array): Promise<{ caPem: string; caFingerprint: string }> {
  const cacerts = await estRequest(serverUrl, `${EST_PATH}/cacerts`, { method: 'GET' });
  if (cacerts.status !== 200) throw refusal(cacerts, 'cacerts');
  const certs = certificatesFromPkcs7(decodeBase64Body(cacerts.body));
  const record = await estRequest(serverUrl, EST_CA_RECORD_PATH, { method: 'GET' });
  if (record.status !== 200) throw new TallyError('TLS_CA_NOT_VOUCHED', `the server has no mother-card record for its CA (HTTP ${record.status}): tally issue certify-ca --pki DIR`);
  const caPem = certs.find((pem) => {
    try {
      checkCaVouched(pem, record.body, rootPublicKey);
      return true;
    } catch (err) {
      if (isTallyError(err, 'TLS_CA_NOT_VOUCHED')) return false;
      throw err;
    }
  });
  if (!caPem) checkCaVouched(certs[0] ?? '', record.body, rootPublicKey); // throws with the reason
  const { caFingerprint } = checkCaVouched(caPem!, record.body, rootPublicKey);
  const p = terminalTlsPaths(dataDir);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  writeAtomic(p.ca, caPem!, 0o644);
  writeAtomic(p.record, record.body, 0o644);
  return { caPem: caPem!, caFingerprint };
}

function certificateFromAnswer(answer: EstAnswer, what: string, keyPem: string): string {
  if (answer.status !== 200) throw refusal(answer, what);
  const [certPem] = certificatesFromPkcs7(decodeBase64Body(answer.body));
  if (!certPem) throw new TallyError('ENROL_FAILED', `${what}: no certificate in the answer`);
  const cert = new X509Certificate(certPem);
  // the certificate must be for our key
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new TallyError('ENROL_FAILED', `${what}: the certificate is not for this terminal's key`);
  return certPem;
}

/** First enrolment with a one-time token: DATA/tls/cert.pem for the key made at provisioning */
export async function enrolWithToken(options: { serverUrl: string; dataDir: string; terminalId: string; token: string; rootPublicKey: Uint8Array }): Promise<CertificateExpiry & { caFingerprint: string }> {
  const p = terminalTlsPaths(options.dataDir);
  prepareTerminalTls(options.dataDir, options.terminalId);
  const { caPem, caFingerprint } = await fetchVouchedCa(options.serverUrl, options.dataDir, options.rootPublicKey);
  const keyPem = readFileSync(p.key, 'utf8');
  const answer = await estRequest(options.serverUrl, `${EST_PATH}/simpleenroll`, {
    method: 'POST',
    ca: caPem,
    body: encodeBase64Body(csrPemToDer(readFileSync(p.csr, 'utf8'))),
    auth: `${options.terminalId}:${options.token}`,
  });
  const certPem = certificateFromAnswer(answer, 'simpleenroll', keyPem);
  writeAtomic(p.cert, certPem, 0o644);
  return { ...certificateExpiryOf(certPem), caFingerprint };
}

/**
 * Renewal: a new key and CSR, sent with the current certificate as TLS client authentication; the new key
 * and certificate replace the old ones together only once the server has answered.
 */
export async function reenrol(options: { serverUrl: string; dataDir: string; terminalId: string }): Promise<CertificateExpiry> {
  const p = terminalTlsPaths(options.dataDir);
  const caPem = readFileSync(p.ca, 'utf8');
  const { keyPem, csrPem } = createKeyAndCsr(options.terminalId);
  const answer = await estRequest(options.serverUrl, `${EST_PATH}/simplereenroll`, {
    method: 'POST',
    ca: caPem,
    cert: readFileSync(p.cert, 'utf8'),
    key: readFileSync(p.key, 'utf8'),
    body: encodeBase64Body(csrPemToDer(csrPem)),
  });
  const certPem = certificateFromAnswer(answer, 'simplereenroll', keyPem);
  writeAtomic(`${p.key}.new`, keyPem, 0o600);
  writeAtomic(p.cert, certPem, 0o644);
  renameSync(`${p.key}.new`, p.key);
  writeAtomic(p.csr, csrPem, 0o644);
  return certificateExpiryOf(certPem);
}
