/** One contract, two stores: the same suite runs against SQLite and a real PostgreSQL. */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerStore } from '../../src/server/createServerStore.js';
import type { EntryRow, ServerStore } from '../../src/server/ServerStore.js';
import { startPostgres, type RunningPostgres } from '../support/postgres.js';

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
  });
}

const sqliteDir = mkdtempSync(join(tmpdir(), 'tally-store-'));
let postgres: RunningPostgres | undefined;

contract('sqlite', () => createServerStore({ kind: 'sqlite', path: join(sqliteDir, 'server.db') }));
contract('postgres', async () => {
  postgres = await startPostgres();
  return createServerStore({ kind: 'postgres', connectionString: postgres.createDatabase('store_contract') });
});

afterAll(async () => {
  await postgres?.close();
  rmSync(sqliteDir, { recursive: true, force: true });
});
