/**
 * The terminal daemon's configuration, read by the one schema of every setting
 * (terminalSettings.ts): TerminalSettings (the file's shape, defaults filled)
 * is its Static type, TerminalConfig the daemon's view computed from it.
 * `tally terminal run --settings` lists it, `--print-config` shows the resolved
 * values, schemas/terminal-config.schema.json is it for editors.
 */
import { readConfigFile } from './configFile.js';
import { resolveConfig, unknownEnvironmentWarnings } from './schema.js';
import { SERVER_SETTINGS } from './serverSettings.js';
import { TERMINAL_SETTINGS, type TerminalSettings } from './terminalSettings.js';

export { TERMINAL_SETTINGS, type TerminalSettings } from './terminalSettings.js';

/** The daemon's view of its settings (durations in ms, the reader by its backend, optional parts only when given) */
export type TerminalConfig = ReturnType<typeof terminalConfigFrom>;

export function terminalConfigFrom(s: TerminalSettings) {
  const { dataDir, locale } = s.terminal;
  const { backend } = s.reader;
  const { ca, cert, key, caRecord } = s.sync.tls;
  const sms = s.sms.modemPath;
  return {
    dataDir,
    locale,
    reader:
      backend === 'serial'
        ? { backend, path: s.reader.serial.path, baudRate: s.reader.serial.baudRate, reopenDelayMs: s.reader.serial.reopenDelayMs }
        : backend === 'pcsc'
          ? { backend, ...(s.reader.pcsc.readerName !== undefined ? { readerName: s.reader.pcsc.readerName } : {}) }
          : { backend },
    device: { maxSessionMs: s.device.maxSessionMinutes * 60_000, startTimeoutMs: s.device.startTimeoutSeconds * 1000, requireBoardWitness: s.device.requireBoardWitness },
    cards: { acceptVersion1: s.cards.acceptVersion1 },
    ...(s.reader.scanner.path !== undefined ? { scanner: { path: s.reader.scanner.path, baudRate: s.reader.scanner.baudRate } } : {}),
    voucher: { ...(s.voucher.deviceClass !== undefined ? { deviceClass: s.voucher.deviceClass } : {}), requireIdentity: s.voucher.requireIdentity },
    sync: {
      enabled: s.sync.enabled,
      brokerUrl: s.sync.brokerUrl,
      protocolVersion: s.sync.protocolVersion === 4 ? (4 as const) : (5 as const),
      ...(ca || cert || key ? { tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(caRecord ? { caRecord } : {}) } } : {}),
      ...(s.sync.enrol.url !== undefined ? { enrol: { url: s.sync.enrol.url, renewDays: s.sync.enrol.renewDays } } : {}),
      ...(s.sync.password !== undefined ? { password: s.sync.password } : {}),
      maxEntriesPerSecond: s.sync.maxEntriesPerSecond,
    },
    ...(sms !== undefined
      ? {
          sms: {
            modemPath: sms,
            baudRate: s.sms.baudRate,
            serverNumber: s.sms.serverNumber,
            afterDownMs: s.sms.afterDownSeconds * 1000,
            everyMs: s.sms.everySeconds * 1000,
            maxPerDay: s.sms.maxPerDay,
            retryMs: s.sms.retrySeconds * 1000,
          },
        }
      : {}),
    statusSocket: s.status.socket ?? `${dataDir}/status.sock`,
    log: { level: s.log.level, levels: s.log.levels },
  };
}

/** Reads a YAML or JSON file, applies the environment, and validates everything at once */
export function loadTerminalConfig(
  path: string | undefined,
  env: Record<string, string | undefined> = process.env,
): { config: TerminalConfig; settings: TerminalSettings; values: Map<string, unknown>; warnings: string[] } {
  const fileValues = path ? readConfigFile(path) : undefined;
  const { settings, values } = resolveConfig(TERMINAL_SETTINGS, fileValues, env, path ?? '(defaults and environment)');
  const warnings = unknownEnvironmentWarnings([TERMINAL_SETTINGS, SERVER_SETTINGS], env);
  return { config: terminalConfigFrom(settings), settings, values, warnings };
}
