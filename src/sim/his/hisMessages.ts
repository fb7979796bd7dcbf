/**
 * The HL7 v2.5.1 messages a hospital's HIS sends: ADT^A04 registrations (the
 * registration desk and the self-service kiosks), ORM^O01/OMG^O19 orders and
 * DFT^P03 charges (the charging subsystem). Real ER7 text, escaped. Pure.
 */
import { encodeHl7Segments, escapeHl7, hl7DateTime } from '../../codecs/hl7/hl7.js';

export interface HisPatient {
  readonly id: string;
  readonly familyName: string;
  readonly givenName: string;
  /** YYYYMMDD */
  readonly birthDate: string;
  readonly sex: 'F' | 'M' | 'O' | 'U';
}

export type Subsystem = 'registration' | 'self-service' | 'charging';

export const SUBSYSTEM_APPLICATION: Record<Subsystem, string> = { registration: 'REG', 'self-service': 'SELFSERVICE', charging: 'CHARGE' };

export interface HeaderInput {
  readonly subsystem: Subsystem;
  readonly facility: string;
  readonly controlId: string;
  readonly type: string;
  readonly time: number;
}

function msh(h: HeaderInput): string[] {
  return ['MSH', SUBSYSTEM_APPLICATION[h.subsystem], escapeHl7(h.facility), 'TALLYGW', 'PAYMENT', hl7DateTime(h.time), '', h.type, escapeHl7(h.controlId), 'P', '2.5.1', '', '', '', '', '', 'UNICODE UTF-8'];
}

function pid(p: HisPatient): string[] {
  return ['PID', '1', '', `${escapeHl7(p.id)}^^^HOSP^MR`, '', `${escapeHl7(p.familyName)}^${escapeHl7(p.givenName)}`, '', p.birthDate, p.sex];
}

/** PV1 with the department in PV1-3 and the visit date in PV1-44 */
function pv1(department: string, visitDate: string): string[] {
  const fields = ['PV1', '1', 'O', `${escapeHl7(department)}^^^^^^^^${escapeHl7(department)}`];
  while (fields.length < 44) fields.push('');
  fields.push(visitDate);
  return fields;
}

export function registrationMessage(h: Omit<HeaderInput, 'type'> & { event?: 'A04' | 'A05' }, patient: HisPatient, department: string, visitDate: string): Uint8Array {
  const event = h.event ?? 'A04';
  return encodeHl7Segments([msh({ ...h, type: `ADT^${event}^ADT_A01` }), ['EVN', event, hl7DateTime(h.time)], pid(patient), pv1(department, visitDate)]);
}

export function orderMessage(h: Omit<HeaderInput, 'type'>, kind: 'ORM^O01' | 'OMG^O19', patient: HisPatient, department: string, orderId: string, procedure: { code: string; text: string }, control: 'NW' | 'CA' = 'NW'): Uint8Array {
  const type = kind === 'ORM^O01' ? 'ORM^O01^ORM_O01' : 'OMG^O19^OMG_O19';
  return encodeHl7Segments([
    msh({ ...h, type }),
    pid(patient),
    pv1(department, hl7DateTime(h.time).slice(0, 8)),
    ['ORC', control, escapeHl7(orderId)],
    ['OBR', '1', escapeHl7(orderId), '', `${escapeHl7(procedure.code)}^${escapeHl7(procedure.text)}`],
  ]);
}

export function chargeMessage(h: Omit<HeaderInput, 'type'>, patient: HisPatient, department: string, charge: { transactionId: string; code: string; quantity: number; amount: string; type?: 'CG' | 'CR' }): Uint8Array {
  const ft1 = ['FT1', '1', escapeHl7(charge.transactionId), '', hl7DateTime(h.time), '', charge.type ?? 'CG', escapeHl7(charge.code), '', '', String(charge.quantity), `${charge.amount}&CNY`, '', escapeHl7(department)];
  return encodeHl7Segments([msh({ ...h, type: 'DFT^P03^DFT_P03' }), ['EVN', 'P03', hl7DateTime(h.time)], pid(patient), ft1]);
}

const FAMILY = ['Wang', 'Li', 'Zhang', 'Liu', 'Chen', 'Yang', '王', '李', '张', "O'Brien", 'Müller'];
const GIVEN = ['Wei', 'Fang', 'Min', 'Jing', 'Lei', '伟', '芳', 'Anne-Marie'];

/** A deterministic patient for index n */
export function patientNo(n: number): HisPatient {
  const year = 1940 + (n % 70);
  const month = String(1 + (n % 12)).padStart(2, '0');
  const day = String(1 + (n % 28)).padStart(2, '0');
  return {
    id: `P${String(n).padStart(7, '0')}`,
    familyName: FAMILY[n % FAMILY.length]!,
    givenName: GIVEN[n % GIVEN.length]!,
    birthDate: `${year}${month}${day}`,
    sex: (['F', 'M', 'O', 'U'] as const)[n % 4]!,
  };
}
