/** The PKI side of `tally server run`: EST over HTTPS and revocation that follows the registry (src/server/est). */
import { readFileSync } from 'node:fs';
import { TallyError } from '../../errors.js';
import { PkiStore } from '../../pki/pkiStore.js';
import type { ServerStore } from '../../server/ServerStore.js';
import { startEstServer } from '../../server/est/estServer.js';
import { startRevocationSync } from '../../server/est/revocationSync.js';
import type { Logger } from '../../util/logger.js';
import { integer, type Options } from '../args.js';
import { caPassphrase } from './pki.js';

export const SERVER_PKI_OPTIONS: Options = {
  pki: { type: 'string' },
  'ca-passphrase-file': { type: 'string' },
  'est-port': { type: 'string' },
  'est-host': { type: 'string' },
  'est-cert': { type: 'string' },
  'est-key': { type: 'string' },
  'broker-pid-file': { type: 'string' },
  'revocation-check-ms': { type: 'string' },
};

export const SERVER_PKI_HELP = `
With --pki DIR (the TLS CA of tally pki; its passphrase from --ca-passphrase-file
or TALLY_CA_PASSPHRASE) the server revokes the certificates of every terminal
retired in the registry within --revocation-check-ms (default 5000), re-signs
the CRL before it lapses, sends SIGHUP to the broker of --broker-pid-file so
Mosquitto rereads its crlfile, and alerts (certificate-expiring) 30 days before
a terminal's certificate lapses. With --est-port N it also serves EST (RFC 7030)
over HTTPS on --est-host (default 127.0.0.1) with --est-cert/--est-key (tally
pki issue server): /.well-known/est/cacerts, ca-record, simpleenroll (one-time
token), simplereenroll (the current certificate).`;

export async function startServerPki(values: Record<string, unknown>, store: ServerStore, log: Logger): Promise<{ estUrl?: string; stop(): Promise<void> } | undefined> {
  if (typeof values.pki !== 'string') {
    if (values['est-port'] !== undefined || values['broker-pid-file'] !== undefined) throw new TallyError('USAGE', '--est-port and --broker-pid-file need --pki DIR');
    return undefined;
  }
  const pki = PkiStore.open(values.pki);
  const ca = pki.unlock(caPassphrase(values));
  const revocation = startRevocationSync({
    store,
    pki,
    ca,
    log,
    ...(typeof values['broker-pid-file'] === 'string' ? { brokerPidFile: values['broker-pid-file'] } : {}),
    intervalMs: integer(values, 'revocation-check-ms', 5000),
  });
  await revocation.check();
  let est: Awaited<ReturnType<typeof startEstServer>> | undefined;
  if (values['est-port'] !== undefined) {
    if (typeof values['est-cert'] !== 'string' || typeof values['est-key'] !== 'string') throw new TallyError('USAGE', '--est-port needs --est-cert and --est-key (tally pki issue server)');
    est = await startEstServer({
      host: typeof values['est-host'] === 'string' ? values['est-host'] : '127.0.0.1',
      port: integer(values, 'est-port'),
      certPem: readFileSync(values['est-cert'], 'utf8'),
      keyPem: readFileSync(values['est-key'], 'utf8'),
      context: { pki, ca, log, isRetired: async (id) => (await store.registry.registeredTerminal(id))?.status === 'retired' },
    });
  }
  return {
    ...(est ? { estUrl: est.url } : {}),
    stop: async () => {
      revocation.stop();
      await est?.close();
    },
  };
}
