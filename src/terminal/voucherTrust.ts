/**
 * The voucher trust list a terminal keeps (voucher-format.md §4): the newest
 * list that verified against the investor root, in <dataDir>/voucher-trust-list.bin.
 * A list with a lower seq than the one kept is not installed (a replayed old
 * list would bring back revoked vouchers).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrustList } from '../codecs/voucher.js';
import { verifyTrustList } from '../crypto/voucher.js';

export const TRUST_LIST_FILE = 'voucher-trust-list.bin';

/** The kept list, verified again against the root (a file edited on disk is not trusted), or undefined */
export function loadTrustList(dataDir: string, rootPublicKey: Uint8Array): TrustList | undefined {
  const path = join(dataDir, TRUST_LIST_FILE);
  if (!existsSync(path)) return undefined;
  return verifyTrustList(new Uint8Array(readFileSync(path)), rootPublicKey);
}

/** Installs `raw` if it verifies and is not older than `current`: the list in force afterwards, and whether it changed */
export function installTrustList(dataDir: string, rootPublicKey: Uint8Array, raw: Uint8Array, current: TrustList | undefined): { list: TrustList; installed: boolean } {
  const list = verifyTrustList(raw, rootPublicKey);
  if (current && list.listSeq <= current.listSeq) return { list: current, installed: false };
  const path = join(dataDir, TRUST_LIST_FILE);
  writeFileSync(`${path}.tmp`, raw);
  renameSync(`${path}.tmp`, path);
  return { list, installed: true };
}
