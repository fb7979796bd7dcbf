/**
 * Generates firmware-protocol/vectors/voucher.json: voucher key certificates,
 * a trust list and vouchers (voucher-format.md), signed with the test root
 * key of vectors/ledger.json and fixed voucher keys at fixed times (Ed25519
 * is deterministic, so the file is reproducible). Each voucher case gives its
 * QR text, the context a terminal checks it in and the verdict: the fields,
 * or the refusal's code. Invalid trust lists name their error.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/voucherVectors.test.ts
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromHex, toHex, utf8 } from '../src/codecs/bytes.js';
import { encodeBase45 } from '../src/codecs/base45.js';
import { encodeVoucherQr, KeyRole, VoucherScope, type VoucherFields } from '../src/codecs/voucher.js';
import { privateKeyFromSeed, rawPublicKey, sha256 } from '../src/crypto/ed25519.js';
import { signKeyCertificate, signTrustList, signVoucher } from '../src/crypto/voucher.js';

const LEDGER_FILE = fileURLToPath(new URL('../firmware-protocol/vectors/ledger.json', import.meta.url));
/** 2026-12-01 12:00 UTC, the time most cases are checked at */
export const VECTOR_NOW = Math.floor(Date.UTC(2026, 11, 1, 12, 0, 0) / 1000);
const DAY = 86_400;

export interface VoucherVectorContext {
  readonly now: number;
  readonly clinicCode: string;
  readonly deviceClass?: string;
  readonly writtenOff?: number[];
}

export interface VoucherCase {
  readonly name: string;
  readonly description: string;
  readonly qr: string;
  readonly hex: string;
  readonly context: VoucherVectorContext;
  /** Which trust list it is checked against: the golden one unless named */
  readonly trustList?: 'stale';
  readonly verdict: { ok: true; fields: Record<string, unknown> } | { ok: false; error: string };
}

export interface InvalidTrustListCase {
  readonly name: string;
  readonly description: string;
  readonly hex: string;
  readonly error: 'TRUST_LIST_INVALID';
}

function seed(label: string): Uint8Array {
  return sha256(utf8(`tallystick voucher vectors: ${label}`));
}

export function voucherVectors(): { json: string; cases: VoucherCase[] } {
  const ledger = JSON.parse(readFileSync(LEDGER_FILE, 'utf8')) as { rootPublicKey: string; testKeySeeds: { root: string } };
  const root = privateKeyFromSeed(fromHex(ledger.testKeySeeds.root));
  const voucherKey = privateKeyFromSeed(seed('voucher key 1'));
  const signerKey = privateKeyFromSeed(seed('trust list key 7'));
  const strangerKey = privateKeyFromSeed(seed('a key the root never certified'));
  const certValidity = { validFrom: VECTOR_NOW - 30 * DAY, validUntil: VECTOR_NOW + 365 * DAY };
  const voucherCert = signKeyCertificate(root, { keyId: 1, roles: KeyRole.VOUCHERS, ...certValidity, publicKey: rawPublicKey(voucherKey), issuer: 'back office 1' });
  const signerCert = signKeyCertificate(root, { keyId: 7, roles: KeyRole.TRUST_LISTS, ...certValidity, publicKey: rawPublicKey(signerKey), issuer: 'back office 1' });
  const listFields = { listSeq: 3, issuedAt: VECTOR_NOW - DAY, validUntil: VECTOR_NOW + 6 * DAY, graceSeconds: 7 * DAY, keys: [voucherCert, signerCert], revoked: [1000005, 1000009] };
  const trustList = signTrustList(signerKey, signerCert, listFields);
  const staleList = signTrustList(signerKey, signerCert, { ...listFields, listSeq: 2, issuedAt: VECTOR_NOW - 30 * DAY, validUntil: VECTOR_NOW - 15 * DAY });

  const base: VoucherFields = { keyId: 1, serial: 1000001, validFrom: VECTOR_NOW - 10 * DAY, validUntil: VECTOR_NOW + 80 * DAY, bookingRequired: false, scopeKind: VoucherScope.CLINIC, scope: 'CLINIC-7', examType: 'OCT' };
  const here: VoucherVectorContext = { now: VECTOR_NOW, clinicCode: 'CLINIC-7', deviceClass: 'OCT' };
  const booking = { slotId: 42, start: VECTOR_NOW - 600, end: VECTOR_NOW + 1200 };
  const wallet = sha256(utf8('wallet W-0001')).slice(0, 16);
  const sign = (fields: Partial<VoucherFields>, key = voucherKey) => signVoucher(key, { ...base, ...fields });
  const fieldsOf = (f: VoucherFields): Record<string, unknown> => ({ ...f, ...(f.wallet ? { wallet: toHex(f.wallet) } : {}) });

  const accepted = (name: string, description: string, fields: Partial<VoucherFields>, context = here): VoucherCase => {
    const raw = sign(fields);
    return { name, description, qr: encodeVoucherQr(raw), hex: toHex(raw), context, verdict: { ok: true, fields: fieldsOf({ ...base, ...fields }) } };
  };
  const refused = (name: string, description: string, raw: Uint8Array, error: string, context = here, qr = encodeVoucherQr(raw)): VoucherCase => ({ name, description, qr, hex: toHex(raw), context, verdict: { ok: false, error } });

  const forged = sign({});
  forged[10] = forged[10]! ^ 0x01; // validFrom's top byte: the signature no longer covers these bytes
  const cases: VoucherCase[] = [
    accepted('clinic', 'a voucher for clinic CLINIC-7, OCT, no booking needed', {}),
    accepted('device-class', 'scoped to the device class OCT instead of a clinic', { serial: 1000002, scopeKind: VoucherScope.DEVICE_CLASS, scope: 'OCT' }),
    accepted('booked', 'booking required, re-signed with its booked slot (now is inside it)', { serial: 1000003, bookingRequired: true, booking }),
    accepted('wallet-bound', 'bound to a wallet (16 bytes of SHA-256 of its id)', { serial: 1000004, wallet }),
    accepted('trust-list-in-grace', 'checked 10 days on: the trust list is past its validity but within its 7 days of grace', { serial: 1000006, validUntil: VECTOR_NOW + 80 * DAY }, { ...here, now: VECTOR_NOW + 10 * DAY }),
    refused('forged', 'one byte of the signed body flipped', forged, 'VOUCHER_FORGED'),
    refused('unknown-key', 'key id 9, not in the trust list', sign({ keyId: 9 }, strangerKey), 'VOUCHER_UNKNOWN_KEY'),
    refused('trust-list-key', 'signed with key 7, which the root certified for trust lists only', sign({ keyId: 7 }, signerKey), 'VOUCHER_UNKNOWN_KEY'),
    refused('stranger-key-as-1', 'claims key 1 but signed by a key the root never certified', sign({}, strangerKey), 'VOUCHER_FORGED'),
    refused('expired', 'valid until yesterday', sign({ serial: 1000007, validFrom: VECTOR_NOW - 90 * DAY, validUntil: VECTOR_NOW - DAY }), 'VOUCHER_EXPIRED'),
    refused('not-yet-valid', 'valid from tomorrow', sign({ serial: 1000008, validFrom: VECTOR_NOW + DAY }), 'VOUCHER_EXPIRED'),
    refused('revoked', 'serial 1000005 is on the revoked list', sign({ serial: 1000005 }), 'VOUCHER_REVOKED'),
    refused('wrong-clinic', 'for clinic CLINIC-8', sign({ serial: 1000010, scope: 'CLINIC-8' }), 'VOUCHER_WRONG_CLINIC'),
    refused('wrong-device-class', 'for device class CT on an OCT terminal', sign({ serial: 1000011, scopeKind: VoucherScope.DEVICE_CLASS, scope: 'CT' }), 'VOUCHER_WRONG_CLINIC'),
    refused('not-booked', 'booking required and none in the voucher', sign({ serial: 1000012, bookingRequired: true }), 'VOUCHER_NOT_BOOKED'),
    refused('outside-slot', 'booked for tomorrow', sign({ serial: 1000013, bookingRequired: true, booking: { slotId: 43, start: VECTOR_NOW + DAY, end: VECTOR_NOW + DAY + 1800 } }), 'VOUCHER_NOT_BOOKED'),
    refused('written-off', "already in this terminal's ledger", sign({ serial: 1000014 }), 'VOUCHER_WRITTEN_OFF', { ...here, writtenOff: [1000014] }),
    { ...refused('trust-list-stale', 'checked against a list 15 days past its validity, 7 days of grace', sign({ serial: 1000015 }), 'TRUST_LIST_STALE'), trustList: 'stale' },
    refused('bad-prefix', 'Base45 of a good voucher without the TV1: prefix', sign({}), 'VOUCHER_MALFORMED', here, encodeBase45(sign({}))),
    refused('not-base45', 'a lower-case letter in the Base45', sign({}), 'VOUCHER_MALFORMED', here, `${encodeVoucherQr(sign({})).slice(0, 20)}a${encodeVoucherQr(sign({})).slice(21)}`),
    refused('cut-short', 'the last byte missing: the signature is checked over the wrong bytes', sign({}).slice(0, -1), 'VOUCHER_FORGED'),
    refused('too-short', 'the first 40 bytes only: shorter than any voucher', sign({}).slice(0, 40), 'VOUCHER_MALFORMED'),
    refused('not-a-voucher', 'a key certificate where a voucher belongs', voucherCert, 'VOUCHER_MALFORMED'),
  ];

  const alteredList = trustList.slice();
  alteredList[alteredList.length - 70] = alteredList[alteredList.length - 70]! ^ 0x01; // inside the revoked serials
  const strangerCert = signKeyCertificate(strangerKey, { keyId: 7, roles: KeyRole.TRUST_LISTS, ...certValidity, publicKey: rawPublicKey(strangerKey), issuer: 'someone else' });
  const voucherKeyAsSigner = signTrustList(voucherKey, voucherCert, listFields);
  const invalid: InvalidTrustListCase[] = [
    { name: 'altered', description: 'one byte of a revoked serial flipped', hex: toHex(alteredList), error: 'TRUST_LIST_INVALID' },
    { name: 'signer-not-certified', description: "the signer's certificate is signed by its own key, not the root", hex: toHex(signTrustList(strangerKey, strangerCert, listFields)), error: 'TRUST_LIST_INVALID' },
    { name: 'signer-not-for-lists', description: 'signed by voucher key 1, certified for vouchers only', hex: toHex(voucherKeyAsSigner), error: 'TRUST_LIST_INVALID' },
    { name: 'cut-short', description: 'the signature cut off', hex: toHex(trustList.slice(0, -64)), error: 'TRUST_LIST_INVALID' },
  ];

  const json = `${JSON.stringify(
    {
      description: 'tallystick voucher vectors (firmware-protocol/voucher-format.md); root = the ledger vectors\' test root',
      rootPublicKey: ledger.rootPublicKey,
      testKeySeeds: { voucherKey1: toHex(seed('voucher key 1')), trustListKey7: toHex(seed('trust list key 7')) },
      keyCertificates: { voucherKey1: toHex(voucherCert), trustListKey7: toHex(signerCert) },
      trustList: { hex: toHex(trustList), fields: { ...listFields, keys: listFields.keys.map(toHex) } },
      staleTrustList: { hex: toHex(staleList) },
      cases,
      invalidTrustLists: invalid,
    },
    null,
    1,
  )}\n`;
  return { json, cases };
}
