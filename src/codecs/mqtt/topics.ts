/**
 * Every MQTT topic tallystick uses, declared once. The protocol version is a
 * topic level, so a v2 can run beside v1 on one broker. Terminal ids are topic
 * levels and (with mutual TLS) the broker user name, so the ACL pattern
 * tally/v1/terminal/%u/... confines each terminal to its own topics
 * (config/mosquitto/acl is generated from this table by scripts/mosquittoAcl.ts). Pure.
 */
import { TERMINAL_ID_PATTERN } from './limits.js';
import { PayloadError } from './PayloadError.js';

export const PROTOCOL_VERSION = 'v1';
export const TOPIC_PREFIX = `tally/${PROTOCOL_VERSION}/terminal`;

/** Terminal -> server */
export const UPLINK = {
  /** Binary: several signed ledger entries and the terminal certificate (report.ts); QoS 1 */
  report: 'report',
  /** JSON, retained, with the last will: online or offline */
  status: 'status',
  /** JSON: queue depth, batch and reader state */
  heartbeat: 'heartbeat',
  /** JSON: "may I load this batch?" asked online before a batch card initialises the terminal */
  claim: 'claim',
  /** JSON: "may I write off this service voucher?" asked online before the ledger entry (voucher-format.md §6) */
  voucherClaim: 'voucher-claim',
  /** JSON: an insurance payment (docs/insurance.md): start an authorisation, poll its token, report its use's outcome */
  insurance: 'insurance',
  /** JSON: the answer to a server request (config, denylist, time, resend) */
  response: 'response',
} as const;

/** Server -> terminal */
export const DOWNLINK = {
  /** JSON: the seqs the server committed; only this removes entries from the outbox */
  ack: 'ack',
  /** JSON, retained: clinic, connection and policy */
  config: 'config',
  /** JSON, retained: versioned deny list, full or differential */
  denylist: 'denylist',
  /** JSON: the server's clock */
  time: 'time',
  /** JSON: send again from seq N */
  resend: 'resend',
  /** JSON: the answer to a claim */
  claimResult: 'claim-result',
  /** JSON: the answer to a voucher claim */
  voucherClaimResult: 'voucher-claim-result',
  /** JSON: the answer to an insurance request, or (transaction 0) the settlement voucher pushed as soon as the patient consented */
  insuranceResult: 'insurance-result',
  /** JSON, retained: the signed voucher trust list (voucher-format.md §4), hex */
  trustList: 'trust-list',
} as const;

export type UplinkKind = (typeof UPLINK)[keyof typeof UPLINK];
export type DownlinkKind = (typeof DOWNLINK)[keyof typeof DOWNLINK];
export type TopicKind = UplinkKind | DownlinkKind;

const UPLINK_KINDS = new Set<string>(Object.values(UPLINK));
const DOWNLINK_KINDS = new Set<string>(Object.values(DOWNLINK));

export function isValidTerminalId(id: string): boolean {
  return TERMINAL_ID_PATTERN.test(id);
}

export function terminalTopic(terminalId: string, kind: TopicKind): string {
  if (!isValidTerminalId(terminalId)) throw new PayloadError('unknown-topic', `invalid terminal id ${JSON.stringify(terminalId)}`);
  return `${TOPIC_PREFIX}/${terminalId}/${kind}`;
}

export interface ParsedTopic {
  readonly terminalId: string;
  readonly kind: TopicKind;
  readonly direction: 'uplink' | 'downlink';
}

/** The terminal id and kind of a topic, or undefined when it is not one of ours */
export function parseTopic(topic: string): ParsedTopic | undefined {
  const prefix = `${TOPIC_PREFIX}/`;
  if (!topic.startsWith(prefix)) return undefined;
  const rest = topic.slice(prefix.length).split('/');
  if (rest.length !== 2) return undefined;
  const [terminalId, kind] = rest as [string, string];
  if (!isValidTerminalId(terminalId)) return undefined;
  if (UPLINK_KINDS.has(kind)) return { terminalId, kind: kind as UplinkKind, direction: 'uplink' };
  if (DOWNLINK_KINDS.has(kind)) return { terminalId, kind: kind as DownlinkKind, direction: 'downlink' };
  return undefined;
}

/** What a terminal subscribes to: its own downlink */
export function terminalSubscriptions(terminalId: string): string[] {
  return Object.values(DOWNLINK).map((kind) => terminalTopic(terminalId, kind));
}

/** What the server subscribes to. With a group, reports go through a shared subscription so several workers split the load */
export function serverSubscriptions(sharedGroup?: string): string[] {
  const topics = Object.values(UPLINK).map((kind) => `${TOPIC_PREFIX}/+/${kind}`);
  if (!sharedGroup) return topics;
  if (!/^[A-Za-z0-9_-]+$/.test(sharedGroup)) throw new PayloadError('unknown-topic', `invalid shared group ${sharedGroup}`);
  return topics.map((topic) => `$share/${sharedGroup}/${topic}`);
}
