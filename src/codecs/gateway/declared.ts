/**
 * The isolation gateway's allow list: every message type that may cross,
 * declared once with its schema (TypeBox, i.e. JSON Schema, compiled to a
 * checker), its direction, its size and rate limits, whether it is signed,
 * and its topic on the far side. A type that is not here does not cross.
 * The canonical encoding is JSON with keys in sorted order and no
 * whitespace, built only from checked values. Pure.
 */
import { CodecError } from '../../errors.js';
import { FormatRegistry, Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { MAX_SIGNED_DENYLIST_BYTES } from '../signedDenylist.js';
import { MAX_SETTLEMENT_VOUCHER_BYTES } from '../settlementVoucher.js';

export type Direction = 'hospital-to-payment' | 'payment-to-hospital';

export const GATEWAY_TOPIC_PREFIX = 'tally/gw/v1';

const DEPARTMENT = '^[A-Z][A-Z0-9_]{1,15}$';
const PATIENT_ID = '^[A-Za-z0-9-]{1,20}$';
const CODE = '^[A-Za-z0-9._-]{1,20}$';
const DATE = '^[0-9]{4}-[0-9]{2}-[0-9]{2}$';
// Unicode classes need the regex u flag, which JSON Schema patterns (as
// TypeBox compiles them) lack: these two are named formats instead.
// person-name: letters and marks of any script, spaces, apostrophe, hyphen, period
const NAME_FORMAT = /^[\p{L}\p{M} .'-]{1,48}$/u;
// free-text: also digits and plain punctuation, no separators or markup
const TEXT_FORMAT = /^[\p{L}\p{M}\p{N} .,:;()/+'#%-]{0,80}$/u;
FormatRegistry.Set('person-name', (value) => NAME_FORMAT.test(value));
FormatRegistry.Set('free-text', (value) => TEXT_FORMAT.test(value));

const PatientId = Type.String({ pattern: PATIENT_ID });
const Department = Type.String({ pattern: DEPARTMENT });
const IsoDate = Type.String({ pattern: DATE, minLength: 10, maxLength: 10 });
const Code = Type.String({ pattern: CODE });

/** Who sent it on the hospital side: MSH-3, MSH-4, MSH-10 (checked values, not the original bytes) */
const Source = Type.Object(
  {
    application: Code,
    facility: Code,
    controlId: Code,
  },
  { additionalProperties: false },
);

function envelope<T extends TSchema>(type: string, body: T) {
  return Type.Object(
    {
      v: Type.Literal(1),
      type: Type.Literal(type),
      /** The gateway's archive sequence number: unique, gapless per gateway */
      gatewaySeq: Type.Integer({ minimum: 1 }),
      gatewayId: Code,
      /** When the gateway accepted it, ISO 8601 UTC */
      acceptedAt: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,12}Z$' }),
      source: Source,
      body,
    },
    { additionalProperties: false },
  );
}

export const RegistrationSchema = envelope(
  'patient.registration',
  Type.Object(
    {
      /** registration desk or self-service kiosk */
      channel: Type.Union([Type.Literal('registration'), Type.Literal('self-service')]),
      event: Type.Union([Type.Literal('A04'), Type.Literal('A05')]),
      patient: Type.Object(
        {
          id: PatientId,
          familyName: Type.String({ format: 'person-name', maxLength: 48 }),
          givenName: Type.String({ format: 'person-name', maxLength: 48 }),
          birthDate: IsoDate,
          sex: Type.Union([Type.Literal('F'), Type.Literal('M'), Type.Literal('O'), Type.Literal('U')]),
        },
        { additionalProperties: false },
      ),
      department: Department,
      visitDate: IsoDate,
    },
    { additionalProperties: false },
  ),
);

export const OrderSchema = envelope(
  'order.placed',
  Type.Object(
    {
      hl7Type: Type.Union([Type.Literal('ORM^O01'), Type.Literal('OMG^O19')]),
      /** ORC-1: NW new, CA cancel */
      control: Type.Union([Type.Literal('NW'), Type.Literal('CA')]),
      patientId: PatientId,
      department: Department,
      orderId: Code,
      procedureCode: Code,
      procedureText: Type.String({ format: 'free-text', maxLength: 80 }),
    },
    { additionalProperties: false },
  ),
);

export const ChargeSchema = envelope(
  'charge.posted',
  Type.Object(
    {
      patientId: PatientId,
      department: Department,
      transactionId: Code,
      /** FT1-6: CG charge, CR credit */
      transactionType: Type.Union([Type.Literal('CG'), Type.Literal('CR')]),
      chargeCode: Code,
      quantity: Type.Integer({ minimum: 1, maximum: 1000 }),
      /** In the smallest unit of the currency (fen) */
      amountMinor: Type.Integer({ minimum: 0, maximum: 100_000_000 }),
      currency: Type.Literal('CNY'),
    },
    { additionalProperties: false },
  ),
);

/** A booked patient for one department's queue (the distribution server's output) */
export const DepartmentPatientSchema = Type.Object(
  {
    v: Type.Literal(1),
    type: Type.Literal('department.patient'),
    deliveryId: Type.Integer({ minimum: 1 }),
    attempt: Type.Integer({ minimum: 1, maximum: 100 }),
    department: Department,
    visitDate: IsoDate,
    patient: RegistrationSchema.properties.body.properties.patient,
    gatewaySeq: Type.Integer({ minimum: 1 }),
  },
  { additionalProperties: false },
);

/** A department's terminal confirms a delivery: the only thing its side sends back for the queue */
export const DepartmentAckSchema = Type.Object(
  {
    v: Type.Literal(1),
    type: Type.Literal('department.ack'),
    deliveryId: Type.Integer({ minimum: 1 }),
    department: Department,
  },
  { additionalProperties: false },
);

/** The payment side's voucher bookings of one department's day (voucher_slots summed): the receiver takes them off the remaining slots */
export const VoucherBookingsSchema = Type.Object(
  {
    v: Type.Literal(1),
    type: Type.Literal('voucher.bookings'),
    department: Department,
    visitDate: IsoDate,
    booked: Type.Integer({ minimum: 0, maximum: 100_000 }),
  },
  { additionalProperties: false },
);

/** A terminal's binary ledger report (codecs/mqtt/report.ts): signed entries, verified before it crosses */
export const LEDGER_REPORT_TYPE = 'ledger.report';
/** The server's settlement voucher for a terminal on the hospital side (settlement-voucher.md): verified with the root, then forwarded */
export const SETTLEMENT_VOUCHER_TYPE = 'settlement.voucher';
/** The server's signed deny list for a terminal (gateway-signed.md): verified, then delivered on the terminal's denylist topic */
export const SIGNED_DENYLIST_TYPE = 'denylist.signed';

/** The signed type and terminal of a payment-side topic tally/gw/v1/(settlement|denylist)/<terminal>, or undefined */
export function parseSignedTopic(topic: string): { type: string; terminalId: string } | undefined {
  const m = /^tally\/gw\/v1\/(settlement|denylist)\/([A-Za-z0-9._-]{1,64})$/.exec(topic);
  if (!m) return undefined;
  return { type: m[1] === 'settlement' ? SETTLEMENT_VOUCHER_TYPE : SIGNED_DENYLIST_TYPE, terminalId: m[2]! };
}

export type Registration = Static<typeof RegistrationSchema>;
export type Order = Static<typeof OrderSchema>;
export type Charge = Static<typeof ChargeSchema>;
export type DepartmentPatient = Static<typeof DepartmentPatientSchema>;
export type DepartmentAck = Static<typeof DepartmentAckSchema>;
export type VoucherBookings = Static<typeof VoucherBookingsSchema>;
export type CrossingMessage = Registration | Order | Charge;

export interface RateLimit {
  /** Tokens added a second */
  readonly perSecond: number;
  /** Bucket size: the burst allowed */
  readonly burst: number;
}

export interface Declaration {
  readonly type: string;
  readonly direction: Direction;
  /** What the gateway accepts on its side of entry */
  readonly accepts: 'hl7' | 'json' | 'ledger-report' | 'signed-json';
  /** HL7 message types (MSH-9.1^MSH-9.2) mapped to this declaration */
  readonly hl7Types?: readonly string[];
  /** The JSON Schema of the canonical message (none for binary reports) */
  readonly schema?: TSchema;
  /** Largest incoming message, in bytes */
  readonly maxBytes: number;
  readonly rate: RateLimit;
  /** Verified against the investor root before it passes */
  readonly signed: boolean;
  /** The topic on the far side (a pattern with <dept>/<terminal> where it varies) */
  readonly topic: string;
}

export const DECLARATIONS: readonly Declaration[] = [
  {
    type: 'patient.registration',
    direction: 'hospital-to-payment',
    accepts: 'hl7',
    hl7Types: ['ADT^A04', 'ADT^A05'],
    schema: RegistrationSchema,
    maxBytes: 8_192,
    rate: { perSecond: 200, burst: 400 },
    signed: false,
    topic: `${GATEWAY_TOPIC_PREFIX}/registration`,
  },
  {
    type: 'order.placed',
    direction: 'hospital-to-payment',
    accepts: 'hl7',
    hl7Types: ['ORM^O01', 'OMG^O19'],
    schema: OrderSchema,
    maxBytes: 8_192,
    rate: { perSecond: 200, burst: 400 },
    signed: false,
    topic: `${GATEWAY_TOPIC_PREFIX}/order`,
  },
  {
    type: 'charge.posted',
    direction: 'hospital-to-payment',
    accepts: 'hl7',
    hl7Types: ['DFT^P03'],
    schema: ChargeSchema,
    maxBytes: 8_192,
    rate: { perSecond: 200, burst: 400 },
    signed: false,
    topic: `${GATEWAY_TOPIC_PREFIX}/charge`,
  },
  {
    type: 'department.patient',
    direction: 'hospital-to-payment',
    accepts: 'json',
    schema: DepartmentPatientSchema,
    maxBytes: 2_048,
    rate: { perSecond: 1_000, burst: 2_000 },
    signed: false,
    topic: `${GATEWAY_TOPIC_PREFIX}/dept/<dept>/patient`,
  },
  {
    type: LEDGER_REPORT_TYPE,
    direction: 'hospital-to-payment',
    accepts: 'ledger-report',
    maxBytes: 262_144,
    rate: { perSecond: 50, burst: 100 },
    signed: true,
    topic: 'tally/v1/terminal/<terminal>/report',
  },
  {
    type: SETTLEMENT_VOUCHER_TYPE,
    direction: 'payment-to-hospital',
    accepts: 'signed-json',
    maxBytes: MAX_SETTLEMENT_VOUCHER_BYTES,
    rate: { perSecond: 200, burst: 400 },
    signed: true,
    topic: `${GATEWAY_TOPIC_PREFIX}/settlement/<terminal>`,
  },
  {
    type: SIGNED_DENYLIST_TYPE,
    direction: 'payment-to-hospital',
    accepts: 'signed-json',
    maxBytes: MAX_SIGNED_DENYLIST_BYTES,
    rate: { perSecond: 50, burst: 100 },
    signed: true,
    topic: `${GATEWAY_TOPIC_PREFIX}/denylist/<terminal>`,
  },
  {
    type: 'voucher.bookings',
    direction: 'payment-to-hospital',
    accepts: 'json',
    schema: VoucherBookingsSchema,
    maxBytes: 256,
    rate: { perSecond: 100, burst: 200 },
    signed: false,
    topic: `${GATEWAY_TOPIC_PREFIX}/vouchers/<dept>`,
  },
  {
    type: 'department.ack',
    direction: 'payment-to-hospital',
    accepts: 'json',
    schema: DepartmentAckSchema,
    maxBytes: 256,
    rate: { perSecond: 1_000, burst: 2_000 },
    signed: false,
    topic: `${GATEWAY_TOPIC_PREFIX}/dept/<dept>/ack`,
  },
];

export function declarationOf(type: string): Declaration | undefined {
  return DECLARATIONS.find((d) => d.type === type);
}

/** The declaration an HL7 type (e.g. ADT^A04) maps to, or undefined: not on the allow list */
export function declarationForHl7(messageCode: string, triggerEvent: string): Declaration | undefined {
  const key = `${messageCode}^${triggerEvent}`;
  return DECLARATIONS.find((d) => d.hl7Types?.includes(key));
}

const checkers = new Map<TSchema, TypeCheck<TSchema>>();

function checkerOf(schema: TSchema): TypeCheck<TSchema> {
  let checker = checkers.get(schema);
  if (!checker) {
    checker = TypeCompiler.Compile(schema);
    checkers.set(schema, checker);
  }
  return checker;
}

export interface SchemaProblem {
  readonly path: string;
  readonly message: string;
}

/** The first schema problem of a value, or undefined when it conforms */
export function schemaProblem(schema: TSchema, value: unknown): SchemaProblem | undefined {
  const checker = checkerOf(schema);
  if (checker.Check(value)) return undefined;
  const first = checker.Errors(value).First();
  return { path: first?.path || '/', message: first?.message ?? 'does not conform' };
}

/** JSON with object keys sorted at every level and no whitespace: the one encoding that crosses */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object)
    .filter((k) => object[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(object[k])}`).join(',')}}`;
}

export function encodeCanonical(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalJson(value));
}

export function departmentTopic(department: string, kind: 'patient' | 'ack'): string {
  if (!new RegExp(DEPARTMENT).test(department)) throw new CodecError('GW_BAD_FIELD', `invalid department ${JSON.stringify(department)}`);
  return `${GATEWAY_TOPIC_PREFIX}/dept/${department}/${kind}`;
}

/** The department of a department topic, or undefined */
export function parseDepartmentTopic(topic: string): { department: string; kind: 'patient' | 'ack' } | undefined {
  const m = /^tally\/gw\/v1\/dept\/([A-Z][A-Z0-9_]{1,15})\/(patient|ack)$/.exec(topic);
  return m ? { department: m[1]!, kind: m[2] as 'patient' | 'ack' } : undefined;
}

export const DEPARTMENT_PATTERN = new RegExp(DEPARTMENT);

/** The hospital-to-payment declaration a payment-side topic carries, or undefined */
export function declarationForTopic(topic: string): Declaration | undefined {
  if (parseDepartmentTopic(topic)?.kind === 'patient') return declarationOf('department.patient');
  if (/^tally\/v1\/terminal\/[^/]{1,64}\/report$/.test(topic)) return declarationOf(LEDGER_REPORT_TYPE);
  return DECLARATIONS.find((d) => d.direction === 'hospital-to-payment' && d.topic === topic);
}
