/**
 * Signing and checking the SMS report (the terminal's ledger key) and the SMS
 * commands (the server key the investor root certified), as the ledger does:
 * Ed25519 over SHA-256 of the signed input, here smsSigningInput() with its
 * domain. 64 bytes of signature leave 76 of the 140 for the message, which the
 * report needs at most 73 of (firmware-protocol/sms-report.md, "Why Ed25519").
 */
import type { KeyObject } from 'node:crypto';
import { utf8 } from '../codecs/bytes.js';
import {
  encodeSmsCommandBody,
  encodeSmsMessage,
  encodeSmsReportBody,
  SMS_COMMAND_DOMAIN,
  SMS_REPORT_DOMAIN,
  SMS_TAG_LENGTH,
  smsSigningInput,
  type SmsCommand,
  type SmsCommandFields,
  type SmsReport,
  type SmsReportFields,
} from '../codecs/sms/smsReport.js';
import { sha256, signMessage, verifyMessage } from './ed25519.js';

/** First 8 bytes of SHA-256(utf8(terminalId)): how a message names its terminal */
export function smsTerminalTag(terminalId: string): Uint8Array {
  return sha256(utf8(terminalId)).subarray(0, SMS_TAG_LENGTH);
}

export function signSmsReport(terminalKey: KeyObject, terminalId: string, fields: Omit<SmsReportFields, 'terminalTag'>): Uint8Array {
  const body = encodeSmsReportBody({ ...fields, terminalTag: smsTerminalTag(terminalId) });
  return encodeSmsMessage(body, signMessage(terminalKey, smsSigningInput(SMS_REPORT_DOMAIN, terminalId, body)));
}

export function verifySmsReport(report: SmsReport, terminalId: string, terminalPublicKey: Uint8Array): boolean {
  return verifyMessage(terminalPublicKey, smsSigningInput(SMS_REPORT_DOMAIN, terminalId, report.body), report.signature);
}

export type SmsCommandInput = SmsCommandFields extends infer F ? (F extends unknown ? Omit<F, 'terminalTag'> : never) : never;

export function signSmsCommand(serverKey: KeyObject, terminalId: string, fields: SmsCommandInput): Uint8Array {
  const body = encodeSmsCommandBody({ ...fields, terminalTag: smsTerminalTag(terminalId) } as SmsCommandFields);
  return encodeSmsMessage(body, signMessage(serverKey, smsSigningInput(SMS_COMMAND_DOMAIN, terminalId, body)));
}

export function verifySmsCommand(command: SmsCommand, terminalId: string, serverPublicKey: Uint8Array): boolean {
  return verifyMessage(serverPublicKey, smsSigningInput(SMS_COMMAND_DOMAIN, terminalId, command.body), command.signature);
}
