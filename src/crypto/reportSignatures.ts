/**
 * Every signature of a terminal's report, checked with public keys alone: the
 * certificate to the investor root, the topic's terminal against it, and each
 * entry's own Ed25519 signature by the certified device key. For a party that
 * passes reports on without storing them (the isolation gateway), so nothing
 * forged crosses. Pure apart from the CPU.
 */
import { parseCardRecord } from '../codecs/cardRecord.js';
import { parseLedgerEntry } from '../codecs/ledgerEntry.js';
import type { ReportFrame } from '../codecs/mqtt/report.js';
import { verifyTerminalCertificate } from './chain.js';
import { verifyMessage } from './ed25519.js';

export type ReportSignatureCheck = { ok: true; terminalId: string; entries: number } | { ok: false; problem: string };

export function checkReportSignatures(frame: ReportFrame, rootPublicKey: Uint8Array, topicTerminalId: string): ReportSignatureCheck {
  let certificate;
  try {
    certificate = verifyTerminalCertificate(parseCardRecord(frame.certificate), rootPublicKey);
  } catch (err) {
    return { ok: false, problem: `certificate: ${(err as Error).message}` };
  }
  if (certificate.terminalId !== topicTerminalId) return { ok: false, problem: `certificate of ${certificate.terminalId} on the topic of ${topicTerminalId}` };
  for (const [i, raw] of frame.entries.entries()) {
    let entry;
    try {
      entry = parseLedgerEntry(raw);
    } catch (err) {
      return { ok: false, problem: `entry ${i}: ${(err as Error).message}` };
    }
    if (entry.terminalId !== certificate.terminalId) return { ok: false, problem: `entry ${entry.seq} of terminal ${entry.terminalId}` };
    if (!verifyMessage(certificate.publicKey, entry.body, entry.signature)) return { ok: false, problem: `entry ${entry.seq}: signature invalid` };
  }
  return { ok: true, terminalId: certificate.terminalId, entries: frame.entries.length };
}
