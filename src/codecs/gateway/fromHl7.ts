/**
 * From a parsed HL7 v2 message to the body of a declared message: each field
 * read by its HL7 position, converted (dates, amounts) and checked against
 * the declaration's schema. Nothing of the HL7 text is carried whole: the
 * canonical message is built from these values alone. Pure.
 */
import { CodecError } from '../../errors.js';
import type { ParsedHl7 } from '../hl7/hl7.js';
import { Hl7ErrorCode } from '../hl7/hl7.js';
import { schemaProblem, type Declaration } from './declared.js';

export class MappingProblem extends CodecError {
  override readonly name: string = 'MappingProblem';
  constructor(
    /** e.g. PID-7 or body/patient/birthDate */
    readonly field: string,
    detail: string,
    readonly hl7Code: number,
  ) {
    super('GW_BAD_FIELD', `${field}: ${detail}`, field);
  }
}

export interface MappedMessage {
  readonly type: string;
  readonly source: { application: string; facility: string; controlId: string };
  readonly body: Record<string, unknown>;
  /** For the archive's index */
  readonly patientId?: string;
  readonly department?: string;
}

function required(parsed: ParsedHl7, segment: string, field: number, component = 1, subcomponent?: number): string {
  if (parsed.count(segment) === 0) throw new MappingProblem(segment, 'segment missing', Hl7ErrorCode.segmentSequence);
  const value = parsed.value(segment, field, component, subcomponent);
  if (value === '') throw new MappingProblem(`${segment}-${field}${component > 1 ? `.${component}` : ''}`, 'required value missing', Hl7ErrorCode.requiredFieldMissing);
  return value;
}

/** HL7 DT/DTM (YYYYMMDD[HHMM[SS]]...) to an ISO date, refusing dates that do not exist */
export function hl7Date(value: string, field: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})(?:\d{2,6}(?:\.\d{1,4})?)?(?:[+-]\d{4})?$/.exec(value);
  if (!m) throw new MappingProblem(field, `not an HL7 date: ${JSON.stringify(value.slice(0, 20))}`, Hl7ErrorCode.dataType);
  const [, y, mo, d] = m as unknown as [string, string, string, string];
  const date = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  const iso = `${y}-${mo}-${d}`;
  if (Number(y) < 1900 || date.toISOString().slice(0, 10) !== iso) throw new MappingProblem(field, `no such date ${iso}`, Hl7ErrorCode.dataType);
  return iso;
}

function wholeNumber(value: string, field: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new MappingProblem(field, `not a whole number: ${JSON.stringify(value.slice(0, 20))}`, Hl7ErrorCode.dataType);
  return Number(value);
}

/** A decimal amount with at most two places, in minor units */
function minorUnits(value: string, field: string): number {
  const m = /^(\d{1,9})(?:\.(\d{1,2}))?$/.exec(value);
  if (!m) throw new MappingProblem(field, `not an amount: ${JSON.stringify(value.slice(0, 20))}`, Hl7ErrorCode.dataType);
  return Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0'));
}

function bodyOf(parsed: ParsedHl7, declaration: Declaration): Record<string, unknown> {
  const h = parsed.header;
  switch (declaration.type) {
    case 'patient.registration':
      return {
        channel: /^SELF/.test(h.sendingApplication) || h.sendingApplication === 'KIOSK' ? 'self-service' : 'registration',
        event: h.triggerEvent,
        patient: {
          id: required(parsed, 'PID', 3),
          familyName: required(parsed, 'PID', 5, 1),
          givenName: required(parsed, 'PID', 5, 2),
          birthDate: hl7Date(required(parsed, 'PID', 7), 'PID-7'),
          sex: required(parsed, 'PID', 8),
        },
        department: required(parsed, 'PV1', 3),
        visitDate: hl7Date(required(parsed, 'PV1', 44), 'PV1-44'),
      };
    case 'order.placed':
      return {
        hl7Type: `${h.messageCode}^${h.triggerEvent}`,
        control: required(parsed, 'ORC', 1),
        patientId: required(parsed, 'PID', 3),
        department: required(parsed, 'PV1', 3),
        orderId: required(parsed, 'ORC', 2),
        procedureCode: required(parsed, 'OBR', 4, 1),
        procedureText: parsed.value('OBR', 4, 2),
      };
    case 'charge.posted':
      return {
        patientId: required(parsed, 'PID', 3),
        department: required(parsed, 'FT1', 13),
        transactionId: required(parsed, 'FT1', 2),
        transactionType: required(parsed, 'FT1', 6),
        chargeCode: required(parsed, 'FT1', 7),
        quantity: wholeNumber(required(parsed, 'FT1', 10), 'FT1-10'),
        amountMinor: minorUnits(required(parsed, 'FT1', 11, 1, 1), 'FT1-11'),
        currency: required(parsed, 'FT1', 11, 1, 2),
      };
    default:
      throw new MappingProblem('MSH-9', `no HL7 mapping for ${declaration.type}`, Hl7ErrorCode.unsupportedMessageType);
  }
}

/** The placeholder envelope values a body is checked with before the archive numbers it */
export const CHECK_ENVELOPE = { gatewaySeq: 1, acceptedAt: '2026-01-01T00:00:00.000Z' } as const;

export function mapHl7(parsed: ParsedHl7, declaration: Declaration, gatewayId: string): MappedMessage {
  const h = parsed.header;
  const source = { application: h.sendingApplication, facility: h.sendingFacility, controlId: h.controlId };
  const body = bodyOf(parsed, declaration);
  const problem = schemaProblem(declaration.schema!, { v: 1, type: declaration.type, gatewayId, ...CHECK_ENVELOPE, source, body });
  if (problem) throw new MappingProblem(problem.path, problem.message, Hl7ErrorCode.dataType);
  const patient = body.patient as { id?: string } | undefined;
  return {
    type: declaration.type,
    source,
    body,
    patientId: (patient?.id ?? body.patientId) as string | undefined,
    department: body.department as string | undefined,
  };
}

export function envelopeOf(mapped: MappedMessage, gatewayId: string, gatewaySeq: number, acceptedAtMs: number): Record<string, unknown> {
  return { v: 1, type: mapped.type, gatewaySeq, gatewayId, acceptedAt: new Date(acceptedAtMs).toISOString(), source: mapped.source, body: mapped.body };
}
