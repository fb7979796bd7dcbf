/**
 * Generates firmware-protocol/vectors/checkpoint.json: the server's signed
 * checkpoints (ledger-format.md, "Server checkpoints") over the golden ledger
 * of vectors/ledger.json, with the same test root key, a fixed server key and
 * fixed times (Ed25519 is deterministic, so the file is reproducible). Each
 * case says which ledger it is checked against (the golden one, or it cut to
 * a length) and the verdict; invalid cases name the error.
 *   UPDATE_VECTORS=1 npx vitest run test/codecs/checkpointVectors.test.ts
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromHex, toHex, utf8 } from '../src/codecs/bytes.js';
import { encodeCheckpointBody, encodeServerKeyCertificateBody, type Checkpoint, type SignedJson } from '../src/codecs/checkpoint.js';
import { signCheckpoint } from '../src/crypto/checkpoint.js';
import { privateKeyFromSeed, rawPublicKey, sha256, signMessage } from '../src/crypto/ed25519.js';

const LEDGER_FILE = fileURLToPath(new URL('../firmware-protocol/vectors/ledger.json', import.meta.url));
const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);

interface LedgerVectors {
  rootPublicKey: string;
  testKeySeeds: { root: string };
  ledger: { entries: { seq: number; hash: string }[]; verdict: { terminalId: string } };
}

export interface CheckpointCase {
  readonly name: string;
  readonly description: string;
  readonly checkpoint: Checkpoint;
  /** Checked against the golden ledger, cut to this many entries when given */
  readonly ledgerLength?: number;
  readonly verdict: { ok: boolean; lastGoodSeq: number; problem?: { code: string; seq: number } };
}

export interface InvalidCheckpointCase {
  readonly name: string;
  readonly description: string;
  readonly checkpoint: unknown;
  readonly error: 'BAD_CHECKPOINT';
}

export function checkpointVectors(): { json: string; cases: CheckpointCase[]; invalid: InvalidCheckpointCase[] } {
  const ledger = JSON.parse(readFileSync(LEDGER_FILE, 'utf8')) as LedgerVectors;
  const rootKey = privateKeyFromSeed(fromHex(ledger.testKeySeeds.root));
  const serverSeed = sha256(utf8('tallystick checkpoint vectors: server key'));
  const serverKey = privateKeyFromSeed(serverSeed);
  const certBody = encodeServerKeyCertificateBody({ serverId: 'SRV-VECTOR-1', publicKey: toHex(rawPublicKey(serverKey)), motherCardId: '0102030405060708', issuedAt: Math.floor(T0 / 1000) - 86_400 });
  const certificate: SignedJson = { body: certBody, signature: toHex(signMessage(rootKey, utf8(certBody))) };
  const terminalId = ledger.ledger.verdict.terminalId;
  const entries = ledger.ledger.entries;
  const head = entries.at(-1)!;
  const at = (seq: number) => entries[seq - 1]!;
  const sign = (seq: number, headHash: string, time: number): Checkpoint => signCheckpoint(serverKey, certificate, { terminalId, seq, headHash, time });

  const cases: CheckpointCase[] = [
    { name: 'head', description: `the server holds the whole golden ledger: seq ${head.seq}`, checkpoint: sign(head.seq, head.hash, T0), verdict: { ok: true, lastGoodSeq: head.seq } },
    { name: 'older', description: 'an older checkpoint (seq 20) of the same ledger', checkpoint: sign(20, at(20).hash, T0 - 3_600_000), verdict: { ok: true, lastGoodSeq: head.seq } },
    {
      name: 'tail-cut',
      description: `the ledger cut to 25 entries (valid by itself): the head checkpoint names it truncated from seq 26`,
      checkpoint: sign(head.seq, head.hash, T0),
      ledgerLength: 25,
      verdict: { ok: false, lastGoodSeq: 25, problem: { code: 'TRUNCATED', seq: 26 } },
    },
    {
      name: 'tail-cut-after-checkpoint',
      description: 'the ledger cut to 25 entries against a checkpoint of seq 20: invisible to this checkpoint (ledger-format.md section 8)',
      checkpoint: sign(20, at(20).hash, T0 - 3_600_000),
      ledgerLength: 25,
      verdict: { ok: true, lastGoodSeq: 25 },
    },
    {
      name: 'forked',
      description: 'the checkpoint of seq 10 names another entry hash than the ledger holds there (replaced after the server saw it)',
      checkpoint: sign(10, toHex(sha256(utf8('another entry at seq 10'))), T0),
      verdict: { ok: false, lastGoodSeq: head.seq, problem: { code: 'FORKED', seq: 10 } },
    },
  ];

  const good = cases[0]!.checkpoint;
  const otherRoot = privateKeyFromSeed(sha256(utf8('tallystick checkpoint vectors: another root')));
  const flip = (hex: string): string => (hex.slice(0, -2) + ((parseInt(hex.slice(-2), 16) ^ 1).toString(16).padStart(2, '0')));
  const invalid: InvalidCheckpointCase[] = [
    { name: 'signature-flipped', description: "the checkpoint's signature with its last bit flipped", checkpoint: { ...good, signature: flip(good.signature) }, error: 'BAD_CHECKPOINT' },
    { name: 'body-altered', description: 'the body says seq 34 (not what was signed)', checkpoint: { ...good, body: good.body.replace(`"seq":${head.seq}`, `"seq":${head.seq + 1}`) }, error: 'BAD_CHECKPOINT' },
    {
      name: 'certificate-foreign-root',
      description: 'the server key certified by another root',
      checkpoint: { ...good, serverCertificate: { body: certBody, signature: toHex(signMessage(otherRoot, utf8(certBody))) } },
      error: 'BAD_CHECKPOINT',
    },
    {
      name: 'server-id-mismatch',
      description: 'signed by the certified key, but the body names another server than the certificate',
      checkpoint: (() => {
        const body = encodeCheckpointBody({ terminalId, seq: head.seq, headHash: head.hash, time: T0, serverId: 'SRV-OTHER' });
        return { ...good, body, signature: toHex(signMessage(serverKey, utf8(body))) };
      })(),
      error: 'BAD_CHECKPOINT',
    },
    { name: 'wrong-format', description: 'an unknown format string', checkpoint: { ...good, format: 'tallystick-checkpoint/9' }, error: 'BAD_CHECKPOINT' },
    { name: 'hash-upper-case', description: 'headHash in upper-case hex (the body must be exactly as specified)', checkpoint: (() => {
      const body = good.body.replace(head.hash, head.hash.toUpperCase());
      return { ...good, body, signature: toHex(signMessage(serverKey, utf8(body))) };
    })(), error: 'BAD_CHECKPOINT' },
  ];

  const json = `${JSON.stringify(
    {
      description: 'Server checkpoints (ledger-format.md, section 11) over the golden ledger of ledger.json; test keys only',
      regenerate: 'UPDATE_VECTORS=1 npx vitest run test/codecs/checkpointVectors.test.ts',
      rootPublicKey: ledger.rootPublicKey,
      testKeySeeds: { server: toHex(serverSeed) },
      serverKeyCertificate: certificate,
      cases,
      invalid,
    },
    null,
    1,
  )}\n`;
  return { json, cases, invalid };
}
