/**
 * The investor's TLS CA on disk (`tally pki`), one folder:
 *   ca.pem          the CA certificate (public: the broker's cafile, the terminals' trust)
 *   ca-key.pem      its key, PKCS#8 encrypted (AES-256-CBC, PBKDF2) with the operator's passphrase
 *   index.json      every certificate issued (serial, role, name, validity, status), the CRL number,
 *                   the one-time enrolment tokens (their SHA-256 only)
 *   certs/SERIAL.pem every certificate issued
 *   crl.pem         the current CRL (Mosquitto's crlfile), re-signed before it lapses
 *   ca-record.json  the mother card's record certifying ca.pem (tally issue certify-ca)
 * Writers (the CLI, the server's EST and revocation) take a lock folder and
 * write by rename, so a reader never sees half a file.
 */
import { createHash, createPrivateKey, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TallyError } from '../errors.js';
import {
  createCertificateAuthority,
  issueForCsr,
  issueKeyAndCertificate,
  TERMINAL_VALIDITY_DAYS,
  type CertificateAuthority,
  type CertificateRole,
} from './certificateAuthority.js';
import { buildCrl, type RevocationReason } from './crl.js';

const DAY_MS = 86_400_000;
/** A CRL is valid a week and re-signed when less than half of that is left */
const CRL_DAYS = 7;
const MIN_PASSPHRASE = 12;

export interface IssuedCertificate {
  readonly serial: string;
  readonly role: CertificateRole;
  readonly commonName: string;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuedAt: string;
  readonly status: 'valid' | 'revoked';
  readonly revokedAt?: string;
  readonly reason?: RevocationReason;
  /** The certificate this one renews */
  readonly renews?: string;
}

interface EnrolmentToken {
  readonly terminalId: string;
  readonly sha256: string;
  readonly expiresAt: string;
  readonly usedAt?: string;
}

interface PkiIndex {
  readonly format: 'tallystick-pki/1';
  crlNumber: number;
  crlNextUpdate?: string;
  certificates: IssuedCertificate[];
  tokens: EnrolmentToken[];
}

export function encryptKey(keyPem: string, passphrase: string): string {
  return createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
}

export function decryptKey(encryptedPem: string, passphrase: string): string {
  try {
    return createPrivateKey({ key: encryptedPem, passphrase }).export({ type: 'pkcs1', format: 'pem' }) as string;
  } catch (err) {
    throw new TallyError('PKI_PASSPHRASE', 'the CA key does not open with this passphrase', {}, { cause: err });
  }
}

function writeAtomic(path: string, text: string, mode = 0o644): void {
  writeFileSync(`${path}.tmp`, text, { mode });
  renameSync(`${path}.tmp`, path);
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

export class PkiStore {
  private constructor(readonly dir: string) {}

  static paths(dir: string): { ca: string; key: string; index: string; crl: string; certs: string; record: string } {
    return { ca: join(dir, 'ca.pem'), key: join(dir, 'ca-key.pem'), index: join(dir, 'index.json'), crl: join(dir, 'crl.pem'), certs: join(dir, 'certs'), record: join(dir, 'ca-record.json') };
  }

  /** Makes the CA: key encrypted at rest, an empty CRL for the broker to load */
  static init(dir: string, passphrase: string, options: { commonName?: string; now?: Date } = {}): PkiStore {
    if (passphrase.length < MIN_PASSPHRASE) throw new TallyError('PKI_PASSPHRASE', `the CA passphrase needs at least ${MIN_PASSPHRASE} characters`);
    const p = PkiStore.paths(dir);
    if (existsSync(p.ca)) throw new TallyError('USAGE', `${dir} holds a CA already (${p.ca})`);
    mkdirSync(p.certs, { recursive: true });
    const ca = createCertificateAuthority({ ...(options.commonName ? { commonName: options.commonName } : {}), ...(options.now ? { now: options.now } : {}) });
    writeAtomic(p.key, encryptKey(ca.keyPem, passphrase), 0o600);
    writeAtomic(p.ca, ca.certPem);
    const index: PkiIndex = { format: 'tallystick-pki/1', crlNumber: 0, certificates: [], tokens: [] };
    writeAtomic(p.index, `${JSON.stringify(index, null, 1)}\n`);
    const store = new PkiStore(dir);
    store.withLock((idx) => store.signCrl(ca, idx, options.now ?? new Date()));
    return store;
  }

  static open(dir: string): PkiStore {
    if (!existsSync(PkiStore.paths(dir).ca)) throw new TallyError('CONFIG', `no TLS CA in ${dir}: make one with tally pki init --dir ${dir}`);
    return new PkiStore(dir);
  }

  get caCertPem(): string {
    return readFileSync(PkiStore.paths(this.dir).ca, 'utf8');
  }

  crlPem(): string {
    return readFileSync(PkiStore.paths(this.dir).crl, 'utf8');
  }

  caRecord(): string | undefined {
    const path = PkiStore.paths(this.dir).record;
    return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  }

  unlock(passphrase: string): CertificateAuthority {
    return { certPem: this.caCertPem, keyPem: decryptKey(readFileSync(PkiStore.paths(this.dir).key, 'utf8'), passphrase) };
  }

  list(): IssuedCertificate[] {
    return this.readIndex().certificates;
  }

  certificatePem(serial: string): string {
    return readFileSync(join(PkiStore.paths(this.dir).certs, `${serial}.pem`), 'utf8');
  }

  find(serial: string): IssuedCertificate | undefined {
    return this.list().find((c) => c.serial === serial.toLowerCase());
  }

  /** Whether this certificate (PEM) was issued here and is not revoked */
  validCertificate(certPem: string): IssuedCertificate | undefined {
    const serial = new X509Certificate(certPem).serialNumber.toLowerCase();
    const found = this.find(serial);
    return found?.status === 'valid' ? found : undefined;
  }

  private readIndex(): PkiIndex {
    return JSON.parse(readFileSync(PkiStore.paths(this.dir).index, 'utf8')) as PkiIndex;
  }

  /** Runs fn on the index under the folder's lock and writes the index back */
  private withLock<T>(fn: (index: PkiIndex) => T): T {
    const lock = join(this.dir, '.lock');
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        mkdirSync(lock);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // a lock left by a killed writer: older than a minute
        if (Date.now() - statSync(lock).mtimeMs > 60_000) rmdirSync(lock);
        else if (Date.now() > deadline) throw new TallyError('CONFIG', `${lock} is held by another tally pki writer`);
        else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
    try {
      const index = this.readIndex();
      const result = fn(index);
      writeAtomic(PkiStore.paths(this.dir).index, `${JSON.stringify(index, null, 1)}\n`);
      return result;
    } finally {
      rmdirSync(lock);
    }
  }

  private record(index: PkiIndex, certPem: string, serial: string, entry: Omit<IssuedCertificate, 'serial' | 'notBefore' | 'notAfter' | 'issuedAt' | 'status'>, now: Date): IssuedCertificate {
    const x = new X509Certificate(certPem);
    const issued: IssuedCertificate = { serial, ...entry, notBefore: new Date(x.validFrom).toISOString(), notAfter: new Date(x.validTo).toISOString(), issuedAt: now.toISOString(), status: 'valid' };
    writeAtomic(join(PkiStore.paths(this.dir).certs, `${serial}.pem`), certPem);
    index.certificates.push(issued);
    return issued;
  }

  /** The broker's or the server's key and certificate (made here, by the CA operator) */
  issueService(ca: CertificateAuthority, options: { role: 'broker' | 'server'; commonName?: string; dnsNames: readonly string[]; ipAddresses: readonly string[]; validityDays?: number; renews?: string; now?: Date }): { keyPem: string; certPem: string; issued: IssuedCertificate } {
    const now = options.now ?? new Date();
    const made = issueKeyAndCertificate(ca, { ...options, now });
    const issued = this.withLock((index) =>
      this.record(index, made.certPem, made.serial, { role: options.role, commonName: new X509Certificate(made.certPem).subject.replace(/^CN=/, ''), dnsNames: options.dnsNames, ipAddresses: options.ipAddresses, ...(options.renews ? { renews: options.renews } : {}) }, now),
    );
    return { keyPem: made.keyPem, certPem: made.certPem, issued };
  }

  /**
   * A terminal's certificate for its CSR (the key stays on the terminal). Refused for a terminal whose
   * certificates were revoked (retired), unless allowRetired.
   */
  signTerminal(ca: CertificateAuthority, csr: string | Uint8Array, terminalId: string, options: { validityDays?: number; renews?: string; now?: Date } = {}): { certPem: string; issued: IssuedCertificate } {
    const now = options.now ?? new Date();
    const made = issueForCsr(ca, csr, { expectedCommonName: terminalId, validityDays: options.validityDays ?? TERMINAL_VALIDITY_DAYS, now });
    const issued = this.withLock((index) => this.record(index, made.certPem, made.serial, { role: 'terminal', commonName: terminalId, ...(options.renews ? { renews: options.renews } : {}) }, now));
    return { certPem: made.certPem, issued };
  }

  /** Revokes certificates (by serial, or every valid one of a name) and re-signs the CRL; returns those revoked now */
  revoke(ca: CertificateAuthority, which: { serial?: string; commonName?: string }, reason: RevocationReason, now = new Date()): IssuedCertificate[] {
    return this.withLock((index) => {
      const revoked: IssuedCertificate[] = [];
      index.certificates = index.certificates.map((c) => {
        const hit = c.status === 'valid' && (which.serial ? c.serial === which.serial.toLowerCase() : c.commonName === which.commonName);
        if (!hit) return c;
        const r: IssuedCertificate = { ...c, status: 'revoked', revokedAt: now.toISOString(), reason };
        revoked.push(r);
        return r;
      });
      if (which.serial && revoked.length === 0 && !index.certificates.some((c) => c.serial === which.serial!.toLowerCase())) throw new TallyError('USAGE', `no certificate with serial ${which.serial} in ${this.dir}`);
      if (revoked.length) this.signCrl(ca, index, now);
      return revoked;
    });
  }

  /** Re-signs the CRL now (a new number), whether or not anything changed */
  refreshCrl(ca: CertificateAuthority, now = new Date()): void {
    this.withLock((index) => this.signCrl(ca, index, now));
  }

  /** The CRL lapses within half its life: it must be re-signed (an expired CRL makes the broker refuse everyone) */
  crlDue(now = new Date()): boolean {
    const next = this.readIndex().crlNextUpdate;
    return !next || Date.parse(next) - now.getTime() < (CRL_DAYS / 2) * DAY_MS;
  }

  private signCrl(ca: CertificateAuthority, index: PkiIndex, now: Date): void {
    index.crlNumber += 1;
    const nextUpdate = new Date(now.getTime() + CRL_DAYS * DAY_MS);
    index.crlNextUpdate = nextUpdate.toISOString();
    const revoked = index.certificates
      .filter((c) => c.status === 'revoked' && Date.parse(c.notAfter) > now.getTime())
      .map((c) => ({ serial: c.serial, revokedAt: new Date(c.revokedAt!), reason: c.reason ?? 'unspecified' }));
    writeAtomic(PkiStore.paths(this.dir).crl, buildCrl(ca, { revoked, crlNumber: index.crlNumber, thisUpdate: new Date(now.getTime() - 60_000), nextUpdate }));
  }

  /** A one-time enrolment token for a terminal (only its hash is kept) */
  createToken(terminalId: string, hours = 72, now = new Date()): string {
    const token = randomBytes(18).toString('base64url');
    this.withLock((index) => {
      index.tokens = index.tokens.filter((t) => !t.usedAt && Date.parse(t.expiresAt) > now.getTime());
      index.tokens.push({ terminalId, sha256: sha256(token), expiresAt: new Date(now.getTime() + hours * 3_600_000).toISOString() });
    });
    return token;
  }

  /** Uses a token up: throws ENROL_TOKEN unless it is this terminal's, unused and not expired */
  consumeToken(terminalId: string, token: string, now = new Date()): void {
    this.withLock((index) => {
      const hash = Buffer.from(sha256(token), 'hex');
      const i = index.tokens.findIndex((t) => t.terminalId === terminalId && timingSafeEqual(Buffer.from(t.sha256, 'hex'), hash));
      const found = index.tokens[i];
      if (!found || found.usedAt || Date.parse(found.expiresAt) <= now.getTime()) throw new TallyError('ENROL_TOKEN', `for ${terminalId}`);
      index.tokens[i] = { ...found, usedAt: now.toISOString() };
    });
  }

  writeCaRecord(recordJson: string): void {
    writeAtomic(PkiStore.paths(this.dir).record, recordJson);
  }
}
