/**
 * Simulated cards saved as JSON files, so the CLI tools work on cards before
 * real ones exist. The file holds the card's EEPROM, secrets included: treat
 * a mother card file as you would the mother card.
 */
import { TallyError } from '../errors.js';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { SimulatedCard, type SimulatedCardState } from './SimulatedCard.js';

const FORMAT = 'tallystick-simulated-card/1';

export function loadCardFile(path: string): SimulatedCard {
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as { format?: string; state?: SimulatedCardState };
  if (parsed.format !== FORMAT || !parsed.state) throw new TallyError('BAD_INPUT', `${path} is not a simulated card file`);
  return SimulatedCard.fromState(parsed.state);
}

export function saveCardFile(path: string, card: SimulatedCard): void {
  writeFileSync(`${path}.tmp`, `${JSON.stringify({ format: FORMAT, state: card.snapshot() }, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** Loads a card and saves it back after every change the card makes */
export function openCardFile(path: string): SimulatedCard {
  const card = loadCardFile(path);
  card.onChange = () => saveCardFile(path, card);
  return card;
}

/** A blank card saved at path, kept in sync with the file */
export function newCardFile(path: string): SimulatedCard {
  const card = SimulatedCard.blank();
  saveCardFile(path, card);
  card.onChange = () => saveCardFile(path, card);
  return card;
}
