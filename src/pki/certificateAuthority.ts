/**
 * The TLS PKI for the broker, made with node-forge (X.509, CSRs, PKCS#12:
 * node:crypto has no certificate builder). RSA-2048 keys: forge's X.509 knows
 * RSA only, and Mosquitto/OpenSSL accept it; forge hands RSA key generation
 * to node:crypto, so it is quick.
 *
 * - The investor runs a CA (createCertificateAuthority).
 * - At provisioning the terminal makes its own key and a CSR with CN = its
 *   terminal id (createKeyAndCsr); the key never leaves the terminal.
 * - The CA checks the CSR and issues a client certificate with that CN
 *   (issueClientCertificate). Mosquitto's use_identity_as_username turns the
 *   CN into the user name the ACL's %u patterns confine.
 * - The broker gets a server certificate for its addresses (issueServerCertificate).
 */
import forge from 'node-forge';
import { randomBytes } from 'node:crypto';
import { TallyError } from '../errors.js';

export const SERVER_IDENTITY = 'tally-server';
const TERMINAL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
const KEY_BITS = 2048;
const DAY_MS = 86_400_000;

export interface CertificateAuthority {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface KeyAndCertificate {
  readonly keyPem: string;
  readonly certPem: string;
}

export interface KeyAndCsr {
  readonly keyPem: string;
  readonly csrPem: string;
}

function serialNumber(): string {
  // positive: the first byte below 0x80
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

function validity(cert: forge.pki.Certificate, now: Date, days: number): void {
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  cert.validity.notAfter = new Date(now.getTime() + days * DAY_MS);
}

export function createCertificateAuthority(options: { commonName?: string; organization?: string; validityDays?: number; now?: Date } = {}): CertificateAuthority {
  const keys = forge.pki.rsa.generateKeyPair({ bits: KEY_BITS, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, options.now ?? new Date(), options.validityDays ?? 3650);
  const subject = [
    { name: 'commonName', value: options.commonName ?? 'tallystick investor CA' },
    { name: 'organizationName', value: options.organization ?? 'tallystick' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** Runs on the terminal at provisioning: its TLS key stays there, only the CSR travels */
export function createKeyAndCsr(commonName: string): KeyAndCsr {
  const keys = forge.pki.rsa.generateKeyPair({ bits: KEY_BITS, e: 0x10001 });
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = keys.publicKey;
  csr.setSubject([{ name: 'commonName', value: commonName }]);
  csr.sign(keys.privateKey, forge.md.sha256.create());
  return { keyPem: forge.pki.privateKeyToPem(keys.privateKey), csrPem: forge.pki.certificationRequestToPem(csr) };
}

function loadCa(ca: CertificateAuthority): { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey } {
  return { cert: forge.pki.certificateFromPem(ca.certPem), key: forge.pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey };
}

/**
 * Issues a client certificate for a CSR. The CN must be the expected identity:
 * a terminal id (what the ACL's %u confines), or SERVER_IDENTITY only when
 * asked for explicitly, so a terminal can never obtain the server's rights.
 */
export function issueClientCertificate(
  ca: CertificateAuthority,
  csrPem: string,
  options: { expectedCommonName: string; allowServerIdentity?: boolean; validityDays?: number; now?: Date },
): string {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch (err) {
    throw new TallyError('CONFIG', `not a PEM certificate request: ${(err as Error).message}`, {}, { cause: err });
  }
  let signed = false;
  try {
    signed = csr.verify();
  } catch {
    // forge throws on a signature block that does not even decode
  }
  if (!signed) throw new TallyError('CONFIG', 'certificate request signature invalid');
  const commonName = csr.subject.getField('CN')?.value as string | undefined;
  if (commonName !== options.expectedCommonName) throw new TallyError('CONFIG', `certificate request for ${commonName ?? '?'}, expected ${options.expectedCommonName}`);
  if (commonName === SERVER_IDENTITY ? !options.allowServerIdentity : !TERMINAL_ID_PATTERN.test(commonName)) {
    throw new TallyError('CONFIG', `${commonName} is not a valid terminal id`);
  }
  const { cert: caCert, key: caKey } = loadCa(ca);
  const cert = forge.pki.createCertificate();
  cert.publicKey = csr.publicKey!;
  cert.serialNumber = serialNumber();
  validity(cert, options.now ?? new Date(), options.validityDays ?? 825);
  cert.setSubject([{ name: 'commonName', value: commonName }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** The broker's certificate, for its host names and IP addresses (in tests: localhost and 127.0.0.1) */
export function issueServerCertificate(
  ca: CertificateAuthority,
  options: { commonName?: string; dnsNames?: string[]; ipAddresses?: string[]; validityDays?: number; now?: Date } = {},
): KeyAndCertificate {
  const { cert: caCert, key: caKey } = loadCa(ca);
  const keys = forge.pki.rsa.generateKeyPair({ bits: KEY_BITS, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, options.now ?? new Date(), options.validityDays ?? 825);
  cert.setSubject([{ name: 'commonName', value: options.commonName ?? 'localhost' }]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = [...(options.dnsNames ?? ['localhost']).map((value) => ({ type: 2, value })), ...(options.ipAddresses ?? ['127.0.0.1']).map((ip) => ({ type: 7, ip }))];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { keyPem: forge.pki.privateKeyToPem(keys.privateKey), certPem: forge.pki.certificateToPem(cert) };
}

/** Key, certificate and CA in one password-protected PKCS#12 file, for tools that want one */
export function toPkcs12(keyAndCert: KeyAndCertificate, caCertPem: string, password: string): Uint8Array {
  const p12 = forge.pkcs12.toPkcs12Asn1(
    forge.pki.privateKeyFromPem(keyAndCert.keyPem),
    [forge.pki.certificateFromPem(keyAndCert.certPem), forge.pki.certificateFromPem(caCertPem)],
    password,
    { algorithm: '3des' },
  );
  return new Uint8Array(Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary'));
}

/** The CN of a PEM certificate */
export function commonNameOf(certPem: string): string | undefined {
  return forge.pki.certificateFromPem(certPem).subject.getField('CN')?.value as string | undefined;
}
