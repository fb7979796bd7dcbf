/**
 * config/mosquitto/acl is generated from the topic table: a topic added to
 * src/codecs/mqtt/topics.ts without regenerating the ACL fails here.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DOWNLINK, UPLINK } from '../../src/codecs/mqtt/topics.js';
import { mosquittoAcl } from '../../scripts/mosquittoAcl.js';

const ACL = fileURLToPath(new URL('../../config/mosquitto/acl', import.meta.url));

describe('Mosquitto ACL', () => {
  it('is what the topic table generates', () => {
    const expected = mosquittoAcl();
    const actual = readFileSync(ACL, 'utf8');
    if (process.env.UPDATE_DOCS === '1' && actual !== expected) writeFileSync(ACL, expected);
    else expect(actual, 'config/mosquitto/acl is stale: UPDATE_DOCS=1 npx vitest run test/mqtt/mosquittoAcl.test.ts').toBe(expected);
  });

  it('names every topic kind once for the server and once for the terminals', () => {
    const lines = mosquittoAcl().split('\n');
    for (const kind of [...Object.values(UPLINK), ...Object.values(DOWNLINK)]) {
      expect(lines.filter((l) => l.startsWith('topic ') && l.endsWith(`/+/${kind}`))).toHaveLength(1);
      expect(lines.filter((l) => l.startsWith('pattern ') && l.endsWith(`/%u/${kind}`))).toHaveLength(1);
    }
  });
});
