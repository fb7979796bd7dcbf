/**
 * config/mosquitto/acl, generated from the topic table (src/codecs/mqtt/topics.ts):
 * the server reads every terminal's uplink and writes every downlink; each
 * terminal writes only its own uplink and reads only its own downlink.
 * test/mqtt/mosquittoAcl.test.ts fails while the file differs from what this
 * makes (UPDATE_DOCS=1 rewrites it).
 */
import { DOWNLINK, TOPIC_PREFIX, UPLINK } from '../src/codecs/mqtt/topics.js';

/** The CN of the ingest server's client certificate, its broker user name */
export const SERVER_USER = 'tally-server';

export function mosquittoAcl(): string {
  const uplink = Object.values(UPLINK);
  const downlink = Object.values(DOWNLINK);
  return [
    '# tallystick ACL, generated from src/codecs/mqtt/topics.ts by scripts/mosquittoAcl.ts:',
    '# do not edit (UPDATE_DOCS=1 npx vitest run test/mqtt/mosquittoAcl.test.ts rewrites it).',
    "# A terminal's user name is the CN of its client certificate, which is its",
    '# terminal id, so %u confines each terminal to its own topics.',
    '',
    `# The ingest server (client certificate CN = ${SERVER_USER}) reads every`,
    "# terminal's uplink and writes every terminal's downlink.",
    `user ${SERVER_USER}`,
    ...uplink.map((kind) => `topic read ${TOPIC_PREFIX}/+/${kind}`),
    ...downlink.map((kind) => `topic write ${TOPIC_PREFIX}/+/${kind}`),
    '',
    '# Every terminal: publish only its own uplink, read only its own downlink.',
    ...uplink.map((kind) => `pattern write ${TOPIC_PREFIX}/%u/${kind}`),
    ...downlink.map((kind) => `pattern read ${TOPIC_PREFIX}/%u/${kind}`),
    '',
  ].join('\n');
}
