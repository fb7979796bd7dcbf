/**
 * `tally server sms receive|status`: the server's end of the SMS path.
 * gammu-smsd (files backend, inboxformat = standard) runs `receive` as its
 * RUNONRECEIVE hook with the new inbox file names; each .bin file holds one
 * binary SMS's octets and its name the sender. `status` lists what the server
 * knows by SMS, and which terminals are reachable by SMS only.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ErrorCodes, TallyError } from '../../errors.js';
import { createLogger } from '../../logging/createLogger.js';
import { createServerStore } from '../../server/createServerStore.js';
import { SmsInbox, smsStatus, type IncomingSms } from '../../server/sms/SmsInbox.js';
import { systemClock } from '../../util/clock.js';
import { required } from '../args.js';
import type { CliCommand } from '../command.js';
import { storeOptions } from './server.js';

/** gammu-smsd's files backend names: IN<yyyymmdd>_<hhmmss>_<serial>_<sender>_<part>.<txt|bin> */
const GAMMU_INBOX_NAME = /^IN\d{8}_\d{6}_\d+_(.+)_(\d+)\.(txt|bin)$/;

export function readGammuInboxFile(path: string): IncomingSms {
  const name = basename(path);
  const m = GAMMU_INBOX_NAME.exec(name);
  if (!m) throw new TallyError('USAGE', `${name}: not a gammu-smsd inbox file name (IN<date>_<time>_<serial>_<sender>_<part>.bin)`);
  return { sender: m[1]!, octets: new Uint8Array(readFileSync(path)), binary: m[3] === 'bin' };
}

export const serverSmsCommand: CliCommand = {
  path: ['server', 'sms'],
  summary: 'SMS reports: receive what gammu-smsd hands over; status by SMS',
  help: `tally server sms receive --store (FILE | postgres://...) [--inbox DIR] FILE...
tally server sms status --store (FILE | postgres://...) [--json]

receive  checks and records each SMS report in FILE... (gammu-smsd inbox files,
         names relative to --inbox, as its RUNONRECEIVE hook passes them):
         the terminal by its tag, its signature with the pinned device key,
         its counter against replays; then checks the heads against the
         ledger received (alert sms-head-contradicted). In gammu's smsdrc:
             [smsd]
             service = files
             inboxformat = standard
             inboxpath = /var/spool/gammu/inbox/
             runonreceive = tally server sms receive --store /var/lib/tally/server.db --inbox /var/spool/gammu/inbox/
         Prints one line per file; a refusal names its code. Exit 0 unless the store fails.
status   per terminal: the last SMS report (head, outbox, uses per batch) and
         "reachable by SMS only" when it is newer than anything over the data link.`,
  async run(args, io) {
    const [sub, ...rest] = args;
    let values: Record<string, string | boolean | undefined>;
    let positionals: string[];
    try {
      const parsed = parseArgs({ args: rest, options: { store: { type: 'string' }, inbox: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: sub === 'receive', strict: true });
      values = parsed.values;
      positionals = parsed.positionals;
    } catch (err) {
      throw new TallyError('USAGE', (err as Error).message);
    }
    if (values.help || (sub !== 'receive' && sub !== 'status')) {
      io.out(this.help);
      return values.help ? 0 : 2;
    }
    const store = await createServerStore(storeOptions(required(values, 'store')));
    try {
      if (sub === 'status') {
        const rows = await smsStatus(store, (id) => store.lastDataAt(id));
        if (values.json) io.out(JSON.stringify(rows, null, 2));
        else
          for (const r of rows)
            io.out(
              `${r.terminalId}  ${r.smsOnly ? 'reachable by SMS only' : 'data link up'}  last SMS ${new Date(r.lastSmsAt).toISOString()}  head ${r.headSeq} ${r.headHashPrefix}  outbox ${r.outboxDepth}  ${r.reports} reports${r.contradicted ? `  ${r.contradicted} CONTRADICTED` : ''}  ${r.batches.map((b) => `batch ${b.batchNo}: ${b.usesTotal} used`).join(', ')}`,
            );
        return 0;
      }
      const names = positionals;
      const inbox = new SmsInbox(store, { clock: systemClock, logger: createLogger({ base: { service: 'tally-server-sms' } }) });
      for (const name of names) {
        const path = typeof values.inbox === 'string' ? join(values.inbox, name) : name;
        let sms: IncomingSms;
        try {
          sms = readGammuInboxFile(path);
        } catch (err) {
          io.err(`${name}: ${(err as Error).message}`);
          continue;
        }
        const verdict = await inbox.receive(sms);
        if (verdict.ok) io.out(`${name}: recorded report ${verdict.counter} of ${verdict.terminalId}, head ${verdict.headSeq}${verdict.contradicted ? ' (CONTRADICTS an earlier head or the ledger)' : ''}`);
        else io.out(`${name}: refused ${verdict.code} (${ErrorCodes[verdict.code].code}): ${verdict.detail}`);
      }
      return 0;
    } finally {
      await store.close();
    }
  },
};
