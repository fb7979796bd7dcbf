import { createWriteStream } from 'node:fs';
import { TallyError } from '../../errors.js';
import { fullDepartments, hisTraffic, runHis, type HisMessage } from '../../sim/his/HisSimulator.js';
import { hostileTraffic } from '../../sim/his/hostile.js';
import { integer, required } from '../args.js';
import { defineCommand } from '../command.js';
import { valueOption } from '../options.js';

export const simHisCommand = defineCommand(
  {
    path: 'sim his',
    summary: "a hospital's HIS: the registration, self-service and charging subsystems sending HL7 v2 over MLLP",
    usage: ['tally sim his --gateway HOST:PORT [--count N] [--departments OPH,ENT,RAD] [--hospital URL]', 'tally sim his --gateway HOST:PORT --hostile N [--seed S]'],
    about: `Sends real HL7 v2.5.1 traffic to the isolation gateway: ADT^A04 registrations
from the registration desk (REG) and the self-service kiosks (SELFSERVICE),
ORM^O01/OMG^O19 orders and DFT^P03 charges from the charging subsystem
(CHARGE), and reads each ACK. With --hospital the registration subsystems
first read the remaining slots the gateway publishes and skip full
departments. --hostile N sends N hostile messages instead (malformed,
oversized, unknown types, wrong fields, injections, framing attacks, bursts).
A message not answered (gateway restarted) is sent again with its control id.
Prints a JSON summary; exit 1 when an ACK differed from what was expected.`,
    options: {
      gateway: valueOption('HOST:PORT', "the gateway's MLLP listener", { required: true }),
      count: valueOption('N', 'how many messages', { default: '100' }),
      departments: valueOption('CODES', 'the departments registered in, comma separated', { default: 'OPH,ENT,RAD' }),
      hospital: valueOption('URL', 'read the remaining slots the gateway publishes here first'),
      hostile: valueOption('N', 'send N hostile messages instead'),
      seed: valueOption('S', 'the seed of the hostile messages', { default: '1' }),
      connections: valueOption('C', 'connections to the gateway', { default: '4' }),
      window: valueOption('W', 'messages in flight a connection', { default: '16' }),
      prefix: valueOption('P', 'control ids are P0, P1, ...', { default: 'M, or F for --hostile' }),
      results: valueOption('FILE', 'one JSON line a message: control id, expectation, ACK code, our code'),
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const m = /^(.+):(\d{1,5})$/.exec(required(values, 'gateway'));
    if (!m) throw new TallyError('USAGE', '--gateway HOST:PORT');
    const departments = ((values.departments as string | undefined) ?? 'OPH,ENT,RAD').split(',').filter(Boolean);
    if (!departments.every((d) => /^[A-Z][A-Z0-9_]{1,15}$/.test(d))) throw new TallyError('USAGE', '--departments: codes like OPH,ENT');
    let messages: Iterable<HisMessage>;
    if (typeof values.hostile === 'string') {
      messages = hostileTraffic(integer(values, 'hostile'), integer(values, 'seed', 1), Date.now(), (values.prefix as string | undefined) ?? 'F');
    } else {
      const full = typeof values.hospital === 'string' ? await fullDepartments(values.hospital, departments) : new Set<string>();
      if (full.size > 0) io.out(`no registration slots left today in ${[...full].join(', ')}: not registering there`);
      messages = hisTraffic({ count: integer(values, 'count', 100), departments, full, prefix: (values.prefix as string | undefined) ?? 'M' });
    }
    const results = typeof values.results === 'string' ? createWriteStream(values.results) : undefined;
    const summary = await runHis(messages, {
      host: m[1]!,
      port: Number(m[2]),
      connections: integer(values, 'connections', 4),
      window: integer(values, 'window', 16),
      keepResults: results !== undefined,
      onProgress: (n) => io.err(`${n} answered`),
    });
    if (results) {
      for (const r of summary.results) results.write(`${JSON.stringify(r)}\n`);
      await new Promise<void>((resolve) => results.end(() => resolve()));
    }
    const { results: _all, ...rest } = summary;
    io.out(JSON.stringify(rest));
    return summary.unexpected === 0 ? 0 : 1;
  },
);
