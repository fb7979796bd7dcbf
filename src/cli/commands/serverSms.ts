/**
 * `tally server sms receive|status`: the server's end of the SMS path.
 * gammu-smsd (files backend, inboxformat = standard) runs `receive` as its
 * RUNONRECEIVE hook with the new inbox file names; each .bin file holds one
 * binary SMS's octets and its name the sender. `status` lists what the server
 * knows by SMS, and which terminals are reachable by SMS only. `send` signs a
 * command with the server key and puts it in gammu-smsd's outbox.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ErrorCodes, TallyError } from '../../errors.js';
import { createLogger } from '../../logging/createLogger.js';
import { createServerStore } from '../../server/createServerStore.js';
import { SmsInbox, smsStatus, type IncomingSms } from '../../server/sms/SmsInbox.js';
import { systemClock } from '../../util/clock.js';
import { required } from '../args.js';
import type { CliCommand } from '../command.js';
import { fromHex } from '../../codecs/bytes.js';
import { SmsCommandType } from '../../codecs/sms/smsReport.js';
import { signSmsCommand, type SmsCommandInput } from '../../crypto/smsSignature.js';
import { gammuOutboxFile } from '../../server/sms/gammuOutbox.js';
import type { ServerStore } from '../../server/ServerStore.js';
import { rootKey, storeOptions } from './server.js';
import { loadServerKey } from './serverKey.js';

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
tally server sms send --store S --signing-key FILE (--root HEX | --root-file FILE)
                      --outbox DIR --terminal ID [--to NUMBER]
                      (report-now | time | deny --version N CARDID...)

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
         "reachable by SMS only" when it is newer than anything over the data link.
send     signs one command for the terminal with the server key (tally server
         certify-key; the terminal checks it with the key of the last signed
         checkpoint it kept) and writes it into gammu-smsd's outbox
         (outboxpath, files backend) as one binary SMS to --to, by default the
         number the terminal's last SMS report came from:
           report-now   the terminal sends its report at once (within its daily budget)
           time         the server's time, for a terminal offline for weeks
           deny --version N CARDID...   deny-list delta (1 to 6 card ids, 16 hex
                        digits each) at version N, above the version the terminal holds
         Each command's counter is above the last (kept in DIR/../tally-sms-commands.json),
         so the terminal refuses a replayed one.`,
  async run(args, io) {
    const [sub, ...rest] = args;
    let values: Record<string, string | boolean | undefined>;
    let positionals: string[];
    try {
      const parsed = parseArgs({
        args: rest,
        options: {
          store: { type: 'string' },
          inbox: { type: 'string' },
          json: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
          'signing-key': { type: 'string' },
          root: { type: 'string' },
          'root-file': { type: 'string' },
          outbox: { type: 'string' },
          terminal: { type: 'string' },
          to: { type: 'string' },
          version: { type: 'string' },
        },
        allowPositionals: sub === 'receive' || sub === 'send',
        strict: true,
      });
      values = parsed.values;
      positionals = parsed.positionals;
    } catch (err) {
      throw new TallyError('USAGE', (err as Error).message);
    }
    if (values.help || (sub !== 'receive' && sub !== 'status' && sub !== 'send')) {
      io.out(this.help);
      return values.help ? 0 : 2;
    }
    const store = await createServerStore(storeOptions(required(values, 'store')));
    try {
      if (sub === 'send') return await sendCommand(store, values, positionals, io);
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

/** Signs one command and writes it into gammu-smsd's outbox */
async function sendCommand(store: ServerStore, values: Record<string, string | boolean | undefined>, positionals: string[], io: { out(line: string): void }): Promise<number> {
  const terminalId = required(values, 'terminal');
  const outbox = required(values, 'outbox');
  const key = loadServerKey(required(values, 'signing-key'), rootKey(values));
  const terminal = (await store.terminals()).find((t) => t.terminalId === terminalId);
  if (!terminal) throw new TallyError('USAGE', `terminal ${terminalId} is not known to this server`);
  const reports = await store.smsReports(terminalId);
  const to = typeof values.to === 'string' ? values.to : reports[reports.length - 1]?.sender;
  if (!to) throw new TallyError('USAGE', `no SMS report from ${terminalId} yet: give its number with --to`);
  const [what, ...cards] = positionals;
  const now = Date.now();
  const counter = nextCommandCounter(join(dirname(outbox.replace(/\/+$/, '')), 'tally-sms-commands.json'), terminalId, now);
  const time = Math.floor(now / 1000);
  let fields: SmsCommandInput;
  if (what === 'report-now') fields = { counter, time, type: SmsCommandType.REPORT_NOW };
  else if (what === 'time') fields = { counter, time, type: SmsCommandType.TIME };
  else if (what === 'deny') {
    const version = Number(required(values, 'version'));
    if (!Number.isInteger(version) || version < 1 || version > 0xffffffff) throw new TallyError('USAGE', '--version N: a deny-list version, 1 to 4294967295');
    if (cards.length < 1 || cards.length > 6 || cards.some((c) => !/^[0-9a-fA-F]{16}$/.test(c))) throw new TallyError('USAGE', 'deny: 1 to 6 card ids of 16 hex digits');
    fields = { counter, time, type: SmsCommandType.DENY, denyVersion: version, cardIds: cards.map((c) => fromHex(c.toLowerCase())) };
  } else throw new TallyError('USAGE', 'send report-now | time | deny --version N CARDID...');
  const octets = signSmsCommand(key.key, terminalId, fields);
  const file = gammuOutboxFile(to, octets, { at: now, note: `tally-${what}-${counter}` });
  // written under another name first: gammu-smsd reads only OUT* files
  const tmp = join(outbox, `.tmp-${file.name}`);
  writeFileSync(tmp, file.text);
  renameSync(tmp, join(outbox, file.name));
  io.out(`${file.name}: ${what} for ${terminalId} to ${to}, counter ${counter}, ${octets.length} octets`);
  return 0;
}

/** Above the last counter sent to this terminal and at least the time in seconds since 2023-11-14, so a lost file reuses none */
function nextCommandCounter(path: string, terminalId: string, now: number): number {
  const state = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, number>) : {};
  const counter = Math.max((state[terminalId] ?? 0) + 1, Math.floor(now / 1000) - 1_700_000_000);
  state[terminalId] = counter;
  writeFileSync(`${path}.tmp`, JSON.stringify(state));
  renameSync(`${path}.tmp`, path);
  return counter;
}
