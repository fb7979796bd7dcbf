import { runDemo } from '../../scenario/demo.js';
import { TallyError } from '../../errors.js';
import { integer, parse } from '../args.js';
import type { CliCommand } from '../command.js';

export const demoCommand: CliCommand = {
  path: ['demo'],
  summary: 'the whole system on simulated cards, told step by step',
  help: `tally demo [--locale en|zh] [--dir DIR] [--trace] [--serve [--port N]]

Personalises a mother card, makes a white card and a batch of 20 one-time
cards, provisions a terminal, loads the batch and swipes the cards, showing a
replayed card, a copied card, a forged card, another clinic's cards and a
wrong PIN being refused; then one service voucher: issued to a wallet, booked,
scanned at the terminal, written off in the back office. Ends with a summary
checked against the ledger.
The terminal drives its reader through the real serial protocol to a
simulated microcontroller; --trace prints every frame in hex.
Needs nothing but this package: cards, reader and device are simulated.
With --serve it then keeps the server up with its dashboard on 127.0.0.1
(--port N, default any free port), prints the address and a one-time login
for the demo's top authority, and serves until Ctrl-C.`,
  async run(args, io) {
    const values = parse(args, { locale: { type: 'string' }, dir: { type: 'string' }, trace: { type: 'boolean' }, serve: { type: 'boolean' }, port: { type: 'string' } });
    if (values.port !== undefined && !values.serve) throw new TallyError('USAGE', '--port is for --serve');
    const summary = await runDemo({
      out: io.out,
      locale: values.locale === 'zh' ? 'zh' : 'en',
      trace: values.trace === true,
      ...(typeof values.dir === 'string' ? { workDir: values.dir } : {}),
      ...(values.serve
        ? {
            serve: {
              ...(values.port !== undefined ? { port: integer(values, 'port') } : {}),
              until: () =>
                new Promise<void>((resolve) => {
                  process.once('SIGINT', resolve);
                  process.once('SIGTERM', resolve);
                }),
            },
          }
        : {}),
    });
    return summary.ledgerIntact ? 0 : 1;
  },
};
