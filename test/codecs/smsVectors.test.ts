/**
 * The SMS golden vectors (firmware-protocol/vectors/sms.json) are what
 * scripts/smsVectors.ts makes today; every report and command decodes to its
 * fields and verifies with its key, every PDU decodes to its address and user
 * data and encodes back to the same hex, and every invalid input is refused
 * with its code.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/smsVectors.test.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { smsVectors, type CommandCase, type InvalidCase, type PduCase, type ReportCase } from '../../scripts/smsVectors.js';
import { fromHex, toHex } from '../../src/codecs/bytes.js';
import { encodeDeliverPdu, encodeSubmitPdu, parseDeliverPdu, parseSubmitPdu } from '../../src/codecs/sms/pdu.js';
import { parseSmsCommand, parseSmsReport, SMS_MAX_OCTETS } from '../../src/codecs/sms/smsReport.js';
import { verifySmsCommand, verifySmsReport } from '../../src/crypto/smsSignature.js';

const FILE = fileURLToPath(new URL('../../firmware-protocol/vectors/sms.json', import.meta.url));

interface Vectors {
  terminalId: string;
  terminalTag: string;
  terminalPublicKey: string;
  serverPublicKey: string;
  reports: ReportCase[];
  commands: CommandCase[];
  pdus: PduCase[];
  forged: { hex: string };
  invalid: InvalidCase[];
}

describe('SMS golden vectors', () => {
  it('are what the generator makes today', () => {
    const { json } = smsVectors();
    if (process.env.UPDATE_VECTORS === '1') writeFileSync(FILE, json);
    expect(readFileSync(FILE, 'utf8'), 'sms.json is stale: UPDATE_VECTORS=1 npx vitest run test/codecs/smsVectors.test.ts').toBe(json);
  });

  const v = (process.env.UPDATE_VECTORS === '1' ? JSON.parse(smsVectors().json) : JSON.parse(readFileSync(FILE, 'utf8'))) as Vectors;
  const terminalKey = fromHex(v.terminalPublicKey);
  const serverKey = fromHex(v.serverPublicKey);

  it.each(v.reports.map((c) => [c.name, c] as const))('report: %s', (_n, c) => {
    const report = parseSmsReport(fromHex(c.hex));
    expect(c.octets).toBeLessThanOrEqual(SMS_MAX_OCTETS);
    expect(toHex(report.terminalTag)).toBe(v.terminalTag);
    expect({ counter: report.counter, time: report.time, headSeq: report.headSeq, headHashPrefix: toHex(report.headHashPrefix), outboxDepth: report.outboxDepth, alerts: report.alerts, batches: report.batches }).toEqual(c.fields);
    expect(verifySmsReport(report, v.terminalId, terminalKey)).toBe(true);
    expect(verifySmsReport(report, `${v.terminalId}x`, terminalKey)).toBe(false);
  });

  it('the largest report fits one SMS', () => {
    expect(Math.max(...v.reports.map((r) => r.octets))).toBeLessThanOrEqual(140);
  });

  it('an altered report decodes but does not verify', () => {
    expect(verifySmsReport(parseSmsReport(fromHex(v.forged.hex)), v.terminalId, terminalKey)).toBe(false);
  });

  it.each(v.commands.map((c) => [c.name, c] as const))('command: %s', (_n, c) => {
    const command = parseSmsCommand(fromHex(c.hex));
    expect({ counter: command.counter, time: command.time, type: command.type }).toEqual({ counter: c.fields.counter, time: c.fields.time, type: c.fields.type });
    if (command.type === 2) expect({ denyVersion: command.denyVersion, cardIds: command.cardIds.map(toHex) }).toEqual({ denyVersion: c.fields.denyVersion, cardIds: c.fields.cardIds });
    expect(verifySmsCommand(command, v.terminalId, serverKey)).toBe(true);
    expect(verifySmsCommand(command, v.terminalId, terminalKey)).toBe(false);
  });

  it.each(v.pdus.map((c) => [c.name, c] as const))('PDU: %s', (_n, c) => {
    if (c.direction === 'submit') {
      const pdu = parseSubmitPdu(c.pdu);
      expect(pdu.destination).toBe(c.address);
      expect(pdu.alphabet).toBe('binary');
      expect(toHex(pdu.userData)).toBe(c.userData);
      expect(encodeSubmitPdu({ destination: pdu.destination, userData: pdu.userData, messageReference: pdu.messageReference })).toEqual({ hex: c.pdu, tpduLength: c.tpduLength });
      return;
    }
    const pdu = parseDeliverPdu(c.pdu);
    expect(pdu.originator).toBe(c.address);
    expect(pdu.timestamp).toBe(c.timestamp);
    if (c.text !== undefined) {
      expect(pdu.alphabet).toBe('gsm7');
      expect(pdu.text).toBe(c.text);
      return;
    }
    expect(toHex(pdu.userData)).toBe(c.userData);
    if (c.concatenation) expect(pdu.header?.concatenation).toEqual(c.concatenation);
    else expect(encodeDeliverPdu({ originator: pdu.originator, userData: pdu.userData, timestamp: pdu.timestamp, smsc: pdu.smsc }).hex).toBe(c.pdu);
  });

  const parsers = { report: (h: string) => parseSmsReport(fromHex(h)), command: (h: string) => parseSmsCommand(fromHex(h)), submit: parseSubmitPdu, deliver: parseDeliverPdu };
  it.each(v.invalid.map((c) => [c.name, c] as const))('refuses: %s', (_n, c) => {
    expect(() => parsers[c.codec](c.hex)).toThrow(expect.objectContaining({ code: c.error, ...(c.path !== undefined ? { path: c.path } : {}) }));
  });
});
