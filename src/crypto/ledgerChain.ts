/**
 * Checks a terminal's ledger as an auditor would: parse, gapless sequence,
 * hash chain, the terminal certificate back to the root, every signature, and
 * the meaning of the entries (a batch loaded before its cards are used, no
 * serial used twice without a release between). Says exactly where it breaks.
 */
import { bytesEqual, toHex } from '../codecs/bytes.js';
import { RecordKind, type BatchFields, type OneTimeFields, type SignedRecord } from '../codecs/cardRecord.js';
import { CLOCK_FLOOR_MS, CLOCK_TRUST_SLACK_MS, EntryType, GENESIS_HASH, parseLedgerEntry, type LedgerEntry } from '../codecs/ledgerEntry.js';
import { TallyError } from '../errors.js';
import { parseRecordOrThrow, verifyBatchChain, verifyOneTime, verifyTerminalCertificate } from './chain.js';
import { parseClockResetProof } from '../codecs/clockReset.js';
import { verifyClockReset } from './clockReset.js';
import { sha256, verifyMessage } from './ed25519.js';
import { openVoucherUse } from './voucher.js';
import { parseSettlementVoucher } from '../codecs/settlementVoucher.js';
import { verifySettlementVoucher } from './settlementVoucher.js';
import { terminalTag, verifyCardChallenge } from './cardAuth.js';
import { parseSettingDetail } from '../codecs/terminalSetting.js';


/**
 * The verdict's stable names (firmware-protocol/ledger-format.md, "Verifier rules"): every
 * implementation of the verifier names the same rule at the same seq.
 */
export const LEDGER_FAULTS = [
  'EMPTY',
  'MALFORMED',
  'GAP',
  'OUT_OF_ORDER',
  'CHAIN_BROKEN',
  'FIRST_NOT_PROVISIONING',
  'CERTIFICATE_INVALID',
  'SIGNATURE_INVALID',
  'TERMINAL_MISMATCH',
  'CLOCK_FLAG',
  'PROVISIONED_AGAIN',
  'BATCH_INVALID',
  'BATCH_WRONG_CLINIC',
  'BATCH_LOADED_TWICE',
  'CARD_INVALID',
  'BATCH_NOT_LOADED',
  'SERIAL_OUT_OF_RANGE',
  'SERIAL_USED_TWICE',
  'REF_NOT_A_USE',
  'USE_STATE',
  'WITNESS_INVALID',
  'CLOCK_RESET_INVALID',
  'CLOCK_REFUSED_INVALID',
  'VOUCHER_INVALID',
  'VOUCHER_USED_TWICE',
  'SETTLEMENT_INVALID',
  'SETTLEMENT_USED_TWICE',
  'CARD_AUTH_INVALID',
  'VERSION1_NOT_ALLOWED',
  'SETTING_INVALID',
  'DATABASE_UNREADABLE',
] as const;
export type LedgerFault = (typeof LEDGER_FAULTS)[number];

export interface LedgerProblem {
  readonly seq: number;
  readonly code: LedgerFault;
  readonly problem: string;
}

export interface LedgerVerification {
  readonly ok: boolean;
  readonly entries: number;
  readonly lastSeq: number;
  readonly terminalId?: string;
  readonly uses: number;
  readonly releases: number;
  /** Entries whose clock-trust byte is 0 (the terminal did not believe its clock) */
  readonly untrustedClock: number;
  /** SHA-256 of the last entry that verified, hex (64 zeros when none did) */
  readonly headHash: string;
  /** The first problem found; verification stops there because later hashes cannot be trusted */
  readonly problem?: LedgerProblem;
}

type UseState = 'reserved' | 'started' | 'completed' | 'failed' | 'released';

/** The state a device event moves a use to, and the states it may follow (as the terminal's Ledger allows) */
const USE_TRANSITIONS: Partial<Record<number, { to: UseState; from: readonly UseState[] }>> = {
  [EntryType.USE_STARTED]: { to: 'started', from: ['reserved'] },
  [EntryType.USE_COMPLETED]: { to: 'completed', from: ['started'] },
  [EntryType.USE_FAILED]: { to: 'failed', from: ['started'] },
  [EntryType.USE_RELEASED]: { to: 'released', from: ['reserved'] },
};

export function entryHash(raw: Uint8Array): Uint8Array {
  return sha256(raw);
}

/**
 * unreadable: why the database could not be read past these entries (a damaged, truncated or malformed file):
 * the verdict is then DATABASE_UNREADABLE at the seq after them, unless a problem among them comes first.
 */
export function verifyLedgerEntries(rawEntries: Iterable<Uint8Array>, rootPublicKey: Uint8Array, unreadable?: string): LedgerVerification {
  let expectedSeq = 1;
  let prevHash: Uint8Array = GENESIS_HASH;
  let devicePublicKey: Uint8Array | undefined;
  let terminalId: string | undefined;
  let entries = 0;
  let uses = 0;
  let releases = 0;
  const batches = new Map<string, SignedRecord<BatchFields>>();
  const openUses = new Map<string, number>();
  /** Orders a settlement.reserved entry named, released or not */
  const settlementOrders = new Set<string>();
  const reserveKeys = new Map<number, string>();
  const useStates = new Map<number, UseState>();

  let untrustedClock = 0;
  /** The greatest time of a clock-trusted entry since the last clock.reset (untrusted times are not the clock's word) */
  let latestTime = 0;
  /** The last clock.refused entry since the last reset, and the hashes of the entries from it on (a server reset's checkpoint names one) */
  let refusedSeq: number | undefined;
  let hashesSinceRefused = new Map<number, string>();
  let clinicCode: string | undefined;
  /** cards.acceptVersion1 as the last terminal.setting entry recorded it; undefined before any (a ledger older than the setting) */
  let acceptVersion1: boolean | undefined;
  const summary = () => ({ entries, lastSeq: expectedSeq - 1, uses, releases, untrustedClock, headHash: toHex(prevHash), ...(terminalId ? { terminalId } : {}) });
  const fail = (seq: number, code: LedgerFault, problem: string): LedgerVerification => ({ ok: false, ...summary(), problem: { seq, code, problem } });

  for (const raw of rawEntries) {
    let entry: LedgerEntry;
    try {
      entry = parseLedgerEntry(raw);
    } catch (err) {
      return fail(expectedSeq, 'MALFORMED', `entry does not parse: ${(err as Error).message}`);
    }
    if (entry.seq !== expectedSeq) {
      return entry.seq > expectedSeq
        ? fail(expectedSeq, 'GAP', `gap: next entry is seq ${entry.seq}`)
        : fail(expectedSeq, 'OUT_OF_ORDER', `out of order: seq ${entry.seq} repeated or moved`);
    }
    if (!bytesEqual(entry.prevHash, prevHash)) return fail(entry.seq, 'CHAIN_BROKEN', 'hash chain broken: previous-entry hash does not match (an earlier entry was altered, removed or reordered)');
    if (entry.seq === 1) {
      if (entry.type !== EntryType.PROVISIONED || !entry.card) return fail(1, 'FIRST_NOT_PROVISIONING', 'first entry is not the provisioning entry');
      try {
        const cert = verifyTerminalCertificate(parseRecordOrThrow(entry.card), rootPublicKey);
        devicePublicKey = cert.publicKey;
        terminalId = cert.terminalId;
        clinicCode = cert.clinicCode;
      } catch (err) {
        return fail(1, 'CERTIFICATE_INVALID', `terminal certificate invalid: ${(err as Error).message}`);
      }
    }
    if (!devicePublicKey || !verifyMessage(devicePublicKey, entry.body, entry.signature)) return fail(entry.seq, 'SIGNATURE_INVALID', 'terminal signature invalid');
    if (entry.terminalId !== terminalId) return fail(entry.seq, 'TERMINAL_MISMATCH', `entry names terminal ${entry.terminalId}, certificate says ${terminalId ?? '?'}`);
    const isReset = entry.type === EntryType.CLOCK_RESET;
    if (entry.clockTrusted) {
      // the terminal trusts its clock only past the floor and no more than 1 s behind anything it trusted before (a proven reset may go back)
      if (entry.time < CLOCK_FLOOR_MS) return fail(entry.seq, 'CLOCK_FLAG', `clock marked trusted at ${entry.time} ms, before the floor ${CLOCK_FLOOR_MS}`);
      if (!isReset && entry.time < latestTime - CLOCK_TRUST_SLACK_MS) return fail(entry.seq, 'CLOCK_FLAG', `clock marked trusted at ${entry.time} ms, behind the earlier entry time ${latestTime}`);
    }

    const problem = checkMeaning(entry);
    if (problem) return fail(entry.seq, problem[0], problem[1]);
    // counted once the entry verifies (ledger-format.md section 7: verified entries with 44 01 00)
    if (!entry.clockTrusted) untrustedClock++;
    entries++;
    prevHash = entryHash(raw);
    if (isReset) {
      latestTime = entry.time;
      refusedSeq = undefined;
      hashesSinceRefused = new Map();
    } else if (entry.clockTrusted) {
      latestTime = Math.max(latestTime, entry.time);
    }
    if (entry.type === EntryType.CLOCK_REFUSED) {
      refusedSeq = entry.seq;
      hashesSinceRefused = new Map();
    }
    if (refusedSeq !== undefined) hashesSinceRefused.set(entry.seq, toHex(prevHash));
    expectedSeq++;
  }
  if (unreadable !== undefined) return fail(expectedSeq, 'DATABASE_UNREADABLE', `the database cannot be read past seq ${expectedSeq - 1}: ${unreadable}`);
  if (expectedSeq === 1) return fail(1, 'EMPTY', 'the ledger has no entries (a provisioned terminal has at least its provisioning entry)');
  return { ok: true, ...summary() };

  function checkMeaning(entry: LedgerEntry): [LedgerFault, string] | undefined {
    if (entry.cardChallenge && entry.type !== EntryType.BATCH_LOADED && entry.type !== EntryType.USE_RESERVED) return ['CARD_AUTH_INVALID', 'a card answer on an entry that is no batch load or card use'];
    switch (entry.type) {
      case EntryType.PROVISIONED:
        return entry.seq === 1 ? undefined : ['PROVISIONED_AGAIN', 'provisioning entry after the first'];
      case EntryType.BATCH_LOADED: {
        if (!entry.card) return ['BATCH_INVALID', 'batch entry without its card'];
        let batch: SignedRecord<BatchFields>;
        try {
          batch = verifyBatchChain(parseRecordOrThrow(entry.card), rootPublicKey).batch;
        } catch (err) {
          return ['BATCH_INVALID', describe(err)];
        }
        if (batch.clinicCode !== clinicCode) return ['BATCH_WRONG_CLINIC', `batch ${batch.batchNo} is for clinic ${batch.clinicCode}, the terminal for ${clinicCode ?? '?'}`];
        const id = toHex(batch.cardId);
        if (batches.has(id)) return ['BATCH_LOADED_TWICE', `batch ${batch.batchNo} loaded twice`];
        const auth = checkCardAuth(entry, batch);
        if (auth) return auth;
        batches.set(id, batch);
        return undefined;
      }
      case EntryType.USE_RESERVED: {
        if (!entry.card) return ['CARD_INVALID', 'use entry without its card'];
        let card: SignedRecord;
        try {
          card = parseRecordOrThrow(entry.card);
        } catch (err) {
          return ['CARD_INVALID', describe(err)];
        }
        if (card.kind !== RecordKind.ONE_TIME) return ['CARD_INVALID', 'use of a card that is not a one-time card'];
        const batch = batches.get(toHex(card.batchId));
        if (!batch) return ['BATCH_NOT_LOADED', 'use of a card whose batch was never loaded'];
        try {
          verifyOneTime(card, batch.publicKey, batch.cardId);
        } catch (err) {
          return ['CARD_INVALID', describe(err)];
        }
        if (card.serial < 1 || card.serial > batch.count) return ['SERIAL_OUT_OF_RANGE', `serial ${card.serial} outside batch range 1..${batch.count}`];
        const key = `${toHex(card.batchId)}:${card.serial}`;
        if (openUses.has(key)) return ['SERIAL_USED_TWICE', `serial ${card.serial} of batch ${batch.batchNo} used twice`];
        const auth = checkCardAuth(entry, card);
        if (auth) return auth;
        openUses.set(key, entry.seq);
        reserveKeys.set(entry.seq, key);
        useStates.set(entry.seq, 'reserved');
        uses++;
        return undefined;
      }
      case EntryType.VOUCHER_RESERVED: {
        // card = the voucher key certificate (root-signed) || the voucher it signed (voucher-format.md §8)
        if (!entry.card) return ['VOUCHER_INVALID', 'voucher entry without its voucher'];
        let serial: number;
        try {
          serial = openVoucherUse(entry.card, rootPublicKey).voucher.serial;
        } catch (err) {
          return ['VOUCHER_INVALID', describe(err)];
        }
        const key = `voucher:${serial}`;
        if (openUses.has(key)) return ['VOUCHER_USED_TWICE', `voucher ${serial} written off twice`];
        openUses.set(key, entry.seq);
        reserveKeys.set(entry.seq, key);
        useStates.set(entry.seq, 'reserved');
        uses++;
        return undefined;
      }
      case EntryType.SETTLEMENT_RESERVED: {
        // card = the settlement voucher's text (settlement-voucher.md), detail = its order id
        if (!entry.card) return ['SETTLEMENT_INVALID', 'settlement entry without its voucher'];
        try {
          const fields = verifySettlementVoucher(parseSettlementVoucher(new TextDecoder('utf-8', { fatal: true }).decode(entry.card)), rootPublicKey, {
            terminalId: entry.terminalId,
            // the expiry binds a trusted clock only: an untrusted entry's time proves nothing either way
            now: entry.clockTrusted ? entry.time : 0,
          });
          if (fields.orderId !== entry.detail) return ['SETTLEMENT_INVALID', `entry names order ${entry.detail ?? '(none)'}, its voucher ${fields.orderId}`];
        } catch (err) {
          return ['SETTLEMENT_INVALID', describe(err)];
        }
        // one voucher, one use: a released use was reversed with the platform, so never used again
        const key = `settlement:${entry.detail}`;
        if (settlementOrders.has(key)) return ['SETTLEMENT_USED_TWICE', `order ${entry.detail} used twice`];
        settlementOrders.add(key);
        openUses.set(key, entry.seq);
        reserveKeys.set(entry.seq, key);
        useStates.set(entry.seq, 'reserved');
        uses++;
        return undefined;
      }
      case EntryType.WITNESS_ROLLBACK:
        // evidence, not a use: the seq the witness named and what it holds; its card may be of a batch this ledger lost
        if (entry.ref === undefined || entry.ref < 1 || !entry.detail) return ['WITNESS_INVALID', 'a rollback witness entry names no seq or no witness'];
        return undefined;
      case EntryType.TERMINAL_SETTING:
        if (entry.card || entry.chipUid || entry.ref !== undefined) return ['SETTING_INVALID', 'a terminal.setting entry carries a card, chip or ref'];
        try {
          acceptVersion1 = parseSettingDetail(entry.detail).value;
        } catch (err) {
          return ['SETTING_INVALID', describe(err)];
        }
        return undefined;
      case EntryType.CLOCK_REFUSED:
        if (!entry.detail) return ['CLOCK_REFUSED_INVALID', 'a clock.refused entry says nothing of the time it refused'];
        return undefined;
      case EntryType.CLOCK_RESET: {
        if (!entry.card) return ['CLOCK_RESET_INVALID', 'a clock.reset entry without its proof'];
        if (!entry.clockTrusted) return ['CLOCK_RESET_INVALID', 'a clock.reset entry not marked clock-trusted'];
        try {
          const verdict = verifyClockReset(parseClockResetProof(entry.card), {
            rootPublicKey,
            terminalId: terminalId ?? '',
            headSeq: entry.seq - 1,
            headHash: toHex(prevHash),
            refusedSeq,
            hashAt: (seq) => hashesSinceRefused.get(seq),
          });
          if (verdict.time !== entry.time) return ['CLOCK_RESET_INVALID', `entry dated ${entry.time}, its proof says ${verdict.time}`];
        } catch (err) {
          return ['CLOCK_RESET_INVALID', describe(err)];
        }
        return undefined;
      }
      case EntryType.USE_STARTED:
      case EntryType.USE_COMPLETED:
      case EntryType.USE_FAILED:
      case EntryType.USE_RELEASED: {
        if (entry.ref === undefined || !reserveKeys.has(entry.ref)) return ['REF_NOT_A_USE', `refers to seq ${entry.ref ?? '?'}, which is not a use`];
        // a release after the device started would be a silent refund; a second start or end a made-up session
        const transition = USE_TRANSITIONS[entry.type]!;
        const state = useStates.get(entry.ref)!;
        if (!transition.from.includes(state)) return ['USE_STATE', `use at seq ${entry.ref} ${transition.to} after it was ${state}`];
        useStates.set(entry.ref, transition.to);
        if (entry.type === EntryType.USE_RELEASED) {
          openUses.delete(reserveKeys.get(entry.ref)!);
          releases++;
        }
        return undefined;
      }
    }
    return undefined;
  }

  /**
   * A version 2 card's entry carries the challenge the terminal sent (its own terminal tag || nonce) and the
   * card's answer, which verifies with the card key its record names; a version 1 card's carries neither, and
   * passes only while no terminal.setting entry has recorded cards.acceptVersion1=false
   */
  function checkCardAuth(entry: LedgerEntry, card: SignedRecord<BatchFields | OneTimeFields>): [LedgerFault, string] | undefined {
    if (card.cardKey === undefined) {
      if (entry.cardChallenge) return ['CARD_AUTH_INVALID', 'a version 1 card (no card key) with a card answer'];
      if (acceptVersion1 === false) return ['VERSION1_NOT_ALLOWED', 'a version 1 card accepted while the last terminal.setting says cards.acceptVersion1=false'];
      return undefined;
    }
    if (!entry.cardChallenge || !entry.cardAnswer) return ['CARD_AUTH_INVALID', 'a version 2 card without its challenge and answer: not authenticated'];
    if (!bytesEqual(entry.cardChallenge.subarray(0, 8), terminalTag(terminalId ?? ''))) return ['CARD_AUTH_INVALID', 'the challenge names another terminal'];
    if (!verifyCardChallenge(card.cardKey, card.cardId, entry.cardChallenge, entry.cardAnswer)) return ['CARD_AUTH_INVALID', "the card's answer does not verify with the card key its record names"];
    return undefined;
  }
}

function describe(err: unknown): string {
  return err instanceof TallyError ? `${err.code}: ${err.message}` : (err as Error).message;
}
