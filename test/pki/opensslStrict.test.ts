/** Every certificate and CRL `tally pki` makes, checked by the openssl binary with -x509_strict (not by our own code). */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, createKeyAndCsr, issueForCsr, issueKeyAndCertificate } from '../../src/pki/certificateAuthority.js';
import { buildCrl } from '../../src/pki/crl.js';

const dir = mkdtempSync(join(tmpdir(), 'tally-pki-openssl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ca = createCertificateAuthority();
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const caFile = file('ca.pem', ca.certPem);
const terminal = issueForCsr(ca, createKeyAndCsr('T-0042').csrPem, { expectedCommonName: 'T-0042' });
const broker = issueKeyAndCertificate(ca, { role: 'broker', dnsNames: ['broker.example'], ipAddresses: ['10.0.0.1'] });
const server = issueKeyAndCertificate(ca, { role: 'server', dnsNames: ['server.example'], ipAddresses: ['10.0.0.1'] });

function verify(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('openssl', ['verify', '-x509_strict', ...args], { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}
const text = (path: string): string => execFileSync('openssl', ['x509', '-in', path, '-noout', '-text'], { encoding: 'utf8' });

describe('openssl verify -x509_strict', () => {
  it('accepts the CA, each leaf for its purpose, and refuses a leaf for a purpose it does not have', () => {
    expect(verify(['-CAfile', caFile, caFile])).toMatchObject({ ok: true });
    const t = file('terminal.pem', terminal.certPem);
    const b = file('broker.pem', broker.certPem);
    const s = file('server.pem', server.certPem);
    expect(verify(['-purpose', 'sslclient', '-CAfile', caFile, t]).out).toContain(': OK');
    expect(verify(['-purpose', 'sslserver', '-CAfile', caFile, b]).out).toContain(': OK');
    expect(verify(['-purpose', 'sslserver', '-CAfile', caFile, s]).out).toContain(': OK');
    expect(verify(['-purpose', 'sslclient', '-CAfile', caFile, s]).out).toContain(': OK');
    expect(verify(['-purpose', 'sslserver', '-CAfile', caFile, t]).ok).toBe(false);
    expect(verify(['-purpose', 'sslclient', '-CAfile', caFile, b]).ok).toBe(false);
  });

  it('has SKI/AKI everywhere, pathlen 0 on the CA, and only the key usages each role needs', () => {
    const c = text(caFile);
    expect(c).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(c).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
    expect(c).toContain('Subject Key Identifier');
    const caSki = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(c)![1];
    for (const name of ['terminal.pem', 'broker.pem', 'server.pem']) {
      const t = text(join(dir, name));
      expect(t).toContain('Subject Key Identifier');
      expect(t).toMatch(new RegExp(`Authority Key Identifier:\\s+(keyid:)?${caSki}`));
      expect(t).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    }
    const t = text(join(dir, 'terminal.pem'));
    expect(t).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(t).not.toContain('Key Encipherment');
    expect(t).toMatch(/Extended Key Usage:\s+TLS Web Client Authentication\n/);
    expect(text(join(dir, 'broker.pem'))).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication\n/);
    expect(text(join(dir, 'broker.pem'))).toMatch(/DNS:broker.example, IP Address:10.0.0.1/);
  });

  it('a CRL that openssl accepts strictly and that revokes exactly the revoked certificate', () => {
    const now = new Date();
    const crl = file('crl.pem', buildCrl(ca, { revoked: [{ serial: terminal.serial, revokedAt: now, reason: 'cessationOfOperation' }], crlNumber: 7, thisUpdate: now, nextUpdate: new Date(now.getTime() + 7 * 86_400_000) }));
    const crlText = execFileSync('openssl', ['crl', '-in', crl, '-noout', '-text', '-CAfile', caFile], { encoding: 'utf8' });
    expect(crlText).toContain('CRL Number');
    expect(crlText).toContain('Cessation Of Operation');
    expect(crlText.toLowerCase()).toContain(terminal.serial.toLowerCase());
    const revoked = verify(['-crl_check', '-CAfile', caFile, '-CRLfile', crl, join(dir, 'terminal.pem')]);
    expect(revoked.ok).toBe(false);
    expect(revoked.out).toContain('certificate revoked');
    expect(verify(['-crl_check', '-CAfile', caFile, '-CRLfile', crl, join(dir, 'broker.pem')]).out).toContain(': OK');
    const empty = file('empty.pem', buildCrl(ca, { revoked: [], crlNumber: 8, thisUpdate: now, nextUpdate: new Date(now.getTime() + 86_400_000) }));
    expect(verify(['-crl_check', '-CAfile', caFile, '-CRLfile', empty, join(dir, 'terminal.pem')]).out).toContain(': OK');
  });
});
