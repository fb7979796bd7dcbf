/**
 * Child process of the crash test: deducts cards in a loop on a terminal's
 * data folder and prints "committed <seq> <serial>" only after handleCard has
 * returned (the reserve entry is committed and fsync'd by then). The parent
 * SIGKILLs it at random moments. Cards are fresh copies of the cards as issued
 * (no consumed marker), so every re-swipe is also a copied card: only the
 * ledger can refuse it.
 *
 * argv: dataDir cardsFile seed maxSwipes
 */
import { readFileSync, writeSync } from 'node:fs';
import { SimulatedCard, type SimulatedCardState } from '../../src/sim/SimulatedCard.js';
import { SimulatedReader } from '../../src/sim/SimulatedReader.js';
import { Terminal } from '../../src/terminal/Terminal.js';

const [dataDir, cardsFile, seedArg, maxArg] = process.argv.slice(2);
if (!dataDir || !cardsFile) throw new Error('usage: crashWorker dataDir cardsFile [seed] [maxSwipes]');
const cards = JSON.parse(readFileSync(cardsFile, 'utf8')) as SimulatedCardState[];
let state = Number(seedArg ?? 1) >>> 0 || 1;
/** xorshift32: the parent's seed makes each life's choice of cards reproducible */
function random(n: number): number {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) % n;
}

const say = (line: string): void => {
  writeSync(1, `${line}\n`);
};

const terminal = Terminal.open({ dataDir });
const reader = new SimulatedReader();
await reader.start();
say(`ready ${terminal.ledger.lastSeq()}`);
for (let i = 0; i < Number(maxArg ?? 1_000_000); i++) {
  const index = random(cards.length);
  const outcome = await terminal.handleCard(reader.insert(SimulatedCard.fromState(cards[index]!)));
  reader.remove();
  if (outcome.ok && outcome.action === 'use') say(`committed ${outcome.seq} ${outcome.serial}`);
  else say(`refused ${outcome.ok ? outcome.action : outcome.code}`);
}
terminal.close();
say('done');
