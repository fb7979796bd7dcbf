/**
 * Crash test: a child process deducts cards in a loop and is SIGKILLed at
 * random moments (during start-up and recovery too), then restarted on the
 * same data folder. At the end: every seq the child reported committed is in
 * the ledger with its serial (nothing committed lost), no serial is charged
 * twice, the sequence is gapless, the chain verifies, and uses left reserved
 * by a kill were released on reopen. CI: 30 kills; SOAK=1: 500; CRASH_KILLS overrides.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { parseCardRecord, RecordKind } from '../../src/codecs/cardRecord.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { Terminal } from '../../src/terminal/Terminal.js';
import { buildWorker } from './buildWorker.js';

const SOAK = Boolean(process.env.SOAK);
const KILLS = Number(process.env.CRASH_KILLS ?? (SOAK ? 500 : 30));
const CARDS = SOAK ? 10_000 : 1000;

let built: { worker: string; remove(): void } | undefined;
let workDir: string;
let dataDir: string;
let cardsFile: string;

beforeAll(async () => {
  built = buildWorker('crashWorker');
  workDir = tempDir('tally-crash-');
  dataDir = join(workDir, 'terminal');
  mkdirSync(dataDir);
  mkdirSync(join(workDir, 'issuer'));
  const issuer = await new Issuer(join(workDir, 'issuer')).init();
  const batch = await issuer.makeBatch('CLINIC-A', CARDS);
  const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-CRASH', clinicCode: 'CLINIC-A' });
  expect(await rig.swipe(batch.batchCard)).toMatchObject({ ok: true, action: 'batch-loaded' });
  rig.terminal.close();
  issuer.close();
  cardsFile = join(workDir, 'cards.json');
  writeFileSync(cardsFile, JSON.stringify(batch.oneTimeCards.map((c) => c.snapshot())));
}, 300_000);

afterAll(() => {
  built?.remove();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

interface Life {
  committed: { seq: number; serial: number }[];
  refused: number;
  ready: boolean;
}

/** One life of the worker: started, killed with SIGKILL at a random moment, waited for */
async function liveAndDie(seed: number, random: () => number): Promise<Life> {
  const life: Life = { committed: [], refused: 0, ready: false };
  const child = spawn(process.execPath, [built!.worker, dataDir, cardsFile, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buffered = '';
  let stderr = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolveReady) => (onReady = resolveReady));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const [word, a, b] = line.split(' ');
      if (word === 'ready') {
        life.ready = true;
        onReady();
      } else if (word === 'committed') life.committed.push({ seq: Number(a), serial: Number(b) });
      else if (word === 'refused') life.refused++;
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => child.on('exit', (code, signal) => resolveExit({ code, signal })));
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  if (random() < 0.2) {
    // killed while starting: loading modules, opening SQLite, recovering open uses
    await Promise.race([sleep(random() * 300), exited]);
  } else {
    // a worker that never gets ready is killed all the same, and the test says so below
    await Promise.race([ready, exited, sleep(30_000)]);
    await Promise.race([sleep(random() * 250), exited]);
  }
  child.kill('SIGKILL');
  const { code, signal } = await exited;
  if (signal !== 'SIGKILL') throw new Error(`worker ended by itself (code ${code}): ${stderr}`);
  return life;
}

describe('crash test: SIGKILL at random points during deductions', () => {
  it(`loses no committed record and charges no serial twice over ${KILLS} kills`, async () => {
    let seed = 0x2545f491;
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const committed = new Map<number, number>(); // seq -> serial, as the child reported
    let reusedSeqs = 0;
    let refused = 0;
    let killedBeforeReady = 0;
    for (let kill = 1; kill <= KILLS; kill++) {
      const life = await liveAndDie(kill, random);
      if (!life.ready) killedBeforeReady++;
      refused += life.refused;
      for (const { seq, serial } of life.committed) {
        if (committed.has(seq)) reusedSeqs++;
        committed.set(seq, serial);
      }
    }

    // the daemon starts once more: it recovers what the last kill left open
    const terminal = Terminal.open({ dataDir });
    try {
      expect(terminal.ledger.openUses()).toEqual([]);
      const entries = [...terminal.ledger.entries()].map(parseLedgerEntry);
      const bySeq = new Map(entries.map((e) => [e.seq, e]));
      const serialOf = (card: Uint8Array): number => {
        const record = parseCardRecord(card);
        if (record.kind !== RecordKind.ONE_TIME) throw new Error('use of a card that is not one-time');
        return record.serial;
      };
      let lost = 0;
      for (const [seq, serial] of committed) {
        const entry = bySeq.get(seq);
        if (!entry || entry.type !== EntryType.USE_RESERVED || serialOf(entry.card!) !== serial) lost++;
      }
      // a serial is charged by a reserve and uncharged only by the release of that reserve
      const charged = new Map<number, number>();
      const serialOfReserve = new Map<number, number>();
      let doubled = 0;
      let reserves = 0;
      let recovered = 0;
      for (const entry of entries) {
        if (entry.type === EntryType.USE_RESERVED) {
          reserves++;
          const serial = serialOf(entry.card!);
          if (charged.has(serial)) doubled++;
          charged.set(serial, entry.seq);
          serialOfReserve.set(entry.seq, serial);
        } else if (entry.type === EntryType.USE_RELEASED) {
          if (entry.detail === 'terminal restarted before the device started') recovered++;
          charged.delete(serialOfReserve.get(entry.ref!)!);
        }
      }
      const verification = terminal.ledger.verify();
      console.log(
        `crash test: ${KILLS} kills (${killedBeforeReady} before ready), ${committed.size} records reported committed, ` +
          `${reserves} reserve entries in the ledger, ${charged.size} serials charged, ${recovered} reserved uses released on reopen, ` +
          `${refused} refusals, lost ${lost}, doubled ${doubled}, ledger ${entries.length} entries verify=${verification.ok}`,
      );
      expect(lost).toBe(0);
      expect(doubled).toBe(0);
      expect(reusedSeqs).toBe(0);
      expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
      expect(verification.ok, JSON.stringify(verification.problem)).toBe(true);
      expect(terminal.status().batches[0]!.used).toBe(charged.size);
      expect(committed.size).toBeGreaterThan(0);
    } finally {
      terminal.close();
    }
  }, 60_000 + KILLS * 3_000);
});
