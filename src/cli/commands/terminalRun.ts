import { loadTerminalConfig, TERMINAL_SETTINGS } from '../../config/terminalConfig.js';
import { ConfigError, redacted, settingsListing } from '../../config/schema.js';
import { queryStatus } from '../../daemon/StatusServer.js';
import { startTerminal } from '../../daemon/runTerminal.js';
import { TallyError } from '../../errors.js';
import { defineCommand } from '../command.js';
import { flagOption, valueOption } from '../options.js';

export const terminalRunCommand = defineCommand(
  {
    path: 'terminal run',
    summary: 'the terminal daemon (the systemd service runs this)',
    about: `Runs the terminal: reader backend, deductions, operator feedback, status
socket. Stops cleanly on SIGTERM or SIGINT after the swipe in progress.
Configuration: YAML or JSON (config/*.yaml are examples); every setting can be
overridden by an environment variable TALLY_<SECTION>_<NAME>.`,
    options: {
      config: valueOption('FILE', "the terminal's configuration file (YAML or JSON)", { default: 'the defaults and TALLY_ variables only' }),
      'print-config': flagOption('show the resolved configuration (secrets redacted) and exit'),
      settings: flagOption('list every setting with its default and variable, and exit'),
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    if (values.settings) {
      for (const line of settingsListing(TERMINAL_SETTINGS)) io.out(line);
      return 0;
    }
    let loaded;
    try {
      loaded = loadTerminalConfig(typeof values.config === 'string' ? values.config : undefined);
    } catch (err) {
      if (err instanceof ConfigError) {
        io.err(err.message);
        return 78; // EX_CONFIG: systemd should not restart into the same bad file
      }
      throw err;
    }
    // a TALLY_ typo would otherwise be ignored without a word (journald keeps standard error)
    for (const warning of loaded.warnings) io.err(`warning: ${warning}`);
    if (values['print-config']) {
      io.out(JSON.stringify(redacted(TERMINAL_SETTINGS, loaded.values), null, 2));
      return 0;
    }
    if (await queryStatus(loaded.config.statusSocket)) throw new TallyError('CONFIG', `a daemon already runs on ${loaded.config.dataDir}`);
    const running = await startTerminal(loaded.config);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => void running.stop(signal).then(resolve);
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    return 0;
  },
);
