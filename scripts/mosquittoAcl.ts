/**
 * config/mosquitto/acl and config/mosquitto/acl-server, generated from the
 * topic table (src/codecs/mqtt/topics.ts). The terminals' listener: each
 * terminal writes only its own uplink and reads only its own downlink. The
 * servers' listener: the server reads every terminal's uplink and writes every
 * downlink, and nobody else may do anything there.
 * test/mqtt/mosquittoAcl.test.ts fails while a file differs from what this
 * makes (UPDATE_DOCS=1 rewrites them).
 */
import { DOWNLINK, TOPIC_PREFIX, UPLINK } from '../src/codecs/mqtt/topics.js';

/** The CN of the ingest server's client certificate, its broker user name */
export const SERVER_USER = 'tally-server';

const HEADER = [
  '# tallystick ACL, generated from src/codecs/mqtt/topics.ts by scripts/mosquittoAcl.ts:',
  '# do not edit (UPDATE_DOCS=1 npx vitest run test/mqtt/mosquittoAcl.test.ts rewrites it).',
];

/** The terminals' listener (mtls.conf's first; its client id is the certificate's CN too) */
export function mosquittoAcl(): string {
  const uplink = Object.values(UPLINK);
  const downlink = Object.values(DOWNLINK);
  return [
    ...HEADER,
    "# The terminals' listener. A terminal's user name and client id are the CN of",
    '# its client certificate, which is its terminal id, so %u confines each',
    '# terminal to its own topics. The servers use their own listener (acl-server).',
    '',
    '# Every terminal: publish only its own uplink, read only its own downlink.',
    ...uplink.map((kind) => `pattern write ${TOPIC_PREFIX}/%u/${kind}`),
    ...downlink.map((kind) => `pattern read ${TOPIC_PREFIX}/%u/${kind}`),
    '',
  ].join('\n');
}

/** The servers' listener (mtls.conf's second, on a network the terminals cannot reach) */
export function mosquittoServerAcl(): string {
  const uplink = Object.values(UPLINK);
  const downlink = Object.values(DOWNLINK);
  return [
    ...HEADER,
    "# The servers' listener: only the ingest server's certificate may do anything.",
    '',
    `# The ingest server (client certificate CN = ${SERVER_USER}) reads every`,
    "# terminal's uplink and writes every terminal's downlink.",
    `user ${SERVER_USER}`,
    ...uplink.map((kind) => `topic read ${TOPIC_PREFIX}/+/${kind}`),
    ...downlink.map((kind) => `topic write ${TOPIC_PREFIX}/+/${kind}`),
    '',
  ].join('\n');
}
