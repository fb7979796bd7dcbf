/**
 * The terminal daemon's configuration: the single source of truth for every
 * setting, its default, its environment override (TALLY_...) and its meaning.
 * `tally terminal run --print-config` shows the resolved values.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError, resolveConfig, unknownEnvironment, type Schema } from './schema.js';

const LOG_LEVELS = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

export const TERMINAL_SCHEMA: Schema = {
  'terminal.dataDir': { type: 'string', default: '/var/lib/tallystick', doc: 'folder of the ledger database and the device key' },
  'terminal.locale': { type: 'enum', values: ['en', 'zh'], default: 'zh', doc: 'language of operator messages' },
  'reader.backend': { type: 'enum', values: ['serial', 'pcsc', 'simulated'], default: 'serial', doc: "the terminal's microcontroller on a UART, a PC/SC reader through pcscd, or the in-process simulated board" },
  'reader.serial.path': { type: 'string', default: '/dev/ttyS1', doc: 'serial device of the microcontroller board' },
  'reader.serial.baudRate': { type: 'integer', default: 115200, min: 1200, max: 3_000_000, doc: 'UART speed' },
  'reader.serial.reopenDelayMs': { type: 'integer', default: 500, min: 10, max: 60_000, doc: 'wait between attempts to reopen a port that went away' },
  'reader.scanner.path': { type: 'string', doc: 'serial device (USB CDC ACM, e.g. /dev/ttyACM0) of a QR scanner in serial mode with AIM identifiers on: service vouchers are scanned there' },
  'reader.scanner.baudRate': { type: 'integer', default: 115200, min: 1200, max: 3_000_000, doc: "the scanner's line speed (a CDC ACM scanner ignores it)" },
  'voucher.deviceClass': { type: 'string', doc: 'the device class of the device this terminal enables (e.g. OCT): vouchers scoped to that class are accepted' },
  'reader.pcsc.readerName': { type: 'string', doc: 'use only the PC/SC reader whose name contains this (default: the first reader)' },
  'device.maxSessionMinutes': { type: 'integer', default: 60, min: 1, max: 24 * 60, doc: 'the relay opens after this long whatever the device says' },
  'device.startTimeoutSeconds': { type: 'integer', default: 30, min: 1, max: 600, doc: 'a use whose device does not report a start within this time is released' },
  'device.requireBoardWitness': { type: 'boolean', default: false, doc: 'refuse service on a relay board whose firmware keeps no chain head (serial protocol 1)' },
  'cards.acceptVersion1': { type: 'boolean', default: false, doc: 'migration only: accept version 1 batch and one-time cards, which cannot prove they are not copies (each one accepted is logged)' },
  'sync.enabled': { type: 'boolean', default: false, doc: 'report the ledger to the server over MQTT' },
  'sync.brokerUrl': { type: 'string', default: 'mqtts://127.0.0.1:8883', doc: 'the MQTT broker (mqtts:// with mutual TLS in production)' },
  'sync.protocolVersion': { type: 'integer', default: 5, min: 4, max: 5, doc: 'MQTT 5, or 4 for 3.1.1 brokers' },
  'sync.tls.ca': { type: 'string', doc: 'CA certificate file that signed the broker certificate' },
  'sync.tls.cert': { type: 'string', doc: "this terminal's client certificate file" },
  'sync.tls.key': { type: 'string', doc: "this terminal's client key file" },
  'sync.tls.caRecord': { type: 'string', doc: "the mother card's record certifying sync.tls.ca (default: <dataDir>/tls/ca-record.json); without one that verifies against the root the terminal does not connect" },
  'sync.enrol.url': { type: 'string', doc: 'the server\'s EST address (https://HOST:PORT): the terminal renews its certificate there by itself' },
  'sync.enrol.renewDays': { type: 'integer', default: 60, min: 1, max: 365, doc: 'renew the TLS certificate when fewer days than this are left' },
  'sync.password': { type: 'string', secret: true, doc: 'broker password, where the broker uses passwords instead of certificates' },
  'sync.maxEntriesPerSecond': { type: 'integer', default: 2000, min: 1, max: 1_000_000, doc: 'rate limit while draining a backlog' },
  'sms.modemPath': { type: 'string', doc: "serial device of the GSM modem (AT commands, PDU mode); with it the terminal sends signed SMS reports while the data link is down (firmware-protocol/sms-report.md)" },
  'sms.baudRate': { type: 'integer', default: 115200, min: 1200, max: 3_000_000, doc: "the modem's line speed" },
  'sms.serverNumber': { type: 'string', default: '+8613900000002', doc: "the server's SMS number (its gateway modem), where the reports go; commands from any number are checked by their signature" },
  'sms.afterDownSeconds': { type: 'integer', default: 7200, min: 1, max: 30 * 86_400, doc: 'the first SMS report goes once the data link has been down this long (or since start, without one)' },
  'sms.everySeconds': { type: 'integer', default: 28_800, min: 1, max: 30 * 86_400, doc: 'then one report this often while the link stays down' },
  'sms.maxPerDay': { type: 'integer', default: 3, min: 1, max: 100, doc: 'never more SMS reports than this in a UTC day (SMS costs money); a server "report now" counts too' },
  'sms.retrySeconds': { type: 'integer', default: 300, min: 1, max: 86_400, doc: 'a send the modem refused (ERROR, no network, silent) is tried again after this long, at no cost to the budget' },
  'status.socket': { type: 'string', doc: 'unix socket for `tally terminal status` (default: <dataDir>/status.sock, mode 0600)' },
  'log.level': { type: 'enum', values: LOG_LEVELS, default: 'info', doc: 'default log level; trace shows serial frames in hex' },
  'log.levels': { type: 'map', values: LOG_LEVELS, default: {}, doc: 'level per namespace, e.g. {serial-reader: trace, sync: debug}' },
};

export interface TerminalConfig {
  readonly dataDir: string;
  readonly locale: 'en' | 'zh';
  readonly reader:
    | { readonly backend: 'serial'; readonly path: string; readonly baudRate: number; readonly reopenDelayMs: number }
    | { readonly backend: 'pcsc'; readonly readerName?: string }
    | { readonly backend: 'simulated' };
  readonly device: { readonly maxSessionMs: number; readonly startTimeoutMs: number; readonly requireBoardWitness: boolean };
  readonly cards: { readonly acceptVersion1: boolean };
  readonly scanner?: { readonly path: string; readonly baudRate: number };
  readonly voucher: { readonly deviceClass?: string };
  readonly sync: {
    readonly enabled: boolean;
    readonly brokerUrl: string;
    readonly protocolVersion: 4 | 5;
    readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string; readonly caRecord?: string };
    readonly enrol?: { readonly url: string; readonly renewDays: number };
    readonly password?: string;
    readonly maxEntriesPerSecond: number;
  };
  readonly sms?: { readonly modemPath: string; readonly baudRate: number; readonly serverNumber: string; readonly afterDownMs: number; readonly everyMs: number; readonly maxPerDay: number; readonly retryMs: number };
  readonly statusSocket: string;
  readonly log: { readonly level: string; readonly levels: Record<string, string> };
}

export function terminalConfigFrom(values: Map<string, unknown>): TerminalConfig {
  const get = <T>(key: string): T => values.get(key) as T;
  const dataDir = get<string>('terminal.dataDir');
  const backend = get<'serial' | 'pcsc' | 'simulated'>('reader.backend');
  const tls = { ca: get<string | undefined>('sync.tls.ca'), cert: get<string | undefined>('sync.tls.cert'), key: get<string | undefined>('sync.tls.key'), caRecord: get<string | undefined>('sync.tls.caRecord') };
  return {
    dataDir,
    locale: get('terminal.locale'),
    reader:
      backend === 'serial'
        ? { backend, path: get('reader.serial.path'), baudRate: get('reader.serial.baudRate'), reopenDelayMs: get('reader.serial.reopenDelayMs') }
        : backend === 'pcsc'
          ? { backend, ...(values.has('reader.pcsc.readerName') ? { readerName: get<string>('reader.pcsc.readerName') } : {}) }
          : { backend },
    device: { maxSessionMs: get<number>('device.maxSessionMinutes') * 60_000, startTimeoutMs: get<number>('device.startTimeoutSeconds') * 1000, requireBoardWitness: get<boolean>('device.requireBoardWitness') },
    cards: { acceptVersion1: get<boolean>('cards.acceptVersion1') },
    ...(values.has('reader.scanner.path') ? { scanner: { path: get<string>('reader.scanner.path'), baudRate: get<number>('reader.scanner.baudRate') } } : {}),
    voucher: values.has('voucher.deviceClass') ? { deviceClass: get<string>('voucher.deviceClass') } : {},
    sync: {
      enabled: get('sync.enabled'),
      brokerUrl: get('sync.brokerUrl'),
      protocolVersion: get<4 | 5>('sync.protocolVersion'),
      ...(tls.ca || tls.cert || tls.key ? { tls: Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)) } : {}),
      ...(values.has('sync.enrol.url') ? { enrol: { url: get<string>('sync.enrol.url'), renewDays: get<number>('sync.enrol.renewDays') } } : {}),
      ...(values.has('sync.password') ? { password: get<string>('sync.password') } : {}),
      maxEntriesPerSecond: get('sync.maxEntriesPerSecond'),
    },
    ...(values.has('sms.modemPath')
      ? {
          sms: {
            modemPath: get<string>('sms.modemPath'),
            baudRate: get<number>('sms.baudRate'),
            serverNumber: get<string>('sms.serverNumber'),
            afterDownMs: get<number>('sms.afterDownSeconds') * 1000,
            everyMs: get<number>('sms.everySeconds') * 1000,
            maxPerDay: get<number>('sms.maxPerDay'),
            retryMs: get<number>('sms.retrySeconds') * 1000,
          },
        }
      : {}),
    statusSocket: get<string | undefined>('status.socket') ?? `${dataDir}/status.sock`,
    log: { level: get('log.level'), levels: get('log.levels') },
  };
}

/** Reads a YAML or JSON file (JSON is YAML), applies the environment, and validates everything at once */
export function loadTerminalConfig(path: string | undefined, env: Record<string, string | undefined> = process.env): { config: TerminalConfig; values: Map<string, unknown>; warnings: string[] } {
  let fileValues: unknown;
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(path, [{ field: '(file)', problem: (err as Error).message }]);
    }
    try {
      fileValues = parseYaml(text);
    } catch (err) {
      throw new ConfigError(path, [{ field: '(file)', problem: `not YAML or JSON: ${(err as Error).message}` }]);
    }
  }
  const values = resolveConfig(TERMINAL_SCHEMA, fileValues, env, path ?? '(defaults and environment)');
  const warnings = unknownEnvironment(TERMINAL_SCHEMA, env).map(
    (u) => `${u.variable} is not a tallystick setting and is ignored${u.closest ? ` (did you mean ${u.closest}?)` : ''} [CONFIG_UNKNOWN_ENV 9010]`,
  );
  return { config: terminalConfigFrom(values), values, warnings };
}
