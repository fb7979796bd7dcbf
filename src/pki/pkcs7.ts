/**
 * EST's wire shapes (RFC 7030 4.2, 4.1.3): a certs-only PKCS#7 (CMS SignedData
 * with certificates and no signers), base64 with Content-Transfer-Encoding:
 * base64; a PKCS#10 request comes in the same way.
 */
import forge from 'node-forge';
import { TallyError } from '../errors.js';

export function certsOnlyPkcs7(certPems: readonly string[]): Buffer {
  const p7 = forge.pkcs7.createSignedData();
  for (const pem of certPems) p7.addCertificate(forge.pki.certificateFromPem(pem));
  return Buffer.from(forge.asn1.toDer(p7.toAsn1()).getBytes(), 'binary');
}

/** The certificates of a certs-only PKCS#7, as PEM */
export function certificatesFromPkcs7(der: Uint8Array): string[] {
  try {
    const msg = forge.pkcs7.messageFromAsn1(forge.asn1.fromDer(forge.util.createBuffer(Buffer.from(der).toString('binary')))) as forge.pkcs7.PkcsSignedData;
    return msg.certificates.map((c) => forge.pki.certificateToPem(c));
  } catch (err) {
    throw new TallyError('ENROL_FAILED', `the answer is not a certs-only PKCS#7: ${(err as Error).message}`, {}, { cause: err });
  }
}

/** EST bodies are base64 (RFC 7030 4.1.3); line breaks allowed */
export function decodeBase64Body(text: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw new TallyError('PKI_REFUSED', 'the body is not base64');
  return Buffer.from(clean, 'base64');
}

export function encodeBase64Body(der: Uint8Array): string {
  return `${Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\r\n').replace(/\r\n$/, '')}\r\n`;
}

/** A PEM CSR as DER (what an EST client sends, base64) */
export function csrPemToDer(csrPem: string): Buffer {
  const csr = forge.pki.certificationRequestFromPem(csrPem);
  return Buffer.from(forge.asn1.toDer(forge.pki.certificationRequestToAsn1(csr)).getBytes(), 'binary');
}
