/**
 * Checks a terminal's ledger as an auditor would: parse, gapless sequence,
 * hash chain, the terminal certificate back to the root, every signature, and
 * the meaning of the entries (a batch loaded before its cards are used, no
 * serial used twice without a release between). Says exactly where it breaks.
 */
import { bytesEqual, toHex } from '../codecs/bytes.js';
import { RecordKind, type BatchFields, type SignedRecord } from '../codecs/cardRecord.js';
import { EntryType, GENESIS_HASH, parseLedgerEntry, type LedgerEntry } from '../codecs/ledgerEntry.js';
import { TallyError } from '../errors.js';
import { parseRecordOrThrow, verifyBatchChain, verifyOneTime, verifyTerminalCertificate } from './chain.js';
import { sha256, verifyMessage } from './ed25519.js';

export interface LedgerProblem {
  readonly seq: number;
  readonly problem: string;
}

export interface LedgerVerification {
  readonly ok: boolean;
  readonly entries: number;
  readonly lastSeq: number;
  readonly terminalId?: string;
  readonly uses: number;
  readonly releases: number;
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

export function verifyLedgerEntries(rawEntries: Iterable<Uint8Array>, rootPublicKey: Uint8Array): LedgerVerification {
  let expectedSeq = 1;
  let prevHash: Uint8Array = GENESIS_HASH;
  let devicePublicKey: Uint8Array | undefined;
  let terminalId: string | undefined;
  let entries = 0;
  let uses = 0;
  let releases = 0;
  const batches = new Map<string, SignedRecord<BatchFields>>();
  const openUses = new Map<string, number>();
  const reserveKeys = new Map<number, string>();
  const useStates = new Map<number, UseState>();

  const fail = (seq: number, problem: string): LedgerVerification => ({
    ok: false,
    entries,
    lastSeq: expectedSeq - 1,
    uses,
    releases,
    ...(terminalId ? { terminalId } : {}),
    problem: { seq, problem },
  });

  for (const raw of rawEntries) {
    let entry: LedgerEntry;
    try {
      entry = parseLedgerEntry(raw);
    } catch (err) {
      return fail(expectedSeq, `entry does not parse: ${(err as Error).message}`);
    }
    if (entry.seq !== expectedSeq) return fail(expectedSeq, entry.seq > expectedSeq ? `gap: next entry is seq ${entry.seq}` : `out of order: seq ${entry.seq} repeated or moved`);
    if (!bytesEqual(entry.prevHash, prevHash)) return fail(entry.seq, 'hash chain broken: previous-entry hash does not match (an earlier entry was altered, removed or reordered)');
    if (entry.seq === 1) {
      if (entry.type !== EntryType.PROVISIONED || !entry.card) return fail(1, 'first entry is not the provisioning entry');
      try {
        const cert = verifyTerminalCertificate(parseRecordOrThrow(entry.card), rootPublicKey);
        devicePublicKey = cert.publicKey;
        terminalId = cert.terminalId;
      } catch (err) {
        return fail(1, `terminal certificate invalid: ${(err as Error).message}`);
      }
    }
    if (!devicePublicKey || !verifyMessage(devicePublicKey, entry.body, entry.signature)) return fail(entry.seq, 'terminal signature invalid');
    if (entry.terminalId !== terminalId) return fail(entry.seq, `entry names terminal ${entry.terminalId}, certificate says ${terminalId ?? '?'}`);

    const problem = checkMeaning(entry);
    if (problem) return fail(entry.seq, problem);
    entries++;
    prevHash = entryHash(raw);
    expectedSeq++;
  }
  return { ok: true, entries, lastSeq: expectedSeq - 1, uses, releases, ...(terminalId ? { terminalId } : {}) };

  function checkMeaning(entry: LedgerEntry): string | undefined {
    try {
      switch (entry.type) {
        case EntryType.PROVISIONED:
          return entry.seq === 1 ? undefined : 'provisioning entry after the first';
        case EntryType.BATCH_LOADED: {
          if (!entry.card) return 'batch entry without its card';
          const { batch } = verifyBatchChain(parseRecordOrThrow(entry.card), rootPublicKey);
          const id = toHex(batch.cardId);
          if (batches.has(id)) return `batch ${batch.batchNo} loaded twice`;
          batches.set(id, batch);
          return undefined;
        }
        case EntryType.USE_RESERVED: {
          if (!entry.card) return 'use entry without its card';
          const card = parseRecordOrThrow(entry.card);
          if (card.kind !== RecordKind.ONE_TIME) return 'use of a card that is not a one-time card';
          const batch = batches.get(toHex(card.batchId));
          if (!batch) return 'use of a card whose batch was never loaded';
          verifyOneTime(card, batch.publicKey, batch.cardId);
          if (card.serial < 1 || card.serial > batch.count) return `serial ${card.serial} outside batch range 1..${batch.count}`;
          const key = `${toHex(card.batchId)}:${card.serial}`;
          if (openUses.has(key)) return `serial ${card.serial} of batch ${batch.batchNo} used twice`;
          openUses.set(key, entry.seq);
          reserveKeys.set(entry.seq, key);
          useStates.set(entry.seq, 'reserved');
          uses++;
          return undefined;
        }
        case EntryType.USE_STARTED:
        case EntryType.USE_COMPLETED:
        case EntryType.USE_FAILED:
        case EntryType.USE_RELEASED: {
          if (entry.ref === undefined || !reserveKeys.has(entry.ref)) return `refers to seq ${entry.ref ?? '?'}, which is not a use`;
          // a release after the device started would be a silent refund; a second start or end a made-up session
          const transition = USE_TRANSITIONS[entry.type]!;
          const state = useStates.get(entry.ref)!;
          if (!transition.from.includes(state)) return `use at seq ${entry.ref} ${transition.to} after it was ${state}`;
          useStates.set(entry.ref, transition.to);
          if (entry.type === EntryType.USE_RELEASED) {
            openUses.delete(reserveKeys.get(entry.ref)!);
            releases++;
          }
          return undefined;
        }
      }
    } catch (err) {
      return err instanceof TallyError ? `${err.code}: ${err.message}` : (err as Error).message;
    }
  }
}
