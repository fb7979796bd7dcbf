/**
 * A binary SMS for gammu-smsd's files backend outbox (gammu-smsd-files(7)):
 * the file name OUT<priority><date>_<time>_<serial>_<recipient>_<note>.smsbackup
 * and its content in gammu's SMS backup format (gammu-smsbackup(5)) with
 * Coding = 8bit and the octets in hex, which gammu-smsd sends as one 8-bit
 * SMS-SUBMIT. Pure: the caller writes the file (under another name first, then
 * renamed, so gammu-smsd never reads half of it).
 */
import { toHex } from '../../codecs/bytes.js';
import { SMS_MAX_OCTETS } from '../../codecs/sms/smsReport.js';
import { TallyError } from '../../errors.js';

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

export function gammuOutboxFile(recipient: string, octets: Uint8Array, options: { readonly at: number; readonly note: string; readonly serial?: number }): { readonly name: string; readonly text: string } {
  if (!/^\+?\d{3,20}$/.test(recipient)) throw new TallyError('USAGE', `recipient ${JSON.stringify(recipient)}: a phone number (+ and digits)`);
  if (octets.length < 1 || octets.length > SMS_MAX_OCTETS) throw new TallyError('USAGE', `${octets.length} octets: one binary SMS holds 1 to ${SMS_MAX_OCTETS}`);
  const d = new Date(options.at);
  const date = `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}`;
  const time = `${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}`;
  const note = options.note.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 40) || 'tally';
  const name = `OUTA${date}_${time}_${pad(options.serial ?? 0)}_${recipient}_${note}.smsbackup`;
  const hex = toHex(octets).toUpperCase();
  const parts: string[] = [];
  for (let i = 0; i < hex.length; i += 200) parts.push(`Text${pad(i / 200)} = ${hex.slice(i, i + 200)}`);
  const text = ['[SMSBackup000]', `Number = "${recipient}"`, 'Coding = 8bit', ...parts, `Length = ${octets.length}`, 'Class = -1', 'PDU = Submit', 'State = UnSent', ''].join('\n');
  return { name, text };
}
