/**
 * The terminal daemon process: configuration -> logger -> ledger and terminal
 * -> reader backend -> daemon -> status socket, and a clean stop on SIGTERM
 * (the swipe in progress finishes, the database closes). systemd readiness and
 * watchdog go to NOTIFY_SOCKET through systemdNotify.ts.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { TerminalConfig } from '../config/terminalConfig.js';
import { createLogger } from '../logging/createLogger.js';
import { Terminal } from '../terminal/Terminal.js';
import { createReaderBackend, type ReaderBackend } from './createReaderBackend.js';
import { startTerminalSms, type TerminalSms } from './startSms.js';
import { startTerminalSync, type TerminalSync } from './startSync.js';
import { checkTlsCa, resolveTlsFiles, startRenewal } from './terminalTlsSetup.js';
import { StatusServer } from './StatusServer.js';
import { createSystemdNotifier, watchdogIntervalMs } from './systemdNotify.js';
import { TerminalDaemon } from './TerminalDaemon.js';
import { SerialScanner } from '../readers/scanner/SerialScanner.js';
import { openSerialTransport } from '../transports/SerialPortTransport.js';
import { join } from 'node:path';
import { InsurancePayment, type InsuranceLink } from '../terminal/InsurancePayment.js';
import { InsuranceControl } from './InsuranceControl.js';
import { mqttInsuranceLink } from './mqttInsuranceLink.js';

/** Without sync the terminal has no way to the server: every insurance payment is refused INSURANCE_OFFLINE */
const OFFLINE_LINK: InsuranceLink = {
  online: () => false,
  start: async () => undefined,
  poll: async () => undefined,
  redeem: async () => undefined,
  outcome: async () => false,
  onVoucher: () => () => undefined,
};

/** Where the daemon takes the operator's insurance payments (tally terminal insurance) */
export function insuranceSocketPath(dataDir: string): string {
  return join(dataDir, 'insurance.sock');
}

/** Our package's version, found from this file whether it runs from src/ (tests) or dist/src/ */
export const VERSION = ((): string => {
  const require = createRequire(import.meta.url);
  for (const candidate of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = require(candidate) as { name?: string; version?: string };
      if (pkg.name === 'tallystick' && pkg.version) return pkg.version;
    } catch {
      // not at this depth
    }
  }
  return 'unknown';
})();

/** The client certificate's expiry, for status: a terminal whose certificate lapses can no longer report */
function certificateExpiry(path: string | undefined): { notAfter: string; daysLeft: number } | { error: string } | undefined {
  if (!path) return undefined;
  try {
    const notAfter = new Date(new X509Certificate(readFileSync(path)).validTo);
    return { notAfter: notAfter.toISOString(), daysLeft: Math.floor((notAfter.getTime() - Date.now()) / 86_400_000) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function readerDevice(config: TerminalConfig): { device?: string } {
  if (config.reader.backend === 'serial') return { device: config.reader.path };
  if (config.reader.backend === 'pcsc' && config.reader.readerName) return { device: config.reader.readerName };
  return {};
}

export interface RunningTerminal {
  readonly daemon: TerminalDaemon;
  readonly terminal: Terminal;
  readonly backend: ReaderBackend;
  readonly insurance: InsurancePayment;
  stop(reason: string): Promise<void>;
}

export async function startTerminal(config: TerminalConfig, log = createLogger({ level: config.log.level, levels: config.log.levels })): Promise<RunningTerminal> {
  const startedAt = Date.now();
  const backend = await createReaderBackend(config, log);
  // the terminal asks the server about batch loads through sync, which starts after the terminal opens
  let claimBatch: TerminalSync['claimBatch'] | undefined;
  let claimVoucher: TerminalSync['claimVoucher'] | undefined;
  const terminal = Terminal.open({
    claimBatch: (claim) => claimBatch?.(claim) ?? Promise.resolve(undefined),
    dataDir: config.dataDir,
    locale: config.locale,
    log,
    ...(backend.device ? { device: backend.device } : {}),
    maxSessionMs: config.device.maxSessionMs,
    startTimeoutMs: config.device.startTimeoutMs,
    requireBoardWitness: config.device.requireBoardWitness,
    acceptVersion1Cards: config.cards.acceptVersion1,
    ...(config.voucher.deviceClass ? { voucherDeviceClass: config.voucher.deviceClass } : {}),
    voucherIdentityRequired: config.voucher.requireIdentity,
    claimVoucher: (claim) => claimVoucher?.(claim) ?? Promise.resolve(undefined),
  });
  const scanner = config.scanner ? new SerialScanner(await openSerialTransport(config.scanner.path, { baudRate: config.scanner.baudRate }), { log }) : undefined;
  const daemon = new TerminalDaemon({ terminal, reader: backend.reader, panel: backend.panel, ...(scanner ? { scanner } : {}), locale: config.locale, log });
  // sync needs the identity in the certificate: a terminal not yet provisioned keeps its (empty) outbox until it is
  let sync: TerminalSync | undefined;
  let renewal: ReturnType<typeof startRenewal> | undefined;
  const tlsFiles = resolveTlsFiles(config);
  const identity = terminal.identity();
  if (config.sync.enabled && identity) {
    try {
      checkTlsCa(tlsFiles, config, identity.rootPublicKey);
    } catch (err) {
      terminal.close();
      await backend.close?.();
      throw err;
    }
    renewal = startRenewal({ config, terminalId: identity.terminalId, log });
    sync = startTerminalSync({
      ledger: terminal.ledger,
      dataDir: config.dataDir,
      settings: { ...config.sync, ...(tlsFiles ? { tls: tlsFiles } : {}) },
      log,
      readerState: () => backend.reader.state,
      software: `tallystick ${VERSION}`,
      // the server's time: entries, clock trust and batch validity follow it (the system clock is left alone)
      onServerTime: (serverTime) => terminal.adoptServerTime(serverTime),
      // the server's signed checkpoint: kept as a witness; one beyond this ledger proves a rollback
      onCheckpoint: (checkpoint) => terminal.adoptCheckpoint(checkpoint),
      // the back office's signed voucher trust list: verified against the root, kept unless older
      onTrustList: (raw) => {
        terminal.adoptTrustList(raw);
      },
    });
    daemon.onSwipe(() => sync?.client.notify());
    claimBatch = (claim) => sync!.claimBatch(claim);
    claimVoucher = (claim) => sync!.claimVoucher(claim);
  } else if (config.sync.enabled) {
    log.warn({}, 'sync enabled but the terminal is not provisioned: nothing to report yet');
  }
  // the SMS path: reports while the data link is down (the whole time, without sync), the server's commands
  let sms: TerminalSms | undefined;
  if (config.sms && identity) {
    sms = startTerminalSms({ terminal, dataDir: config.dataDir, settings: config.sms, log });
    sms.dataLinkDown();
    const mqttClient = sync?.client.client;
    mqttClient?.on('connect', () => sms?.dataLinkUp());
    mqttClient?.on('close', () => sms?.dataLinkDown());
    if (sync?.client.connected()) sms.dataLinkUp();
  } else if (config.sms) {
    log.warn({}, 'sms.modemPath set but the terminal is not provisioned: no SMS reports yet');
  }
  const insurance = new InsurancePayment({ terminal, link: sync ? mqttInsuranceLink(sync.client) : OFFLINE_LINK, panel: backend.panel, locale: config.locale, log });
  const insuranceControl = new InsuranceControl(insuranceSocketPath(config.dataDir), insurance);
  // outcomes a crash left unsent go out once the link is up, then whenever a use ends
  const outcomeTimer = setInterval(() => void insurance.sendOutcomes(), 15_000);
  outcomeTimer.unref();
  sync?.client.client.on('connect', () => void insurance.sendOutcomes());
  let lastSwipe: { at: string; ok: boolean; code?: string } | undefined;
  daemon.onSwipe((t) => {
    lastSwipe = { at: new Date(terminal.clock.now()).toISOString(), ok: t.outcome.ok, ...(t.outcome.ok ? {} : { code: t.outcome.code }) };
  });
  const status = new StatusServer(config.statusSocket, () => ({
    version: VERSION,
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    dataDir: config.dataDir,
    // which reader this daemon holds: the tools refuse to open it (readerInUse.ts)
    reader: { backend: config.reader.backend, ...readerDevice(config), name: backend.reader.name, state: backend.reader.state, cardPresent: backend.reader.currentSession() !== undefined, ...(backend.stats ? { link: backend.stats() } : {}) },
    ...terminal.status(),
    lastSwipe,
    certificate: certificateExpiry(tlsFiles?.cert),
    sync: sync
      ? {
          enabled: true,
          connected: sync.client.connected(),
          lastAckAt: sync.lastAckAt() ? new Date(sync.lastAckAt()!).toISOString() : undefined,
          stats: { ...sync.client.stats },
          refusals: sync.client.refusals().slice(-5),
        }
      : { enabled: false },
    ...(sms ? { sms: sms.status() } : {}),
  }));
  await daemon.start();
  await status.start();
  await insuranceControl.start();
  const systemd = createSystemdNotifier(process.env, log);
  const watchdogMs = watchdogIntervalMs(process.env);
  // the watchdog is fed only while the ledger still answers: a wedged database should get us restarted
  const watchdog = watchdogMs
    ? setInterval(() => {
        try {
          terminal.ledger.pendingCount();
          systemd.notify('WATCHDOG=1');
        } catch (err) {
          log.error({ err: (err as Error).message }, 'ledger not answering: watchdog not fed');
        }
      }, watchdogMs)
    : undefined;
  watchdog?.unref();
  systemd.notify(`READY=1\nSTATUS=terminal ${terminal.identity()?.terminalId ?? '(not provisioned)'} ready`);
  log.info({ version: VERSION, backend: config.reader.backend, dataDir: config.dataDir, readyMs: Date.now() - startedAt }, 'terminal daemon ready');

  let stopping: Promise<void> | undefined;
  return {
    daemon,
    terminal,
    backend,
    insurance,
    stop: (reason) => {
      stopping ??= (async () => {
        log.info({ reason }, 'stopping: finishing the swipe in progress');
        systemd.notify('STOPPING=1');
        if (watchdog) clearInterval(watchdog);
        clearInterval(outcomeTimer);
        await insuranceControl.stop();
        insurance.close();
        await daemon.stop();
        await terminal.prepareStop();
        renewal?.stop();
        await sms?.stop();
        await sync?.stop();
        await status.stop();
        await backend.close?.();
        await scanner?.close();
        terminal.close();
        systemd.close();
        log.info({}, 'stopped cleanly');
      })();
      return stopping;
    },
  };
}
