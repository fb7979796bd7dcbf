/**
 * The voucher back office (seed 004) over its store: generates batches, sends them to community centres, issues
 * a voucher to a wallet and signs its QR code, books a slot and signs the booked voucher, voids, counts, and
 * signs the trust list the terminals check vouchers against (voucher-format.md). The voucher key (certified by
 * the investor root, roles vouchers and trust lists) comes from the key file of `tally server voucher certify-key`.
 * Every state change is the store's one conditional update; a refusal is a TallyError with its code.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes, type KeyObject } from 'node:crypto';
import { fromHex, toHex } from '../../codecs/bytes.js';
import { encodeVoucherQr, KeyRole, openKeyCertificate, type KeyCertificate, type VoucherFields } from '../../codecs/voucher.js';
import { privateKeyFromSeed, privateKeySeed, rawPublicKey, verifyMessage } from '../../crypto/ed25519.js';
import { signTrustList, signVoucher } from '../../crypto/voucher.js';
import { signWalletQr, verifyWalletQr, walletBinding } from '../../crypto/walletQr.js';
import { CodecError, TallyError } from '../../errors.js';
import type { SqlVoucherStore, VoucherBatchFields, VoucherBatchSpec, VoucherRow } from './SqlVoucherStore.js';

const KEY_FILE_FORMAT = 'tallystick-voucher-key-file/1';
const DAY = 86_400;

/** The back office's voucher key and its root-signed certificate (voucher-format.md §3) */
export interface VoucherKey {
  readonly key: KeyObject;
  readonly certificate: KeyCertificate;
}

/** The key file (mode 0600): the key's seed, its certificate and the root public key that signed it */
export function saveVoucherKey(path: string, key: VoucherKey, rootPublicKey: Uint8Array): void {
  writeFileSync(path, `${JSON.stringify({ format: KEY_FILE_FORMAT, seed: toHex(privateKeySeed(key.key)), certificate: toHex(key.certificate.raw), root: toHex(rootPublicKey) }, null, 1)}\n`, { mode: 0o600 });
}

/**
 * Reads a key file and checks its certificate against the root: the one given (the server's --root), else the
 * one the file names. TRUST_LIST_INVALID when it does not verify; the key must match its certificate.
 */
export function loadVoucherKey(path: string, rootPublicKey?: Uint8Array): VoucherKey & { rootPublicKey: Uint8Array } {
  let o: { format?: unknown; seed?: unknown; certificate?: unknown; root?: unknown };
  try {
    o = JSON.parse(readFileSync(path, 'utf8')) as typeof o;
  } catch (err) {
    throw new TallyError('CONFIG', `voucher key ${path}: ${(err as Error).message}`);
  }
  const hex64 = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
  if (o.format !== KEY_FILE_FORMAT || !hex64(o.seed) || typeof o.certificate !== 'string' || !/^([0-9a-f]{2})+$/.test(o.certificate) || !hex64(o.root)) {
    throw new TallyError('CONFIG', `voucher key ${path}: not a ${KEY_FILE_FORMAT} file`);
  }
  const root = rootPublicKey ?? fromHex(o.root);
  const certificate = openKeyCertificate(fromHex(o.certificate), (signed, signature) => {
    if (!verifyMessage(root, signed, signature)) throw new CodecError('TRUST_LIST_INVALID', `voucher key ${path}: its certificate is not signed by this investor root`);
  });
  const key = privateKeyFromSeed(fromHex(o.seed));
  if (toHex(rawPublicKey(key)) !== toHex(certificate.publicKey)) throw new TallyError('CONFIG', `voucher key ${path}: the key is not the one its certificate names`);
  return { key, certificate, rootPublicKey: root };
}

export type BatchRequest = VoucherBatchFields;

/** What the wallet shows for one voucher: state, validity, the QR text to show (none once written off or voided) */
export interface WalletVoucher extends VoucherRow {
  readonly examType: string;
  readonly scope: string;
  readonly validFrom: number;
  /** 'to book', 'booked', 'expired', ... as the seed names them */
  readonly shown: 'to-book' | 'ready' | 'booked' | 'expired' | 'voided';
  readonly qr?: string;
  readonly slot?: { slotId: number; clinicCode: string; department: string; doctor: string; start: number; end: number };
}

/** How long a personal QR code the back office signs is valid (wallet-qr.md: at most 600 s) */
export const WALLET_QR_LIFETIME_SECONDS = 120;
/** A taken code is kept this long past its expiry before it is pruned: servers sharing the store may disagree on the time */
export const WALLET_QR_PRUNE_MARGIN_SECONDS = 300;

export class VoucherOffice {
  constructor(
    private readonly store: SqlVoucherStore,
    private readonly voucherKey: VoucherKey | undefined,
    private readonly nowSeconds: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  private key(): VoucherKey {
    if (!this.voucherKey) throw new TallyError('VOUCHER_KEY_MISSING');
    return this.voucherKey;
  }

  /** A batch of `count` vouchers with fresh serials: the batch's first and last serial */
  async generate(request: BatchRequest): Promise<{ batchId: string; first: number; last: number }> {
    if (!/^[A-Za-z0-9._-]{1,40}$/.test(request.batchId)) throw new TallyError('USAGE', 'batch id: 1..40 of A-Z a-z 0-9 . _ -');
    if (!/^[A-Za-z0-9._-]{1,16}$/.test(request.examType) || !/^[A-Za-z0-9._-]{1,16}$/.test(request.scope)) throw new TallyError('USAGE', 'exam type and scope: 1..16 of A-Z a-z 0-9 . _ -');
    if (!Number.isInteger(request.count) || request.count < 1 || request.count > 100_000) throw new TallyError('USAGE', 'count: 1..100000');
    if (!(request.validUntil >= request.validFrom)) throw new TallyError('USAGE', 'valid until must not be before valid from');
    if (await this.store.batch(request.batchId)) throw new TallyError('VOUCHER_STATE_REFUSED', `batch ${request.batchId} exists`);
    const first = await this.store.nextSerial();
    const spec: VoucherBatchSpec = { ...request, firstSerial: first };
    await this.store.generateBatch(spec, this.nowSeconds());
    return { batchId: request.batchId, first, last: first + request.count - 1 };
  }

  async send(batchId: string, centreId: string, community: string, count: number): Promise<number> {
    if (!(await this.store.batch(batchId))) throw new TallyError('VOUCHER_UNKNOWN', `batch ${batchId}`);
    return this.store.sendToCentre(batchId, centreId, community, count, this.nowSeconds());
  }

  /** The centre issues a voucher it holds to a wallet: the voucher, bound to the wallet, with its QR text */
  async issue(serial: number, centreId: string, walletId: string): Promise<WalletVoucher> {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(walletId)) throw new TallyError('USAGE', 'wallet id: 1..64 of A-Z a-z 0-9 . _ -');
    if (!(await this.store.issueToWallet(serial, centreId, walletId, this.nowSeconds()))) {
      const row = await this.store.voucher(serial);
      if (!row) throw new TallyError('VOUCHER_UNKNOWN', `serial ${serial}`);
      throw new TallyError('VOUCHER_STATE_REFUSED', `serial ${serial} is ${row.state}${row.centreId ? ` at ${row.centreId}` : ''}, not sent to ${centreId}`);
    }
    return this.show(serial);
  }

  /** The wallet's personal QR code (wallet-qr.md): signed with the voucher key, valid WALLET_QR_LIFETIME_SECONDS */
  personalQr(walletId: string): { text: string; validUntil: number } {
    const { key, certificate } = this.key();
    const issuedAt = this.nowSeconds();
    const { text } = signWalletQr(key, { keyId: certificate.keyId, issuedAt, lifetime: WALLET_QR_LIFETIME_SECONDS, nonce: randomBytes(8), walletId });
    return { text, validUntil: issuedAt + WALLET_QR_LIFETIME_SECONDS };
  }

  /**
   * The wallet a person's QR code names, checked (wallet-qr.md §3: format, this back office's key, signature,
   * time) and taken once, in the store (a restart or another server sharing it remembers): a code taken before
   * within its lifetime is WALLET_QR_REPLAYED.
   */
  async takePersonalQr(text: string): Promise<string> {
    const { certificate } = this.key();
    const now = this.nowSeconds();
    const qr = verifyWalletQr(text, (keyId) => (keyId === certificate.keyId ? certificate.publicKey : undefined), now);
    const code = `${qr.keyId}:${toHex(qr.nonce)}`;
    if (!(await this.store.takeWalletQr(code, qr.walletId, qr.issuedAt + qr.lifetime, now, WALLET_QR_PRUNE_MARGIN_SECONDS))) {
      throw new TallyError('WALLET_QR_REPLAYED', `the code of wallet ${qr.walletId} was taken before`);
    }
    return qr.walletId;
  }

  /** Books a slot for a wallet's voucher: the voucher signed again with the booking */
  async book(serial: number, walletId: string, slotId: number): Promise<WalletVoucher> {
    const outcome = await this.store.book(serial, walletId, slotId, this.nowSeconds());
    if (outcome === 'slot-full') throw new TallyError('VOUCHER_SLOT_FULL', `slot ${slotId}`);
    if (outcome === 'not-bookable') {
      if (!(await this.store.voucher(serial))) throw new TallyError('VOUCHER_UNKNOWN', `serial ${serial}`);
      throw new TallyError('VOUCHER_NOT_BOOKABLE', `serial ${serial}`);
    }
    return this.show(serial);
  }

  async void(serial: number, reason: string): Promise<void> {
    if (!(await this.store.void(serial, reason.slice(0, 200) || 'voided', this.nowSeconds()))) {
      const row = await this.store.voucher(serial);
      if (!row) throw new TallyError('VOUCHER_UNKNOWN', `serial ${serial}`);
      throw new TallyError('VOUCHER_STATE_REFUSED', `serial ${serial} is ${row.state}`);
    }
  }

  voidExpired(): Promise<number> {
    return this.store.voidExpired(this.nowSeconds());
  }

  /** One voucher as the wallet shows it, with the QR text while it can still be used */
  async show(serial: number): Promise<WalletVoucher> {
    const row = await this.store.voucher(serial);
    if (!row) throw new TallyError('VOUCHER_UNKNOWN', `serial ${serial}`);
    return this.present(row);
  }

  /** A wallet's vouchers (written-off ones have left it) */
  async wallet(walletId: string): Promise<WalletVoucher[]> {
    return Promise.all((await this.store.walletVouchers(walletId)).map((row) => this.present(row)));
  }

  private async present(row: VoucherRow): Promise<WalletVoucher> {
    const batch = (await this.store.batch(row.batchId))!;
    const slot = row.slotId !== undefined ? await this.store.slot(row.slotId) : undefined;
    const now = this.nowSeconds();
    const expired = now > batch.validUntil;
    const shown: WalletVoucher['shown'] =
      row.state === 'voided' ? 'voided' : expired && row.state !== 'written_off' ? 'expired' : row.state === 'booked' ? 'booked' : batch.bookingRequired ? 'to-book' : 'ready';
    const usable = (row.state === 'issued' || row.state === 'booked') && !expired && this.voucherKey !== undefined;
    const fields: VoucherFields | undefined = usable
      ? {
          keyId: this.key().certificate.keyId,
          serial: row.serial,
          validFrom: batch.validFrom,
          validUntil: batch.validUntil,
          bookingRequired: batch.bookingRequired,
          scopeKind: batch.scopeKind,
          scope: batch.scope,
          examType: batch.examType,
          ...(row.walletId ? { wallet: walletBinding(row.walletId) } : {}),
          ...(slot && row.state === 'booked' ? { booking: { slotId: slot.slotId, start: slot.start, end: slot.end } } : {}),
        }
      : undefined;
    return {
      ...row,
      examType: batch.examType,
      scope: batch.scope,
      validFrom: batch.validFrom,
      shown,
      ...(fields ? { qr: encodeVoucherQr(signVoucher(this.key().key, fields)) } : {}),
      ...(slot ? { slot: { slotId: slot.slotId, clinicCode: slot.clinicCode, department: slot.department, doctor: slot.doctor, start: slot.start, end: slot.end } } : {}),
    };
  }

  /**
   * The trust list the terminals get (voucher-format.md §4): this key, the serials voided for a reason other than
   * expiry, valid `validDays` with `graceDays` of offline grace. Its seq is the time it was signed, so a later list
   * always has a higher one.
   */
  async trustList(options: { validDays?: number; graceDays?: number } = {}): Promise<Uint8Array> {
    const { key, certificate } = this.key();
    if ((certificate.roles & KeyRole.TRUST_LISTS) === 0) throw new TallyError('VOUCHER_KEY_MISSING', `key ${certificate.keyId} is not certified to sign trust lists`);
    const now = this.nowSeconds();
    return signTrustList(key, certificate.raw, {
      listSeq: now,
      issuedAt: now,
      validUntil: now + (options.validDays ?? 7) * DAY,
      graceSeconds: (options.graceDays ?? 7) * DAY,
      keys: [certificate.raw],
      revoked: await this.store.revokedSerials(),
    });
  }
}

export { walletBinding };
