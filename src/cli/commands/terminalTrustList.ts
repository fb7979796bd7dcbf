/**
 * `tally terminal trust-list --file FILE`: installs a voucher trust list file (the
 * back office's signed list, voucher-format.md §4) into a terminal's data
 * folder, for a terminal that has not been online. The list is checked
 * against the terminal's investor root and kept only if newer.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTerminalConfig } from '../../config/terminalConfig.js';
import { TallyError } from '../../errors.js';
import { Ledger } from '../../ledger/Ledger.js';
import { installTrustList, loadTrustList } from '../../terminal/voucherTrust.js';
import { systemClock } from '../../util/clock.js';
import { required } from '../args.js';
import { defineCommand } from '../command.js';
import { TERMINAL_DATA_OPTIONS, valueOption } from '../options.js';

export const terminalTrustListCommand = defineCommand(
  {
    path: 'terminal trust-list',
    summary: 'install a voucher trust list file on a terminal (checked against its investor root)',
    usage: ['tally terminal trust-list --file FILE (--data DIR | --config FILE)'],
    about: `FILE is a trust list as tally server voucher trust-list --out FILE writes it
(binary). It is installed when it verifies against the terminal's investor root
and its list seq is above the one kept; a running daemon takes it at its next
start (online terminals get lists from the server by themselves).`,
    options: {
      file: valueOption('FILE', 'the trust list file', { required: true }),
      ...TERMINAL_DATA_OPTIONS,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const file = required(values, 'file');
    const dataDir = typeof values.config === 'string' ? loadTerminalConfig(values.config).config.dataDir : required(values, 'data');
    if (!existsSync(join(dataDir, 'terminal.db'))) throw new TallyError('NOT_PROVISIONED', dataDir);
    const ledger = Ledger.openReadOnly(join(dataDir, 'terminal.db'), systemClock);
    let root: Uint8Array;
    try {
      const identity = ledger.identity();
      if (!identity) throw new TallyError('NOT_PROVISIONED', dataDir);
      root = identity.rootPublicKey;
    } finally {
      ledger.close();
    }
    let current;
    try {
      current = loadTrustList(dataDir, root);
    } catch {
      current = undefined;
    }
    const { list, installed } = installTrustList(dataDir, root, new Uint8Array(readFileSync(file)), current);
    io.out(
      installed
        ? `trust list ${list.listSeq} installed: ${list.keyCertificates.length} keys, ${list.revoked.length} revoked serials, valid until ${new Date(list.validUntil * 1000).toISOString()} (+${Math.round(list.graceSeconds / 3600)} h grace)`
        : `trust list not installed: the terminal keeps list ${list.listSeq}, not older than this one`,
    );
    return installed ? 0 : 3;
  },
);
