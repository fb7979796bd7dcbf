/**
 * config/mosquitto/acl and acl-server are generated from the topic table: a
 * topic added to src/codecs/mqtt/topics.ts without regenerating them fails here.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DOWNLINK, UPLINK } from '../../src/codecs/mqtt/topics.js';
import { mosquittoAcl, mosquittoServerAcl } from '../../scripts/mosquittoAcl.js';

const FILES = {
  acl: { path: fileURLToPath(new URL('../../config/mosquitto/acl', import.meta.url)), make: mosquittoAcl },
  'acl-server': { path: fileURLToPath(new URL('../../config/mosquitto/acl-server', import.meta.url)), make: mosquittoServerAcl },
};

describe('Mosquitto ACL', () => {
  it.each(Object.entries(FILES))('config/mosquitto/%s is what the topic table generates', (_, { path, make }) => {
    const expected = make();
    let actual = '';
    try {
      actual = readFileSync(path, 'utf8');
    } catch {
      // missing: written below under UPDATE_DOCS, a failure otherwise
    }
    if (process.env.UPDATE_DOCS === '1' && actual !== expected) writeFileSync(path, expected);
    else expect(actual, `${path} is stale: UPDATE_DOCS=1 npx vitest run test/mqtt/mosquittoAcl.test.ts`).toBe(expected);
  });

  it('names every topic kind once for the server (its own listener) and once for the terminals', () => {
    const terminals = mosquittoAcl().split('\n');
    const server = mosquittoServerAcl().split('\n');
    for (const kind of [...Object.values(UPLINK), ...Object.values(DOWNLINK)]) {
      expect(server.filter((l) => l.startsWith('topic ') && l.endsWith(`/+/${kind}`))).toHaveLength(1);
      expect(terminals.filter((l) => l.startsWith('pattern ') && l.endsWith(`/%u/${kind}`))).toHaveLength(1);
    }
    // nothing for the server on the terminals' listener, nothing for terminals on the servers'
    expect(terminals.filter((l) => l.startsWith('user ') || l.startsWith('topic '))).toEqual([]);
    expect(server.filter((l) => l.startsWith('pattern '))).toEqual([]);
  });
});
