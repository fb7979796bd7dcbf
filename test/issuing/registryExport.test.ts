/**
 * The issuing station's signed registry export: certified by the mother card,
 * verified by the server with the investor root alone; any alteration refused
 * with a reason; imports idempotent.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { toHex } from '../../src/codecs/bytes.js';
import { encodeRecordBody, encodeSignedRecord, parseCardRecord, RecordKind, type BatchFields, type WhiteFields } from '../../src/codecs/cardRecord.js';
import { encodeRegistryExport, parseRegistryExportFile, parseRegistryExportPayload, type RegistryExportPayload } from '../../src/codecs/registryExport.js';
import { generateSigningKey, privateKeyFromSeed, signMessage } from '../../src/crypto/ed25519.js';
import { exportRegistry } from '../../src/issuing/exportRegistry.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { importRegistryExport, verifyRegistryExport } from '../../src/server/registry/verifyExport.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { stationWorld, type StationWorld } from './stationWorld.js';

const worlds: StationWorld[] = [];
const stores: ServerStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const w of worlds.splice(0)) w.close();
});

async function world(): Promise<StationWorld> {
  const w = await stationWorld();
  worlds.push(w);
  return w;
}

/** The export's payload changed by `change` and signed again with the station's own key (a station key holder forging) */
function resigned(w: StationWorld, file: string, change: (p: RegistryExportPayload) => RegistryExportPayload): string {
  const payload = parseRegistryExportPayload(parseRegistryExportFile(file).payload);
  const key = privateKeyFromSeed(w.registry.station()!.keySeed);
  const { format: _format, ...rest } = change(payload);
  return encodeRegistryExport(rest, (bytes) => toHex(signMessage(key, bytes)));
}

describe('station certification and export', () => {
  it('refuses to export before the mother card certified the station', async () => {
    const w = await world();
    expect(() => exportRegistry(w.registry, 1)).toThrow(/certif/);
  });

  it('a wrong mother PIN certifies nothing', async () => {
    const w = await world();
    await expect(w.certify('ST-1', '999999')).rejects.toMatchObject({ code: 'PIN_WRONG' });
    expect(w.registry.station()).toBeUndefined();
    await expect(w.certify('bad id with spaces')).rejects.toMatchObject({ code: 'USAGE' });
  });

  it('exports every mother, white and batch card and the one-time ranges; the server verifies it with the root alone', async () => {
    const w = await world();
    const certified = await w.certify('ST-1');
    expect(certified.stationId).toBe('ST-1');
    const a = await w.makeBatch('CL-A', 4);
    const b = await w.makeBatch('CL-B', 6, 2);
    const file = exportRegistry(w.registry, 1_700_000_000_000);
    const verified = verifyRegistryExport(file, w.rootPublicKey);
    expect(verified.stationId).toBe('ST-1');
    expect(verified.stationPublicKey).toBe(certified.publicKey);
    expect(verified.cards.map((c) => c.kind)).toEqual(['mother', 'white', 'batch', 'batch']);
    const batchA = verified.cards.find((c) => c.cardId === a.batchId)!;
    expect(batchA).toMatchObject({ kind: 'batch', clinicCode: 'CL-A', batchNo: 1, count: 4, signerCardId: w.whiteCardId, written: true });
    expect(verified.cards.find((c) => c.kind === 'white')).toMatchObject({ cardId: w.whiteCardId, quota: 5, signerCardId: certified.motherCardId });
    expect(verified.oneTime).toEqual([
      { batchId: a.batchId, count: 4, written: 4 },
      { batchId: b.batchId, count: 6, written: 2 },
    ]);
    // the same file verifies to the same digest; a new export of the same registry is a new file
    expect(verifyRegistryExport(file, w.rootPublicKey).digest).toBe(verified.digest);
    expect(verifyRegistryExport(exportRegistry(w.registry, 1_700_000_000_001), w.rootPublicKey).digest).not.toBe(verified.digest);
  });
});

describe('a tampered export is refused with a reason', () => {
  async function exported(): Promise<{ w: StationWorld; file: string }> {
    const w = await world();
    await w.certify('ST-T');
    await w.makeBatch('CL-A', 3);
    return { w, file: exportRegistry(w.registry, 1_700_000_000_000) };
  }

  it('any byte of the payload altered: bad-signature', async () => {
    const { w, file } = await exported();
    const envelope = JSON.parse(file) as { payload: string };
    const altered = JSON.stringify({ ...JSON.parse(file), payload: envelope.payload.replace('"written":3', '"written":2') });
    expect(altered).not.toBe(JSON.stringify(JSON.parse(file)));
    expect(() => verifyRegistryExport(altered, w.rootPublicKey)).toThrow(expect.objectContaining({ reason: 'bad-signature' }));
  });

  it("another investor's root: station-not-certified", async () => {
    const { file } = await exported();
    expect(() => verifyRegistryExport(file, generateSigningKey().publicKey)).toThrow(expect.objectContaining({ reason: 'station-not-certified' }));
  });

  it('a station key that certified itself: station-not-certified', async () => {
    const { w, file } = await exported();
    const selfMade = resigned(w, file, (p) => {
      const key = privateKeyFromSeed(w.registry.station()!.keySeed);
      return { ...p, certificate: { body: p.certificate.body, signature: toHex(signMessage(key, new TextEncoder().encode(p.certificate.body))) } };
    });
    expect(() => verifyRegistryExport(selfMade, w.rootPublicKey)).toThrow(expect.objectContaining({ reason: 'station-not-certified' }));
  });

  it('signed by the station key but naming another station: station-mismatch', async () => {
    const { w, file } = await exported();
    expect(() => verifyRegistryExport(resigned(w, file, (p) => ({ ...p, stationId: 'ST-OTHER' })), w.rootPublicKey)).toThrow(expect.objectContaining({ reason: 'station-mismatch' }));
  });

  it('signed by the station key but with a batch card no white card of the investor signed: forged-card', async () => {
    const { w, file } = await exported();
    const forged = resigned(w, file, (p) => ({
      ...p,
      cards: p.cards.map((c) => {
        const record = parseCardRecord(Buffer.from(c.record, 'hex'));
        if (record.kind !== RecordKind.BATCH) return c;
        // a copy with a bigger count, signed by a key of the forger's own
        const { signature: _s, body: _b, raw: _r, ...fields } = record as typeof record & { body: Uint8Array; raw: Uint8Array; signature: Uint8Array };
        const body = encodeRecordBody({ ...(fields as BatchFields), count: 1000 });
        return { ...c, record: toHex(encodeSignedRecord(body, signMessage(generateSigningKey().privateKey, body))) };
      }),
      oneTime: p.oneTime.map((o) => ({ ...o, count: 1000 })),
    }));
    expect(() => verifyRegistryExport(forged, w.rootPublicKey)).toThrow(expect.objectContaining({ reason: 'forged-card' }));
  });

  it('a white card not signed by the root: forged-card', async () => {
    const { w, file } = await exported();
    const forged = resigned(w, file, (p) => ({
      ...p,
      cards: p.cards.map((c) => {
        const record = parseCardRecord(Buffer.from(c.record, 'hex'));
        if (record.kind !== RecordKind.WHITE) return c;
        const white = record as unknown as WhiteFields;
        const body = encodeRecordBody({ kind: RecordKind.WHITE, cardId: white.cardId, issuedAt: white.issuedAt, publicKey: white.publicKey, quota: 99_999, validUntil: white.validUntil });
        return { ...c, record: toHex(encodeSignedRecord(body, signMessage(generateSigningKey().privateKey, body))) };
      }),
    }));
    expect(() => verifyRegistryExport(forged, w.rootPublicKey)).toThrow(expect.objectContaining({ reason: 'forged-card' }));
  });

  it('one-time counts that contradict the signed batch record: inconsistent', async () => {
    const { w, file } = await exported();
    const more = resigned(w, file, (p) => ({ ...p, oneTime: p.oneTime.map((o) => ({ ...o, count: o.count + 1 })) }));
    expect(() => verifyRegistryExport(more, w.rootPublicKey)).toThrow(expect.objectContaining({ reason: 'inconsistent' }));
    const orphan = resigned(w, file, (p) => ({ ...p, oneTime: [...p.oneTime, { batchId: '00'.repeat(8), count: 1, written: 0 }] }));
    expect(() => verifyRegistryExport(orphan, w.rootPublicKey)).toThrow(expect.objectContaining({ reason: 'inconsistent' }));
  });

  it('not an export at all: malformed or unsupported-format', async () => {
    const { w, file } = await exported();
    expect(() => verifyRegistryExport('{"format":', w.rootPublicKey)).toThrow(expect.objectContaining({ reason: 'malformed' }));
    expect(() => verifyRegistryExport(file.replace('tallystick-registry-export/1', 'tallystick-registry-export/9'), w.rootPublicKey)).toThrow(
      expect.objectContaining({ reason: 'unsupported-format' }),
    );
  });
});

describe('import into the server store', () => {
  it('is idempotent, and a refused export stores nothing', async () => {
    const w = await world();
    await w.certify('ST-I');
    await w.makeBatch('CL-A', 3);
    const store = await createServerStore({ kind: 'sqlite', path: join(w.dir, 'server.db') });
    stores.push(store);
    const tampered = JSON.stringify({ ...JSON.parse(exportRegistry(w.registry, 1)), signature: '00'.repeat(64) });
    await expect(importRegistryExport(store.registry, tampered, w.rootPublicKey, 10)).rejects.toMatchObject({ reason: 'bad-signature' });
    expect(await store.registry.inUse()).toBe(false);
    expect(await store.registry.cards()).toEqual([]);

    const file = exportRegistry(w.registry, 2);
    expect(await importRegistryExport(store.registry, file, w.rootPublicKey, 20)).toMatchObject({ alreadyImported: false, cardsAdded: 3, oneTimeBatchesAdded: 1 });
    const state = JSON.stringify([await store.registry.cards(), await store.registry.batches(), await store.registry.issuance(), await store.registry.stations()]);
    expect(await importRegistryExport(store.registry, file, w.rootPublicKey, 30)).toMatchObject({ alreadyImported: true, cardsAdded: 0, cardsUpdated: 0 });
    expect(JSON.stringify([await store.registry.cards(), await store.registry.batches(), await store.registry.issuance(), await store.registry.stations()])).toBe(state);

    // the station makes another batch: the next export adds just that
    await w.makeBatch('CL-B', 2);
    expect(await importRegistryExport(store.registry, exportRegistry(w.registry, 3), w.rootPublicKey, 40)).toMatchObject({ alreadyImported: false, cardsAdded: 1, oneTimeBatchesAdded: 1 });
    expect((await store.registry.batches()).map((b) => [b.clinicCode, b.batchNo, b.serialFrom, b.serialTo])).toEqual([
      ['CL-A', 1, 1, 3],
      ['CL-B', 2, 1, 2],
    ]);
  });
});
