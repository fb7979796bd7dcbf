/** `tally sim insurance`: the medical-insurance settlement platform as its own process (src/sim/insurance). */
import { startInsurancePlatformSim, type FaultMode } from '../../sim/insurance/InsurancePlatformSim.js';
import { TallyError } from '../../errors.js';
import { integer, parse, required } from '../args.js';
import type { CliCommand } from '../command.js';

export const DEMO_CREDENTIAL = 'EC-DEMO-0001';

export const simInsuranceCommand: CliCommand = {
  path: ['sim', 'insurance'],
  summary: 'the medical-insurance settlement platform: insured people, coverage, certificates, settlements, statements',
  help: `tally sim insurance --db FILE [--port N] [--demo] [--fault normal|slow|down|error] [--delay MS]

Runs the simulated insurance platform on 127.0.0.1 with its own SQLite
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
  async run(args, io) {
    const values = parse(args, { db: { type: 'string' }, port: { type: 'string' }, demo: { type: 'boolean' }, fault: { type: 'string' }, delay: { type: 'string' } });
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
};
