/**
 * The TLS certificate's lifetime without a person: the daemon's renewal (src/daemon/terminalTlsSetup.ts,
 * sync.enrol.url) re-enrols over EST when fewer than renewDays are left and leaves a younger
 * certificate alone; the server's revocation pass raises certificate-expiring 30 days before the
 * newest certificate of a terminal lapses, once, and not before.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { utf8, toHex } from '../../src/codecs/bytes.js';
import { encodeTlsCaRecordBody, encodeTlsCaRecordFile } from '../../src/codecs/tlsCaRecord.js';
import type { TerminalConfig } from '../../src/config/terminalConfig.js';
import { signMessage } from '../../src/crypto/ed25519.js';
import { startRenewal } from '../../src/daemon/terminalTlsSetup.js';
import { certificateFingerprint, type CertificateAuthority } from '../../src/pki/certificateAuthority.js';
import { PkiStore } from '../../src/pki/pkiStore.js';
import { certificateExpiryOf, prepareTerminalTls, terminalTlsPaths } from '../../src/pki/terminalTls.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { startEstServer, type RunningEst } from '../../src/server/est/estServer.js';
import { EXPIRY_ALERT_DAYS, startRevocationSync } from '../../src/server/est/revocationSync.js';
import { saveClinic, saveTerminal } from '../../src/server/registry/registryAdmin.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { silentLogger } from '../../src/util/logger.js';
import { makeInvestor } from '../support/signedLedger.js';

const dir = mkdtempSync(join(tmpdir(), 'tally-renewal-'));
const data = join(dir, 'term');
const investor = makeInvestor();
let pki: PkiStore;
let ca: CertificateAuthority;
let est: RunningEst;
let store: ServerStore;

beforeAll(async () => {
  pki = PkiStore.init(join(dir, 'pki'), 'a passphrase of the test');
  ca = pki.unlock('a passphrase of the test');
  const body = encodeTlsCaRecordBody({ caFingerprint: certificateFingerprint(pki.caCertPem), caSubject: 'test CA', motherCardId: '0011223344556677', issuedAt: 1 });
  pki.writeCaRecord(encodeTlsCaRecordFile(body, toHex(signMessage(investor.root.privateKey, utf8(body)))));
  const serverCert = pki.issueService(ca, { role: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  await saveClinic(store.registry, { clinicCode: 'C1', name: 'Eye Clinic' }, Date.now());
  await saveTerminal(store.registry, { terminalId: 'T-1', clinicCode: 'C1' }, Date.now());
  est = await startEstServer({ host: '127.0.0.1', port: 0, certPem: serverCert.certPem, keyPem: serverCert.keyPem, context: { pki, ca, log: silentLogger, isRetired: async () => false } });
  // the factory path, with a certificate that has 20 days left
  const { csrPath } = prepareTerminalTls(data, 'T-1');
  const p = terminalTlsPaths(data);
  writeFileSync(p.cert, pki.signTerminal(ca, readFileSync(csrPath, 'utf8'), 'T-1', { validityDays: 20 }).certPem);
  writeFileSync(p.ca, pki.caCertPem);
});
afterAll(async () => {
  await est?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const configWith = (renewDays: number): TerminalConfig => ({ dataDir: data, sync: { enrol: { url: est.url, renewDays } } }) as unknown as TerminalConfig;

describe('the TLS certificate renews itself, and the server warns before it lapses', () => {
  it('a certificate with more days left than renewDays is left alone', async () => {
    const before = readFileSync(terminalTlsPaths(data).cert, 'utf8');
    const renewal = startRenewal({ config: configWith(10), terminalId: 'T-1', log: silentLogger, checkMs: 3_600_000 });
    await renewal.check();
    renewal.stop();
    expect(readFileSync(terminalTlsPaths(data).cert, 'utf8')).toBe(before);
  });

  it('the server alerts 30 days before the newest certificate lapses, once, and not at 31', async () => {
    const notAfter = Date.parse(certificateExpiryOf(readFileSync(terminalTlsPaths(data).cert)).notAfter);
    const at = (daysBefore: number): (() => number) => () => notAfter - daysBefore * 86_400_000 - 60_000;
    const expiring = async (): Promise<number> => (await store.alerts()).filter((a) => a.kind === 'certificate-expiring' && a.terminalId === 'T-1').length;
    const early = startRevocationSync({ store, pki, ca, log: silentLogger, now: at(EXPIRY_ALERT_DAYS + 2), intervalMs: 3_600_000 });
    await early.check();
    early.stop();
    expect(await expiring()).toBe(0);
    const due = startRevocationSync({ store, pki, ca, log: silentLogger, now: at(EXPIRY_ALERT_DAYS - 1), intervalMs: 3_600_000 });
    await due.check();
    await due.check();
    due.stop();
    expect(await expiring()).toBe(1);
  });

  it('with fewer days left than renewDays the daemon re-enrols by itself: a new key, a full lifetime, linked to the old one', async () => {
    const p = terminalTlsPaths(data);
    const old = certificateExpiryOf(readFileSync(p.cert));
    const oldKey = readFileSync(p.key, 'utf8');
    const oldSerial = new X509Certificate(readFileSync(p.cert)).serialNumber.toLowerCase();
    expect(old.daysLeft).toBeLessThan(21);
    const renewal = startRenewal({ config: configWith(60), terminalId: 'T-1', log: silentLogger, checkMs: 3_600_000 });
    await renewal.check();
    renewal.stop();
    const renewed = certificateExpiryOf(readFileSync(p.cert));
    expect(renewed.daysLeft).toBeGreaterThan(300);
    expect(readFileSync(p.key, 'utf8')).not.toBe(oldKey);
    expect(pki.find(new X509Certificate(readFileSync(p.cert)).serialNumber)?.renews).toBe(oldSerial);
  });
});
