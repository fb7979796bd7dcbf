/**
 * The detail of a terminal.setting ledger entry (type 9): `name=value`, one setting an auditor must see in
 * force. Today there is one: cards.acceptVersion1 (true|false), the migration setting that lets version 1
 * cards (no key of their own) pass. Pure.
 */
import { CodecError } from '../errors.js';

export const LEDGER_SETTINGS = { 'cards.acceptVersion1': ['true', 'false'] } as const;
export type LedgerSettingName = keyof typeof LEDGER_SETTINGS;

export interface LedgerSetting {
  readonly name: LedgerSettingName;
  readonly value: boolean;
}

export function encodeSettingDetail(setting: LedgerSetting): string {
  return `${setting.name}=${String(setting.value)}`;
}

/** Throws BAD_LEDGER_ENTRY unless the detail names a known setting and one of its values */
export function parseSettingDetail(detail: string | undefined): LedgerSetting {
  const match = /^([a-zA-Z0-9.]+)=(.*)$/.exec(detail ?? '');
  const name = match?.[1];
  if (!match || !name || !(name in LEDGER_SETTINGS)) throw new CodecError('BAD_LEDGER_ENTRY', `not a known setting: ${JSON.stringify(detail ?? '')}`);
  const values: readonly string[] = LEDGER_SETTINGS[name as LedgerSettingName];
  if (!values.includes(match[2]!)) throw new CodecError('BAD_LEDGER_ENTRY', `${name} is ${values.join(' or ')}, not ${JSON.stringify(match[2])}`);
  return { name: name as LedgerSettingName, value: match[2] === 'true' };
}
