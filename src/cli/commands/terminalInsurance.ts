/**
 * `tally terminal insurance --item OCT --amount 120.00`: the operator starts an insurance payment at the running
 * daemon (its insurance socket); the authorisation QR goes to the board's display (DISPLAY_QR) and is drawn here
 * too, with the user code and the binding code; the command waits for the outcome.
 */
import QRCode from 'qrcode';
import { loadTerminalConfig } from '../../config/terminalConfig.js';
import { operatorMessage, TallyError } from '../../errors.js';
import { requestInsurancePayment } from '../../daemon/InsuranceControl.js';
import { insuranceSocketPath } from '../../daemon/runTerminal.js';
import { required } from '../args.js';
import { defineCommand } from '../command.js';
import { flagOption, TERMINAL_DATA_OPTIONS, valueOption } from '../options.js';

/** "120.00" or "120" yuan -> 12000 fen */
export function parseYuan(text: string): number {
  const m = /^(\d{1,7})(?:\.(\d{1,2}))?$/.exec(text.trim());
  if (!m) throw new TallyError('USAGE', `--amount ${text}: yuan with at most two decimals, e.g. 120.00`);
  return Number(m[1]) * 100 + Number((m[2] ?? '0').padEnd(2, '0'));
}

export const terminalInsuranceCommand = defineCommand(
  {
    path: 'terminal insurance',
    summary: 'start an insurance payment at the running terminal: QR on its display, consent on the phone, then the device runs',
    usage: ['tally terminal insurance (--item ITEM --amount YUAN | --redeem CODE) (--data DIR | --config FILE) [--json]'],
    about: `Asks the running daemon (tally terminal run) to start a payment by
medical-insurance e-credential for ITEM (e.g. OCT) of YUAN (e.g. 120.00). The
daemon asks the server over its MQTT link, shows the authorisation QR code with
the user code and the binding code on the board's display (and here), waits for
the patient's consent on the phone, checks the settlement voucher and enables
the device. The terminal must be online: offline it refuses INSURANCE_OFFLINE.
--redeem CODE redeems instead a service order the patient already paid with
the e-credential in a booking app (the app shows CODE, e.g. BCDF-GHJK): the
server gives this terminal the order's settlement voucher (refused when the
order is for another clinic or was redeemed elsewhere), then the device runs.
Exit 0 when the use is granted, 3 when refused. --json prints each step as a
JSON line.`,
    options: {
      item: valueOption('ITEM', 'the examination paid for (e.g. OCT); with --amount, unless --redeem'),
      amount: valueOption('YUAN', 'its price in yuan (e.g. 120.00)'),
      redeem: valueOption('CODE', "a service order's code from the booking app (seed 001): redeem it instead of a new payment"),
      ...TERMINAL_DATA_OPTIONS,
      json: flagOption('print each step as a JSON line'),
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const request = typeof values.redeem === 'string' ? { redeemCode: values.redeem } : { item: required(values, 'item').toUpperCase(), amountFen: parseYuan(required(values, 'amount')) };
    const dataDir = typeof values.config === 'string' ? loadTerminalConfig(values.config).config.dataDir : required(values, 'data');
    const outcome = await requestInsurancePayment(insuranceSocketPath(dataDir), request, (line) => {
      if (values.json) {
        io.out(JSON.stringify(line));
        return;
      }
      if (line.type === 'qr') {
        io.out(`scan to pay: ${line.qr.text}`);
        io.out(`user code ${line.userCode}   order ${line.bindingCode}   (expires in ${line.expiresIn} s)`);
        void QRCode.toString(line.qr.text, { type: 'utf8', errorCorrectionLevel: 'M' }).then((art) => io.out(art));
      } else if (line.type === 'poll') {
        if (line.answer !== 'authorization_pending') io.out(`server: ${line.answer} (poll every ${line.interval} s)`);
      } else if (line.type === 'voucher') {
        io.out(`settlement voucher received (${line.via})`);
      } else if (line.type === 'error') {
        io.err(line.message);
      }
    });
    if (!outcome) throw new TallyError('INSURANCE_NO_DAEMON', dataDir);
    if (!values.json) io.out(outcome.ok ? outcome.message : `${operatorMessage(outcome.code, 'en')} / ${operatorMessage(outcome.code, 'zh')}: ${outcome.detail}`);
    return outcome.ok ? 0 : 3;
  },
);
