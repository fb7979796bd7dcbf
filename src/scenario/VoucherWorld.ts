/**
 * A back office's voucher keys for tests, the demo and benches: a voucher key
 * and a trust-list key, both certified by the issuer's (simulated) mother
 * card, signing vouchers and trust lists exactly as the server does.
 */
import type { KeyObject } from 'node:crypto';
import { directChannel } from '../card/ApduChannel.js';
import { encodeVoucherQr, KeyRole, VoucherScope, type KeyCertificate, type VoucherFields } from '../codecs/voucher.js';
import { generateSigningKey } from '../crypto/ed25519.js';
import { signTrustList, signVoucher } from '../crypto/voucher.js';
import { certifyVoucherKey } from '../issuing/certifyVoucherKey.js';
import { DEMO_MOTHER_PIN, type Issuer } from './CardWorld.js';

const DAY = 86_400;

export class VoucherAuthority {
  private serial = 1_000_000;
  private listSeq = 0;

  private constructor(
    readonly voucherKey: { key: KeyObject; certificate: KeyCertificate },
    readonly trustKey: { key: KeyObject; certificate: KeyCertificate },
    private readonly nowSeconds: () => number,
  ) {}

  /** Makes and certifies the two keys with the issuer's mother card */
  static async create(issuer: Issuer, options: { nowSeconds?: () => number } = {}): Promise<VoucherAuthority> {
    const nowSeconds = options.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
    const validity = { validFrom: nowSeconds() - DAY, validUntil: nowSeconds() + 3 * 365 * DAY };
    const make = async (keyId: number, roles: number) => {
      const pair = generateSigningKey();
      const { certificate } = await certifyVoucherKey(directChannel(issuer.mother), DEMO_MOTHER_PIN, { keyId, roles, ...validity, publicKey: pair.publicKey, issuer: 'test back office' });
      return { key: pair.privateKey, certificate };
    };
    return new VoucherAuthority(await make(1, KeyRole.VOUCHERS), await make(2, KeyRole.TRUST_LISTS), nowSeconds);
  }

  /** A voucher for `scope` (a clinic by default), valid 30 days from yesterday unless told */
  voucher(fields: Partial<VoucherFields> & { scope: string }): { raw: Uint8Array; qr: string; fields: VoucherFields } {
    const now = this.nowSeconds();
    const full: VoucherFields = { keyId: this.voucherKey.certificate.keyId, serial: ++this.serial, validFrom: now - DAY, validUntil: now + 30 * DAY, bookingRequired: false, scopeKind: VoucherScope.CLINIC, examType: 'OCT', ...fields };
    const raw = signVoucher(this.voucherKey.key, full);
    return { raw, qr: encodeVoucherQr(raw), fields: full };
  }

  /** A trust list holding both keys, valid `validDays` from now, with `graceDays` of offline grace */
  trustList(options: { revoked?: number[]; validDays?: number; graceDays?: number; issuedAt?: number } = {}): Uint8Array {
    const issuedAt = options.issuedAt ?? this.nowSeconds();
    return signTrustList(this.trustKey.key, this.trustKey.certificate.raw, {
      listSeq: ++this.listSeq,
      issuedAt,
      validUntil: issuedAt + (options.validDays ?? 7) * DAY,
      graceSeconds: (options.graceDays ?? 7) * DAY,
      keys: [this.voucherKey.certificate.raw, this.trustKey.certificate.raw],
      revoked: [...(options.revoked ?? [])].sort((a, b) => a - b),
    });
  }
}
