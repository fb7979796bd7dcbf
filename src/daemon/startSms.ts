/**
 * The terminal's SMS path in the daemon: the GSM modem at sms.modemPath
 * (opened again after it was unplugged), the SmsReporter fed from the ledger,
 * its state in <dataDir>/sms-state.json, the data link's up and down from the
 * sync client, and the server's SMS commands applied as their MQTT
 * counterparts are: "report now", a deny-list delta to the ledger (only above
 * the version the terminal holds, else the last good list stays), and the
 * server's time to the terminal's clock. Commands verify with the server key
 * of the latest signed checkpoint the terminal kept (root-certified).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromHex, toHex } from '../codecs/bytes.js';
import { SmsAlert } from '../codecs/sms/smsReport.js';
import { verifyCheckpoint } from '../crypto/checkpoint.js';
import { codeOf, isTallyError, TallyError } from '../errors.js';
import { SmsReporter, type SmsState, type SmsStateStore } from '../sync/sms/SmsReporter.js';
import { loadDeviceKey } from '../terminal/deviceKey.js';
import type { Terminal } from '../terminal/Terminal.js';
import { openSerialTransport } from '../transports/SerialPortTransport.js';
import { GsmModem, type ReceivedSms } from '../transports/modem/GsmModem.js';
import type { Logger } from '../util/logger.js';
import { systemSchedulingClock, type SchedulingClock, type TimerHandle } from '../util/scheduler.js';

export interface SmsSettings {
  readonly modemPath: string;
  readonly baudRate: number;
  readonly serverNumber: string;
  readonly afterDownMs: number;
  readonly everyMs: number;
  readonly maxPerDay: number;
  readonly retryMs: number;
}

export interface TerminalSmsStatus {
  readonly modem: 'ready' | 'opening' | 'unavailable';
  readonly modemProblem?: string;
  readonly dataLinkDown: boolean;
  readonly stats: SmsReporter['stats'];
  readonly sentToday: number;
  readonly lastSentAt?: string;
  readonly lastCommand?: { readonly at: string; readonly applied: boolean; readonly code?: string };
}

export interface TerminalSms {
  readonly reporter: SmsReporter;
  dataLinkUp(): void;
  dataLinkDown(): void;
  status(): TerminalSmsStatus;
  stop(): Promise<void>;
}

const STATE_FILE = 'sms-state.json';

function fileStateStore(path: string, log: Logger): SmsStateStore {
  return {
    load() {
      try {
        return JSON.parse(readFileSync(path, 'utf8')) as SmsState;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err: (err as Error).message }, 'SMS state unreadable: the report counter starts again above the time, never at one the server has seen');
        return undefined;
      }
    },
    save(state) {
      writeFileSync(`${path}.tmp`, JSON.stringify(state));
      renameSync(`${path}.tmp`, path);
    },
  };
}

/** The alert bits of an SMS report from the terminal's status */
function alertsOf(terminal: Terminal): number {
  const s = terminal.status();
  return (s.rollback ? SmsAlert.ROLLBACK_SUSPECTED : 0) | (s.unrecordedDeviceEvents ? SmsAlert.STORAGE_FAULT : 0) | (s.clockTrusted ? 0 : SmsAlert.CLOCK_UNTRUSTED);
}

export function startTerminalSms(options: { readonly terminal: Terminal; readonly dataDir: string; readonly settings: SmsSettings; readonly log: Logger; readonly clock?: SchedulingClock }): TerminalSms {
  const { terminal, settings } = options;
  const log = options.log.child({ module: 'sms' });
  const clock = options.clock ?? systemSchedulingClock;
  const identity = terminal.identity();
  const signingKey = loadDeviceKey(options.dataDir);
  if (!identity || !signingKey) throw new TallyError('NOT_PROVISIONED', 'SMS reports need a provisioned terminal');
  const ledger = terminal.ledger;
  let modem: GsmModem | undefined;
  let modemTransport: { close(): Promise<void> } | undefined;
  let modemState: TerminalSmsStatus['modem'] = 'opening';
  let modemProblem: string | undefined;
  let reopenTimer: TimerHandle | undefined;
  let pollTimer: TimerHandle | undefined;
  let stopped = false;
  let lastSentAt: number | undefined;
  let lastCommand: TerminalSmsStatus['lastCommand'];

  const statePath = join(options.dataDir, STATE_FILE);
  const stateStore = fileStateStore(statePath, log);
  // a lost state file must not reuse a counter the server has seen: start above the time in seconds
  if (!stateStore.load()) stateStore.save({ counter: Math.floor(clock.now() / 1000) - 1_700_000_000, reported: {}, day: '', sentToday: 0, lastCommandCounter: 0 });

  const reporter = new SmsReporter({
    terminalId: identity.terminalId,
    signingKey,
    serverNumber: settings.serverNumber,
    afterDownMs: settings.afterDownMs,
    everyMs: settings.everyMs,
    maxPerDay: settings.maxPerDay,
    retryMs: settings.retryMs,
    clock,
    logger: options.log,
    state: stateStore,
    sender: {
      send: async (destination, octets) => {
        if (!modem || modemState !== 'ready') throw new TallyError('MODEM_UNAVAILABLE', modemProblem ?? `${settings.modemPath} not open`);
        const reference = await modem.send(destination, octets);
        lastSentAt = clock.now();
        return reference;
      },
    },
    source: {
      head: () => {
        const seq = ledger.lastSeq();
        return { seq, hash: seq > 0 ? ledger.entryHashAt(seq)! : new Uint8Array(32) };
      },
      outboxDepth: () => ledger.pendingCount(),
      alerts: () => alertsOf(terminal),
      batchUses: () =>
        ledger
          .batches()
          .sort((a, b) => a.loadedSeq - b.loadedSeq)
          .map((b) => ({ batchNo: b.batchNo, usesTotal: b.used })),
    },
    serverPublicKey: () => {
      const checkpoint = terminal.latestCheckpoint();
      if (!checkpoint) return undefined;
      try {
        return fromHex(verifyCheckpoint(checkpoint, identity.rootPublicKey).serverPublicKey);
      } catch {
        return undefined;
      }
    },
    handlers: {
      deny: (cardIds, denyVersion) => {
        const held = ledger.denyListVersion();
        if (denyVersion <= held) throw new TallyError('SMS_COMMAND_REFUSED', `deny list version ${denyVersion} not above ${held} held: the list kept`);
        ledger.applyDenyList({ full: false, version: denyVersion, add: cardIds.map((cardId) => ({ cardId, reason: `deny list v${denyVersion} by SMS` })) });
        log.info({ event: 'sms-deny-applied', version: denyVersion, cards: cardIds.map((c) => toHex(c)) }, 'deny list delta applied from SMS');
      },
      time: (serverTimeMs) => terminal.adoptServerTime(serverTimeMs),
    },
  });

  const onMessage = (received: ReceivedSms): void => {
    if (!received.sms) {
      log.warn({ event: 'sms-refused', code: received.error ? codeOf(received.error) : 'BAD_SMS_PDU', index: received.index }, received.error?.message ?? 'undecodable PDU');
      return;
    }
    const sms = received.sms;
    if (sms.alphabet !== 'binary' || sms.header?.concatenation) {
      log.info({ event: 'sms-ignored', sender: sms.originator, alphabet: sms.alphabet }, 'SMS that is not a server command (text or concatenated): deleted');
      return;
    }
    void reporter.handleIncoming(sms.originator, sms.userData).then((outcome) => {
      lastCommand = { at: new Date(clock.now()).toISOString(), applied: outcome.applied, ...(outcome.code ? { code: outcome.code } : {}) };
    });
  };

  const scheduleReopen = (): void => {
    if (stopped || reopenTimer) return;
    reopenTimer = clock.setTimeout(() => {
      reopenTimer = undefined;
      void open();
    }, settings.retryMs, { unref: true });
  };

  const open = async (): Promise<void> => {
    modemState = 'opening';
    try {
      const transport = await openSerialTransport(settings.modemPath, { baudRate: settings.baudRate });
      const m = new GsmModem(transport, clock);
      m.onMessage(onMessage);
      transport.onClose(() => {
        if (modem !== m) return;
        modem = undefined;
        modemState = 'unavailable';
        modemProblem = `${settings.modemPath} closed`;
        log.warn({ event: 'modem-lost', code: 'MODEM_UNAVAILABLE', path: settings.modemPath }, 'GSM modem gone: opening it again');
        scheduleReopen();
      });
      try {
        await m.initialise();
      } catch (err) {
        m.close();
        await transport.close().catch(() => undefined);
        throw err;
      }
      if (stopped) {
        m.close();
        await transport.close().catch(() => undefined);
        return;
      }
      modem = m;
      modemTransport = transport;
      modemState = 'ready';
      modemProblem = undefined;
      const status = await m.status().catch(() => undefined);
      log.info({ event: 'modem-ready', path: settings.modemPath, ...(status ?? {}) }, 'GSM modem ready');
      // messages that came while the daemon was not reading
      await m.readAll().catch((err: Error) => log.warn({ err: err.message }, 'reading stored SMS failed'));
    } catch (err) {
      modemState = 'unavailable';
      const problem = err instanceof Error ? err.message : String(err);
      // a board without its modem retries for ever: say so once, and again only when the problem changes
      const level = problem === modemProblem ? 'debug' : 'warn';
      modemProblem = problem;
      log[level]({ event: 'modem-unavailable', code: isTallyError(err) ? codeOf(err) : 'MODEM_UNAVAILABLE', path: settings.modemPath }, `GSM modem not ready: ${modemProblem}`);
      scheduleReopen();
    }
  };

  // a modem that misses a +CMTI still has the message in its memory: look once a minute
  const poll = (): void => {
    pollTimer = clock.setTimeout(() => {
      if (modem && modemState === 'ready') void modem.readAll().catch(() => undefined);
      if (!stopped) poll();
    }, 60_000, { unref: true });
  };
  void open();
  poll();

  return {
    reporter,
    dataLinkUp: () => reporter.dataLinkUp(),
    dataLinkDown: () => reporter.dataLinkDown(),
    status: () => ({
      modem: modemState,
      ...(modemProblem ? { modemProblem } : {}),
      dataLinkDown: reporter.linkDown,
      stats: { ...reporter.stats },
      sentToday: reporter.sentToday(),
      ...(lastSentAt !== undefined ? { lastSentAt: new Date(lastSentAt).toISOString() } : {}),
      ...(lastCommand ? { lastCommand } : {}),
    }),
    async stop() {
      stopped = true;
      reporter.stop();
      if (reopenTimer) clock.clearTimeout(reopenTimer);
      if (pollTimer) clock.clearTimeout(pollTimer);
      modem?.close();
      modem = undefined;
      await modemTransport?.close().catch(() => undefined);
    },
  };
}
