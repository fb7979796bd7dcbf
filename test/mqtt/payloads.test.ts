import { describe, expect, it } from 'vitest';
import { encodeJsonPayload, parseJsonPayload, rangesToSeqs, seqsToRanges, type JsonKind, type JsonPayloads } from '../../src/codecs/mqtt/messages.js';
import { MAX_JSON_BYTES } from '../../src/codecs/mqtt/limits.js';
import { PayloadError, type PayloadRejection } from '../../src/codecs/mqtt/PayloadError.js';
import { encodeReport, parseReport, REPORT_VERSION } from '../../src/codecs/mqtt/report.js';
import { parseTopic, serverSubscriptions, terminalSubscriptions, terminalTopic } from '../../src/codecs/mqtt/topics.js';

type Fixture = { [K in JsonKind]: { kind: K; value: JsonPayloads[K]; json: string } }[JsonKind];

// one table, tested in both directions
const FIXTURES: Fixture[] = [
  {
    kind: 'ack',
    value: { transaction: 7, status: 'ok', data: { committed: [[1, 3], [5, 5]], highestContiguousSeq: 3 } },
    json: '{"transaction":7,"status":"ok","data":{"committed":[[1,3],[5,5]],"highestContiguousSeq":3}}',
  },
  {
    kind: 'ack',
    value: { transaction: 8, status: 'error', data: { committed: [], highestContiguousSeq: 0, rejected: [{ seq: 4, reason: 'bad-signature' }] }, error: { code: 'bad-signature', message: 'entry 4' } },
    json: '{"transaction":8,"status":"error","data":{"committed":[],"highestContiguousSeq":0,"rejected":[{"seq":4,"reason":"bad-signature"}]},"error":{"code":"bad-signature","message":"entry 4"}}',
  },
  {
    kind: 'config',
    value: { transaction: 1, version: 3, clinicCode: 'CL-001', policy: { reportBatchSize: 100, maxReportsPerSecond: 50, heartbeatSeconds: 60, ackTimeoutSeconds: 10 } },
    json: '{"transaction":1,"version":3,"clinicCode":"CL-001","policy":{"reportBatchSize":100,"maxReportsPerSecond":50,"heartbeatSeconds":60,"ackTimeoutSeconds":10}}',
  },
  {
    kind: 'denylist',
    value: { transaction: 2, version: 4, kind: 'delta', baseVersion: 3, add: ['00112233445566aa'], remove: [] },
    json: '{"transaction":2,"version":4,"kind":"delta","baseVersion":3,"add":["00112233445566aa"],"remove":[]}',
  },
  { kind: 'denylist', value: { transaction: 3, version: 1, kind: 'full', add: [] }, json: '{"transaction":3,"version":1,"kind":"full","add":[]}' },
  { kind: 'time', value: { transaction: 4, serverTime: 1795315427000 }, json: '{"transaction":4,"serverTime":1795315427000}' },
  { kind: 'resend', value: { transaction: 5, fromSeq: 17 }, json: '{"transaction":5,"fromSeq":17}' },
  { kind: 'status', value: { state: 'offline' }, json: '{"state":"offline"}' },
  {
    kind: 'heartbeat',
    value: { time: 1000, queueDepth: 12, lastSeq: 40, uptimeSeconds: 9, reader: 'ready', lastRefusal: { kind: 'config', reason: 'schema', time: 900 } },
    json: '{"time":1000,"queueDepth":12,"lastSeq":40,"uptimeSeconds":9,"reader":"ready","lastRefusal":{"kind":"config","reason":"schema","time":900}}',
  },
  {
    // a terminal since issue 15 also says whether it trusts its clock, when its certificate expires and its software (an older one's payload above stays valid)
    kind: 'heartbeat',
    value: { time: 1000, queueDepth: 0, lastSeq: 40, uptimeSeconds: 9, denylistVersion: 2, clockTrusted: false, certExpiresAt: 1830000000000, software: 'tallystick 0.1.0' },
    json: '{"time":1000,"queueDepth":0,"lastSeq":40,"uptimeSeconds":9,"denylistVersion":2,"clockTrusted":false,"certExpiresAt":1830000000000,"software":"tallystick 0.1.0"}',
  },
  { kind: 'claim', value: { transaction: 9, batchId: 'a1a2a3a4a5a6a7a8', batchNo: 12, clinicCode: 'CL-001' }, json: '{"transaction":9,"batchId":"a1a2a3a4a5a6a7a8","batchNo":12,"clinicCode":"CL-001"}' },
  {
    kind: 'claim-result',
    value: { transaction: 9, status: 'ok', data: { batchId: 'a1a2a3a4a5a6a7a8', granted: false, holder: 'T-0002' } },
    json: '{"transaction":9,"status":"ok","data":{"batchId":"a1a2a3a4a5a6a7a8","granted":false,"holder":"T-0002"}}',
  },
  {
    kind: 'response',
    value: { transaction: 1, request: 'config', status: 'error', error: { code: 'stale-version', message: 'version 3 is not newer than 3' } },
    json: '{"transaction":1,"request":"config","status":"error","error":{"code":"stale-version","message":"version 3 is not newer than 3"}}',
  },
];

const BAD: Array<{ kind: JsonKind; payload: string | Uint8Array; reason: PayloadRejection; why: string }> = [
  { kind: 'config', payload: '{"transaction":1', reason: 'malformed', why: 'truncated JSON' },
  { kind: 'config', payload: Uint8Array.of(0x7b, 0xff, 0x7d), reason: 'malformed', why: 'invalid UTF-8' },
  { kind: 'config', payload: '{"transaction":1,"version":0,"clinicCode":"C","policy":{"reportBatchSize":1,"maxReportsPerSecond":1,"heartbeatSeconds":5,"ackTimeoutSeconds":1}}', reason: 'schema', why: 'version 0' },
  { kind: 'heartbeat', payload: '{"time":1000,"queueDepth":0,"lastSeq":40,"uptimeSeconds":9,"clockTrusted":"yes"}', reason: 'schema', why: 'clock trust not a boolean' },
  { kind: 'config', payload: '{"transaction":1,"version":2,"clinicCode":"C","policy":{"reportBatchSize":5000,"maxReportsPerSecond":1,"heartbeatSeconds":5,"ackTimeoutSeconds":1}}', reason: 'schema', why: 'batch size past the limit' },
  { kind: 'config', payload: '{"transaction":1,"version":2,"clinicCode":"C","policy":{"reportBatchSize":5,"maxReportsPerSecond":1,"heartbeatSeconds":5,"ackTimeoutSeconds":1},"evil":true}', reason: 'schema', why: 'unknown field' },
  { kind: 'denylist', payload: '{"transaction":1,"version":2,"kind":"delta","add":[]}', reason: 'schema', why: 'delta without baseVersion' },
  { kind: 'denylist', payload: '{"transaction":1,"version":2,"kind":"full","add":["xyz"]}', reason: 'schema', why: 'card id not hex' },
  { kind: 'time', payload: '{"transaction":1,"serverTime":-5}', reason: 'schema', why: 'negative time' },
  { kind: 'time', payload: '[]', reason: 'schema', why: 'array instead of object' },
  { kind: 'resend', payload: '{"transaction":1,"fromSeq":9,"toSeq":3}', reason: 'schema', why: 'toSeq below fromSeq' },
  { kind: 'ack', payload: '{"transaction":1,"status":"error","data":{"committed":[],"highestContiguousSeq":0}}', reason: 'schema', why: 'error without error body' },
  { kind: 'ack', payload: '{"transaction":1,"status":"ok","data":{"committed":[[5,2]],"highestContiguousSeq":0}}', reason: 'schema', why: 'inverted range' },
  { kind: 'status', payload: 'x'.repeat(MAX_JSON_BYTES + 1), reason: 'oversized', why: 'over the size limit' },
];

describe('MQTT JSON payloads', () => {
  it.each(FIXTURES.map((f) => [`${f.kind} ${f.json.slice(0, 40)}`, f] as const))('%s encodes to the fixture and parses back', (_name, fixture) => {
    const encoded = encodeJsonPayload(fixture.kind, fixture.value as never);
    expect(new TextDecoder().decode(encoded)).toBe(fixture.json);
    expect(parseJsonPayload(fixture.kind, new TextEncoder().encode(fixture.json))).toEqual(fixture.value);
  });

  it.each(BAD.map((b) => [b.why, b] as const))('refuses %s', (_why, bad) => {
    const bytes = typeof bad.payload === 'string' ? new TextEncoder().encode(bad.payload) : bad.payload;
    let caught: unknown;
    try {
      parseJsonPayload(bad.kind, bytes);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PayloadError);
    expect((caught as PayloadError).reason).toBe(bad.reason);
  });

  it('refuses to encode what the other side would refuse', () => {
    expect(() => encodeJsonPayload('time', { transaction: 1, serverTime: -1 })).toThrow(PayloadError);
  });

  it('turns seqs into ranges and back', () => {
    expect(seqsToRanges([5, 1, 2, 3, 9, 10, 3])).toEqual([[1, 3], [5, 5], [9, 10]]);
    expect(rangesToSeqs([[1, 3], [5, 5]])).toEqual([1, 2, 3, 5]);
  });
});

describe('report frame', () => {
  const frame = { transaction: 0x01020304, certificate: Uint8Array.of(0xaa, 0xbb), entries: [Uint8Array.of(1, 2, 3), Uint8Array.of(4)] };
  const hex = '5452' + '01' + '00' + '01020304' + '0002aabb' + '0002' + '0003010203' + '000104';

  it('encodes to the fixture and parses back', () => {
    expect(Buffer.from(encodeReport(frame)).toString('hex')).toBe(hex);
    expect(parseReport(Uint8Array.from(Buffer.from(hex, 'hex')))).toEqual(frame);
    expect(REPORT_VERSION).toBe(1);
  });

  const bad: Array<[string, string, PayloadRejection]> = [
    ['bad magic', '5453' + hex.slice(4), 'malformed'],
    ['future version', '545202' + hex.slice(6), 'unsupported-version'],
    ['truncated', hex.slice(0, hex.length - 2), 'malformed'],
    ['trailing bytes', hex + '00', 'malformed'],
    ['zero entries', '5452' + '01' + '00' + '01020304' + '0002aabb' + '0000', 'malformed'],
    ['empty entry', '5452' + '01' + '00' + '01020304' + '0002aabb' + '0001' + '0000', 'malformed'],
    ['too short', '5452', 'malformed'],
  ];
  it.each(bad)('refuses %s', (_why, badHex, reason) => {
    expect(() => parseReport(Uint8Array.from(Buffer.from(badHex, 'hex')))).toThrow(expect.objectContaining({ reason }));
  });

  it('refuses an oversized report on both sides', () => {
    const entries = Array.from({ length: 100 }, () => new Uint8Array(4000));
    expect(() => encodeReport({ ...frame, entries })).toThrow(expect.objectContaining({ reason: 'oversized' }));
    expect(() => parseReport(new Uint8Array(300 * 1024))).toThrow(expect.objectContaining({ reason: 'oversized' }));
  });
});

describe('topics', () => {
  it('puts the protocol version and terminal id in the topic', () => {
    expect(terminalTopic('T-0001', 'report')).toBe('tally/v1/terminal/T-0001/report');
    expect(parseTopic('tally/v1/terminal/T-0001/ack')).toEqual({ terminalId: 'T-0001', kind: 'ack', direction: 'downlink' });
    expect(parseTopic('tally/v2/terminal/T-0001/ack')).toBeUndefined();
    expect(parseTopic('tally/v1/terminal/T-0001/other')).toBeUndefined();
    expect(parseTopic('tally/v1/terminal/a/b/report')).toBeUndefined();
  });

  it('refuses terminal ids that would be wildcards or extra levels', () => {
    for (const id of ['+', '#', 'a/b', '', 'x'.repeat(40)]) expect(() => terminalTopic(id, 'report')).toThrow(PayloadError);
  });

  it('lists subscriptions, shared for scale-out', () => {
    expect(terminalSubscriptions('T1')).toContain('tally/v1/terminal/T1/resend');
    expect(serverSubscriptions('ingest')).toContain('$share/ingest/tally/v1/terminal/+/report');
  });
});
