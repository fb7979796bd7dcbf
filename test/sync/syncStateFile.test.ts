import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SyncState } from '../../src/sync/SyncClient.js';
import { loadSyncState, saveSyncState } from '../../src/sync/syncStateFile.js';

const dir = mkdtempSync(join(tmpdir(), 'tally-syncstate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sync state file', () => {
  const state: SyncState = {
    config: { transaction: 1, version: 3, clinicCode: 'CL-1', policy: { reportBatchSize: 50, maxReportsPerSecond: 20, heartbeatSeconds: 60, ackTimeoutSeconds: 10 } },
    denylist: { version: 7, cards: ['00000000000000aa'] },
    clockOffsetMs: -1200,
  };

  it('round-trips the last good state', () => {
    const path = join(dir, 'a.json');
    saveSyncState(path, state);
    expect(loadSyncState(path)).toEqual({ state });
  });

  it('starts empty without a file, and ignores a damaged or invalid one with a reason', () => {
    expect(loadSyncState(join(dir, 'missing.json'))).toEqual({ state: {} });
    const path = join(dir, 'b.json');
    writeFileSync(path, '{"config": {"version": 0}');
    expect(loadSyncState(path).problem).toMatch(/ignoring/);
    writeFileSync(path, JSON.stringify({ ...state, denylist: { version: 2, cards: ['XYZ'] } }));
    const loaded = loadSyncState(path);
    expect(loaded.state).toEqual({});
    expect(loaded.problem).toMatch(/denylist.cards/);
    writeFileSync(path, JSON.stringify({ config: { ...state.config, policy: { reportBatchSize: 0 } } }));
    expect(loadSyncState(path).problem).toMatch(/schema/);
  });

  it('replaces the file whole', () => {
    const path = join(dir, 'c.json');
    saveSyncState(path, state);
    saveSyncState(path, { clockOffsetMs: 5 });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ clockOffsetMs: 5 });
  });
});
