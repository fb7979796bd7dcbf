/**
 * Real signed material for sync and server tests, made with the project's own
 * codecs and keys: an investor root, terminal certificates signed by it,
 * white/batch/one-time cards, and terminal ledgers whose entries are chained
 * and signed by the terminal's device key, exactly as the ledger makes them.
 * InMemoryOutbox implements OutboxSource over such a ledger.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { toHex } from '../../src/codecs/bytes.js';
import { encodeRecordBody, encodeSignedRecord, RecordKind, type RecordFields } from '../../src/codecs/cardRecord.js';
import { encodeLedgerEntry, encodeLedgerEntryBody, EntryType, GENESIS_HASH, type EntryTypeValue, type LedgerEntryFields } from '../../src/codecs/ledgerEntry.js';
import { generateSigningKey, signMessage, type Ed25519KeyPair } from '../../src/crypto/ed25519.js';
import { entryHash } from '../../src/crypto/ledgerChain.js';
import { Ledger } from '../../src/ledger/Ledger.js';
import type { OutboxEntry, OutboxSource } from '../../src/sync/OutboxSource.js';
import { saveDeviceKey } from '../../src/terminal/deviceKey.js';
import { systemClock } from '../../src/util/clock.js';

export const ISSUED_AT = 1_790_000_000;
/** 2026-09-22T00:00:00Z: a trusted terminal clock */
export const BASE_TIME = Date.UTC(2026, 8, 22);

export function signRecord(fields: RecordFields, key: KeyObject): Uint8Array {
  const body = encodeRecordBody(fields);
  return encodeSignedRecord(body, signMessage(key, body));
}

/**
 * A terminal data folder as the factory leaves it: its ledger provisioned with a certificate the investor root
 * signed, and its device key saved; `tally terminal run` or Terminal.open takes it from there
 */
export function provisionDataDir(investor: Investor, dataDir: string, terminalId: string, clinicCode = 'CL-1'): void {
  mkdirSync(dataDir, { recursive: true });
  const identity = new SignedLedger(investor, terminalId, clinicCode);
  const ledger = Ledger.open(join(dataDir, 'terminal.db'), systemClock);
  ledger.setSigner((b) => signMessage(identity.device.privateKey, b));
  ledger.provision({ terminalId, clinicCode, rootPublicKey: investor.rootPublicKey, certificate: identity.certificate });
  ledger.close();
  saveDeviceKey(dataDir, identity.device.privateKey);
}

export interface Investor {
  readonly root: Ed25519KeyPair;
  readonly rootPublicKey: Uint8Array;
}

export function makeInvestor(): Investor {
  const root = generateSigningKey();
  return { root, rootPublicKey: root.publicKey };
}

export interface BatchCards {
  readonly batchId: Uint8Array;
  readonly batchIdHex: string;
  readonly batchNo: number;
  readonly clinicCode: string;
  readonly count: number;
  /** The batch card's signed record (embeds its white card) */
  readonly record: Uint8Array;
  oneTime(serial: number): Uint8Array;
}

export function makeBatch(investor: Investor, clinicCode: string, batchNo: number, count: number): BatchCards {
  const white = generateSigningKey();
  const whiteRecord = signRecord(
    { kind: RecordKind.WHITE, cardId: randomBytes(8), issuedAt: ISSUED_AT, publicKey: white.publicKey, quota: 100, validUntil: ISSUED_AT + 10 * 365 * 86400 },
    investor.root.privateKey,
  );
  const batchKey = generateSigningKey();
  const batchId = new Uint8Array(randomBytes(8));
  const record = signRecord(
    {
      kind: RecordKind.BATCH,
      cardId: batchId,
      issuedAt: ISSUED_AT,
      publicKey: batchKey.publicKey,
      clinicCode,
      batchNo,
      count,
      validFrom: ISSUED_AT,
      validUntil: ISSUED_AT + 365 * 86400,
      issuer: whiteRecord,
    },
    white.privateKey,
  );
  return {
    batchId,
    batchIdHex: toHex(batchId),
    batchNo,
    clinicCode,
    count,
    record,
    oneTime: (serial) => signRecord({ kind: RecordKind.ONE_TIME, cardId: randomBytes(8), issuedAt: ISSUED_AT, batchId, serial }, batchKey.privateKey),
  };
}

/** A terminal's ledger in memory: chained, signed entries, as src/ledger makes them */
export class SignedLedger {
  readonly device: Ed25519KeyPair;
  readonly certificate: Uint8Array;
  readonly entries: Uint8Array[] = [];
  private prevHash: Uint8Array = GENESIS_HASH;
  private time = BASE_TIME;

  constructor(
    readonly investor: Investor,
    readonly terminalId: string,
    readonly clinicCode: string,
    device?: Ed25519KeyPair,
  ) {
    this.device = device ?? generateSigningKey();
    this.certificate = signRecord(
      { kind: RecordKind.TERMINAL, cardId: randomBytes(8), issuedAt: ISSUED_AT, publicKey: this.device.publicKey, terminalId, clinicCode },
      investor.root.privateKey,
    );
    this.append(EntryType.PROVISIONED, { card: this.certificate });
  }

  get lastSeq(): number {
    return this.entries.length;
  }

  append(type: EntryTypeValue, extra: Partial<Pick<LedgerEntryFields, 'card' | 'ref' | 'detail' | 'chipUid' | 'clockTrusted'>> = {}, signWith: KeyObject = this.device.privateKey): Uint8Array {
    this.time += 60_000;
    const fields: LedgerEntryFields = { seq: this.entries.length + 1, prevHash: this.prevHash, type, time: this.time, clockTrusted: true, terminalId: this.terminalId, ...extra };
    const body = encodeLedgerEntryBody(fields);
    const raw = encodeLedgerEntry(body, signMessage(signWith, body));
    this.entries.push(raw);
    this.prevHash = entryHash(raw);
    return raw;
  }

  loadBatch(batch: BatchCards): Uint8Array {
    return this.append(EntryType.BATCH_LOADED, { card: batch.record });
  }

  /** A whole use: reserve, started, completed. Returns the reserve seq */
  use(batch: BatchCards, serial: number): number {
    this.append(EntryType.USE_RESERVED, { card: batch.oneTime(serial) });
    const reserveSeq = this.lastSeq;
    this.append(EntryType.USE_STARTED, { ref: reserveSeq });
    this.append(EntryType.USE_COMPLETED, { ref: reserveSeq });
    return reserveSeq;
  }

  /** A use whose device never started: reserve, then released (not charged) */
  releasedUse(batch: BatchCards, serial: number): number {
    this.append(EntryType.USE_RESERVED, { card: batch.oneTime(serial) });
    const reserveSeq = this.lastSeq;
    this.append(EntryType.USE_RELEASED, { ref: reserveSeq, detail: 'device did not start' });
    return reserveSeq;
  }

  entry(seq: number): Uint8Array {
    const raw = this.entries[seq - 1];
    if (!raw) throw new Error(`no entry ${seq}`);
    return raw;
  }
}

/** OutboxSource over a SignedLedger: every entry is pending until acknowledged */
export class InMemoryOutbox implements OutboxSource {
  readonly acknowledged = new Set<number>();
  acknowledgeCalls = 0;
  constructor(readonly ledger: SignedLedger) {}

  get terminalId(): string {
    return this.ledger.terminalId;
  }

  terminalCertificate(): Uint8Array {
    return this.ledger.certificate;
  }

  pending(limit: number, afterSeq = 0): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    for (let seq = afterSeq + 1; seq <= this.ledger.lastSeq && out.length < limit; seq++) {
      if (!this.acknowledged.has(seq)) out.push({ seq, raw: this.ledger.entry(seq) });
    }
    return out;
  }

  acknowledge(seqs: readonly number[]): void {
    this.acknowledgeCalls++;
    for (const seq of seqs) if (seq >= 1 && seq <= this.ledger.lastSeq) this.acknowledged.add(seq);
  }

  entriesFrom(seq: number, limit: number): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    for (let s = Math.max(1, seq); s <= this.ledger.lastSeq && out.length < limit; s++) out.push({ seq: s, raw: this.ledger.entry(s) });
    return out;
  }

  pendingCount(): number {
    return this.ledger.lastSeq - this.acknowledged.size;
  }
}
