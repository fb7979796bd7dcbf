/** MLLP framing, HL7 parsing with our limits, ACKs, and the declared messages' mapping and canonical encoding */
import { describe, expect, it } from 'vitest';
import { canonicalJson, declarationForHl7, DECLARATIONS, schemaProblem, RegistrationSchema } from '../../src/codecs/gateway/declared.js';
import { mapHl7, MappingProblem } from '../../src/codecs/gateway/fromHl7.js';
import { encodeAck, Hl7Problem, parseAck, parseHl7 } from '../../src/codecs/hl7/hl7.js';
import { encodeMllp, MllpDecoder } from '../../src/codecs/hl7/mllp.js';
import { chargeMessage, orderMessage, patientNo, registrationMessage } from '../../src/sim/his/hisMessages.js';

const T = Date.UTC(2026, 11, 2, 9, 30);
const enc = (s: string) => new TextEncoder().encode(s);
const header = { subsystem: 'registration' as const, facility: 'HOSP1', controlId: 'C1', time: T };

describe('MLLP', () => {
  it('frames split at every byte boundary come out whole', () => {
    const a = enc('MSH|^~\\&|A'), b = enc('MSH|^~\\&|B');
    const wire = new Uint8Array([...encodeMllp(a), ...encodeMllp(b)]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new MllpDecoder(100);
      const events = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      expect(events.map((e) => (e.kind === 'frame' ? new TextDecoder().decode(e.payload) : e.kind))).toEqual(['MSH|^~\\&|A', 'MSH|^~\\&|B']);
    }
  });

  it('a 0x1C not followed by CR is data; garbage and oversized frames are reported, memory stays bounded', () => {
    const d = new MllpDecoder(10);
    const events = d.push(new Uint8Array([0x41, 0x42, 0x0b, 0x31, 0x1c, 0x32, 0x1c, 0x0d, 0x0b, ...new Array(50).fill(0x33), 0x1c, 0x0d]));
    expect(events[0]).toEqual({ kind: 'garbage', bytes: 2 });
    expect(events[1]).toEqual({ kind: 'frame', payload: new Uint8Array([0x31, 0x1c, 0x32]) });
    expect(events[2]).toEqual({ kind: 'oversized', bytes: 50 });
    expect(d.buffered).toBe(0);
  });
});

describe('HL7 v2', () => {
  it('parses a registration and unescapes values', () => {
    const p = parseHl7(registrationMessage(header, { ...patientNo(3), familyName: 'A|B^C' }, 'OPH', '20261202'));
    expect(p.header).toMatchObject({ messageCode: 'ADT', triggerEvent: 'A04', controlId: 'C1', sendingApplication: 'REG', version: '2.5.1' });
    expect(p.value('PID', 5, 1)).toBe('A|B^C');
    expect(p.value('PV1', 3)).toBe('OPH');
    expect(p.value('PV1', 44)).toBe('20261202');
  });

  it.each([
    ['not UTF-8', new Uint8Array([0x4d, 0x53, 0x48, 0xff]), 'encoding'],
    ['NUL inside', enc('MSH|^~\\&|A\u0000|B||||ADT^A04|1'), 'encoding'],
    ['no MSH', enc('PID|1'), 'malformed'],
    ['bad separators', enc('MSH|^^\\&|A|B||||ADT^A04|1'), 'malformed'],
    ['alnum separator', enc('MSHa^~\\&aA'), 'malformed'],
    ['bad segment name', enc('MSH|^~\\&|A|B|||||ADT^A04|1\rpid|1'), 'segment'],
    ['two MSH', enc('MSH|^~\\&|A|B|||||ADT^A04|1\rMSH|^~\\&|A'), 'segment'],
    ['unknown escape', enc('MSH|^~\\&|A|B|||||ADT^A04|1\rPID|1||\\Z\\'), 'escape'],
    ['empty control id', enc('MSH|^~\\&|A|B|||||ADT^A04|'), 'malformed'],
  ])('refuses %s', (_name, bytes, kind) => {
    let problem: unknown;
    try {
      const p = parseHl7(bytes);
      p.value('PID', 3);
    } catch (err) {
      problem = err;
    }
    expect(problem).toBeInstanceOf(Hl7Problem);
    expect((problem as Hl7Problem).kind).toBe(kind);
  });

  it('an ACK carries the code, the control id answered, the reason and our code, escaped', () => {
    const original = parseHl7(registrationMessage(header, patientNo(1), 'OPH', '20261202')).header;
    const ack = encodeAck({ code: 'AE', original, text: 'PID-7: no such date | bad', hl7ErrorCode: 102, tallyCode: 'GW_BAD_FIELD 8006', ackControlId: 'A1', dateTime: '20261202093000', application: 'TALLYGW', facility: 'gw1' });
    expect(parseAck(ack)).toEqual({ code: 'AE', controlId: 'C1', text: 'PID-7: no such date | bad', tallyCode: 'GW_BAD_FIELD 8006', sourceKey: 'REG|HOSP1|C1' });
    expect(new TextDecoder().decode(ack)).toContain('ACK^A04^ACK');
  });
});

describe('declared messages', () => {
  it('every declaration has one direction, limits, and a schema unless binary or signed (checked by its verifier)', () => {
    expect(new Set(DECLARATIONS.map((d) => d.type)).size).toBe(DECLARATIONS.length);
    for (const d of DECLARATIONS) {
      expect(['hospital-to-payment', 'payment-to-hospital']).toContain(d.direction);
      expect(d.maxBytes).toBeGreaterThan(0);
      expect(d.rate.perSecond).toBeGreaterThan(0);
      if (d.accepts === 'ledger-report' || d.accepts === 'signed-json') expect(d.signed).toBe(true);
      else expect(d.schema).toBeDefined();
    }
    expect(declarationForHl7('ADT', 'A08')).toBeUndefined();
  });

  it('maps registration, both orders and a charge onto their schemas', () => {
    const reg = mapHl7(parseHl7(registrationMessage({ ...header, subsystem: 'self-service' }, patientNo(8), 'OPH', '20261202')), declarationForHl7('ADT', 'A04')!, 'gw1');
    expect(reg.body).toMatchObject({ channel: 'self-service', department: 'OPH', visitDate: '2026-12-02', patient: { id: 'P0000008', birthDate: '1948-09-09' } });
    for (const kind of ['ORM^O01', 'OMG^O19'] as const) {
      const order = mapHl7(parseHl7(orderMessage(header, kind, patientNo(2), 'RAD', 'ORD7', { code: 'OCT01', text: 'OCT scan, both eyes' })), declarationForHl7(...(kind.split('^') as [string, string]))!, 'gw1');
      expect(order.body).toMatchObject({ hl7Type: kind, control: 'NW', orderId: 'ORD7', procedureCode: 'OCT01', department: 'RAD' });
    }
    const charge = mapHl7(parseHl7(chargeMessage(header, patientNo(2), 'OPH', { transactionId: 'T9', code: 'OCT01', quantity: 1, amount: '120.5' })), declarationForHl7('DFT', 'P03')!, 'gw1');
    expect(charge.body).toMatchObject({ amountMinor: 12050, currency: 'CNY', transactionType: 'CG' });
  });

  it.each([
    ['a date that does not exist', { birthDate: '20260230' }, 'PID-7'],
    ['SQL in a name', { familyName: "x'; DROP TABLE archive;--" }, 'familyName'],
    ['a topic wildcard in the department', { department: 'OPH/#' }, 'department'],
  ])('refuses %s', (_name, change, field) => {
    const p = { ...patientNo(1), ...change } as ReturnType<typeof patientNo>;
    const department = (change as { department?: string }).department ?? 'OPH';
    let problem: unknown;
    try {
      mapHl7(parseHl7(registrationMessage(header, p, department, '20261202')), declarationForHl7('ADT', 'A04')!, 'gw1');
    } catch (err) {
      problem = err;
    }
    expect(problem).toBeInstanceOf(MappingProblem);
    expect((problem as MappingProblem).message).toContain(field);
  });

  it('names in any script pass the schema; canonical JSON sorts keys', () => {
    const value = { v: 1, type: 'patient.registration', gatewaySeq: 1, gatewayId: 'gw1', acceptedAt: '2026-12-02T09:30:00.000Z', source: { application: 'REG', facility: 'H', controlId: 'C' }, body: { channel: 'registration', event: 'A04', patient: { id: 'P1', familyName: '王', givenName: 'Anne-Marie', birthDate: '1980-01-01', sex: 'F' }, department: 'OPH', visitDate: '2026-12-02' } };
    expect(schemaProblem(RegistrationSchema, value)).toBeUndefined();
    expect(schemaProblem(RegistrationSchema, { ...value, extra: 1 })).toBeDefined();
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: 'x' } })).toBe('{"a":{"c":"x","d":[2,{"e":0,"f":1}]},"b":1}');
  });
});
