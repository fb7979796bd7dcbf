/**
 * `tally sim modem`: two simulated GSM modems (the terminal's and the server's)
 * joined by a simulated SMS network, each on its own socat pty. The daemon
 * opens one path (sms.modemPath), gammu-smsd the other. Faults are set at
 * start or typed on standard input.
 */
import { TallyError } from '../../errors.js';
import { startModemRig, type ModemOnPty } from '../../sim/modem/ModemRig.js';
import type { SimState } from '../../sim/modem/SimulatedModem.js';
import { integer } from '../args.js';
import { defineCommand } from '../command.js';
import { flagOption, valueOption } from '../options.js';
import { consoleCommand, readConsole } from '../console.js';

const CONSOLE_HELP = `commands (WHO is terminal or server):
  sim WHO ready|absent|pin     the SIM of that modem
  network WHO on|off           that modem registered on the network, or not
  silent WHO on|off            the modem answers nothing (hung)
  fail WHO N                   the next N AT+CMGS answer +CMS ERROR: 500
  unplug WHO / plug WHO        stop socat for that modem (the port vanishes) / start it again
  delay MS / jitter MS         network delivery delay, and random extra delay (reorders)
  loss P / duplicate P         probability 0..1 that a message is lost / delivered twice
  status                       messages stored, network counts
  quit`;

function probability(text: string): number {
  const p = Number(text);
  if (!(p >= 0 && p <= 1)) throw new TallyError('USAGE', 'a probability from 0 to 1');
  return p;
}

export const simModemCommand = defineCommand(
  {
    path: 'sim modem',
    summary: 'run two simulated GSM modems joined by a simulated SMS network, on socat ptys',
    about: `Starts the terminal's and the server's simulated GSM modems (AT commands,
TS 27.007/27.005 PDU mode) on two socat pty pairs and prints the paths to open:
the terminal daemon's sms.modemPath, and gammu's device for gammu-smsd.
The terminal modem is ${'+8613800000001'}, the server modem +8613900000002.`,
    options: {
      'delay-ms': valueOption('N', 'network delivery delay', { default: '2000' }),
      'jitter-ms': valueOption('N', 'up to N ms more, at random (messages overtake each other)', { default: '0' }),
      loss: valueOption('P', 'probability a message is lost', { default: '0' }),
      duplicate: valueOption('P', 'probability a message is delivered twice', { default: '0' }),
      seed: valueOption('N', "seed of the network's faults", { default: '1' }),
      trace: flagOption('print every AT line in and out'),
    },
    epilogue: `Then type commands on standard input:

${CONSOLE_HELP}`,
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const rig = await startModemRig({
      seed: integer(values, 'seed', 1),
      network: {
        delayMs: integer(values, 'delay-ms', 2000),
        jitterMs: integer(values, 'jitter-ms', 0),
        loss: typeof values.loss === 'string' ? probability(values.loss) : 0,
        duplicate: typeof values.duplicate === 'string' ? probability(values.duplicate) : 0,
      },
      ...(values.trace ? { trace: (who: string, d: string, t: string) => io.out(`${who} ${d === 'in' ? '<-' : '->'} ${t}`) } : {}),
    });
    const who = (word: string | undefined): ModemOnPty => {
      if (word === 'terminal') return rig.terminal;
      if (word === 'server') return rig.server;
      throw new TallyError('USAGE', 'WHO is terminal or server');
    };
    const onOff = (word: string | undefined): boolean => {
      if (word !== 'on' && word !== 'off') throw new TallyError('USAGE', 'on or off');
      return word === 'on';
    };
    const command = consoleCommand(
      {
        sim: (arg) => {
          const [w, state] = arg.split(/\s+/);
          if (!['ready', 'absent', 'pin'].includes(state ?? '')) throw new TallyError('USAGE', 'sim WHO ready|absent|pin');
          who(w).modem.faults.sim = state as SimState;
          io.out(`${w} SIM ${state}`);
        },
        network: (arg) => {
          const [w, v] = arg.split(/\s+/);
          who(w).modem.faults.registered = onOff(v);
          io.out(`${w} network ${v}`);
        },
        silent: (arg) => {
          const [w, v] = arg.split(/\s+/);
          who(w).modem.faults.silent = onOff(v);
          io.out(`${w} silent ${v}`);
        },
        fail: (arg) => {
          const [w, n] = arg.split(/\s+/);
          who(w).modem.faults.failSends = Math.max(0, Number(n ?? 1) | 0);
          io.out(`${w}: the next ${who(w).modem.faults.failSends} sends fail`);
        },
        unplug: async (arg) => {
          await who(arg).unplug();
          io.out(`${arg} unplugged`);
        },
        plug: async (arg) => {
          await who(arg).plugIn();
          io.out(`${arg} plugged in at ${who(arg).path}`);
        },
        delay: (arg) => void (rig.network.faults.delayMs = Math.max(0, Number(arg) | 0)),
        jitter: (arg) => void (rig.network.faults.jitterMs = Math.max(0, Number(arg) | 0)),
        loss: (arg) => void (rig.network.faults.loss = probability(arg)),
        duplicate: (arg) => void (rig.network.faults.duplicate = probability(arg)),
        status: () => {
          for (const [name, m] of [['terminal', rig.terminal], ['server', rig.server]] as const) io.out(`${name} ${m.modem.number} at ${m.path}: ${m.modem.stored().length} stored, ${JSON.stringify(m.modem.stats)}`);
          io.out(`network ${JSON.stringify(rig.network.stats)}`);
        },
      },
      CONSOLE_HELP,
      io,
    );
    io.out(`terminal modem ${rig.terminal.modem.number}: ${rig.terminal.path}`);
    io.out(`server modem ${rig.server.modem.number}: ${rig.server.path}`);
    io.out('type help for commands');
    const stopOnSignal = () => process.stdin.destroy();
    process.once('SIGINT', stopOnSignal);
    process.once('SIGTERM', stopOnSignal);
    try {
      await readConsole(command, process.stdin);
    } finally {
      process.off('SIGINT', stopOnSignal);
      process.off('SIGTERM', stopOnSignal);
      await rig.stop();
    }
    return 0;
  },
);
