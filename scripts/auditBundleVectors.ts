/**
 * Generates firmware-protocol/vectors/audit-bundle.json (audit-bundle.md): audit
 * bundles over the golden ledger of vectors/ledger.json with its test root key
 * and the fixed server key of the checkpoint vectors, fixed times (Ed25519 is
 * deterministic, so the file is reproducible), each with the verdict a verifier
 * must give, and the comparison of a terminal's half with the server's.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/auditBundleVectors.test.ts
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromHex, toHex, utf8 } from '../src/codecs/bytes.js';
import { AUDIT_BUNDLE_FORMAT, AUDIT_BUNDLE_FORMAT_V2, encodeStatementBody, parseAuditBundle, STATEMENT_FORMAT, STATEMENT_FORMAT_V2, type AuditBundle, type Statement } from '../src/codecs/auditBundle.js';
import { encodeServerKeyCertificateBody, parseServerKeyCertificateBody, type SignedJson } from '../src/codecs/checkpoint.js';
import type { KeyObject } from 'node:crypto';
import { compareBundles, entryList, ledgerClinic, signStatement, statementFieldsOf, verifyAuditBundle, type BundleVerdict, type Comparison } from '../src/crypto/auditBundle.js';
import { splitIncome, type Period, type Pricing } from '../src/codecs/auditAccount.js';
import type { StatementFields } from '../src/codecs/auditBundle.js';
import { signCheckpoint } from '../src/crypto/checkpoint.js';
import { privateKeyFromSeed, rawPublicKey, sha256, signMessage } from '../src/crypto/ed25519.js';

const LEDGER_FILE = fileURLToPath(new URL('../firmware-protocol/vectors/ledger.json', import.meta.url));
const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);

interface LedgerVectors {
  rootPublicKey: string;
  testKeySeeds: { root: string };
  ledger: { entries: { hex: string }[]; verdict: { terminalId: string } };
}

/**
 * A format 2 statement as servers signed them before format 3 (its account and income of card uses only): the
 * vectors keep one such bundle, which verifiers still read
 */
function signStatementV2(serverKey: KeyObject, certificate: SignedJson, f: Omit<StatementFields, 'serverId'>): Statement {
  const { serverId } = parseServerKeyCertificateBody(certificate.body);
  const body = encodeStatementBody({ ...f, serverId, income: splitIncome(f.account.card, f.pricing) }, 2);
  return { format: STATEMENT_FORMAT_V2, body, signature: toHex(signMessage(serverKey, utf8(body))), serverCertificate: certificate };
}

/** What tools compare of a bundle's verdict */
export function bundleVerdictSummary(v: BundleVerdict): Record<string, unknown> {
  return {
    ok: v.ok,
    format: v.format,
    ledger: { ok: v.ledger.ok, entries: v.ledger.entries, lastSeq: v.ledger.lastSeq, headHash: v.ledger.headHash, ...(v.ledger.problem ? { problem: { code: v.ledger.problem.code, seq: v.ledger.problem.seq } } : {}) },
    ...(v.checkpoint ? { checkpoint: { ok: v.checkpoint.ok, ...(v.checkpoint.problem ? { problem: { code: v.checkpoint.problem.code } } : {}) } } : {}),
    account: v.account,
    ...(v.statement ? { statement: { ok: v.statement.ok, ...(v.statement.problem ? { problem: { code: v.statement.problem.code } } : {}), ...(v.statement.ok ? { income: v.statement.income } : {}) } } : {}),
    ...(v.problem ? { problem: { code: v.problem.code } } : {}),
  };
}

/** What tools compare of a comparison */
export function comparisonSummary(terminal: string, server: string, c: Comparison): Record<string, unknown> {
  return {
    terminal,
    server,
    match: c.match,
    terminalCharged: c.terminal.charged,
    serverCharged: c.server.charged,
    terminalKinds: { card: c.terminal.account.card, voucher: c.terminal.account.voucher, settlement: c.terminal.account.settlement },
    serverKinds: { card: c.server.account.card, voucher: c.server.account.voucher, settlement: c.server.account.settlement },
    ...(c.terminal.income ? { terminalIncome: c.terminal.income } : {}),
    ...(c.server.income ? { serverIncome: c.server.income } : {}),
    ...(c.money ? { money: c.money } : {}),
    differences: c.differences.map((d) => ({ seq: d.seq, kind: d.kind, ...(d.paidBy ? { paidBy: d.paidBy } : {}), ...(d.charged ? { charged: true } : {}) })),
  };
}

export function auditBundleVectorsJson(): string {
  const ledger = JSON.parse(readFileSync(LEDGER_FILE, 'utf8')) as LedgerVectors;
  const rootKey = privateKeyFromSeed(fromHex(ledger.testKeySeeds.root));
  const root = fromHex(ledger.rootPublicKey);
  const serverKey = privateKeyFromSeed(sha256(utf8('tallystick checkpoint vectors: server key')));
  const certBody = encodeServerKeyCertificateBody({ serverId: 'SRV-VECTOR-1', publicKey: toHex(rawPublicKey(serverKey)), motherCardId: '0102030405060708', issuedAt: Math.floor(T0 / 1000) - 86_400 });
  const certificate: SignedJson = { body: certBody, signature: toHex(signMessage(rootKey, utf8(certBody))) };
  const otherRoot = privateKeyFromSeed(sha256(utf8('tallystick audit vectors: another root')));
  const foreignCertificate: SignedJson = { body: certBody, signature: toHex(signMessage(otherRoot, utf8(certBody))) };
  const terminalId = ledger.ledger.verdict.terminalId;
  const all = ledger.ledger.entries.map((e) => e.hex);
  const hashes = entryList(all.map(fromHex));
  const checkpointAt = (seq: number, time: number) => signCheckpoint(serverKey, certificate, { terminalId, seq, headHash: hashes[seq - 1]![1], time });
  const base = { format: AUDIT_BUNDLE_FORMAT, terminalId, rootPublicKey: ledger.rootPublicKey } as const;
  const clinicCode = ledgerClinic(all.map(fromHex))!;
  const pricing: Pricing = { pricePerUse: 10_000, investorShareBp: 7000 };
  const agentPricing: Pricing = { pricePerUse: 12_345, investorShareBp: 6500, agentCode: 'AG-1', agentShareBp: 1250 };
  const march: Period = { from: '2026-03-01', to: '2026-03-31' };
  const fieldsOf = (entries: string[], period: Period | null, p: Pricing) => statementFieldsOf(entries.map(fromHex), { terminalId, clinicCode, time: T0 + 60_000, period, pricing: p });
  const serverOf = (entries: string[], cert = certificate, fields: Omit<StatementFields, 'serverId'> = fieldsOf(entries, null, pricing), period: Period | null = fields.period): AuditBundle => {
    const held = entryList(entries.map(fromHex));
    const contiguous = held.findIndex(([seq], i) => seq !== i + 1);
    return {
      ...base,
      side: 'server',
      exportedAt: T0 + 60_000,
      period,
      entries,
      checkpoint: checkpointAt(contiguous === -1 ? held.length : contiguous, T0 + 60_000),
      statement: signStatement(serverKey, cert, fields),
    };
  };
  const server = serverOf(all);
  const terminal: AuditBundle = { ...base, side: 'terminal', exportedAt: T0 + 120_000, period: null, entries: all, checkpoint: checkpointAt(all.length, T0), statement: null };
  const flipped = { ...server.statement!, signature: server.statement!.signature.replace(/^./, (c) => (c === '0' ? '1' : '0')) };
  const honest = fieldsOf(all, null, pricing);
  const withoutSeq17 = all.slice(0, 30).filter((_, i) => i !== 16);
  const a = honest.account;
  const voucherDay = a.days.findIndex((d) => d.voucher > 0);
  const settlementDay = a.days.findIndex((d) => d.settlement > 0);
  // a lie that keeps the statement's own arithmetic: only a recount of the entries finds it
  const voucherAsCard = { ...honest, account: { ...a, card: a.card + 1, voucher: a.voucher - 1, days: a.days.map((d, i) => (i === voucherDay ? { ...d, card: d.card + 1, voucher: d.voucher - 1 } : d)) } };
  const voucherDropped = { ...honest, account: { ...a, uses: a.uses - 1, voucher: a.voucher - 1, days: a.days.map((d, i) => (i === voucherDay ? { ...d, uses: d.uses - 1, voucher: d.voucher - 1 } : d)) } };
  const droppedIncome = { ...voucherDropped, income: splitIncome(voucherDropped.account.uses, pricing) };
  const settlementDropped = { ...honest, account: { ...a, settlement: a.settlement - 1, settled: { amountFen: 0, insurerFen: 0, patientFen: 0 }, days: a.days.map((d, i) => (i === settlementDay ? { ...d, settlement: d.settlement - 1 } : d)) } };
  const v2 = { ...base, format: AUDIT_BUNDLE_FORMAT_V2 } as const;
  const serverV2: AuditBundle = { ...server, ...v2, statement: signStatementV2(serverKey, certificate, honest) };
  const honestV2Card = { ...honest, account: { ...a, card: a.card - 1, uses: a.uses - 1, days: a.days.map((d, i) => (i === 0 ? { ...d, card: d.card - 1, uses: d.uses - 1 } : d)) } };
  const bundles: { name: string; description: string; bundle: AuditBundle }[] = [
    { name: 'server', description: 'the server holds the whole golden ledger; its checkpoint and statement (100.00 a use, the investor 70%)', bundle: server },
    { name: 'terminal', description: "the terminal's half: the whole ledger and the server's checkpoint of its head", bundle: terminal },
    { name: 'terminal-cut', description: `the terminal restored from an older copy (25 entries), with the checkpoint of seq ${all.length} it had received: TRUNCATED`, bundle: { ...terminal, entries: all.slice(0, 25) } },
    { name: 'server-behind', description: 'the server has received seq 1..30 only (the terminal has not synced since)', bundle: serverOf(all.slice(0, 30)) },
    { name: 'server-gap', description: 'the server has received seq 1..30 but for seq 17 (a report it never got): GAP at 17; its statement lists what it holds, its checkpoint the contiguous 1..16', bundle: serverOf(withoutSeq17) },
    { name: 'server-march', description: 'the account of March 2026 only, at 123.45 a use, the investor 65% with agent AG-1 12.5% of the gross out of it', bundle: serverOf(all, certificate, fieldsOf(all, march, agentPricing)) },
    { name: 'terminal-march', description: "the terminal's half with the period of March 2026", bundle: { ...terminal, period: march } },
    { name: 'statement-signature-flipped', description: "one hex digit of the statement's signature changed: STATEMENT_INVALID", bundle: { ...server, statement: flipped } },
    { name: 'statement-foreign-root', description: "the statement's server key certified by another root: STATEMENT_INVALID", bundle: serverOf(all, foreignCertificate) },
    { name: 'statement-lists-other-entries', description: 'an entry (seq 12) dropped from a server bundle whose statement lists it: STATEMENT_MISMATCH', bundle: { ...serverOf(all), entries: all.filter((_, i) => i !== 11), checkpoint: checkpointAt(11, T0 + 60_000) } },
    { name: 'statement-account-altered', description: 'the statement, signed by the real server key, counts one use fewer on its first day (uses, days and batches): STATEMENT_MISMATCH', bundle: serverOf(all, certificate, { ...honest, account: { ...honest.account, uses: honest.account.uses - 1, days: honest.account.days.map((d, i) => (i === 0 ? { ...d, uses: d.uses - 1 } : d)) } }) },
    { name: 'statement-income-altered', description: "the statement, signed by the real server key, gives the clinic 1 fen less than its uses at its price and share: STATEMENT_MISMATCH", bundle: serverOf(all, certificate, { ...honest, income: { ...honest.income, clinic: honest.income.clinic - 1, investor: honest.income.investor + 1 } }) },
    { name: 'statement-other-clinic', description: 'the statement, signed by the real server key, names another clinic than the terminal certificate: STATEMENT_MISMATCH', bundle: serverOf(all, certificate, { ...honest, clinicCode: 'OTHER' }) },
    { name: 'statement-other-period', description: "the statement covers March 2026, the bundle says every entry: STATEMENT_MISMATCH", bundle: serverOf(all, certificate, fieldsOf(all, march, pricing), null) },
    { name: 'statement-voucher-as-card', description: 'the statement, signed by the real server key, says the voucher use was a card use (same uses, same income): STATEMENT_MISMATCH', bundle: serverOf(all, certificate, voucherAsCard) },
    { name: 'statement-voucher-dropped', description: 'the statement, signed by the real server key, leaves the voucher use out of its account and income (its own arithmetic holds): STATEMENT_MISMATCH', bundle: serverOf(all, certificate, droppedIncome) },
    { name: 'statement-settlement-dropped', description: 'the statement, signed by the real server key, leaves the insurance use and its amounts out: STATEMENT_MISMATCH', bundle: serverOf(all, certificate, settlementDropped) },
    { name: 'statement-downgraded', description: 'a format 3 bundle whose statement, signed by the real server key, has a format 2 body (card uses only, the voucher out of the income): STATEMENT_INVALID', bundle: { ...server, statement: { ...signStatementV2(serverKey, certificate, honest), format: STATEMENT_FORMAT } } },
    { name: 'server-format2', description: 'a format 2 bundle (its statement counts card uses only), as servers made before format 3: it verifies; the account is counted by format 3', bundle: serverV2 },
    { name: 'terminal-format2', description: "a format 2 terminal's half", bundle: { ...terminal, ...v2 } },
    { name: 'server-format2-card-dropped', description: 'a format 2 statement, signed by the real server key, counting one card use fewer: STATEMENT_MISMATCH', bundle: { ...serverV2, statement: signStatementV2(serverKey, certificate, honestV2Card) } },
    { name: 'entry-altered', description: "one bit of seq 10 flipped in the terminal's half: SIGNATURE_INVALID at 10, and the checkpoint no longer held", bundle: { ...terminal, entries: all.map((e, i) => (i === 9 ? e.slice(0, -2) + ((parseInt(e.slice(-2), 16) ^ 1).toString(16).padStart(2, '0')) : e)) } },
  ];
  const verdictOf = (b: AuditBundle) => bundleVerdictSummary(verifyAuditBundle(parseAuditBundle(JSON.stringify(b)), root));
  const find = (name: string) => bundles.find((b) => b.name === name)!.bundle;
  const comparisons = [
    ['terminal', 'server'],
    ['terminal-cut', 'server'],
    ['terminal', 'server-behind'],
    ['terminal', 'server-gap'],
    ['terminal-march', 'server-march'],
    ['terminal-cut', 'server-march'],
    ['terminal-format2', 'server-format2'],
  ].map(([t, s]) => comparisonSummary(t!, s!, compareBundles(find(t!), find(s!))));
  return `${JSON.stringify(
    {
      description: 'Golden vectors of firmware-protocol/audit-bundle.md. Generated by scripts/auditBundleVectors.ts; do not edit by hand.',
      regenerate: 'UPDATE_VECTORS=1 npx vitest run test/codecs/auditBundleVectors.test.ts',
      rootPublicKey: ledger.rootPublicKey,
      rootFingerprint: toHex(sha256(root)),
      bundles: bundles.map((b) => ({ ...b, verdict: verdictOf(b.bundle) })),
      comparisons,
    },
    null,
    1,
  )}\n`;
}
