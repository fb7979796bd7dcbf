/**
 * The terminal daemon's settings: every one once, with its default, bounds and
 * meaning, as one TypeBox schema (schemas/terminal-config.schema.json is it for
 * editors; terminalConfig.ts reads it).
 */
import type { Static } from '@sinclair/typebox';
import { LOG_LEVELS, Section, Setting as S } from './schema.js';

const PORT_SPEED = { min: 1200, max: 3_000_000 } as const;

export const TERMINAL_SETTINGS = Section({
  terminal: Section({
    dataDir: S.text('folder of the ledger database and the device key', { default: '/var/lib/tallystick' }),
    locale: S.oneOf(['en', 'zh'], 'language of operator messages', 'zh'),
  }),
  reader: Section({
    backend: S.oneOf(['serial', 'pcsc', 'simulated'], "the terminal's microcontroller on a UART, a PC/SC reader through pcscd, or the in-process simulated board", 'serial'),
    serial: Section({
      path: S.text('serial device of the microcontroller board', { default: '/dev/ttyS1' }),
      baudRate: S.integer('UART speed', { default: 115200, ...PORT_SPEED }),
      reopenDelayMs: S.integer('wait between attempts to reopen a port that went away', { default: 500, min: 10, max: 60_000 }),
    }),
    scanner: Section({
      path: S.text('serial device (USB CDC ACM, e.g. /dev/ttyACM0) of a QR scanner in serial mode with AIM identifiers on: service vouchers are scanned there'),
      baudRate: S.integer("the scanner's line speed (a CDC ACM scanner ignores it)", { default: 115200, ...PORT_SPEED }),
    }),
    pcsc: Section({
      readerName: S.text('use only the PC/SC reader whose name contains this (default: the first reader)'),
    }),
  }),
  voucher: Section({
    deviceClass: S.text('the device class of the device this terminal enables (e.g. OCT): vouchers scoped to that class are accepted'),
    requireIdentity: S.boolean("the clinic checks identity: a voucher is written off only after its holder's personal QR code is scanned too (wallet-qr.md §5)", false),
  }),
  device: Section({
    maxSessionMinutes: S.integer('the relay opens after this long whatever the device says', { default: 60, min: 1, max: 24 * 60 }),
    startTimeoutSeconds: S.integer('a use whose device does not report a start within this time is released', { default: 30, min: 1, max: 600 }),
    requireBoardWitness: S.boolean('refuse service on a relay board whose firmware keeps no chain head (serial protocol 1)', false),
  }),
  cards: Section({
    acceptVersion1: S.boolean('migration only: accept version 1 batch and one-time cards, which cannot prove they are not copies (each one accepted is logged)', false),
  }),
  sync: Section({
    enabled: S.boolean('report the ledger to the server over MQTT', false),
    brokerUrl: S.text('the MQTT broker (mqtts:// with mutual TLS in production)', { default: 'mqtts://127.0.0.1:8883' }),
    protocolVersion: S.integer('MQTT 5, or 4 for 3.1.1 brokers', { default: 5, min: 4, max: 5 }),
    tls: Section({
      ca: S.text('CA certificate file that signed the broker certificate'),
      cert: S.text("this terminal's client certificate file"),
      key: S.text("this terminal's client key file"),
      caRecord: S.text("the mother card's record certifying sync.tls.ca (default: <dataDir>/tls/ca-record.json); without one that verifies against the root the terminal does not connect"),
    }),
    enrol: Section({
      url: S.text("the server's EST address (https://HOST:PORT): the terminal renews its certificate there by itself"),
      renewDays: S.integer('renew the TLS certificate when fewer days than this are left', { default: 60, min: 1, max: 365 }),
    }),
    password: S.text('broker password, where the broker uses passwords instead of certificates', { secret: true }),
    maxEntriesPerSecond: S.integer('rate limit while draining a backlog', { default: 2000, min: 1, max: 1_000_000 }),
  }),
  sms: Section({
    modemPath: S.text('serial device of the GSM modem (AT commands, PDU mode); with it the terminal sends signed SMS reports while the data link is down (firmware-protocol/sms-report.md)'),
    baudRate: S.integer("the modem's line speed", { default: 115200, ...PORT_SPEED }),
    serverNumber: S.text("the server's SMS number (its gateway modem), where the reports go; commands from any number are checked by their signature", { default: '+8613900000002' }),
    afterDownSeconds: S.integer('the first SMS report goes once the data link has been down this long (or since start, without one)', { default: 7200, min: 1, max: 30 * 86_400 }),
    everySeconds: S.integer('then one report this often while the link stays down', { default: 28_800, min: 1, max: 30 * 86_400 }),
    maxPerDay: S.integer('never more SMS reports than this in a UTC day (SMS costs money); a server "report now" counts too', { default: 3, min: 1, max: 100 }),
    retrySeconds: S.integer('a send the modem refused (ERROR, no network, silent) is tried again after this long, at no cost to the budget', { default: 300, min: 1, max: 86_400 }),
  }),
  status: Section({
    socket: S.text('unix socket for `tally terminal status` (default: <dataDir>/status.sock, mode 0600)'),
  }),
  log: Section({
    level: S.oneOf(LOG_LEVELS, 'default log level; trace shows serial frames in hex', 'info'),
    levels: S.mapOf(LOG_LEVELS, 'level per namespace, e.g. {serial-reader: trace, sync: debug}'),
  }),
});

/** The settings as a file gives them, defaults filled: the schema's type */
export type TerminalSettings = Static<typeof TERMINAL_SETTINGS>;
