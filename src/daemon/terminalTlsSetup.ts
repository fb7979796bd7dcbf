/**
 * Which TLS files the daemon uses and whether it may: the configured sync.tls.*
 * or else the enrolled ones in DATA/tls; a CA only when the mother card's
 * record for it verifies with the terminal's root (TLS_CA_NOT_VOUCHED
 * otherwise); and the renewal before expiry (EST simplereenroll).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { TerminalConfig } from '../config/terminalConfig.js';
import { codeOf } from '../errors.js';
import { checkCaVouched } from '../pki/caVouch.js';
import { certificateExpiryOf, reenrol, terminalTlsPaths } from '../pki/terminalTls.js';
import type { Logger } from '../util/logger.js';

export type TlsSettings = NonNullable<TerminalConfig['sync']['tls']>;

export function resolveTlsFiles(config: TerminalConfig): TlsSettings | undefined {
  if (config.sync.tls) return config.sync.tls;
  const p = terminalTlsPaths(config.dataDir);
  return existsSync(p.cert) ? { ca: p.ca, cert: p.cert, key: p.key, caRecord: p.record } : undefined;
}

/** Throws TLS_CA_NOT_VOUCHED unless the CA file is the one the root certified */
export function checkTlsCa(tls: TlsSettings | undefined, config: TerminalConfig, rootPublicKey: Uint8Array): void {
  if (!tls?.ca) return;
  const recordPath = tls.caRecord ?? terminalTlsPaths(config.dataDir).record;
  checkCaVouched(readFileSync(tls.ca, 'utf8'), existsSync(recordPath) ? readFileSync(recordPath, 'utf8') : undefined, rootPublicKey);
}

/** Renews DATA/tls/cert.pem when fewer than renewDays are left; checks at start and every 6 hours */
export function startRenewal(options: { config: TerminalConfig; terminalId: string; log: Logger; checkMs?: number }): { check(): Promise<void>; stop(): void } {
  const { config, log } = options;
  const enrol = config.sync.enrol;
  const p = terminalTlsPaths(config.dataDir);
  let running = false;
  const check = async (): Promise<void> => {
    if (!enrol || running || !existsSync(p.cert)) return;
    running = true;
    try {
      const { daysLeft, notAfter } = certificateExpiryOf(readFileSync(p.cert));
      if (daysLeft >= enrol.renewDays) return;
      log.info({ daysLeft, notAfter }, 'TLS certificate due for renewal');
      const renewed = await reenrol({ serverUrl: enrol.url, dataDir: config.dataDir, terminalId: options.terminalId });
      log.info({ notAfter: renewed.notAfter }, 'TLS certificate renewed');
    } catch (err) {
      log.warn({ code: codeOf(err), detail: (err as Error).message }, 'TLS certificate renewal failed; trying again later');
    } finally {
      running = false;
    }
  };
  const first = setTimeout(() => void check(), 1000);
  const timer = setInterval(() => void check(), options.checkMs ?? 6 * 3_600_000);
  first.unref();
  timer.unref();
  return {
    check,
    stop: () => {
      clearTimeout(first);
      clearInterval(timer);
    },
  };
}
