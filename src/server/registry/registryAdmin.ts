/**
 * The administrator's writes to the registry, shared by the CLI (tally server
 * registry add-clinic|add-terminal|retire-terminal) and the HTTP API (POST
 * /api/registry/clinics|terminals|terminals/retire): one strict validation of
 * the input (each failure names its field) and one way to add or update, so
 * both keep a clinic's or terminal's first addedAt and say whether the row is
 * new. An update replaces the row: a price, share or note left out is cleared.
 * Retiring a terminal (either way) stamps when (retiredAt), unless it is
 * retired already: the stamp is the start of its retirement, and the registry
 * check counts its entries from then. Putting it back in service clears it.
 */
import { TallyError } from '../../errors.js';
import { MAX_CLINIC_CODE } from '../../codecs/cardRecord.js';
import { TERMINAL_ID_PATTERN } from '../../codecs/mqtt/limits.js';
import { PayloadError } from '../../codecs/mqtt/PayloadError.js';
import { integer, literal, number, object, optional, string, type Infer, type Schema } from '../../codecs/mqtt/schema.js';
import type { ClinicRow, RegisteredTerminal, RegistryStore } from './RegistryStore.js';

export const MAX_CLINIC_NAME = 100;
export const MAX_TERMINAL_NOTE = 500;

/** Printable text: no control characters, not blank, no white space at either end */
function text(maxLength: number): Schema<string> {
  return string(maxLength, /^\S(?:[^\p{Cc}]*\S)?$/u);
}

/** As the card records carry it: 1..16 UTF-8 bytes, printable, no white space */
const clinicCode: Schema<string> = (value, path) => {
  const code = string(MAX_CLINIC_CODE, /^[^\s\p{Cc}]+$/u)(value, path);
  if (Buffer.byteLength(code, 'utf8') > MAX_CLINIC_CODE) throw new PayloadError('schema', `${path}: expected at most ${MAX_CLINIC_CODE} UTF-8 bytes, got ${Buffer.byteLength(code, 'utf8')}`, path.replace(/^\./, ''));
  return code;
};

const terminalId = string(32, TERMINAL_ID_PATTERN);

export const ClinicInputSchema = object({
  clinicCode,
  name: text(MAX_CLINIC_NAME),
  /** Smallest currency unit; left out: the server's default price */
  pricePerUse: optional(integer(0)),
  /** 0..1; left out: the server's default share */
  investorShare: optional(number(0, 1)),
});

export const TerminalInputSchema = object({
  terminalId,
  clinicCode,
  /** Default expected */
  status: optional(literal('expected', 'retired')),
  note: optional(text(MAX_TERMINAL_NOTE)),
});

export const RetireInputSchema = object({ terminalId, note: optional(text(MAX_TERMINAL_NOTE)) });

export type ClinicInput = Infer<typeof ClinicInputSchema>;
export type TerminalInput = Infer<typeof TerminalInputSchema>;
export type RetireInput = Infer<typeof RetireInputSchema>;

/** Input that fails its schema: `field` is the path of the first bad field ('' for the body itself) */
export class RegistryInputError extends TallyError {
  override readonly name: string = 'RegistryInputError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('BAD_INPUT', message, { field });
    this.message = message;
  }
}

/** Checks a value against a schema; a failure becomes a RegistryInputError naming the field */
export function checkInput<T>(schema: Schema<T>, value: unknown): T {
  try {
    return schema(value, '');
  } catch (err) {
    if (!(err instanceof PayloadError)) throw err;
    throw new RegistryInputError(err.path, err.detail.replace(/^\./, ''));
  }
}

export interface Saved<T> {
  /** False: an existing row was updated */
  readonly created: boolean;
  readonly row: T;
}

export async function saveClinic(registry: RegistryStore, input: ClinicInput, now: number): Promise<Saved<ClinicRow>> {
  const existing = (await registry.clinics()).find((c) => c.clinicCode === input.clinicCode);
  const row: ClinicRow = {
    clinicCode: input.clinicCode,
    name: input.name,
    ...(input.pricePerUse !== undefined ? { pricePerUse: input.pricePerUse } : {}),
    ...(input.investorShare !== undefined ? { investorShare: input.investorShare } : {}),
    addedAt: existing?.addedAt ?? now,
  };
  await registry.putClinic(row);
  return { created: !existing, row };
}

/** When a terminal retired now was retired: the existing stamp if it is retired already, else now */
function retiredSince(existing: RegisteredTerminal | undefined, now: number): number {
  return existing?.status === 'retired' ? (existing.retiredAt ?? now) : now;
}

export async function saveTerminal(registry: RegistryStore, input: TerminalInput, now: number): Promise<Saved<RegisteredTerminal>> {
  const existing = await registry.registeredTerminal(input.terminalId);
  const status = input.status ?? 'expected';
  const row: RegisteredTerminal = {
    terminalId: input.terminalId,
    clinicCode: input.clinicCode,
    status,
    ...(input.note !== undefined ? { note: input.note } : {}),
    addedAt: existing?.addedAt ?? now,
    ...(status === 'retired' ? { retiredAt: retiredSince(existing, now) } : {}),
  };
  await registry.putTerminal(row);
  return { created: !existing, row };
}

/**
 * Marks a registered terminal retired in its clinic, since `now` (one retired already keeps its time; a note given
 * replaces the old one); undefined: not registered
 */
export async function retireTerminal(registry: RegistryStore, input: RetireInput, now: number): Promise<RegisteredTerminal | undefined> {
  const existing = await registry.registeredTerminal(input.terminalId);
  if (!existing) return undefined;
  const row: RegisteredTerminal = { ...existing, status: 'retired', ...(input.note !== undefined ? { note: input.note } : {}), retiredAt: retiredSince(existing, now) };
  await registry.putTerminal(row);
  return row;
}
