/**
 * Generates firmware-protocol/vectors/ledger.json, the golden vectors of
 * firmware-protocol/ledger-format.md: one small ledger with an entry of every
 * type, its hashes and verdict, and tampered variants with the exact verdict a
 * verifier must give. Deterministic (fixed key seeds and times; Ed25519 signs
 * deterministically), so test/codecs/ledgerVectors.test.ts regenerates it and
 * fails while the file is stale:
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/ledgerVectors.test.ts
 * A new entry type: add it to the spec, then an entry of it to `validLedger`
 * below (and a variant that breaks its rule), then regenerate.
 */
import { concatBytes, toHex, u32be, utf8 } from '../src/codecs/bytes.js';
import { encodeRecordBody, encodeSignedRecord, RecordKind, type RecordFields } from '../src/codecs/cardRecord.js';
import { encodeLedgerEntry, encodeLedgerEntryBody, ENTRY_TYPE_NAMES, EntryType, GENESIS_HASH, parseLedgerEntry, type LedgerEntryFields } from '../src/codecs/ledgerEntry.js';
import { encodeServerKeyCertificateBody } from '../src/codecs/checkpoint.js';
import { encodeClockResetProof, encodeMotherClockResetBody } from '../src/codecs/clockReset.js';
import { signCheckpoint } from '../src/crypto/checkpoint.js';
import { privateKeyFromSeed, rawPublicKey, sha256, signMessage } from '../src/crypto/ed25519.js';
import { KeyRole, VoucherScope } from '../src/codecs/voucher.js';
import { signKeyCertificate, signVoucher } from '../src/crypto/voucher.js';
import { encodeSettlementVoucher, orderCanonical } from '../src/codecs/settlementVoucher.js';
import { signSettlementVoucher } from '../src/crypto/settlementVoucher.js';
import { verifyLedgerEntries, type LedgerVerification } from '../src/crypto/ledgerChain.js';
import { cardPublicKey, challengeFor, signCardChallenge, verifyCardChallenge } from '../src/crypto/cardAuth.js';
import { encodeSettingDetail } from '../src/codecs/terminalSetting.js';
import type { KeyObject } from 'node:crypto';

interface Key {
  readonly seed: Uint8Array;
  readonly privateKey: KeyObject;
  readonly publicKey: Uint8Array;
}

function key(name: string): Key {
  const seed = sha256(utf8(`tallystick ledger vectors: ${name}`));
  const privateKey = privateKeyFromSeed(seed);
  return { seed, privateKey, publicKey: rawPublicKey(privateKey) };
}

function cardId(name: string): Uint8Array {
  return sha256(utf8(`card id: ${name}`)).subarray(0, 8);
}

function record(fields: RecordFields, signer: Key): Uint8Array {
  const body = encodeRecordBody(fields);
  return encodeSignedRecord(body, signMessage(signer.privateKey, body));
}

const ISSUED_AT = 1_767_312_000; // 2026-01-02T00:00:00Z, Unix seconds as card records count
const T0 = Date.UTC(2026, 2, 1, 8, 0, 0); // entry times are ms since the epoch
const TERMINAL_ID = 'T-VECTOR-1';
const CLINIC = 'CLINIC-V';

const keys = {
  root: key('investor root'),
  otherRoot: key('another investor root'),
  white: key('white card'),
  batch1: key('batch 1'),
  batch2: key('batch 2'),
  batch3: key('batch 3'),
  terminal: key('terminal T-VECTOR-1'),
  other: key('another key'),
  server: key('server SRV-V'),
  voucher: key('voucher key 1'),
};

const DAY = 86_400_000;

/** The server key's certificate, signed by the root as tally server certify-key has the mother card do */
function serverCertificate(): { body: string; signature: string } {
  const body = encodeServerKeyCertificateBody({ serverId: 'SRV-V', publicKey: toHex(keys.server.publicKey), motherCardId: toHex(cardId('mother')), issuedAt: ISSUED_AT });
  return { body, signature: toHex(signMessage(keys.root.privateKey, utf8(body))) };
}

/** A server clock.reset proof: the checkpoint of the ledger at seq (its hash as chained so far) */
function serverResetProof(raws: readonly Uint8Array[], seq: number, time: number): Uint8Array {
  const checkpoint = signCheckpoint(keys.server.privateKey, serverCertificate(), { terminalId: TERMINAL_ID, seq, headHash: toHex(sha256(raws[seq - 1]!)), time });
  return encodeClockResetProof({ by: 'server', checkpoint });
}

/** A mother-card clock.reset proof naming the entry at headSeq */
function motherResetProof(raws: readonly Uint8Array[], headSeq: number, time: number): Uint8Array {
  const body = encodeMotherClockResetBody({ terminalId: TERMINAL_ID, headSeq, headHash: toHex(sha256(raws[headSeq - 1]!)), time, motherCardId: toHex(cardId('mother')) });
  return encodeClockResetProof({ by: 'mother-card', body, signature: toHex(signMessage(keys.root.privateKey, utf8(body))) });
}

/** A settlement.reserved entry's card: the settlement voucher's text, signed by the certified server key */
function settlementUse(orderId: string, options: { signer?: Key; terminalId?: string; expiresAt?: number } = {}): Uint8Array {
  const fields = { orderId, orderHash: toHex(sha256(utf8(orderCanonical({ orderId, terminalId: options.terminalId ?? TERMINAL_ID, item: 'OCT', amountFen: 12_000 })))), terminalId: options.terminalId ?? TERMINAL_ID, item: 'OCT', amountFen: 12_000, insurerFen: 8400, patientFen: 3600, settlementId: `STL-${orderId}`, issuedAt: T0, expiresAt: options.expiresAt ?? Date.UTC(2100, 0, 1) };
  return utf8(encodeSettlementVoucher(signSettlementVoucher((options.signer ?? keys.server).privateKey, serverCertificate(), fields)));
}

/** A voucher.reserved entry's card: the voucher key's certificate || the voucher (voucher-format.md §8) */
function voucherUse(serial: number, options: { voucherSigner?: Key; certSigner?: Key } = {}): Uint8Array {
  const validFrom = ISSUED_AT;
  const certificate = signKeyCertificate((options.certSigner ?? keys.root).privateKey, { keyId: 1, roles: KeyRole.VOUCHERS, validFrom, validUntil: validFrom + 365 * 86400, publicKey: keys.voucher.publicKey, issuer: 'back office' });
  const voucher = signVoucher((options.voucherSigner ?? keys.voucher).privateKey, { keyId: 1, serial, validFrom, validUntil: validFrom + 180 * 86400, bookingRequired: false, scopeKind: VoucherScope.CLINIC, scope: CLINIC, examType: 'OCT' });
  return concatBytes([certificate, voucher]);
}

/** A version 2 card's own P-256 key: a fixed scalar for the vectors (on a real card it never leaves the chip) */
function cardScalar(name: string): Uint8Array {
  return sha256(utf8(`tallystick ledger vectors: card key ${name}`));
}

/**
 * ECDSA signatures are randomised, so the card answers of the golden ledger are fixed here, once made with
 * signCardChallenge; the generator checks that each verifies. A new answer: run the generator, which names it.
 */
const CARD_ANSWERS: Record<string, string> = {
  'batch 3':
    '30440220732c9c8f696410a438b2025ad16b4ec82c57995278946793984143ca81b3bb700220587184f2d0ebbb66606dc7c90b76f67575df0cad6279167580c0bb2d9ea86517',
  'one-time 3/1':
    '304502202ab88e4124e6c52736568d9109e787316e88ddb02c67a4c35abbc99735d7359c022100c7a714aa04bfb30c67acdc9dff5f4554836be9e3e6e61617c380c0bbc8d0a228',
  'one-time 3/2':
    '304402205c78ca509468df453b549fa06e45a6953912959740f1c216484a1fbe9d59ee3702202a74d5650185b1dff55a46eaf1a61cc37f0b256f069cfa8a88acc6ae00387681',
  'one-time 3/3':
    '304402203504f419540d7375345b596aae2dde4b2401e1e4d95f5dbebeb42e8e8e4f8b6f022059467b94dfcd0e0831d19c7eaceb368cb2df92af5824d5d47f1b2d2570e79bb6',
  'one-time 3/3 at T-OTHER':
    '3046022100b141a53867c73fd309fe5f98cadfd303dd3e4e2403f575243eb694f10d453725022100b53820c46e944bd279242ad43bcfd30ec222a0f2bd9a1ec19a9ca32b55516ae3',
};

/** The challenge and answer a version 2 card gave (fixed nonce per card) */
function cardAuth(name: string, cardIdOf: Uint8Array, terminalId = TERMINAL_ID): { cardChallenge: Uint8Array; cardAnswer: Uint8Array } {
  const label = terminalId === TERMINAL_ID ? name : `${name} at ${terminalId}`;
  const challenge = challengeFor(terminalId, sha256(utf8(`nonce: ${label}`)).subarray(0, 16));
  const fixed = CARD_ANSWERS[label];
  const answer = fixed ? Buffer.from(fixed, 'hex') : undefined;
  if (!answer || !verifyCardChallenge(cardPublicKey(cardScalar(name)), cardIdOf, challenge, answer)) {
    throw new Error(`scripts/ledgerVectors.ts: CARD_ANSWERS['${label}'] = '${toHex(signCardChallenge(cardScalar(name), cardIdOf, challenge))}'`);
  }
  return { cardChallenge: challenge, cardAnswer: new Uint8Array(answer) };
}

function white(signer = keys.root): Uint8Array {
  return record({ kind: RecordKind.WHITE, cardId: cardId('white'), issuedAt: ISSUED_AT, publicKey: keys.white.publicKey, quota: 10, validUntil: ISSUED_AT + 3 * 365 * 86400 }, signer);
}

function batch(no: number, batchKey: Key, count: number, options: { clinic?: string; whiteRecord?: Uint8Array; signer?: Key; cardKey?: Uint8Array } = {}): Uint8Array {
  return record(
    {
      ...(options.cardKey ? { cardKey: options.cardKey } : {}),
      kind: RecordKind.BATCH,
      cardId: cardId(`batch ${no}`),
      issuedAt: ISSUED_AT,
      publicKey: batchKey.publicKey,
      clinicCode: options.clinic ?? CLINIC,
      batchNo: no,
      count,
      validFrom: ISSUED_AT,
      validUntil: ISSUED_AT + 365 * 86400,
      issuer: options.whiteRecord ?? white(),
    },
    options.signer ?? keys.white,
  );
}

function oneTime(batchNo: number, serial: number, signer: Key, cardKey?: Uint8Array): Uint8Array {
  return record({ kind: RecordKind.ONE_TIME, cardId: cardId(`one-time ${batchNo}/${serial}`), issuedAt: ISSUED_AT, batchId: cardId(`batch ${batchNo}`), serial, ...(cardKey ? { cardKey } : {}) }, signer);
}

/** A version 2 one-time card of batch 3 (its record names its card key) and its authentication at a terminal */
function oneTimeV2(serial: number, terminalId = TERMINAL_ID): Step {
  const name = `one-time 3/${serial}`;
  return { type: EntryType.USE_RESERVED, card: oneTime(3, serial, keys.batch3, cardPublicKey(cardScalar(name))), chipUid: chipUid(300 + serial), ...cardAuth(name, cardId(name), terminalId) };
}

function batch3Load(): Step {
  return { type: EntryType.BATCH_LOADED, card: batch(3, keys.batch3, 4, { cardKey: cardPublicKey(cardScalar('batch 3')) }), chipUid: chipUid(300), ...cardAuth('batch 3', cardId('batch 3')) };
}

const setting = (value: boolean): Step => ({ type: EntryType.TERMINAL_SETTING, detail: encodeSettingDetail({ name: 'cards.acceptVersion1', value }) });

function certificate(signer = keys.root, terminalId = TERMINAL_ID): Uint8Array {
  return record({ kind: RecordKind.TERMINAL, cardId: cardId(`terminal ${terminalId}`), issuedAt: ISSUED_AT, publicKey: keys.terminal.publicKey, terminalId, clinicCode: CLINIC }, signer);
}

function chipUid(n: number): Uint8Array {
  return concatBytes([Uint8Array.of(0x04, 0xa1, 0xb2, 0xc3), u32be(n)]);
}

type Step = Pick<LedgerEntryFields, 'type'> & Partial<Omit<LedgerEntryFields, 'type'>>;

/** Signs and chains entries the way the terminal's Ledger.append does */
class ChainBuilder {
  readonly raws: Uint8Array[] = [];
  private time = T0;

  constructor(private readonly signer: Key = keys.terminal) {}

  /** Carries on after existing entries (their times too, so the clock rule holds) */
  continueFrom(raws: readonly Uint8Array[]): this {
    this.raws.push(...raws);
    if (raws.length > 0) this.time = parseLedgerEntry(raws.at(-1)!).time;
    return this;
  }

  add(step: Step, options: { signer?: Key; prevHash?: Uint8Array } = {}): number {
    const seq = step.seq ?? this.raws.length + 1;
    this.time = step.time ?? this.time + 7_000;
    const body = encodeLedgerEntryBody({
      clockTrusted: true,
      terminalId: TERMINAL_ID,
      ...step,
      seq,
      time: this.time,
      prevHash: options.prevHash ?? (this.raws.length === 0 ? GENESIS_HASH : sha256(this.raws.at(-1)!)),
    });
    this.raws.push(encodeLedgerEntry(body, signMessage((options.signer ?? this.signer).privateKey, body)));
    return seq;
  }

  /** A whole use as the terminal records it without a relay board, or with one that reported each step */
  use(batchNo: number, serial: number, signer: Key, end: 'completed' | 'failed' | 'released' | 'open', chip: number, detail?: string): number {
    const reserve = this.add({ type: EntryType.USE_RESERVED, card: oneTime(batchNo, serial, signer), chipUid: chipUid(chip), ...(detail !== undefined ? { detail } : {}) });
    if (end === 'released') {
      this.add({ type: EntryType.USE_RELEASED, ref: reserve, detail: 'device did not start within 30 s' });
      return reserve;
    }
    if (end === 'open') return reserve;
    this.add({ type: EntryType.USE_STARTED, ref: reserve });
    if (end === 'completed') this.add({ type: EntryType.USE_COMPLETED, ref: reserve });
    else this.add({ type: EntryType.USE_FAILED, ref: reserve, detail: 'device fault E42 after start' });
    return reserve;
  }
}

/** The valid ledger: provisioning, two batches, and every use state, some with an untrusted clock */
function validLedger(): ChainBuilder {
  const chain = new ChainBuilder();
  chain.add({ type: EntryType.PROVISIONED, card: certificate() });
  chain.add({ type: EntryType.BATCH_LOADED, card: batch(1, keys.batch1, 8), chipUid: chipUid(100) });
  chain.use(1, 1, keys.batch1, 'completed', 1);
  chain.use(1, 2, keys.batch1, 'completed', 2);
  chain.use(1, 3, keys.batch1, 'released', 3);
  chain.use(1, 3, keys.batch1, 'completed', 3); // a released serial may be used again
  chain.use(1, 4, keys.batch1, 'failed', 4);
  chain.add({ type: EntryType.BATCH_LOADED, card: batch(2, keys.batch2, 3), chipUid: chipUid(200) });
  chain.use(2, 1, keys.batch2, 'completed', 11);
  // the board's clock lost power: entries dated 1970, marked untrusted, then the server's time again
  chain.add({ type: EntryType.USE_RESERVED, card: oneTime(2, 2, keys.batch2), chipUid: chipUid(12), time: 5_000, clockTrusted: false });
  chain.add({ type: EntryType.USE_STARTED, ref: chain.raws.length, time: 9_000, clockTrusted: false, detail: 'started' });
  chain.add({ type: EntryType.USE_COMPLETED, ref: chain.raws.length - 1, time: T0 + 3_600_000 });
  chain.use(1, 5, keys.batch1, 'completed', 5);
  chain.use(1, 6, keys.batch1, 'released', 6);
  chain.use(1, 7, keys.batch1, 'completed', 7);
  // a witness outside the database (here the relay board) held a later head: the terminal's own record of it
  chain.add({ type: EntryType.WITNESS_ROLLBACK, ref: 40, detail: 'board: relay board holds seq 40 (9f2c41d07be85a13); the ledger ends at seq 29' });
  // the local clock jumped ten years ahead: refused, untrusted, and its time does not count for the clock rule
  const beforeJump = parseLedgerEntry(chain.raws.at(-1)!).time;
  chain.add({ type: EntryType.CLOCK_REFUSED, time: beforeJump + 3650 * DAY, clockTrusted: false, detail: 'local 2036-02-26T08:03:30.000Z: 3650 days ahead of the mark, not taken' });
  chain.use(1, 8, keys.batch1, 'completed', 8);
  // a server whose clock ran 30 days ahead moved the mark; corrected, its time is refused, then its signed checkpoint of that refusal resets it
  const realTime = parseLedgerEntry(chain.raws.at(-1)!).time;
  chain.add({ type: EntryType.USE_RESERVED, card: oneTime(2, 3, keys.batch2), chipUid: chipUid(13), time: realTime + 30 * DAY });
  chain.add({ type: EntryType.USE_RELEASED, ref: chain.raws.length, detail: 'device did not start within 30 s' });
  const refused = chain.add({ type: EntryType.CLOCK_REFUSED, clockTrusted: false, detail: 'server 2026-03-01T08:05:00.000Z: 2592000 s behind the mark, not taken until signed' });
  chain.add({ type: EntryType.CLOCK_RESET, time: realTime + 60_000, card: serverResetProof(chain.raws, refused, realTime + 60_000), detail: 'server SRV-V: checkpoint seq ' + refused });
  // and the mother card's reset (tally terminal clock-reset), naming the entry before it
  chain.add({ type: EntryType.CLOCK_RESET, time: realTime + 120_000, card: motherResetProof(chain.raws, chain.raws.length, realTime + 120_000), detail: 'mother card' });
  // service vouchers: written off, then the same two-phase use; a released voucher may be written off again
  const voucher = chain.add({ type: EntryType.VOUCHER_RESERVED, card: voucherUse(1000001), detail: 'claimed online; trust list 3' });
  chain.add({ type: EntryType.USE_STARTED, ref: voucher });
  chain.add({ type: EntryType.USE_COMPLETED, ref: voucher });
  const released = chain.add({ type: EntryType.VOUCHER_RESERVED, card: voucherUse(1000002), detail: 'claimed offline; trust list 3' });
  chain.add({ type: EntryType.USE_RELEASED, ref: released, detail: 'device did not start within 30 s' });
  // insurance settlements (settlement-voucher.md): one used and completed, one released (the server reverses it)
  const paid = chain.add({ type: EntryType.SETTLEMENT_RESERVED, card: settlementUse('INS-V0001'), detail: 'INS-V0001' });
  chain.add({ type: EntryType.USE_STARTED, ref: paid });
  chain.add({ type: EntryType.USE_COMPLETED, ref: paid });
  const unpaid = chain.add({ type: EntryType.SETTLEMENT_RESERVED, card: settlementUse('INS-V0002'), detail: 'INS-V0002' });
  chain.add({ type: EntryType.USE_RELEASED, ref: unpaid, detail: 'device did not start within 30 s' });
  // applet version 2 cards: the batch load and each use carry the card's challenge and answer (4A, 4B)
  chain.add(batch3Load());
  const v2 = chain.add(oneTimeV2(1));
  chain.add({ type: EntryType.USE_STARTED, ref: v2 });
  chain.add({ type: EntryType.USE_COMPLETED, ref: v2 });
  // a migration: version 1 cards accepted only once the setting is recorded, each use saying so, then turned off
  chain.add(setting(true));
  chain.use(1, 6, keys.batch1, 'completed', 6, 'version 1 card accepted: cards.acceptVersion1');
  chain.add(setting(false));
  chain.add(oneTimeV2(2)); // still open at the end: the device has not reported yet
  return chain;
}

type Edit =
  | { readonly op: 'replace'; readonly index: number; readonly hex: string }
  | { readonly op: 'delete'; readonly index: number }
  | { readonly op: 'swap'; readonly index: number }
  | { readonly op: 'truncate'; readonly length: number }
  | { readonly op: 'append'; readonly hex: string };

export function applyEdits(base: readonly Uint8Array[], edits: readonly Edit[]): Uint8Array[] {
  const out = [...base];
  for (const edit of edits) {
    switch (edit.op) {
      case 'replace':
        out[edit.index] = Buffer.from(edit.hex, 'hex');
        break;
      case 'delete':
        out.splice(edit.index, 1);
        break;
      case 'swap':
        [out[edit.index], out[edit.index + 1]] = [out[edit.index + 1]!, out[edit.index]!];
        break;
      case 'truncate':
        out.length = edit.length;
        break;
      case 'append':
        out.push(Buffer.from(edit.hex, 'hex'));
        break;
    }
  }
  return out.map((raw) => new Uint8Array(raw));
}

interface Variant {
  readonly name: string;
  readonly description: string;
  readonly edits: readonly Edit[];
}

function flip(raw: Uint8Array, offset: number): string {
  const copy = raw.slice();
  copy[offset < 0 ? copy.length + offset : offset]! ^= 0x01;
  return toHex(copy);
}

/** Builds the valid ledger's first `keep` entries again, then the extra steps (signed by the terminal key unless said) */
function extended(keep: number, build: (chain: ChainBuilder) => void): Edit[] {
  const chain = new ChainBuilder().continueFrom(validLedger().raws.slice(0, keep));
  const before = chain.raws.length;
  build(chain);
  return [{ op: 'truncate', length: keep }, ...chain.raws.slice(before).map((raw) => ({ op: 'append' as const, hex: toHex(raw) }))];
}

function variants(valid: readonly Uint8Array[]): Variant[] {
  const entry = (seq: number) => valid[seq - 1]!;
  const n = valid.length; // the last entry reserves a use still open
  const lastTime = parseLedgerEntry(entry(n)).time;
  return [
    { name: 'signature-byte-flipped', description: 'one bit of the signature of seq 10 flipped', edits: [{ op: 'replace', index: 9, hex: flip(entry(10), -1) }] },
    { name: 'detail-altered', description: 'one bit of the detail text of seq 10 (a release) flipped: signed bytes altered', edits: [{ op: 'replace', index: 9, hex: flip(entry(10), -70) }] },
    { name: 'prev-hash-altered', description: 'one bit of the previous-entry hash inside seq 7 flipped', edits: [{ op: 'replace', index: 6, hex: flip(entry(7), 20) }] },
    { name: 'card-record-altered', description: 'one bit of the serial inside the one-time card record of seq 3 flipped', edits: [{ op: 'replace', index: 2, hex: flip(entry(3), 77 + 30) }] },
    { name: 'entry-deleted', description: 'seq 10 deleted', edits: [{ op: 'delete', index: 9 }] },
    { name: 'first-deleted', description: 'seq 1 (the provisioning entry) deleted', edits: [{ op: 'delete', index: 0 }] },
    { name: 'rows-swapped', description: 'seq 10 and seq 11 swapped', edits: [{ op: 'swap', index: 9 }] },
    { name: 'entry-duplicated', description: 'seq 10 appears twice', edits: [{ op: 'truncate', length: 10 }, { op: 'append', hex: toHex(entry(10)) }] },
    { name: 'entry-truncated', description: 'seq 12 cut to its first 40 bytes', edits: [{ op: 'replace', index: 11, hex: toHex(entry(12).subarray(0, 40)) }] },
    { name: 'trailing-byte', description: 'one byte 00 appended to seq 5', edits: [{ op: 'replace', index: 4, hex: toHex(entry(5)) + '00' }] },
    { name: 'empty', description: 'no entries at all', edits: [{ op: 'truncate', length: 0 }] },
    { name: 'tail-cut', description: 'the last 9 entries cut: NOT detectable from the ledger alone (a witness catches it)', edits: [{ op: 'truncate', length: valid.length - 9 }] },
    {
      name: 'certificate-foreign-root',
      description: 'a ledger whose terminal certificate another root signed',
      edits: (() => {
        const chain = new ChainBuilder();
        chain.add({ type: EntryType.PROVISIONED, card: certificate(keys.otherRoot) });
        return [{ op: 'truncate', length: 0 }, ...chain.raws.map((raw) => ({ op: 'append' as const, hex: toHex(raw) }))];
      })(),
    },
    { name: 'first-not-provisioning', description: 'a ledger that starts with a batch load', edits: extended(0, (c) => c.add({ type: EntryType.BATCH_LOADED, card: batch(1, keys.batch1, 8) })) },
    { name: 'signed-by-another-key', description: `seq ${n + 1} signed by a key that is not the terminal certificate's`, edits: extended(n, (c) => c.add({ type: EntryType.BATCH_LOADED, card: batch(3, keys.batch2, 3) }, { signer: keys.other })) },
    { name: 'terminal-mismatch', description: `seq ${n + 1} names another terminal id`, edits: extended(n, (c) => c.add({ type: EntryType.USE_RESERVED, card: oneTime(1, 8, keys.batch1), terminalId: 'T-OTHER' })) },
    { name: 'clock-trusted-before-floor', description: `seq ${n + 1} dated 1970 but marked trusted`, edits: extended(n, (c) => c.add({ type: EntryType.USE_RELEASED, ref: n, time: 60_000 })) },
    { name: 'clock-trusted-backwards', description: `seq ${n + 1} marked trusted 2 s before seq ${n}`, edits: extended(n, (c) => c.add({ type: EntryType.USE_RELEASED, ref: n, time: lastTime - 2_000 })) },
    { name: 'provisioned-again', description: 'a second provisioning entry', edits: extended(n, (c) => c.add({ type: EntryType.PROVISIONED, card: certificate() })) },
    { name: 'batch-loaded-twice', description: 'batch 1 loaded again', edits: extended(n, (c) => c.add({ type: EntryType.BATCH_LOADED, card: batch(1, keys.batch1, 8) })) },
    { name: 'batch-wrong-clinic', description: "a batch for another clinic than the certificate's", edits: extended(n, (c) => c.add({ type: EntryType.BATCH_LOADED, card: batch(3, keys.batch2, 3, { clinic: 'CLINIC-X' }) })) },
    { name: 'batch-forged-white', description: 'a batch whose white card the root did not sign', edits: extended(n, (c) => c.add({ type: EntryType.BATCH_LOADED, card: batch(3, keys.batch2, 3, { whiteRecord: white(keys.other) }) })) },
    { name: 'batch-without-card', description: 'a batch entry without its card', edits: extended(n, (c) => c.add({ type: EntryType.BATCH_LOADED })) },
    { name: 'use-batch-not-loaded', description: 'a use of a card of batch 5, never loaded', edits: extended(n, (c) => c.add({ type: EntryType.USE_RESERVED, card: oneTime(5, 1, keys.batch2) })) },
    { name: 'use-forged-card', description: 'a one-time card of batch 1 signed by another key', edits: extended(n, (c) => c.add({ type: EntryType.USE_RESERVED, card: oneTime(1, 8, keys.other) })) },
    { name: 'use-not-one-time', description: 'a use entry carrying a batch card', edits: extended(n, (c) => c.add({ type: EntryType.USE_RESERVED, card: batch(1, keys.batch1, 8) })) },
    { name: 'serial-out-of-range', description: 'serial 9 of a batch of 8', edits: extended(n, (c) => c.add({ type: EntryType.USE_RESERVED, card: oneTime(1, 9, keys.batch1) })) },
    { name: 'serial-used-twice', description: 'serial 1 of batch 1 reserved again after it completed', edits: extended(n, (c) => c.add({ type: EntryType.USE_RESERVED, card: oneTime(1, 1, keys.batch1) })) },
    { name: 'ref-not-a-use', description: 'a completion that refers to the batch load at seq 2', edits: extended(n, (c) => c.add({ type: EntryType.USE_COMPLETED, ref: 2 })) },
    { name: 'ref-missing', description: 'a start without a ref', edits: extended(n, (c) => c.add({ type: EntryType.USE_STARTED })) },
    { name: 'released-after-started', description: 'the use at seq 3 released after it ran (a silent refund)', edits: extended(n, (c) => c.add({ type: EntryType.USE_RELEASED, ref: 3 })) },
    { name: 'completed-after-reserved', description: `the open use at seq ${n} completed without a start`, edits: extended(n, (c) => c.add({ type: EntryType.USE_COMPLETED, ref: n })) },
    { name: 'witness-without-seq', description: 'a rollback witness entry that names no seq', edits: extended(n, (c) => c.add({ type: EntryType.WITNESS_ROLLBACK, detail: 'board: relay board holds a later head' })) },
    {
      name: 'clock-reset-replayed',
      description: "the mother card's clock reset statement copied after a later entry (it names the entry before the original)",
      edits: extended(n, (c) => {
        const reset = parseLedgerEntry(valid.find((raw) => parseLedgerEntry(raw).type === EntryType.CLOCK_RESET && parseLedgerEntry(raw).detail === 'mother card')!);
        c.add({ type: EntryType.CLOCK_RESET, time: reset.time, card: reset.card!, detail: 'mother card' });
      }),
    },
    {
      name: 'clock-reset-old-checkpoint',
      description: 'a server clock reset whose checkpoint was signed before the clock.refused entry (a replayed old checkpoint)',
      edits: extended(n, (c) => {
        const refused = c.add({ type: EntryType.CLOCK_REFUSED, clockTrusted: false, detail: 'server: behind the mark' });
        c.add({ type: EntryType.CLOCK_RESET, time: lastTime, card: serverResetProof(c.raws, refused - 1, lastTime), detail: 'server SRV-V' });
      }),
    },
    {
      name: 'clock-reset-forged',
      description: 'a clock reset whose statement another key signed',
      edits: extended(n, (c) => {
        const body = encodeMotherClockResetBody({ terminalId: TERMINAL_ID, headSeq: n, headHash: toHex(sha256(c.raws[n - 1]!)), time: lastTime, motherCardId: toHex(cardId('mother')) });
        c.add({ type: EntryType.CLOCK_RESET, time: lastTime, card: encodeClockResetProof({ by: 'mother-card', body, signature: toHex(signMessage(keys.other.privateKey, utf8(body))) }), detail: 'mother card' });
      }),
    },
    { name: 'clock-refused-without-detail', description: 'a clock.refused entry that says nothing', edits: extended(n, (c) => c.add({ type: EntryType.CLOCK_REFUSED, clockTrusted: false })) },
    { name: 'voucher-used-twice', description: 'voucher 1000001 written off again after it completed', edits: extended(n, (c) => c.add({ type: EntryType.VOUCHER_RESERVED, card: voucherUse(1000001) })) },
    { name: 'voucher-forged', description: 'a voucher signed by a key other than the one its certificate names', edits: extended(n, (c) => c.add({ type: EntryType.VOUCHER_RESERVED, card: voucherUse(1000003, { voucherSigner: keys.other }) })) },
    { name: 'voucher-key-not-certified', description: 'a voucher key certificate the root did not sign', edits: extended(n, (c) => c.add({ type: EntryType.VOUCHER_RESERVED, card: voucherUse(1000004, { certSigner: keys.other }) })) },
    { name: 'voucher-without-voucher', description: 'a voucher entry without its card', edits: extended(n, (c) => c.add({ type: EntryType.VOUCHER_RESERVED })) },
    { name: 'settlement-used-twice', description: 'order INS-V0002 used again after its use was released (reversed)', edits: extended(n, (c) => c.add({ type: EntryType.SETTLEMENT_RESERVED, card: settlementUse('INS-V0002'), detail: 'INS-V0002' })) },
    { name: 'settlement-forged', description: 'a settlement voucher signed by a key the server certificate does not name', edits: extended(n, (c) => c.add({ type: EntryType.SETTLEMENT_RESERVED, card: settlementUse('INS-V0003', { signer: keys.other }), detail: 'INS-V0003' })) },
    { name: 'settlement-other-terminal', description: 'a settlement voucher for another terminal', edits: extended(n, (c) => c.add({ type: EntryType.SETTLEMENT_RESERVED, card: settlementUse('INS-V0004', { terminalId: 'T-OTHER' }), detail: 'INS-V0004' })) },
    { name: 'settlement-expired', description: 'a settlement voucher used (clock trusted) after its expiry', edits: extended(n, (c) => c.add({ type: EntryType.SETTLEMENT_RESERVED, card: settlementUse('INS-V0005', { expiresAt: T0 + 1000 }), detail: 'INS-V0005' })) },
    { name: 'settlement-order-mismatch', description: 'a settlement entry naming another order than its voucher', edits: extended(n, (c) => c.add({ type: EntryType.SETTLEMENT_RESERVED, card: settlementUse('INS-V0006'), detail: 'INS-V9999' })) },
    { name: 'started-twice', description: 'the use at seq 3 started again', edits: extended(n, (c) => c.add({ type: EntryType.USE_STARTED, ref: 3 })) },
    { name: 'card-answer-altered', description: 'a version 2 use whose challenge differs from the one the card answered (one nonce bit)', edits: extended(n, (c) => { const step = oneTimeV2(3); c.add({ ...step, cardChallenge: Uint8Array.from(step.cardChallenge!, (b, i) => (i === 23 ? b ^ 1 : b)) }); }) },
    { name: 'card-answer-other-terminal', description: "a version 2 use carrying the card's genuine answer to another terminal's challenge (replayed from T-OTHER)", edits: extended(n, (c) => c.add(oneTimeV2(3, 'T-OTHER'))) },
    { name: 'card-not-authenticated', description: 'a version 2 one-time card used without its challenge and answer', edits: extended(n, (c) => { const { cardChallenge: _c, cardAnswer: _a, ...step } = oneTimeV2(3); c.add(step); }) },
    { name: 'batch-not-authenticated', description: 'a version 2 batch card loaded without its challenge and answer', edits: extended(n, (c) => c.add({ type: EntryType.BATCH_LOADED, card: batch(4, keys.batch3, 2, { cardKey: cardPublicKey(cardScalar('batch 3')) }) })) },
    { name: 'card-answer-on-version1', description: 'a version 1 card carrying a card answer (it has no key to answer with)', edits: extended(n, (c) => c.add({ ...oneTimeV2(3), card: oneTime(2, 3, keys.batch2) })) },
    { name: 'card-answer-on-setting', description: 'a card answer on an entry that is no card use', edits: extended(n, (c) => c.add({ ...setting(true), ...cardAuth('batch 3', cardId('batch 3')) })) },
    { name: 'version1-after-migration', description: 'a version 1 card used after the setting recorded cards.acceptVersion1=false', edits: extended(n, (c) => c.add({ type: EntryType.USE_RESERVED, card: oneTime(2, 3, keys.batch2) })) },
    { name: 'setting-unknown-value', description: 'a terminal.setting entry with a value its setting does not have', edits: extended(n, (c) => c.add({ type: EntryType.TERMINAL_SETTING, detail: 'cards.acceptVersion1=maybe' })) },
    { name: 'setting-unknown-name', description: 'a terminal.setting entry naming no known setting', edits: extended(n, (c) => c.add({ type: EntryType.TERMINAL_SETTING, detail: 'cards.acceptForged=true' })) },
    {
      name: 'untrusted-clock-ref-not-a-use',
      description: `seq ${n + 1} has an untrusted clock and refers to no use: it does not verify, so untrustedClock does not count it`,
      edits: extended(n, (c) => c.add({ type: EntryType.USE_COMPLETED, ref: 2, clockTrusted: false, time: 60_000 })),
    },
  ];
}

function verdictOf(result: LedgerVerification): Record<string, unknown> {
  return {
    ok: result.ok,
    entries: result.entries,
    lastSeq: result.lastSeq,
    headHash: result.headHash,
    uses: result.uses,
    releases: result.releases,
    untrustedClock: result.untrustedClock,
    ...(result.terminalId ? { terminalId: result.terminalId } : {}),
    ...(result.problem ? { problem: { seq: result.problem.seq, code: result.problem.code } } : {}),
  };
}

export function buildLedgerVectors(): Record<string, unknown> {
  const valid = validLedger().raws;
  const root = keys.root.publicKey;
  return {
    description: 'Golden vectors of firmware-protocol/ledger-format.md. Generated by scripts/ledgerVectors.ts; do not edit by hand.',
    regenerate: 'UPDATE_VECTORS=1 npx vitest run test/codecs/ledgerVectors.test.ts',
    rootPublicKey: toHex(root),
    rootFingerprint: toHex(sha256(root)),
    testKeySeeds: { root: toHex(keys.root.seed), terminal: toHex(keys.terminal.seed), white: toHex(keys.white.seed), batch1: toHex(keys.batch1.seed), batch2: toHex(keys.batch2.seed), batch3: toHex(keys.batch3.seed), voucher1: toHex(keys.voucher.seed) },
    testCardKeyScalars: Object.fromEntries(['batch 3', 'one-time 3/1', 'one-time 3/2', 'one-time 3/3'].map((name) => [name, toHex(cardScalar(name))])),
    ledger: {
      entries: valid.map((raw, i) => {
        const parsed = parseLedgerEntry(raw);
        return { seq: i + 1, type: ENTRY_TYPE_NAMES[parsed.type], time: parsed.time, clockTrusted: parsed.clockTrusted, hex: toHex(raw), hash: toHex(sha256(raw)) };
      }),
      verdict: verdictOf(verifyLedgerEntries(valid, root)),
    },
    tampered: variants(valid).map((variant) => ({ ...variant, verdict: verdictOf(verifyLedgerEntries(applyEdits(valid, variant.edits), root)) })),
  };
}

export function ledgerVectorsJson(): string {
  return `${JSON.stringify(buildLedgerVectors(), null, 2)}\n`;
}
