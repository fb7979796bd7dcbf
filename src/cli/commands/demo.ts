import { runDemo } from '../../scenario/demo.js';
import { TallyError } from '../../errors.js';
import { integer } from '../args.js';
import { flagOption, valueOption } from '../options.js';
import { defineCommand } from '../command.js';

export const demoCommand = defineCommand(
  {
    path: 'demo',
    summary: 'the whole system on simulated cards, told step by step',
    usage: ['tally demo [--locale en|zh] [--dir DIR] [--trace] [--serve [--port N]]'],
    about: `Personalises a mother card, makes a white card and a batch of 20 one-time
cards, provisions a terminal, loads the batch and swipes the cards, showing a
replayed card, a copied card, a forged card, another clinic's cards and a
wrong PIN being refused; then one service voucher: issued to a wallet, booked,
scanned at the terminal, written off in the back office. Ends with a summary
checked against the ledger.
The terminal drives its reader through the real serial protocol to a
simulated microcontroller; --trace prints every frame in hex.
Needs nothing but this package: cards, reader and device are simulated.
With --serve it then keeps the server up with its dashboard on 127.0.0.1,
prints the address and a one-time login for the demo's top authority, and
serves until Ctrl-C.`,
    options: {
      locale: valueOption('en|zh', "the language of the story and of the terminal's messages", { default: 'TALLY_LOCALE, else en' }),
      dir: valueOption('DIR', 'keep the cards, databases and keys here', { default: 'a fresh temporary directory' }),
      trace: flagOption('print every serial frame between the terminal and its reader, in hex'),
      serve: flagOption('then keep the server and its dashboard up until Ctrl-C'),
      port: valueOption('N', "the dashboard's port, with --serve", { default: 'any free port' }),
    },
    examples: ['tally demo', 'tally demo --locale zh --serve --port 8080'],
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
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
);
