/**
 * The sync's last good state (configuration, deny-list version and cards,
 * clock offset) in a JSON file: loaded at start, written atomically (temp
 * file, fsync, rename) on every change, so a power cut leaves the old state
 * or the new one, never half of each. A file that does not parse or validate
 * is ignored (the terminal starts without a server state rather than with a
 * wrong one) and the reason is returned.
 */
import { CodecError } from '../errors.js';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseJsonPayload } from '../codecs/mqtt/messages.js';
import type { SyncState } from './SyncClient.js';

const CARD_ID = /^[0-9a-f]{16}$/;

export function loadSyncState(path: string): { state: SyncState; problem?: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: {} };
    return { state: {}, problem: `cannot read ${path}: ${(err as Error).message}` };
  }
  try {
    const raw = JSON.parse(text) as Record<string, unknown>;
    const state: { -readonly [K in keyof SyncState]: SyncState[K] } = {};
    if (raw.config !== undefined) state.config = parseJsonPayload('config', new TextEncoder().encode(JSON.stringify(raw.config)));
    if (raw.denylist !== undefined) {
      const list = raw.denylist as { version?: unknown; cards?: unknown };
      if (typeof list.version !== 'number' || !Number.isSafeInteger(list.version) || list.version < 1) throw new CodecError('BAD_MESSAGE', 'denylist.version');
      if (!Array.isArray(list.cards) || !list.cards.every((c) => typeof c === 'string' && CARD_ID.test(c))) throw new CodecError('BAD_MESSAGE', 'denylist.cards');
      state.denylist = { version: list.version, cards: list.cards as string[] };
    }
    if (raw.clockOffsetMs !== undefined) {
      if (typeof raw.clockOffsetMs !== 'number' || !Number.isFinite(raw.clockOffsetMs)) throw new CodecError('BAD_MESSAGE', 'clockOffsetMs');
      state.clockOffsetMs = raw.clockOffsetMs;
    }
    return { state };
  } catch (err) {
    return { state: {}, problem: `ignoring ${path}: ${(err as Error).message}` };
  }
}

export function saveSyncState(path: string, state: SyncState): void {
  const temp = `${path}.tmp`;
  const fd = openSync(temp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(state));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  // the rename itself is durable once the directory is synced
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
