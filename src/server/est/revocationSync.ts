/**
 * Revocation that follows the registry: every few seconds the server compares
 * the registry's retired terminals with the CA's valid certificates, revokes
 * those of retired terminals (cessationOfOperation), re-signs the CRL (also
 * before it lapses: an expired CRL makes Mosquitto refuse everyone) and tells
 * the broker to reread it (SIGHUP to its pid file). It also raises the
 * certificate-expiring alert 30 days before a terminal's newest certificate
 * lapses. Retiring by the CLI or the HTTP API both land here.
 */
import type { CertificateAuthority } from '../../pki/certificateAuthority.js';
import { reloadBroker } from '../../pki/brokerReload.js';
import type { PkiStore } from '../../pki/pkiStore.js';
import type { Logger } from '../../util/logger.js';
import type { ServerStore } from '../ServerStore.js';

export const EXPIRY_ALERT_DAYS = 30;

export interface RevocationSync {
  /** One pass now; returns the serials revoked */
  check(): Promise<string[]>;
  stop(): void;
}

export function startRevocationSync(options: { store: ServerStore; pki: PkiStore; ca: CertificateAuthority; brokerPidFile?: string; intervalMs?: number; log: Logger; now?: () => number }): RevocationSync {
  const now = options.now ?? Date.now;
  let running: Promise<string[]> | undefined;
  const pass = async (): Promise<string[]> => {
    const retired = new Set((await options.store.registry.terminalRegistry()).filter((t) => t.state === 'retired').map((t) => t.terminalId));
    const revoked: string[] = [];
    const valid = options.pki.list().filter((c) => c.status === 'valid' && c.role === 'terminal');
    for (const id of new Set(valid.filter((c) => retired.has(c.commonName)).map((c) => c.commonName))) {
      for (const c of options.pki.revoke(options.ca, { commonName: id }, 'cessationOfOperation', new Date(now()))) revoked.push(c.serial);
      options.log.warn({ terminalId: id }, 'retired terminal: certificate revoked');
    }
    const refreshed = revoked.length === 0 && options.pki.crlDue(new Date(now()));
    if (refreshed) options.pki.refreshCrl(options.ca, new Date(now()));
    if ((revoked.length || refreshed) && options.brokerPidFile) {
      try {
        reloadBroker(options.brokerPidFile);
      } catch (err) {
        options.log.error({ err: (err as Error).message }, 'broker not told to reread the CRL');
      }
    }
    // the newest valid certificate of each terminal decides its expiry
    const newest = new Map<string, { notAfter: number; serial: string }>();
    for (const c of options.pki.list()) {
      if (c.status !== 'valid' || c.role !== 'terminal' || retired.has(c.commonName)) continue;
      const at = Date.parse(c.notAfter);
      if ((newest.get(c.commonName)?.notAfter ?? 0) < at) newest.set(c.commonName, { notAfter: at, serial: c.serial });
    }
    for (const [terminalId, c] of newest) {
      const daysLeft = Math.floor((c.notAfter - now()) / 86_400_000);
      if (daysLeft > EXPIRY_ALERT_DAYS) continue;
      const raised = await options.store.raiseAlert({ at: now(), kind: 'certificate-expiring', terminalId, detail: `TLS certificate ${c.serial} expires ${new Date(c.notAfter).toISOString()} (${daysLeft} days): the terminal has not renewed it`, key: `certificate-expiring:${c.serial}` });
      if (raised) options.log.warn({ terminalId, serial: c.serial, daysLeft }, 'alert');
    }
    return revoked;
  };
  const check = (): Promise<string[]> => {
    running ??= pass().finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => {
    check().catch((err: unknown) => options.log.error({ err: (err as Error).message }, 'revocation check failed'));
  }, options.intervalMs ?? 5000);
  timer.unref();
  return { check, stop: () => clearInterval(timer) };
}
