/** One contract, two stores: the same suite runs against SQLite and a real PostgreSQL. */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerStore } from '../../src/server/createServerStore.js';
import type { EntryRow, ServerStore } from '../../src/server/ServerStore.js';
import type { ImportCard, VerifiedRegistryExport } from '../../src/server/registry/RegistryStore.js';
import { storeBackends } from '../support/storeBackends.js';

const DAY1 = Date.UTC(2026, 8, 22, 10);
const DAY2 = Date.UTC(2026, 8, 23, 10);

function hashOf(text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text).digest());
}

function row(terminalId: string, seq: number, extra: Partial<EntryRow> = {}): EntryRow {
  return {
    terminalId,
    seq,
    type: 5,
    time: DAY1 + seq,
    clockTrusted: true,
    clinicCode: 'CL-1',
    hash: hashOf(`${terminalId}:${seq}`),
    prevHash: hashOf(`${terminalId}:${seq - 1}`),
    raw: Uint8Array.of(seq & 0xff, 1, 2, 3),
    ...extra,
  };
}

/** A verified export as the store receives it: a mother, a white and one batch card of the given id */
function registryExport(tag: string, batchId: string, overrides: Partial<VerifiedRegistryExport> = {}): VerifiedRegistryExport {
  const card = (c: Omit<ImportCard, 'record' | 'written'> & { written?: boolean }): ImportCard => ({ written: true, record: Uint8Array.of(1, 2, 3), ...c });
  return {
    digest: `digest-${tag}`,
    stationId: `ST-${tag}`,
    stationPublicKey: 'ab'.repeat(32),
    motherCardId: `m${tag}`.padEnd(16, '0'),
    certifiedAt: 1_000,
    exportedAt: 5_000,
    cards: [
      card({ cardId: `m${tag}`.padEnd(16, '0'), kind: 'mother', issuedAt: 1_000 }),
      card({ cardId: `w${tag}`.padEnd(16, '0'), kind: 'white', signerCardId: `m${tag}`.padEnd(16, '0'), quota: 5, validUntil: 9_000, issuedAt: 2_000 }),
      card({ cardId: batchId, kind: 'batch', signerCardId: `w${tag}`.padEnd(16, '0'), clinicCode: 'CL-R', batchNo: 3, count: 50, validFrom: 3_000, validUntil: 8_000, issuedAt: 3_000, written: false }),
    ],
    oneTime: [{ batchId, count: 50, written: 20 }],
    ...overrides,
  };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

let counter = 0;
function register(store: ServerStore, terminalId: string, key = 1): Promise<'new' | 'same' | 'different'> {
  return store.registerTerminal({ terminalId, clinicCode: 'CL-1', devicePublicKey: new Uint8Array(32).fill(key), certificate: Uint8Array.of(9, key) }, 1000);
}

function contract(name: string, open: () => Promise<ServerStore>): void {
  describe(`ServerStore contract: ${name}`, () => {
    let store: ServerStore;
    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      await store?.close();
    });
    const fresh = (): string => `T-${name}-${++counter}`;

    it('pins a terminal certificate on first sight', async () => {
      const id = fresh();
      expect(await register(store, id, 1)).toBe('new');
      expect(await register(store, id, 1)).toBe('same');
      expect(await register(store, id, 2)).toBe('different');
      const terminal = await store.terminal(id);
      expect(terminal?.devicePublicKey).toEqual(new Uint8Array(32).fill(1));
      expect(terminal?.contiguousSeq).toBe(0);
      expect((await store.terminals()).map((t) => t.terminalId)).toContain(id);
    });

    it('keeps each SMS report once per terminal and counter, its head check, and the last data-link contact', async () => {
      const id = fresh();
      const report = { terminalId: id, counter: 1, sender: '+8613800000001', sentAt: DAY1, receivedAt: DAY1 + 5000, headSeq: 7, headHashPrefix: '0102030405060708', outboxDepth: 3, alerts: 0, batches: [{ batchNo: 1, usesSince: 2, usesTotal: 5 }], bodyHex: 'a1', headCheck: 0 as const };
      expect(await store.recordSmsReport(report)).toBe(true);
      expect(await store.recordSmsReport({ ...report, bodyHex: 'a2' })).toBe(false);
      expect(await store.recordSmsReport({ ...report, counter: 2, receivedAt: DAY2 })).toBe(true);
      await store.setSmsHeadCheck(id, 1, 2);
      const rows = await store.smsReports(id);
      expect(rows.map((r) => [r.counter, r.headCheck, r.bodyHex])).toEqual([[1, 2, 'a1'], [2, 0, 'a1']]);
      expect(rows[0]).toEqual({ ...report, headCheck: 2 });
      expect((await store.smsReports()).filter((r) => r.terminalId === id)).toHaveLength(2);
      expect(await store.lastDataAt(id)).toBeUndefined();
      await register(store, id, 1);
      await store.insertEntries([row(id, 1)], DAY2 + 1);
      expect(await store.lastDataAt(id)).toBe(DAY2 + 1);
    });

    it('stores each entry exactly once and tells duplicates from conflicts', async () => {
      const id = fresh();
      await register(store, id);
      const first = await store.insertEntries(range(1, 5).map((s) => row(id, s)), 2000);
      expect(first).toEqual({ inserted: [1, 2, 3, 4, 5], duplicates: [], conflicts: [] });
      const forged = row(id, 5, { hash: hashOf('other') });
      const second = await store.insertEntries([...range(3, 4).map((s) => row(id, s)), forged, ...range(6, 7).map((s) => row(id, s))], 3000);
      expect(second.inserted).toEqual([6, 7]);
      expect(second.duplicates).toEqual([3, 4]);
      expect(second.conflicts).toEqual([5]);
      expect(await store.entryCount(id)).toBe(7);
      const stored = await store.entries(id, 5, 10);
      expect(stored.map((e) => e.seq)).toEqual([5, 6, 7]);
      expect(stored[0]!.hash).toEqual(hashOf(`${id}:5`));
      expect(stored[0]!.raw).toEqual(Uint8Array.of(5, 1, 2, 3));
      expect(stored[0]!.receivedAt).toBe(2000);
    });

    it('tracks the contiguous seq and the gaps when reports arrive out of order', async () => {
      const id = fresh();
      await register(store, id);
      await store.insertEntries([row(id, 5), row(id, 6), row(id, 1), row(id, 2), row(id, 9)], 1);
      let terminal = await store.terminal(id);
      expect(terminal?.contiguousSeq).toBe(2);
      expect(terminal?.highestSeq).toBe(9);
      expect(await store.missingSeqs(id, 100)).toEqual([3, 4, 7, 8]);
      expect(await store.missingSeqs(id, 3)).toEqual([3, 4, 7]);
      await store.insertEntries([row(id, 4), row(id, 3)], 2);
      terminal = await store.terminal(id);
      expect(terminal?.contiguousSeq).toBe(6);
      await store.insertEntries([row(id, 8), row(id, 7)], 3);
      expect((await store.terminal(id))?.contiguousSeq).toBe(9);
      expect(await store.missingSeqs(id, 100)).toEqual([]);
      const neighbours = await store.neighbours(id, [2, 3, 40]);
      expect(neighbours.map((n) => n.seq)).toEqual([2, 3]);
      expect(neighbours[1]!.prevHash).toEqual(hashOf(`${id}:2`));
    });

    it('keeps concurrent inserts from many terminals apart and complete', async () => {
      const ids = Array.from({ length: 6 }, fresh);
      for (const id of ids) await register(store, id);
      await Promise.all(ids.flatMap((id) => [store.insertEntries(range(1, 50).map((s) => row(id, s)), 1), store.insertEntries(range(26, 80).map((s) => row(id, s)), 1)]));
      for (const id of ids) {
        expect(await store.entryCount(id)).toBe(80);
        expect((await store.terminal(id))?.contiguousSeq).toBe(80);
      }
    });

    it('gives a batch to the first terminal that holds it', async () => {
      const [a, b] = [fresh(), fresh()];
      const batch = { batchId: `b${counter}`.padEnd(16, '0'), batchNo: 7, clinicCode: 'CL-1', count: 10 };
      expect(await store.holdBatch({ ...batch, count: 0 }, a, 0, 1)).toEqual({ batchId: batch.batchId, terminalId: a, seq: 0 });
      expect(await store.holdBatch(batch, a, 2, 2)).toEqual({ batchId: batch.batchId, terminalId: a, seq: 2 });
      expect(await store.holdBatch(batch, b, 2, 3)).toEqual({ batchId: batch.batchId, terminalId: a, seq: 2 });
      expect((await store.batchHolder(batch.batchId))?.terminalId).toBe(a);
      expect(await store.batchHolder('ffffffffffffffff')).toBeUndefined();
    });

    it('finds open uses of a serial, ignoring released ones', async () => {
      const [a, b] = [fresh(), fresh()];
      await register(store, a);
      await register(store, b);
      const batchId = `c${counter}`.padEnd(16, '0');
      await store.insertEntries([row(a, 1, { type: 3, batchId, serial: 4 }), row(a, 2, { type: 6, ref: 1 }), row(a, 3, { type: 3, batchId, serial: 4 })], 1);
      expect(await store.openUses(batchId, 4)).toEqual([{ terminalId: a, seq: 3 }]);
      await store.insertEntries([row(b, 8, { type: 3, batchId, serial: 4 })], 1);
      expect(await store.openUses(batchId, 4)).toEqual([
        { terminalId: a, seq: 3 },
        { terminalId: b, seq: 8 },
      ]);
      expect(await store.openUses(batchId, 5)).toEqual([]);
      expect(await store.openUsesOf([{ batchId, serial: 4 }, { batchId, serial: 5 }, { batchId: 'ffffffffffffffff', serial: 4 }])).toEqual([
        { batchId, serial: 4, terminalId: a, seq: 3 },
        { batchId, serial: 4, terminalId: b, seq: 8 },
      ]);
    });

    it('records rejections and raises each alert once', async () => {
      const id = fresh();
      await store.recordRejection({ at: 5, terminalId: id, topic: 'tally/v1/terminal/x/report', reason: 'malformed', detail: 'bad magic' });
      await store.recordRejection({ at: 6, topic: 'weird', reason: 'unknown-topic', detail: '' });
      const rejections = await store.rejections();
      expect(rejections).toContainEqual({ at: 5, terminalId: id, topic: 'tally/v1/terminal/x/report', reason: 'malformed', detail: 'bad magic' });
      expect(rejections).toContainEqual({ at: 6, topic: 'weird', reason: 'unknown-topic', detail: '' });
      const alert = { at: 7, kind: 'serial-used-twice' as const, terminalId: id, detail: 'serial 4', key: `double:${id}` };
      expect(await store.raiseAlert(alert)).toBe(true);
      expect(await store.raiseAlert({ ...alert, at: 8 })).toBe(false);
      expect((await store.alerts()).filter((a) => a.key === alert.key)).toEqual([alert]);
    });

    it('puts each revoked card on the deny list once, each at the next version, also when revoked at once', async () => {
      const before = (await store.denylist()).at(-1)?.version ?? 0;
      const ids = Array.from({ length: 8 }, (_, i) => `${fresh().replace(/[^0-9a-f]/g, '').padStart(14, '0').slice(-14)}${i.toString(16).padStart(2, '0')}`);
      const outcomes = await Promise.all([...ids, ids[0]!].map((cardId) => store.revokeCard({ cardId, reason: 'lost', revokedAt: 5, revokedBy: 'boss' })));
      expect(outcomes.filter((o) => o.created)).toHaveLength(8);
      const list = (await store.denylist()).filter((d) => ids.includes(d.cardId));
      expect(list.map((d) => d.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 8 }, (_, i) => before + i + 1));
      expect(outcomes[8]!.card).toEqual(list.find((d) => d.cardId === ids[0]));
      const id = fresh();
      await store.recordHeartbeat({ terminalId: id, at: 9, queueDepth: 0, lastSeq: 1, denylistVersion: 3, clockTrusted: false, certExpiresAt: 1_830_000_000_000, software: 'tallystick 0.1.0' });
      expect((await store.heartbeats()).find((h) => h.terminalId === id)).toEqual({ terminalId: id, at: 9, queueDepth: 0, lastSeq: 1, denylistVersion: 3, clockTrusted: false, certExpiresAt: 1_830_000_000_000, software: 'tallystick 0.1.0' });
    });

    it('keeps the signature audit position per terminal', async () => {
      const [a, b] = [fresh(), fresh()];
      expect(await store.auditedSeq(a)).toBe(0);
      await store.setAuditedSeq(a, 40);
      await store.setAuditedSeq(b, 7);
      await store.setAuditedSeq(a, 90);
      expect(await store.auditedSeq(a)).toBe(90);
      expect(await store.auditedSeq(b)).toBe(7);
    });

    it('reports uses per day and reconciles batches, not charging released uses', async () => {
      const id = fresh();
      await register(store, id);
      const batchId = `d${counter}`.padEnd(16, '0');
      await store.holdBatch({ batchId, batchNo: 31, clinicCode: 'CL-9', count: 10 }, id, 2, 1);
      const entries = [
        row(id, 1, { type: 1, clinicCode: 'CL-9' }),
        row(id, 2, { type: 2, batchId, clinicCode: 'CL-9' }),
        row(id, 3, { type: 3, batchId, serial: 1, clinicCode: 'CL-9', time: DAY1 }),
        row(id, 4, { type: 3, batchId, serial: 2, clinicCode: 'CL-9', time: DAY1 }),
        row(id, 5, { type: 6, ref: 4, clinicCode: 'CL-9', time: DAY1 }),
        row(id, 6, { type: 3, batchId, serial: 3, clinicCode: 'CL-9', time: DAY2 }),
      ];
      await store.insertEntries(entries, 1);
      const daily = (await store.usesPerDay()).filter((d) => d.terminalId === id);
      expect(daily).toEqual([
        { terminalId: id, clinicCode: 'CL-9', day: '2026-09-22', uses: 1 },
        { terminalId: id, clinicCode: 'CL-9', day: '2026-09-23', uses: 1 },
      ]);
      let batch = (await store.batchReconciliation()).find((b) => b.batchId === batchId);
      expect(batch).toEqual({ batchId, batchNo: 31, clinicCode: 'CL-9', count: 10, terminalId: id, used: 2, released: 1, remaining: 8 });
      // the terminal says it has 5 left: 3 uses happened that the server has not seen yet
      await store.recordHeartbeat({ terminalId: id, at: 9, queueDepth: 4, lastSeq: 12, batchNo: 31, batchRemaining: 5 });
      batch = (await store.batchReconciliation()).find((b) => b.batchId === batchId);
      expect(batch?.notYetReported).toBe(3);
    });

    it('registry: keeps clinics with their income share and updates them in place', async () => {
      const code = `CL-${name}-${++counter}`;
      await store.registry.putClinic({ clinicCode: code, name: 'Eye Clinic', addedAt: 10 });
      await store.registry.putClinic({ clinicCode: code, name: 'Eye Clinic North', pricePerUse: 12_000, investorShare: 0.65, addedAt: 20 });
      expect((await store.registry.clinics()).find((c) => c.clinicCode === code)).toEqual({ clinicCode: code, name: 'Eye Clinic North', pricePerUse: 12_000, investorShare: 0.65, addedAt: 10 });
    });

    it('registry: tells expected, active, wrong-clinic, unregistered and retired terminals apart', async () => {
      const [expected, active, wrong, unregistered, retired] = [fresh(), fresh(), fresh(), fresh(), fresh()];
      await store.registry.putTerminal({ terminalId: expected, clinicCode: 'CL-1', status: 'expected', addedAt: 1 });
      await store.registry.putTerminal({ terminalId: active, clinicCode: 'CL-1', status: 'expected', note: 'OCT room 2', addedAt: 1 });
      await store.registry.putTerminal({ terminalId: wrong, clinicCode: 'CL-2', status: 'expected', addedAt: 1 });
      await store.registry.putTerminal({ terminalId: retired, clinicCode: 'CL-1', status: 'retired', addedAt: 1 });
      for (const id of [active, wrong, unregistered]) await register(store, id);
      const rows = new Map((await store.registry.terminalRegistry()).map((t) => [t.terminalId, t]));
      expect(rows.get(expected)).toEqual({ terminalId: expected, state: 'expected', clinicCode: 'CL-1' });
      expect(rows.get(active)).toEqual({ terminalId: active, state: 'active', clinicCode: 'CL-1', reportedClinicCode: 'CL-1', firstSeenAt: 1000, contiguousSeq: 0, note: 'OCT room 2' });
      expect(rows.get(wrong)?.state).toBe('wrong-clinic');
      expect(rows.get(wrong)?.reportedClinicCode).toBe('CL-1');
      expect(rows.get(unregistered)).toEqual({ terminalId: unregistered, state: 'unregistered', reportedClinicCode: 'CL-1', firstSeenAt: 1000, contiguousSeq: 0 });
      expect(rows.get(retired)?.state).toBe('retired');
      expect((await store.registry.registeredTerminal(active))?.note).toBe('OCT room 2');
      expect(await store.registry.registeredTerminal(unregistered)).toBeUndefined();
    });

    it('registry: imports a station export once; the same export again changes nothing', async () => {
      const tag = `${name}${++counter}`;
      const batchId = `b${tag}`.padEnd(16, '0');
      const v = registryExport(tag, batchId);
      const snapshot = async () => JSON.stringify([await store.registry.cards(), await store.registry.batches(), await store.registry.issuance(v.stationId), await store.registry.stations()]);
      expect(await store.registry.importExport(v, 100)).toEqual({
        stationId: v.stationId,
        digest: v.digest,
        alreadyImported: false,
        cardsAdded: 3,
        cardsUpdated: 0,
        oneTimeBatchesAdded: 1,
        oneTimeBatchesUpdated: 0,
      });
      expect(await store.registry.inUse()).toBe(true);
      const before = await snapshot();
      expect((await store.registry.importExport(v, 200)).alreadyImported).toBe(true);
      expect(await snapshot()).toBe(before);

      const batch = await store.registry.batch(batchId);
      expect(batch).toEqual({
        batchId,
        batchNo: 3,
        clinicCode: 'CL-R',
        count: 50,
        serialFrom: 1,
        serialTo: 50,
        oneTimeWritten: 20,
        batchCardWritten: false,
        whiteCardId: `w${tag}`.padEnd(16, '0'),
        stationId: v.stationId,
        issuedAt: 3_000,
        validFrom: 3_000,
        validUntil: 8_000,
      });
      const white = (await store.registry.cards('white')).find((c) => c.cardId === `w${tag}`.padEnd(16, '0'));
      expect(white).toMatchObject({ kind: 'white', quota: 5, batchesSigned: 1, stationId: v.stationId, signerCardId: `m${tag}`.padEnd(16, '0') });
      expect(await store.registry.batch('ffffffffffffffff')).toBeUndefined();

      const log = await store.registry.issuance(v.stationId);
      expect(log.map((l) => l.kind)).toEqual(['mother', 'white', 'batch', 'one-time']);
      // made in the same second: still mother, white, batch, one-time, on either database
      const sameSecond = registryExport(`${tag}s`, `s${tag}`.padEnd(16, '0'), { digest: `same-${tag}`, stationId: `ST-${tag}-same` });
      await store.registry.importExport({ ...sameSecond, cards: sameSecond.cards.map((c) => ({ ...c, issuedAt: 7_000 })) }, 100);
      expect((await store.registry.issuance(sameSecond.stationId)).map((l) => l.kind)).toEqual(['mother', 'white', 'batch', 'one-time']);
      expect((await store.registry.cards()).filter((c) => c.stationId === sameSecond.stationId).map((c) => c.kind)).toEqual(['mother', 'white', 'batch']);
      expect(log[3]).toMatchObject({ cardId: batchId, signerCardId: batchId, clinicCode: 'CL-R', batchNo: 3, detail: 'one-time cards, serials 1..50' });
      expect(log[2]).toMatchObject({ cardId: batchId, signerCardId: `w${tag}`.padEnd(16, '0'), detail: 'batch card 3 for clinic CL-R, 50 one-time cards' });
      const station = (await store.registry.stations()).find((s) => s.stationId === v.stationId);
      expect(station).toEqual({ stationId: v.stationId, publicKey: 'ab'.repeat(32), motherCardId: v.motherCardId, certifiedAt: 1_000, firstImportAt: 100, lastImportAt: 100, lastExportedAt: 5_000 });
    });

    it('registry: a later export only adds cards and marks more written; an older one rolls nothing back', async () => {
      const tag = `${name}${++counter}`;
      const batchId = `b${tag}`.padEnd(16, '0');
      const first = registryExport(tag, batchId);
      await store.registry.importExport(first, 100);
      const secondBatch = `c${tag}`.padEnd(16, '0');
      const later = registryExport(tag, batchId, {
        digest: `later-${tag}`,
        exportedAt: 9_000,
        cards: [
          ...first.cards.map((c) => (c.kind === 'batch' ? { ...c, written: true, chipUid: '0102' } : c)),
          { ...first.cards[2]!, cardId: secondBatch, batchNo: 4, count: 10, issuedAt: 4_000 },
        ],
        oneTime: [
          { batchId, count: 50, written: 50 },
          { batchId: secondBatch, count: 10, written: 0 },
        ],
      });
      const summary = await store.registry.importExport(later, 300);
      expect(summary).toMatchObject({ alreadyImported: false, cardsAdded: 1, cardsUpdated: 1, oneTimeBatchesAdded: 1, oneTimeBatchesUpdated: 1 });
      expect(await store.registry.batch(batchId)).toMatchObject({ batchCardWritten: true, oneTimeWritten: 50 });
      // the first export once more (another copy of it: a new digest) changes nothing back
      await store.registry.importExport({ ...first, digest: `again-${tag}` }, 400);
      expect(await store.registry.batch(batchId)).toMatchObject({ batchCardWritten: true, oneTimeWritten: 50 });
      expect((await store.registry.stations()).find((s) => s.stationId === first.stationId)?.lastExportedAt).toBe(9_000);
      expect((await store.registry.issuance(first.stationId)).length).toBe(6);
    });

    it('registry: a batch shows the terminal that loaded it', async () => {
      const tag = `${name}${++counter}`;
      const batchId = `b${tag}`.padEnd(16, '0');
      const id = fresh();
      await store.registry.importExport(registryExport(tag, batchId), 100);
      expect((await store.registry.batch(batchId))?.terminalId).toBeUndefined();
      await store.holdBatch({ batchId, batchNo: 3, clinicCode: 'CL-R', count: 50 }, id, 2, 1);
      expect((await store.registry.batch(batchId))?.terminalId).toBe(id);
      expect((await store.registry.batches()).map((b) => b.batchId)).toContain(batchId);
    });

    it('registry: finds batches no export knows and terminals reporting for another clinic', async () => {
      const tag = `${name}${++counter}`;
      const known = `b${tag}`.padEnd(16, '0');
      const unknown = `u${tag}`.padEnd(16, '0');
      const [a, b, c] = [fresh(), fresh(), fresh()];
      await store.registry.importExport(registryExport(tag, known), 100);
      await store.holdBatch({ batchId: known, batchNo: 3, clinicCode: 'CL-R', count: 50 }, a, 2, 1);
      await store.holdBatch({ batchId: unknown, batchNo: 9, clinicCode: 'CL-R', count: 5 }, a, 4, 1);
      for (const id of [a, b, c]) await register(store, id);
      await store.registry.putTerminal({ terminalId: a, clinicCode: 'CL-1', status: 'expected', addedAt: 1 });
      await store.registry.putTerminal({ terminalId: b, clinicCode: 'CL-2', status: 'expected', addedAt: 1 });
      await store.registry.putTerminal({ terminalId: c, clinicCode: 'CL-2', status: 'retired', addedAt: 1 });
      const findings = await store.registry.findings();
      const batches = findings.unregisteredBatches.filter((f) => f.terminalId === a);
      expect(batches).toEqual([{ batchId: unknown, batchNo: 9, clinicCode: 'CL-R', terminalId: a }]);
      expect(findings.wrongClinicTerminals.filter((t) => [a, b, c].includes(t.terminalId))).toEqual([{ terminalId: b, registeredClinicCode: 'CL-2', reportedClinicCode: 'CL-1' }]);
    });

    it("registry: batch reconciliation takes a claimed batch's count from the registry until its entry arrives", async () => {
      const tag = `${name}${++counter}`;
      const batchId = `b${tag}`.padEnd(16, '0');
      const id = fresh();
      await store.registry.importExport(registryExport(tag, batchId), 100);
      await store.holdBatch({ batchId, batchNo: 3, clinicCode: 'CL-R', count: 0 }, id, 0, 1);
      expect((await store.batchReconciliation()).find((r) => r.batchId === batchId)).toMatchObject({ count: 50, remaining: 50 });
      const unknown = `u${tag}`.padEnd(16, '0');
      await store.holdBatch({ batchId: unknown, batchNo: 8, clinicCode: 'CL-R', count: 0 }, id, 0, 1);
      expect((await store.batchReconciliation()).find((r) => r.batchId === unknown)).toMatchObject({ count: 0 });
    });
  });
}

for (const backend of storeBackends('tally-store')) contract(backend.name, async () => createServerStore(await backend.place('store_contract')));
