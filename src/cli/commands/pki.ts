/** `tally pki`: the investor's TLS CA (src/pki/pkiStore.ts) from the command line. */
import { readFileSync, writeFileSync } from 'node:fs';
import { TallyError } from '../../errors.js';
import { PkiStore, type IssuedCertificate } from '../../pki/pkiStore.js';
import { REVOCATION_REASONS, type RevocationReason } from '../../pki/crl.js';
import { reloadBroker } from '../../pki/brokerReload.js';
import { integer, nextStdinLine, required } from '../args.js';
import { defineCommand, type CliIo } from '../command.js';
import { JSON_OPTION, valueOption } from '../options.js';

/** The CA passphrase: --ca-passphrase-file FILE (- for standard input) or TALLY_CA_PASSPHRASE; never an argument */
export function caPassphrase(values: Record<string, unknown>): string {
  const file = values['ca-passphrase-file'];
  if (typeof file === 'string') {
    const text = file === '-' ? nextStdinLine() : (readFileSync(file, 'utf8').split('\n')[0]?.trimEnd() ?? '');
    if (!text) throw new TallyError('PKI_PASSPHRASE', `no passphrase in ${file === '-' ? 'standard input' : file}`);
    return text;
  }
  const env = process.env.TALLY_CA_PASSPHRASE;
  if (env) return env;
  throw new TallyError('PKI_PASSPHRASE', 'give --ca-passphrase-file FILE (- reads standard input) or TALLY_CA_PASSPHRASE');
}

const list = (v: unknown): string[] => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : []);

function formatCertificates(rows: readonly IssuedCertificate[]): string[] {
  const now = Date.now();
  const lines = ['serial                            role      name             not after             days  status'];
  for (const c of rows) {
    const days = Math.floor((Date.parse(c.notAfter) - now) / 86_400_000);
    const status = c.status === 'revoked' ? `revoked ${c.revokedAt?.slice(0, 19) ?? ''} (${c.reason ?? 'unspecified'})` : days < 0 ? 'expired' : 'valid';
    lines.push(`${c.serial}  ${c.role.padEnd(8)}  ${c.commonName.padEnd(15)}  ${c.notAfter.slice(0, 19)}  ${String(days).padStart(4)}  ${status}`);
  }
  return lines;
}

function writeOut(path: string, text: string, mode: number, io: CliIo, what: string): void {
  writeFileSync(path, text, { mode });
  io.out(`${what} written to ${path}`);
}

const SUBCOMMANDS = ['init', 'issue', 'sign', 'list', 'renew', 'revoke', 'crl', 'token'];
const days = valueOption('N', 'how many days the certificate is valid');
const reloadPidFile = valueOption('F', "the broker's pid file: it is sent SIGHUP to reread the CRL");

export const pkiCommand = defineCommand(
  {
    path: 'pki',
    summary: "the investor's TLS CA: init, issue broker/server certificates, sign terminal CSRs, list, renew, revoke, CRL, enrolment tokens",
    about: `init makes the CA (RSA-2048, 10 years, pathlen 0) in DIR: ca.pem, ca-key.pem
encrypted with the passphrase (at least 12 characters), index.json, an empty
crl.pem. Then have the mother card certify it: tally issue certify-ca --pki DIR.
issue makes the broker's certificate (serverAuth, for Mosquitto's certfile) or
the ingest server's (CN tally-server: clientAuth to the broker, serverAuth for
its HTTPS enrolment port). sign is the factory path: a terminal's CSR (made by
tally terminal provision in DATA/tls/csr.pem) becomes its certificate; online
terminals use a one-time token instead (token; tally terminal enrol).
renew reissues with the same names: a new key for broker/server, the CSR for
a terminal. revoke writes a new CRL; --reload-pid-file sends SIGHUP to the
broker (Mosquitto rereads crlfile). Retiring a terminal in the registry revokes
it too (tally server run --pki). Every certificate passes openssl verify
-x509_strict.`,
    options: {
      dir: valueOption('DIR', "the CA's directory", { required: true }),
      'ca-passphrase-file': valueOption('F', "the CA key's passphrase (- reads standard input)", { default: 'TALLY_CA_PASSPHRASE' }),
    },
    subcommands: [
      { name: 'init', usage: ['tally pki init --dir DIR [--cn NAME] --ca-passphrase-file F'], options: { cn: valueOption('NAME', "the CA's common name") } },
      {
        name: 'issue',
        usage: ['tally pki issue broker|server --dir DIR --dns NAMES --ip ADDRS --out-cert F --out-key F [--days N]'],
        options: {
          dns: valueOption('NAMES', 'its DNS names, comma separated'),
          ip: valueOption('ADDRS', 'its IP addresses, comma separated'),
          cn: valueOption('NAME', 'its common name', { default: 'the role\'s' }),
          'out-cert': valueOption('F', 'where the certificate goes', { required: true }),
          'out-key': valueOption('F', 'where its key goes', { required: true }),
          days,
        },
      },
      {
        name: 'sign',
        usage: ['tally pki sign --dir DIR --csr FILE --terminal-id ID --out FILE [--days N]'],
        options: {
          csr: valueOption('FILE', "the terminal's certificate request (DATA/tls/csr.pem)", { required: true }),
          'terminal-id': valueOption('ID', 'the terminal it is for', { required: true }),
          out: valueOption('FILE', 'where the certificate goes', { required: true }),
          days,
        },
      },
      { name: 'list', usage: ['tally pki list --dir DIR [--json]'], options: JSON_OPTION },
      {
        name: 'renew',
        usage: ['tally pki renew SERIAL --dir DIR --out-cert F (--out-key F | --csr FILE)'],
        options: {
          'out-cert': valueOption('F', 'where the new certificate goes', { required: true }),
          'out-key': valueOption('F', 'where the new key goes (broker, server)'),
          csr: valueOption('FILE', "the terminal's new certificate request (terminal)"),
          days,
        },
      },
      {
        name: 'revoke',
        usage: ['tally pki revoke (SERIAL | --terminal ID) --dir DIR [--reason keyCompromise|superseded|cessationOfOperation] [--reload-pid-file F]'],
        options: {
          terminal: valueOption('ID', "every valid certificate of this terminal, instead of a SERIAL"),
          reason: valueOption('WHY', `one of ${Object.keys(REVOCATION_REASONS).join(', ')}`, { default: 'cessationOfOperation' }),
          'reload-pid-file': reloadPidFile,
        },
      },
      { name: 'crl', usage: ['tally pki crl --dir DIR [--reload-pid-file F]'], options: { 'reload-pid-file': reloadPidFile } },
      { name: 'token', usage: ['tally pki token TERMINAL-ID --dir DIR [--hours N]'], options: { hours: valueOption('N', 'how long the token is valid', { default: '72' }) } },
    ],
  },
  async (args, io, cli) => {
    const what = args[0];
    if (!what || what.startsWith('-')) throw new TallyError('USAGE', 'say what: init, issue, sign, list, renew, revoke, crl or token');
    if (!SUBCOMMANDS.includes(what)) throw new TallyError('USAGE', `tally pki ${what}? say init, issue, sign, list, renew, revoke, crl or token`);
    const rest = args.slice(1);
    const operand = rest[0] && !rest[0].startsWith('-') ? rest.shift() : undefined;
    const values = cli.parse(rest, what);
    const dir = required(values, 'dir');
    const validityDays = values.days !== undefined ? integer(values, 'days') : undefined;
    const reload = (): void => {
      if (typeof values['reload-pid-file'] === 'string') io.out(`broker pid ${reloadBroker(values['reload-pid-file'])} told to reread the CRL (SIGHUP)`);
    };
    switch (what) {
      case 'init': {
        const store = PkiStore.init(dir, caPassphrase(values), typeof values.cn === 'string' ? { commonName: values.cn } : {});
        io.out(`TLS CA made in ${dir}: ca.pem, ca-key.pem (encrypted), crl.pem`);
        io.out(`next: tally issue certify-ca --pki ${dir} --mother-pin - ...   (the mother card vouches for it)`);
        void store;
        return 0;
      }
      case 'issue': {
        const role = operand;
        if (role !== 'broker' && role !== 'server') throw new TallyError('USAGE', 'tally pki issue broker|server');
        const store = PkiStore.open(dir);
        const made = store.issueService(store.unlock(caPassphrase(values)), {
          role,
          dnsNames: list(values.dns),
          ipAddresses: list(values.ip),
          ...(typeof values.cn === 'string' ? { commonName: values.cn } : {}),
          ...(validityDays !== undefined ? { validityDays } : {}),
        });
        writeOut(required(values, 'out-cert'), made.certPem, 0o644, io, `${role} certificate ${made.issued.serial}`);
        writeOut(required(values, 'out-key'), made.keyPem, 0o600, io, `${role} key`);
        return 0;
      }
      case 'sign': {
        const store = PkiStore.open(dir);
        const terminalId = required(values, 'terminal-id');
        const made = store.signTerminal(store.unlock(caPassphrase(values)), readFileSync(required(values, 'csr'), 'utf8'), terminalId, validityDays !== undefined ? { validityDays } : {});
        writeOut(required(values, 'out'), made.certPem, 0o644, io, `certificate ${made.issued.serial} for ${terminalId} (until ${made.issued.notAfter.slice(0, 10)})`);
        return 0;
      }
      case 'list': {
        const rows = PkiStore.open(dir).list();
        if (values.json) io.out(JSON.stringify(rows, null, 2));
        else for (const line of formatCertificates(rows)) io.out(line);
        return 0;
      }
      case 'renew': {
        if (!operand) throw new TallyError('USAGE', 'tally pki renew SERIAL');
        const store = PkiStore.open(dir);
        const old = store.find(operand);
        if (!old) throw new TallyError('USAGE', `no certificate ${operand} in ${dir}`);
        if (old.status === 'revoked') throw new TallyError('CERT_REVOKED', `${old.serial} (${old.commonName}) is revoked: it is not renewed`);
        const ca = store.unlock(caPassphrase(values));
        if (old.role === 'terminal') {
          const made = store.signTerminal(ca, readFileSync(required(values, 'csr'), 'utf8'), old.commonName, { renews: old.serial, ...(validityDays !== undefined ? { validityDays } : {}) });
          writeOut(required(values, 'out-cert'), made.certPem, 0o644, io, `certificate ${made.issued.serial} renewing ${old.serial}`);
        } else {
          const made = store.issueService(ca, { role: old.role, commonName: old.commonName, dnsNames: old.dnsNames ?? [], ipAddresses: old.ipAddresses ?? [], renews: old.serial, ...(validityDays !== undefined ? { validityDays } : {}) });
          writeOut(required(values, 'out-cert'), made.certPem, 0o644, io, `certificate ${made.issued.serial} renewing ${old.serial}`);
          writeOut(required(values, 'out-key'), made.keyPem, 0o600, io, 'its new key');
        }
        return 0;
      }
      case 'revoke': {
        const reason = (typeof values.reason === 'string' ? values.reason : 'cessationOfOperation') as RevocationReason;
        if (!(reason in REVOCATION_REASONS)) throw new TallyError('USAGE', `--reason one of ${Object.keys(REVOCATION_REASONS).join(', ')}`);
        const terminal = typeof values.terminal === 'string' ? values.terminal : undefined;
        if (!operand && !terminal) throw new TallyError('USAGE', 'tally pki revoke SERIAL, or --terminal ID');
        const store = PkiStore.open(dir);
        const revoked = store.revoke(store.unlock(caPassphrase(values)), operand ? { serial: operand } : { commonName: terminal! }, reason);
        io.out(revoked.length ? `revoked ${revoked.map((c) => `${c.serial} (${c.commonName})`).join(', ')}; CRL ${PkiStore.paths(dir).crl} re-signed` : 'nothing to revoke: no valid certificate matches');
        reload();
        return 0;
      }
      case 'crl': {
        const store = PkiStore.open(dir);
        store.refreshCrl(store.unlock(caPassphrase(values)));
        io.out(`CRL ${PkiStore.paths(dir).crl} re-signed`);
        reload();
        return 0;
      }
      case 'token': {
        if (!operand) throw new TallyError('USAGE', 'tally pki token TERMINAL-ID');
        const hours = integer(values, 'hours', 72);
        const token = PkiStore.open(dir).createToken(operand, hours);
        io.out(token);
        io.err(`one-time enrolment token for ${operand}, valid ${hours} h: tally terminal enrol --token ${token} ...`);
        return 0;
      }
      default:
        throw new TallyError('USAGE', `tally pki ${what}? say init, issue, sign, list, renew, revoke, crl or token`);
    }
  },
);
