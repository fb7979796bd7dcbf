/** The terminal's device key: made at provisioning, kept in the data folder (mode 0600), signs the ledger only. */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { fromHex, toHex } from '../codecs/bytes.js';
import { privateKeyFromSeed, privateKeySeed } from '../crypto/ed25519.js';

export const DEVICE_KEY_FILE = 'device.key';

export function loadDeviceKey(dataDir: string): KeyObject | undefined {
  const path = join(dataDir, DEVICE_KEY_FILE);
  if (!existsSync(path)) return undefined;
  return privateKeyFromSeed(fromHex(readFileSync(path, 'utf8').trim()));
}

export function saveDeviceKey(dataDir: string, key: KeyObject): void {
  const path = join(dataDir, DEVICE_KEY_FILE);
  writeFileSync(`${path}.tmp`, `${toHex(privateKeySeed(key))}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}
