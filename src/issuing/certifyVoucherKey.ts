/**
 * The mother card certifies a voucher key (voucher-format.md §3): after its
 * PIN it signs SHA-256 of the certificate body, as it signs the server's
 * checkpoint key. The private half of the voucher key never meets the card.
 */
import type { ApduChannel } from '../card/ApduChannel.js';
import { CardClient } from '../card/CardClient.js';
import { LifeCycle } from '../codecs/applet.js';
import { concatBytes } from '../codecs/bytes.js';
import { parseCardRecord, RecordKind, type MotherFields, type SignedRecord } from '../codecs/cardRecord.js';
import { encodeKeyCertificateBody, openKeyCertificate, type KeyCertificate, type KeyCertificateFields } from '../codecs/voucher.js';
import { sha256, verifyMessage } from '../crypto/ed25519.js';
import { CodecError, TallyError } from '../errors.js';

/** Signs the certificate with the mother card on `channel`; returns it checked against the card's root key */
export async function certifyVoucherKey(channel: ApduChannel, pin: string, fields: KeyCertificateFields): Promise<{ certificate: KeyCertificate; rootPublicKey: Uint8Array }> {
  const card = new CardClient(channel);
  const fci = await card.select();
  if (fci.lifeCycle !== LifeCycle.OPERATIONAL || !fci.record) throw new TallyError('CARD_BLANK');
  const mother = parseCardRecord(fci.record);
  if (mother.kind !== RecordKind.MOTHER) throw new TallyError('WRONG_TIER', 'a voucher key is certified by the mother card');
  if (fci.pinTriesLeft === 0) throw new TallyError('PIN_BLOCKED', 'mother card');
  await card.verifyPin(pin);
  const body = encodeKeyCertificateBody(fields);
  const signature = await card.signDigest(sha256(body));
  const root = (mother as SignedRecord<MotherFields>).publicKey;
  const certificate = openKeyCertificate(concatBytes([body, signature]), (signed, sig) => {
    if (!verifyMessage(root, signed, sig)) throw new CodecError('TRUST_LIST_INVALID', 'the mother card answered with a signature that does not verify');
  });
  return { certificate, rootPublicKey: root };
}
