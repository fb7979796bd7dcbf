/**
 * `tally server certify-key`: the server's own signing key, certified by the
 * mother card (the investor root), like an issuing station's key. It signs the
 * checkpoints in the server's acks (and the server's statements); a terminal
 * or an auditor checks them with the root public key alone
 * (firmware-protocol/ledger-format.md, server checkpoints).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { CardClient } from '../../card/CardClient.js';
import { LifeCycle } from '../../codecs/applet.js';
import { fromHex, toHex, utf8 } from '../../codecs/bytes.js';
import { parseCardRecord, RecordKind, type MotherFields, type SignedRecord } from '../../codecs/cardRecord.js';
import { encodeServerKeyCertificateBody, parseSignedJson, type SignedJson } from '../../codecs/checkpoint.js';
import { verifyServerKeyCertificate } from '../../crypto/checkpoint.js';
import { generateSigningKey, privateKeyFromSeed, privateKeySeed, sha256 } from '../../crypto/ed25519.js';
import { TallyError } from '../../errors.js';
import { pin, required } from '../args.js';
import { withCardSource } from '../cardSource.js';
import { defineCommand } from '../command.js';
import { CARD_READER_OPTIONS, MOTHER_OPTIONS, requiredOption, valueOption } from '../options.js';

const KEY_FILE_FORMAT = 'tallystick-server-key-file/1';

/** The server key file: the key's seed and its root-signed certificate */
export interface ServerKeyFile {
  readonly key: KeyObject;
  readonly certificate: SignedJson;
  readonly serverId: string;
  readonly publicKey: string;
}

/** Reads a key file made by certify-key and checks its certificate against the root */
export function loadServerKey(path: string, rootPublicKey: Uint8Array): ServerKeyFile {
  let o: { format?: unknown; seed?: unknown; certificate?: unknown };
  try {
    o = JSON.parse(readFileSync(path, 'utf8')) as typeof o;
  } catch (err) {
    throw new TallyError('CONFIG', `server key ${path}: ${(err as Error).message}`);
  }
  if (o.format !== KEY_FILE_FORMAT || typeof o.seed !== 'string' || !/^[0-9a-f]{64}$/.test(o.seed)) throw new TallyError('CONFIG', `server key ${path}: not a ${KEY_FILE_FORMAT} file`);
  const certificate = parseSignedJson(o.certificate, 'certificate');
  const fields = verifyServerKeyCertificate(certificate, rootPublicKey);
  const key = privateKeyFromSeed(fromHex(o.seed));
  return { key, certificate, serverId: fields.serverId, publicKey: fields.publicKey };
}

export const serverCertifyKeyCommand = defineCommand(
  {
    path: 'server certify-key',
    summary: "make the server's signing key, certified by the mother card (for signed checkpoints and statements)",
    usage: ['tally server certify-key --server-id ID --key FILE (--mother FILE | --reader SPEC) --mother-pin PIN'],
    about: `Makes a new Ed25519 key for the server and has the mother card sign its
certificate after the mother PIN. FILE (mode 0600) holds the key and the
certificate; give it to tally server run --signing-key FILE. The key signs the
checkpoints in the server's acks, which terminals and auditors check with the
investor root alone; it cannot make a card or a terminal.`,
    options: {
      'server-id': valueOption('ID', '1..64 of A-Z a-z 0-9 . _ - (e.g. SRV-1)', { required: true }),
      key: valueOption('FILE', 'where the key file goes (mode 0600)', { required: true }),
      mother: MOTHER_OPTIONS.mother!,
      'mother-pin': requiredOption(MOTHER_OPTIONS['mother-pin']!),
      ...CARD_READER_OPTIONS,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const serverId = required(values, 'server-id');
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(serverId)) throw new TallyError('USAGE', 'server id: 1..64 of A-Z a-z 0-9 . _ -');
    const keyPath = required(values, 'key');
    const motherPin = pin(values, 'mother-pin');
    const key = generateSigningKey();
    const result = await withCardSource(values, io, async (source) => {
      const card = new CardClient(await source.card({ name: 'the mother card', signer: true, ...(typeof values.mother === 'string' ? { file: values.mother } : {}), fileOption: 'mother' }));
      const fci = await card.select();
      if (fci.lifeCycle !== LifeCycle.OPERATIONAL || !fci.record) throw new TallyError('CARD_BLANK');
      const mother = parseCardRecord(fci.record);
      if (mother.kind !== RecordKind.MOTHER) throw new TallyError('WRONG_TIER', 'the server key is certified by the mother card');
      if (fci.pinTriesLeft === 0) throw new TallyError('PIN_BLOCKED', 'mother card');
      await card.verifyPin(motherPin);
      const body = encodeServerKeyCertificateBody({ serverId, publicKey: toHex(key.publicKey), motherCardId: toHex(mother.cardId), issuedAt: Math.floor(Date.now() / 1000) });
      const signature = await card.signDigest(sha256(utf8(body)));
      return { certificate: { body, signature: toHex(signature) }, root: (mother as SignedRecord<MotherFields>).publicKey };
    });
    verifyServerKeyCertificate(result.certificate, result.root);
    writeFileSync(keyPath, `${JSON.stringify({ format: KEY_FILE_FORMAT, seed: toHex(privateKeySeed(key.privateKey)), certificate: result.certificate }, null, 1)}\n`, { mode: 0o600 });
    io.out(`server ${serverId} key ${toHex(key.publicKey)} certified by the mother card; written to ${keyPath}`);
    io.out(`investor root key ${toHex(result.root)}`);
    return 0;
  },
);
