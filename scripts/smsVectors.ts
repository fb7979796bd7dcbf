/**
 * Generates firmware-protocol/vectors/sms.json (firmware-protocol/sms-report.md):
 * SMS reports signed with the golden ledger's terminal key (vectors/ledger.json)
 * naming that ledger's head, server commands signed with the checkpoint vectors'
 * server key, the SMS-SUBMIT and SMS-DELIVER PDUs that carry them, and invalid
 * inputs with the error each must raise. Ed25519 is deterministic and the times
 * are fixed, so the file is reproducible.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/smsVectors.test.ts
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { concatBytes, fromHex, toHex, utf8 } from '../src/codecs/bytes.js';
import { encodeDeliverPdu, encodeSubmitPdu } from '../src/codecs/sms/pdu.js';
import { SmsAlert, SmsCommandType, type SmsBatchCount } from '../src/codecs/sms/smsReport.js';
import { privateKeyFromSeed, rawPublicKey, sha256 } from '../src/crypto/ed25519.js';
import { signSmsCommand, signSmsReport, smsTerminalTag, type SmsCommandInput } from '../src/crypto/smsSignature.js';

const LEDGER_FILE = fileURLToPath(new URL('../firmware-protocol/vectors/ledger.json', import.meta.url));
const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);
const TERMINAL_NUMBER = '+8613800000001';
const SERVER_NUMBER = '+8613900000002';

interface LedgerVectors {
  testKeySeeds: { terminal: string };
  ledger: { verdict: { terminalId: string; lastSeq: number; headHash: string } };
}

export interface ReportCase {
  readonly name: string;
  readonly fields: { counter: number; time: number; headSeq: number; headHashPrefix: string; outboxDepth: number; alerts: number; batches: SmsBatchCount[] };
  readonly hex: string;
  readonly octets: number;
}

export interface CommandCase {
  readonly name: string;
  readonly fields: SmsCommandInputJson;
  readonly hex: string;
  readonly octets: number;
}

type SmsCommandInputJson = { counter: number; time: number; type: number; denyVersion?: number; cardIds?: string[] };

export interface PduCase {
  readonly name: string;
  readonly direction: 'submit' | 'deliver';
  readonly pdu: string;
  /** AT+CMGS=<length> (octets after the SMSC address) */
  readonly tpduLength: number;
  readonly address: string;
  readonly timestamp?: number;
  readonly userData: string;
  readonly text?: string;
  readonly concatenation?: { reference: number; total: number; sequence: number };
}

export interface InvalidCase {
  readonly name: string;
  readonly codec: 'report' | 'command' | 'submit' | 'deliver';
  readonly hex: string;
  readonly error: string;
  readonly path?: string;
}

function commandInput(c: SmsCommandInputJson): SmsCommandInput {
  if (c.type === SmsCommandType.DENY) return { counter: c.counter, time: c.time, type: SmsCommandType.DENY, denyVersion: c.denyVersion!, cardIds: c.cardIds!.map(fromHex) };
  return { counter: c.counter, time: c.time, type: c.type as 1 | 3 };
}

export function smsVectors(): { json: string } {
  const ledger = JSON.parse(readFileSync(LEDGER_FILE, 'utf8')) as LedgerVectors;
  const terminalId = ledger.ledger.verdict.terminalId;
  const terminalKey = privateKeyFromSeed(fromHex(ledger.testKeySeeds.terminal));
  const serverSeed = sha256(utf8('tallystick checkpoint vectors: server key'));
  const serverKey = privateKeyFromSeed(serverSeed);
  const head = { headSeq: ledger.ledger.verdict.lastSeq, headHashPrefix: ledger.ledger.verdict.headHash.slice(0, 16) };
  const t = Math.floor(T0 / 1000);

  const reportFields: ReportCase['fields'][] = [
    { counter: 1, time: t, ...head, outboxDepth: 0, alerts: 0, batches: [] },
    { counter: 7, time: t + 86_400, ...head, outboxDepth: 33, alerts: 0, batches: [{ batchNo: 1, usesSince: 6, usesTotal: 9 }, { batchNo: 2, usesSince: 2, usesTotal: 2 }] },
    {
      counter: 4_000_000_000,
      time: t + 7 * 86_400,
      ...head,
      outboxDepth: 65535,
      alerts: SmsAlert.STORAGE_FAULT | SmsAlert.ROLLBACK_SUSPECTED | SmsAlert.TAMPER | SmsAlert.CLOCK_UNTRUSTED | SmsAlert.BATCHES_OMITTED,
      batches: [1, 2, 3, 4, 5].map((n) => ({ batchNo: 1_000_000 + n, usesSince: 65535 - n, usesTotal: 65535 })),
    },
  ];
  const reportNames = ['first report, nothing used', 'a day of uses in two batches', 'the largest report: five batches, every alert'];
  const reports: ReportCase[] = reportFields.map((f, i) => {
    const bytes = signSmsReport(terminalKey, terminalId, { ...f, headHashPrefix: fromHex(f.headHashPrefix) });
    return { name: reportNames[i]!, fields: f, hex: toHex(bytes), octets: bytes.length };
  });

  const commandFields: { name: string; fields: SmsCommandInputJson }[] = [
    { name: 'send your report now', fields: { counter: 1, time: t + 3600, type: SmsCommandType.REPORT_NOW } },
    { name: 'deny two cards', fields: { counter: 2, time: t + 7200, type: SmsCommandType.DENY, denyVersion: 12, cardIds: ['0102030405060708', 'a1a2a3a4a5a6a7a8'] } },
    { name: 'time', fields: { counter: 3, time: t + 10_800, type: SmsCommandType.TIME } },
  ];
  const commands: CommandCase[] = commandFields.map((c) => {
    const bytes = signSmsCommand(serverKey, terminalId, commandInput(c.fields));
    return { name: c.name, fields: c.fields, hex: toHex(bytes), octets: bytes.length };
  });

  const submit = (name: string, userData: Uint8Array, messageReference: number): PduCase => {
    const e = encodeSubmitPdu({ destination: SERVER_NUMBER, userData, messageReference });
    return { name, direction: 'submit', pdu: e.hex, tpduLength: e.tpduLength, address: SERVER_NUMBER, userData: toHex(userData) };
  };
  const deliverBinary = (name: string, userData: Uint8Array, originator: string, timestamp: number): PduCase => {
    const e = encodeDeliverPdu({ originator, userData, timestamp, smsc: '+8613800200500' });
    return { name, direction: 'deliver', pdu: e.hex, tpduLength: e.tpduLength, address: originator, timestamp, userData: toHex(userData) };
  };
  const largest = fromHex(reports[2]!.hex);
  const textPdu = encodeDeliverPdu({ originator: '10086', text: 'Your balance is 12.50', timestamp: T0 });
  const partHeader = Uint8Array.of(0x00, 0x03, 0x2a, 0x02, 0x01);
  const partPdu = encodeDeliverPdu({ originator: TERMINAL_NUMBER, userData: largest.subarray(0, 100), header: partHeader, timestamp: T0 });
  const pdus: PduCase[] = [
    submit('terminal sends a report (AT+CMGS)', fromHex(reports[1]!.hex), 7),
    submit('terminal sends the largest report', largest, 255),
    deliverBinary('server modem receives a report (+CMTI, AT+CMGR)', fromHex(reports[1]!.hex), TERMINAL_NUMBER, T0 + 86_400_000 + 4000),
    deliverBinary('terminal modem receives a command', fromHex(commands[1]!.hex), SERVER_NUMBER, T0 + 7_200_000),
    { name: 'a person\'s text message (GSM 7-bit)', direction: 'deliver', pdu: textPdu.hex, tpduLength: textPdu.tpduLength, address: '10086', timestamp: T0, userData: '', text: 'Your balance is 12.50' },
    { name: 'part 1 of 2 of a concatenated message', direction: 'deliver', pdu: partPdu.hex, tpduLength: partPdu.tpduLength, address: TERMINAL_NUMBER, timestamp: T0, userData: toHex(largest.subarray(0, 100)), concatenation: { reference: 0x2a, total: 2, sequence: 1 } },
  ];

  const goodReport = fromHex(reports[1]!.hex);
  const flipped = goodReport.slice();
  flipped[20]! ^= 0x01;
  const goodDeliver = pdus[2]!.pdu;
  const invalid: InvalidCase[] = [
    { name: 'report cut short', codec: 'report', hex: toHex(goodReport.subarray(0, 60)), error: 'BAD_SMS_REPORT' },
    { name: 'report cut inside its batches', codec: 'report', hex: toHex(concatBytes([goodReport.subarray(0, 40), goodReport.subarray(goodReport.length - 64)])), error: 'BAD_SMS_REPORT' },
    { name: 'two reports in one message', codec: 'report', hex: toHex(concatBytes([goodReport.subarray(0, 50), goodReport])), error: 'BAD_SMS_REPORT' },
    { name: 'report of an unknown version', codec: 'report', hex: toHex(concatBytes([Uint8Array.of(0xa2), goodReport.subarray(1)])), error: 'BAD_SMS_REPORT', path: 'kind' },
    { name: 'report with an unknown alert bit', codec: 'report', hex: reports[1]!.hex.slice(0, 2 * 31) + '80' + reports[1]!.hex.slice(2 * 32), error: 'BAD_SMS_REPORT', path: 'alerts' },
    { name: 'command of an unknown type', codec: 'command', hex: commands[0]!.hex.slice(0, 2 * 17) + '09' + commands[0]!.hex.slice(2 * 18), error: 'BAD_SMS_COMMAND', path: 'type' },
    { name: 'PDU of an odd number of hex digits', codec: 'deliver', hex: goodDeliver.slice(0, -1), error: 'BAD_SMS_PDU' },
    { name: 'PDU shorter than its user data length', codec: 'deliver', hex: goodDeliver.slice(0, -20), error: 'BAD_SMS_PDU', path: 'userData' },
    { name: 'PDU with octets after the user data', codec: 'deliver', hex: goodDeliver + '00', error: 'BAD_SMS_PDU', path: 'userData' },
    { name: 'garbage', codec: 'deliver', hex: 'DEADBEEF', error: 'BAD_SMS_PDU' },
    { name: 'a SUBMIT where a DELIVER is expected', codec: 'deliver', hex: pdus[0]!.pdu, error: 'BAD_SMS_PDU', path: 'firstOctet' },
  ];
  const forged = { name: 'report altered on the way (one bit of the head seq)', hex: toHex(flipped) };

  const doc = {
    description: 'SMS reports and commands (firmware-protocol/sms-report.md) and the TS 23.040 PDUs that carry them',
    regenerate: 'UPDATE_VECTORS=1 npx vitest run test/codecs/smsVectors.test.ts',
    terminalId,
    terminalTag: toHex(smsTerminalTag(terminalId)),
    terminalPublicKey: toHex(rawPublicKey(terminalKey)),
    serverPublicKey: toHex(rawPublicKey(serverKey)),
    testKeySeeds: { terminal: ledger.testKeySeeds.terminal, server: toHex(serverSeed) },
    reports,
    commands,
    pdus,
    forged,
    invalid,
  };
  return { json: `${JSON.stringify(doc, null, 2)}\n` };
}
