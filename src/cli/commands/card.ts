import { existsSync } from 'node:fs';
import { toHex } from '../../codecs/bytes.js';
import { KIND_NAMES, describeRecord, type RecordKindValue } from '../../codecs/cardRecord.js';
import { LifeCycle } from '../../codecs/applet.js';
import { CardClient } from '../../card/CardClient.js';
import { parseRecordOrThrow } from '../../crypto/chain.js';
import { TallyError } from '../../errors.js';
import { loadCardFile, newCardFile } from '../../sim/cardFile.js';
import { directChannel } from '../../card/ApduChannel.js';
import { parse, required } from '../args.js';
import type { CliCommand } from '../command.js';

export const cardNewCommand: CliCommand = {
  path: ['card', 'new'],
  summary: 'make a blank simulated card file',
  help: `tally card new --out FILE

Makes a blank simulated card (a chip fresh from the factory, with a random UID)
and saves it to FILE. The issuing commands personalise such cards.`,
  async run(args, io) {
    const values = parse(args, { out: { type: 'string' } });
    const out = required(values, 'out');
    if (existsSync(out)) throw new TallyError('USAGE', `${out} exists; refusing to overwrite a card`);
    const card = newCardFile(out);
    io.out(`blank card ${toHex(card.chipUid)} saved to ${out}`);
    return 0;
  },
};

export const cardShowCommand: CliCommand = {
  path: ['card', 'show'],
  summary: 'show what a simulated card holds, as a reader sees it',
  help: `tally card show --card FILE

Selects the applet on the card and prints its state and record.`,
  async run(args, io) {
    const values = parse(args, { card: { type: 'string' } });
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
};
