/**
 * The terminal's trust in a TLS CA: only a CA whose certificate the investor's
 * mother card certified (codecs/tlsCaRecord.ts), checked with the root key the
 * terminal got at provisioning. A CA file alone is never enough.
 */
import { fromHex, utf8 } from '../codecs/bytes.js';
import { parseTlsCaRecordFile } from '../codecs/tlsCaRecord.js';
import { verifyMessage } from '../crypto/ed25519.js';
import { isTallyError, TallyError } from '../errors.js';
import { certificateFingerprint } from './certificateAuthority.js';

export function checkCaVouched(caCertPem: string, recordJson: string | undefined, rootPublicKey: Uint8Array): { caFingerprint: string } {
  if (recordJson === undefined) throw new TallyError('TLS_CA_NOT_VOUCHED', 'no record of the mother card for this CA (tally issue certify-ca)');
  let parsed: ReturnType<typeof parseTlsCaRecordFile>;
  try {
    parsed = parseTlsCaRecordFile(recordJson);
  } catch (err) {
    throw new TallyError('TLS_CA_NOT_VOUCHED', isTallyError(err) ? err.message : 'unreadable record', {}, { cause: err });
  }
  if (!verifyMessage(rootPublicKey, utf8(parsed.file.body), fromHex(parsed.file.signature))) throw new TallyError('TLS_CA_NOT_VOUCHED', "the record is not signed by this terminal's investor root");
  let fingerprint: string;
  try {
    fingerprint = certificateFingerprint(caCertPem);
  } catch (err) {
    throw new TallyError('TLS_CA_NOT_VOUCHED', 'the CA file is not a PEM certificate', {}, { cause: err });
  }
  if (fingerprint !== parsed.body.caFingerprint) throw new TallyError('TLS_CA_NOT_VOUCHED', `the record certifies CA ${parsed.body.caFingerprint.slice(0, 16)}..., the file holds ${fingerprint.slice(0, 16)}...`);
  return { caFingerprint: fingerprint };
}
