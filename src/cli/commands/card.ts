import { existsSync } from 'node:fs';
import { toHex } from '../../codecs/bytes.js';
import { KIND_NAMES, describeRecord, type RecordKindValue } from '../../codecs/cardRecord.js';
import { LifeCycle } from '../../codecs/applet.js';
import { CardClient } from '../../card/CardClient.js';
import { parseRecordOrThrow } from '../../crypto/chain.js';
import { TallyError } from '../../errors.js';
import { loadCardFile, newCardFile } from '../../sim/cardFile.js';
import { directChannel } from '../../card/ApduChannel.js';
import { required } from '../args.js';
import { valueOption } from '../options.js';
import { defineCommand } from '../command.js';

export const cardNewCommand = defineCommand(
  {
    path: 'card new',
    summary: 'make a blank simulated card file',
    about: `Makes a blank simulated card (a chip fresh from the factory, with a random UID)
and saves it to FILE. The issuing commands personalise such cards.`,
    options: { out: valueOption('FILE', 'where to save the card (refused if it exists)', { required: true }) },
    examples: ['tally card new --out blank.json'],
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const out = required(values, 'out');
    if (existsSync(out)) throw new TallyError('USAGE', `${out} exists; refusing to overwrite a card`);
    const card = newCardFile(out);
    io.out(`blank card ${toHex(card.chipUid)} saved to ${out}`);
    return 0;
  },
);

export const cardShowCommand = defineCommand(
  {
    path: 'card show',
    summary: 'show what a simulated card holds, as a reader sees it',
    about: 'Selects the applet on the card and prints its state and record.',
    options: { card: valueOption('FILE', 'the card file', { required: true }) },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const card = loadCardFile(required(values, 'card'));
    const fci = await new CardClient(directChannel(card)).select();
    io.out(`chip UID     ${toHex(fci.chipUid)}`);
    io.out(`life cycle   ${fci.lifeCycle === LifeCycle.OPERATIONAL ? 'operational' : 'personalisation (blank)'}`);
    io.out(`profile      ${fci.profile === 0 ? 'none' : KIND_NAMES[fci.profile as RecordKindValue]}`);
    if (fci.pinTriesLeft !== undefined) io.out(`PIN tries    ${fci.pinTriesLeft} left`);
    if (fci.signQuota !== undefined) io.out(`signatures   ${fci.signCounter} made${fci.signQuota ? ` of ${fci.signQuota}` : ''}`);
    if (fci.record) {
      const record = parseRecordOrThrow(fci.record);
      io.out(`record       ${describeRecord(record)} (card id ${toHex(record.cardId)}, ${fci.record.length} bytes)`);
    }
    io.out(`consumed     ${fci.marker ? `yes (${toHex(fci.marker)})` : 'no'}`);
    return 0;
  },
);
