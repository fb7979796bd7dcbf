/**
 * The server's signed checkpoints as rollback witnesses: the server key is
 * certified by the mother card (`tally server certify-key`), the ingest signs a
 * checkpoint of each terminal's ledger into its acks, the terminal checks it
 * against the root and keeps the latest (`tally ledger checkpoint` exports it),
 * and `tally ledger verify --checkpoint` names a ledger cut short or restored
 * from an older copy as TRUNCATED (exit 4, with its last good seq). A restored
 * terminal that gets the server's checkpoint in an ack latches LEDGER_ROLLBACK.
 * A checkpoint signed by a key the root did not certify is refused.
 */
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { main } from '../../src/cli/tally.js';
import { loadServerKey } from '../../src/cli/commands/serverKey.js';
import { toHex, utf8 } from '../../src/codecs/bytes.js';
import { encodeServerKeyCertificateBody, parseCheckpoint, type Checkpoint } from '../../src/codecs/checkpoint.js';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { parseJsonPayload } from '../../src/codecs/mqtt/messages.js';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { signCheckpoint } from '../../src/crypto/checkpoint.js';
import { generateSigningKey, signMessage } from '../../src/crypto/ed25519.js';
import { isTallyError } from '../../src/errors.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import { saveCardFile } from '../../src/sim/cardFile.js';
import type { Terminal } from '../../src/terminal/Terminal.js';
import { systemClock } from '../../src/util/clock.js';

async function tally(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** Everything in the terminal's outbox, as one report through the ingest; the ack's checkpoint */
async function sync(ingest: Ingest, terminal: Terminal, transaction: number): Promise<Checkpoint | undefined> {
  const pending = terminal.ledger.pending(1000);
  const payload = encodeReport({ transaction, certificate: terminal.ledger.terminalCertificate(), entries: pending.map((p) => p.raw) });
  const outcome = await ingest.handle(terminalTopic(terminal.ledger.terminalId, 'report'), payload);
  const ack = parseJsonPayload('ack', outcome.replies.find((r) => r.topic.endsWith('/ack'))!.payload);
  terminal.ledger.acknowledge(pending.map((p) => p.seq));
  return ack.data.checkpoint as Checkpoint | undefined;
}

describe('server checkpoints as rollback witnesses', () => {
  it('the ack carries a checkpoint the terminal keeps; verify --checkpoint names the cut ledger TRUNCATED; a restored terminal latches the rollback', async () => {
    const dir = tempDir('tally-checkpoint-');
    const issuer = await new Issuer(dir).init();
    onTestFinished(() => issuer.close());
    const batch = await issuer.makeBatch('C1', 5);
    const motherFile = join(dir, 'mother.json');
    saveCardFile(motherFile, issuer.mother);
    const keyFile = join(dir, 'server-key.json');
    const certify = await tally('server', 'certify-key', '--server-id', 'SRV-1', '--key', keyFile, '--mother', motherFile, '--mother-pin', '246810');
    expect(certify.code, certify.err).toBe(0);
    const root = issuer.motherInfo.rootPublicKey;
    const rootKey = typeof root === 'string' ? new Uint8Array(Buffer.from(root, 'hex')) : root;
    const signer = loadServerKey(keyFile, rootKey);
    expect(signer.serverId).toBe('SRV-1');

    const store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
    onTestFinished(() => store.close());
    const ingest = new Ingest({ store, rootPublicKey: rootKey, clock: systemClock, checkpointSigner: { key: signer.key, certificate: signer.certificate } });

    const dataDir = join(dir, 'data');
    const db = join(dataDir, 'terminal.db');
    const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-CP', clinicCode: 'C1' });
    expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true, seq: 2 });
    rig.terminal.close();
    copyFileSync(db, join(dir, 'backup.db'));

    const live = await provisionTerminal(issuer, { dataDir, terminalId: 'T-CP', clinicCode: 'C1' });
    expect(await live.swipe(batch.oneTimeCards[0]!)).toMatchObject({ ok: true, seq: 3 });
    expect(await live.swipe(batch.oneTimeCards[1]!)).toMatchObject({ ok: true, seq: 6 });
    const checkpoint = await sync(ingest, live.terminal, 1);
    expect(checkpoint).toBeDefined();
    expect(live.terminal.adoptCheckpoint(checkpoint)).toMatchObject({ terminalId: 'T-CP', seq: 8, serverId: 'SRV-1', headHash: toHex(live.terminal.ledger.entryHashAt(8)!) });
    live.terminal.close();

    const exported = join(dir, 'checkpoint.json');
    const show = await tally('ledger', 'checkpoint', '--data', dataDir, '--out', exported);
    expect(show.code, show.err).toBe(0);
    expect(show.out).toMatch(/server SRV-1: terminal T-CP seq 8/);
    const intact = await tally('ledger', 'verify', '--data', dataDir, '--checkpoint', exported);
    expect(intact.code, intact.out).toBe(0);
    expect(intact.out).toMatch(/holds the checkpoint of server SRV-1: seq 8/);

    // the database goes back to the copy taken at seq 2: valid on its own, cut against the checkpoint
    rmSync(`${db}-wal`, { force: true });
    rmSync(`${db}-shm`, { force: true });
    copyFileSync(join(dir, 'backup.db'), db);
    const alone = await tally('ledger', 'verify', '--data', dataDir);
    expect(alone.code).toBe(0);
    const cut = await tally('ledger', 'verify', '--data', dataDir, '--checkpoint', exported, '--json');
    expect(cut.code).toBe(4);
    expect(JSON.parse(cut.out)).toMatchObject({ ok: false, lastSeq: 2, checkpoint: { ok: false, seq: 8, lastGoodSeq: 2, problem: { code: 'TRUNCATED', seq: 3 } } });
    const cutText = await tally('ledger', 'verify', '--data', dataDir, '--checkpoint', exported);
    expect(cutText.out).toMatch(/TRUNCATED: .*last good seq is 2.*seq 3\.\.8/);

    // the restored terminal comes online: the server's next ack carries its checkpoint of seq 8
    const restored = await provisionTerminal(issuer, { dataDir, terminalId: 'T-CP', clinicCode: 'C1' });
    onTestFinished(() => restored.terminal.close());
    const again = await sync(ingest, restored.terminal, 2);
    expect(again && parseCheckpoint(again)).toBeDefined();
    restored.terminal.adoptCheckpoint(again);
    expect(restored.terminal.status().rollback).toMatchObject({ witness: 'checkpoint', witnessSeq: 8, ledgerSeq: 2 });
    expect(await restored.swipe(batch.oneTimeCards[2]!)).toMatchObject({ ok: false, code: 'LEDGER_ROLLBACK' });
    const witness = [...restored.terminal.ledger.entries()].map(parseLedgerEntry).filter((e) => e.type === EntryType.WITNESS_ROLLBACK);
    expect(witness.map((e) => e.ref)).toEqual([8]);
    expect(witness[0]!.detail).toMatch(/^checkpoint: server SRV-1 signed seq 8/);
    // the stored checkpoint stays the later one: an old copy of checkpoint.json cannot win
    expect(JSON.parse(readFileSync(join(dataDir, 'checkpoint.json'), 'utf8')).body).toContain('"seq":8');

    // and the server raised the alert once the witness entry reached it (as a fork of seq 3, which it already holds)
    await sync(ingest, restored.terminal, 3);
    const alerts = await store.alerts();
    expect(alerts.map((a) => a.kind)).toEqual(expect.arrayContaining(['ledger-fork', 'ledger-rollback']));
  });

  it('refuses a checkpoint signed by a key the root did not certify, or naming another terminal', async () => {
    const dir = tempDir('tally-checkpoint-bad-');
    const issuer = await new Issuer(dir).init();
    onTestFinished(() => issuer.close());
    const rig = await provisionTerminal(issuer, { dataDir: join(dir, 'data'), terminalId: 'T-CP2', clinicCode: 'C1' });
    onTestFinished(() => rig.terminal.close());
    const rogue = generateSigningKey();
    const body = encodeServerKeyCertificateBody({ serverId: 'EVIL', publicKey: toHex(rogue.publicKey), motherCardId: '00'.repeat(8), issuedAt: 1 });
    const selfSigned = { body, signature: toHex(signMessage(rogue.privateKey, utf8(body))) };
    const forged = signCheckpoint(rogue.privateKey, selfSigned, { terminalId: 'T-CP2', seq: 99, headHash: '00'.repeat(32), time: Date.now() });
    expect(() => rig.terminal.adoptCheckpoint(forged)).toThrow(expect.objectContaining({ code: 'BAD_CHECKPOINT' }));
    expect(rig.terminal.status().rollback).toBeUndefined();
    const file = join(dir, 'forged.json');
    writeFileSync(file, JSON.stringify(forged));
    const verified = await tally('ledger', 'verify', '--data', join(dir, 'data'), '--checkpoint', file);
    expect(verified.code).not.toBe(0);
    expect(verified.err).toMatch(/BAD_CHECKPOINT|not certified/);
    try {
      rig.terminal.adoptCheckpoint({ ...forged, body: forged.body.replace('T-CP2', 'T-XX') });
    } catch (err) {
      expect(isTallyError(err, 'BAD_CHECKPOINT')).toBe(true);
    }
  });
});
