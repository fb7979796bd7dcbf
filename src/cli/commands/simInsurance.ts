/** `tally sim insurance`: the medical-insurance settlement platform as its own process (src/sim/insurance). */
import { startInsurancePlatformSim, type FaultMode } from '../../sim/insurance/InsurancePlatformSim.js';
import { TallyError } from '../../errors.js';
import { integer, required } from '../args.js';
import { defineCommand } from '../command.js';
import { flagOption, valueOption } from '../options.js';

export const DEMO_CREDENTIAL = 'EC-DEMO-0001';

export const simInsuranceCommand = defineCommand(
  {
    path: 'sim insurance',
    summary: 'the medical-insurance settlement platform: insured people, coverage, certificates, settlements, statements',
    about: `Runs the simulated insurance platform on 127.0.0.1 with its own SQLite
database (FILE). Its HTTP API (JSON, money in fen):
  POST /v1/certificates/query {credential, item, amountFen}
  POST /v1/settlements        (Idempotency-Key header) {certificateId, item, amountFen, orderRef}
  GET  /v1/settlements/by-key/KEY
  POST /v1/settlements/ID/reversal (Idempotency-Key header)
  GET  /v1/statements?day=YYYY-MM-DD
  POST /admin/insured {personId, name, credential}
  POST /admin/rules {item, covered, copayPercent, annualCapFen}
  POST /admin/faults {mode, delayMs}   GET /admin/counters
--demo adds one insured person (e-credential ${DEMO_CREDENTIAL}) and the rule
OCT: covered, 30% co-payment, annual cap 2000.00.
--fault starts it slow (answers --delay MS late, after the work is committed),
down (connections dropped) or answering 503.
Prints "insurance platform at URL" when ready, then a line for each
settlement or reversal it commits; SIGTERM stops it.`,
    options: {
      db: valueOption('FILE', "the platform's SQLite database", { required: true }),
      port: valueOption('N', 'the HTTP port on 127.0.0.1', { default: 'any free port' }),
      demo: flagOption(`add the demo insured person (${DEMO_CREDENTIAL}) and the OCT rule`),
      fault: valueOption('normal|slow|down|error', 'how it answers at start', { default: 'normal' }),
      delay: valueOption('MS', 'how late a slow platform answers', { default: '0' }),
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const fault = (values.fault as string | undefined) ?? 'normal';
    if (!['normal', 'slow', 'down', 'error'].includes(fault)) throw new TallyError('USAGE', '--fault normal, slow, down or error');
    // each committed settlement and reversal is a line, before its answer goes out (slow mode holds the answer back)
    const platform = await startInsurancePlatformSim({ dbPath: required(values, 'db'), port: integer(values, 'port', 0), onCommitted: (e) => io.out(`${e.kind} ${e.id} committed under key ${e.key}${e.replayed ? ' (replayed)' : ''}`) });
    platform.setFault(fault as FaultMode, integer(values, 'delay', 0));
    if (values.demo === true) {
      const post = (path: string, body: unknown) => fetch(`${platform.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      await post('/admin/insured', { personId: 'P-DEMO-1', name: '张三', credential: DEMO_CREDENTIAL });
      await post('/admin/rules', { item: 'OCT', covered: true, copayPercent: 30, annualCapFen: 200_000 });
    }
    io.out(`insurance platform at ${platform.url}`);
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    });
    await platform.close();
    return 0;
  },
);
