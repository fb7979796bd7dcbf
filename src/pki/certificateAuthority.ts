/**
 * The TLS PKI for the broker, made with node-forge (X.509, CSRs, PKCS#12:
 * node:crypto has no certificate builder). RSA-2048 keys: forge's X.509 knows
 * RSA only, and Mosquitto/OpenSSL accept it; forge hands RSA key generation
 * to node:crypto, so it is quick.
 *
 * Every certificate passes `openssl verify -x509_strict` (test/pki): the CA has
 * basicConstraints CA with pathlen 0 (it signs leaves only), keyUsage
 * keyCertSign+cRLSign, SKI; every leaf has SKI and an AKI naming the CA's key,
 * and only the key usages its role needs:
 *   terminal  digitalSignature, clientAuth           (a TLS client only signs)
 *   broker    digitalSignature+keyEncipherment, serverAuth, SAN   (RSA key exchange stays possible)
 *   server    the ingest server: clientAuth to the broker as tally-server, serverAuth for its
 *             HTTPS (EST), SAN
 * The CA key is kept encrypted (PKCS#8, AES-256-CBC, PBKDF2) by pkiStore.
 */
import forge from 'node-forge';
import { createHash, randomBytes } from 'node:crypto';
import { TallyError } from '../errors.js';

export const SERVER_IDENTITY = 'tally-server';
export const TERMINAL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
const KEY_BITS = 2048;
const DAY_MS = 86_400_000;
export const TERMINAL_VALIDITY_DAYS = 397;
export const CA_VALIDITY_DAYS = 3650;

export type CertificateRole = 'terminal' | 'broker' | 'server';

export interface CertificateAuthority {
  readonly certPem: string;
  /** Unencrypted PEM in memory only: pkiStore writes it encrypted */
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
  // positive and 16 bytes long: the first byte in 0x01..0x7f
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
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
  validity(cert, options.now ?? new Date(), options.validityDays ?? CA_VALIDITY_DAYS);
  const subject = [
    { name: 'commonName', value: options.commonName ?? 'tallystick investor TLS CA' },
    { name: 'organizationName', value: options.organization ?? 'tallystick' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    // pathlen 0: this CA signs leaves only, never another CA
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: cert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** Runs on the terminal at provisioning: its TLS key stays there, only the CSR travels */
export function createKeyAndCsr(commonName: string): KeyAndCsr {
  const keys = forge.pki.rsa.generateKeyPair({ bits: KEY_BITS, e: 0x10001 });
  return { keyPem: forge.pki.privateKeyToPem(keys.privateKey), csrPem: csrForKey(keys.privateKey, keys.publicKey, commonName) };
}

function csrForKey(privateKey: forge.pki.rsa.PrivateKey, publicKey: forge.pki.rsa.PublicKey, commonName: string): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = publicKey;
  csr.setSubject([{ name: 'commonName', value: commonName }]);
  csr.sign(privateKey, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

export function loadCa(ca: CertificateAuthority): { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey } {
  return { cert: forge.pki.certificateFromPem(ca.certPem), key: forge.pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey };
}

/** A CSR in PEM or DER (EST sends DER, base64), its signature checked; the CN it asks for */
export function parseCsr(csr: string | Uint8Array): { csr: forge.pki.CertificateSigningRequest; commonName: string | undefined } {
  let parsed: forge.pki.CertificateSigningRequest;
  try {
    parsed =
      typeof csr === 'string'
        ? forge.pki.certificationRequestFromPem(csr)
        : (forge.pki.certificationRequestFromAsn1(forge.asn1.fromDer(forge.util.createBuffer(Buffer.from(csr).toString('binary')))) as forge.pki.CertificateSigningRequest);
  } catch (err) {
    throw new TallyError('PKI_REFUSED', `not a PKCS#10 certificate request: ${(err as Error).message}`, {}, { cause: err });
  }
  let signed = false;
  try {
    signed = parsed.verify();
  } catch {
    // forge throws on a signature block that does not even decode
  }
  if (!signed) throw new TallyError('PKI_REFUSED', 'certificate request signature invalid');
  const key = parsed.publicKey as forge.pki.rsa.PublicKey | null;
  if (!key || typeof key.n?.bitLength !== 'function' || key.n.bitLength() < KEY_BITS) throw new TallyError('PKI_REFUSED', `an RSA key of at least ${KEY_BITS} bits is needed`);
  return { csr: parsed, commonName: parsed.subject.getField('CN')?.value as string | undefined };
}

interface LeafSpec {
  readonly role: CertificateRole;
  readonly commonName: string;
  readonly publicKey: forge.pki.PublicKey;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly validityDays?: number;
  readonly now?: Date;
}

function roleExtensions(spec: LeafSpec, authorityKeyId: string): object[] {
  const altNames = [...(spec.dnsNames ?? []).map((value) => ({ type: 2, value })), ...(spec.ipAddresses ?? []).map((ip) => ({ type: 7, ip }))];
  const common = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: authorityKeyId },
  ];
  switch (spec.role) {
    case 'terminal':
      return [...common, { name: 'keyUsage', digitalSignature: true, critical: true }, { name: 'extKeyUsage', clientAuth: true }];
    case 'broker':
      if (altNames.length === 0) throw new TallyError('USAGE', 'a broker certificate needs at least one --dns or --ip name');
      return [...common, { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true }, { name: 'extKeyUsage', serverAuth: true }, { name: 'subjectAltName', altNames }];
    case 'server':
      if (altNames.length === 0) throw new TallyError('USAGE', 'a server certificate needs at least one --dns or --ip name (its HTTPS address)');
      return [
        ...common,
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
        { name: 'subjectAltName', altNames },
      ];
  }
}

/** Signs a leaf certificate for a public key; returns PEM and the serial (hex) */
export function signLeaf(ca: CertificateAuthority, spec: LeafSpec): { certPem: string; serial: string } {
  const { cert: caCert, key: caKey } = loadCa(ca);
  const cert = forge.pki.createCertificate();
  cert.publicKey = spec.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, spec.now ?? new Date(), spec.validityDays ?? TERMINAL_VALIDITY_DAYS);
  cert.setSubject([{ name: 'commonName', value: spec.commonName }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions(roleExtensions(spec, caCert.generateSubjectKeyIdentifier().getBytes()));
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), serial: cert.serialNumber };
}

/**
 * Issues a terminal's client certificate for its CSR. The CN must be the expected identity:
 * a terminal id (what the ACL's %u confines), or SERVER_IDENTITY only when
 * asked for explicitly, so a terminal can never obtain the server's rights.
 */
export function issueClientCertificate(
  ca: CertificateAuthority,
  csrPem: string | Uint8Array,
  options: { expectedCommonName: string; allowServerIdentity?: boolean; validityDays?: number; now?: Date },
): string {
  return issueForCsr(ca, csrPem, options).certPem;
}

export function issueForCsr(
  ca: CertificateAuthority,
  csrInput: string | Uint8Array,
  options: { expectedCommonName: string; allowServerIdentity?: boolean; validityDays?: number; now?: Date },
): { certPem: string; serial: string } {
  const { csr, commonName } = parseCsr(csrInput);
  if (commonName !== options.expectedCommonName) throw new TallyError('PKI_REFUSED', `certificate request for ${commonName ?? '?'}, expected ${options.expectedCommonName}`);
  if (commonName === SERVER_IDENTITY ? !options.allowServerIdentity : !TERMINAL_ID_PATTERN.test(commonName)) {
    throw new TallyError('PKI_REFUSED', `${commonName} is not a valid terminal id`);
  }
  return signLeaf(ca, {
    role: 'terminal',
    commonName,
    publicKey: csr.publicKey!,
    ...(options.validityDays !== undefined ? { validityDays: options.validityDays } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
}

/** A key made here and its certificate: for the broker and the server, which live with the CA operator */
export function issueKeyAndCertificate(
  ca: CertificateAuthority,
  options: { role: 'broker' | 'server'; commonName?: string; dnsNames?: readonly string[]; ipAddresses?: readonly string[]; validityDays?: number; now?: Date },
): KeyAndCertificate & { serial: string } {
  const keys = forge.pki.rsa.generateKeyPair({ bits: KEY_BITS, e: 0x10001 });
  const { certPem, serial } = signLeaf(ca, {
    role: options.role,
    commonName: options.commonName ?? (options.role === 'server' ? SERVER_IDENTITY : (options.dnsNames?.[0] ?? options.ipAddresses?.[0] ?? 'broker')),
    publicKey: keys.publicKey,
    dnsNames: options.dnsNames ?? [],
    ipAddresses: options.ipAddresses ?? [],
    validityDays: options.validityDays ?? TERMINAL_VALIDITY_DAYS,
    ...(options.now ? { now: options.now } : {}),
  });
  return { keyPem: forge.pki.privateKeyToPem(keys.privateKey), certPem, serial };
}

/** The broker's certificate, for its host names and IP addresses (in tests: localhost and 127.0.0.1) */
export function issueServerCertificate(
  ca: CertificateAuthority,
  options: { commonName?: string; dnsNames?: string[]; ipAddresses?: string[]; validityDays?: number; now?: Date } = {},
): KeyAndCertificate {
  const { keyPem, certPem } = issueKeyAndCertificate(ca, {
    role: 'broker',
    commonName: options.commonName ?? 'localhost',
    dnsNames: options.dnsNames ?? ['localhost'],
    ipAddresses: options.ipAddresses ?? ['127.0.0.1'],
    ...(options.validityDays !== undefined ? { validityDays: options.validityDays } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  return { keyPem, certPem };
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

/** DER bytes of the first certificate in a PEM text */
export function certificateDer(certPem: string): Buffer {
  const cert = forge.pki.certificateFromPem(certPem);
  return Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
}

/** SHA-256 of the certificate's DER, lower-case hex: what the mother card's record names */
export function certificateFingerprint(certPem: string): string {
  return createHash('sha256').update(certificateDer(certPem)).digest('hex');
}

/** The CA's key as one RSA private key, for signing CRLs */
export function caPrivateKey(ca: CertificateAuthority): forge.pki.rsa.PrivateKey {
  return loadCa(ca).key;
}
