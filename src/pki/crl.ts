/**
 * X.509 v2 CRLs (RFC 5280 5.1), built with forge's ASN.1 writer: forge has no
 * CRL builder. Signed sha256WithRSAEncryption by the CA; carries the CA's AKI
 * and a CRL number (both needed by `openssl verify -x509_strict -crl_check`),
 * and per entry its revocation reason. Mosquitto loads it as `crlfile` and
 * rereads it on SIGHUP.
 */
import forge from 'node-forge';
import { loadCa, type CertificateAuthority } from './certificateAuthority.js';

const { asn1 } = forge;
const T = asn1.Type;
const U = asn1.Class.UNIVERSAL;

/** RFC 5280 CRLReason values we use */
export const REVOCATION_REASONS = { unspecified: 0, keyCompromise: 1, superseded: 4, cessationOfOperation: 5 } as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

export interface RevokedCertificate {
  /** Hex serial, as in the certificate */
  readonly serial: string;
  readonly revokedAt: Date;
  readonly reason: RevocationReason;
}

const OID_SHA256_RSA = '1.2.840.113549.1.1.11';
const OID_AKI = '2.5.29.35';
const OID_CRL_NUMBER = '2.5.29.20';
const OID_REASON = '2.5.29.21';

function time(date: Date): forge.asn1.Asn1 {
  // UTCTime up to 2049, GeneralizedTime after (RFC 5280 5.1.2.4)
  return date.getUTCFullYear() < 2050 ? asn1.create(U, T.UTCTIME, false, asn1.dateToUtcTime(date)) : asn1.create(U, T.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

function integer(hex: string): forge.asn1.Asn1 {
  const clean = hex.length % 2 ? `0${hex}` : hex;
  const bytes = forge.util.hexToBytes(clean);
  // DER INTEGER is signed: a leading bit set needs a zero byte
  return asn1.create(U, T.INTEGER, false, bytes.charCodeAt(0) & 0x80 ? `\x00${bytes}` : bytes);
}

function extension(oid: string, value: forge.asn1.Asn1): forge.asn1.Asn1 {
  return asn1.create(U, T.SEQUENCE, true, [asn1.create(U, T.OID, false, asn1.oidToDer(oid).getBytes()), asn1.create(U, T.OCTETSTRING, false, asn1.toDer(value).getBytes())]);
}

function algorithm(): forge.asn1.Asn1 {
  return asn1.create(U, T.SEQUENCE, true, [asn1.create(U, T.OID, false, asn1.oidToDer(OID_SHA256_RSA).getBytes()), asn1.create(U, T.NULL, false, '')]);
}

export function buildCrl(ca: CertificateAuthority, options: { revoked: readonly RevokedCertificate[]; crlNumber: number; thisUpdate: Date; nextUpdate: Date }): string {
  const { cert, key } = loadCa(ca);
  const keyId = cert.generateSubjectKeyIdentifier().getBytes();
  const entries = options.revoked.map((r) =>
    asn1.create(U, T.SEQUENCE, true, [
      integer(r.serial),
      time(r.revokedAt),
      asn1.create(U, T.SEQUENCE, true, [extension(OID_REASON, asn1.create(U, T.ENUMERATED, false, String.fromCharCode(REVOCATION_REASONS[r.reason])))]),
    ]),
  );
  const tbs = asn1.create(U, T.SEQUENCE, true, [
    asn1.create(U, T.INTEGER, false, '\x01'), // v2
    algorithm(),
    forge.pki.distinguishedNameToAsn1(cert.subject),
    time(options.thisUpdate),
    time(options.nextUpdate),
    ...(entries.length ? [asn1.create(U, T.SEQUENCE, true, entries)] : []),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [
      asn1.create(U, T.SEQUENCE, true, [
        extension(OID_AKI, asn1.create(U, T.SEQUENCE, true, [asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, keyId)])),
        extension(OID_CRL_NUMBER, integer(options.crlNumber.toString(16))),
      ]),
    ]),
  ]);
  const md = forge.md.sha256.create();
  md.update(asn1.toDer(tbs).getBytes());
  const signature = key.sign(md);
  const crl = asn1.create(U, T.SEQUENCE, true, [tbs, algorithm(), asn1.create(U, T.BITSTRING, false, `\x00${signature}`)]);
  const der = Buffer.from(asn1.toDer(crl).getBytes(), 'binary');
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN X509 CRL-----\n${b64}\n-----END X509 CRL-----\n`;
}
