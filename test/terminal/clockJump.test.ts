/**
 * The clock's high-water mark against a clock that jumps ahead (issue 10, finding 1): a swipe under
 * real `faketime -f '+3650d'` moves no mark (refused CLOCK_AHEAD, recorded as clock.refused); back at
 * the real time the terminal serves at once. A mark already far ahead (a database from before this
 * rule) recovers by the server's signed checkpoint of a ledger holding the clock.refused entry, or
 * by the mother card (tally terminal clock-reset); the verifier checks every reset's proof.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it, onTestFinished } from 'vitest';
import { main } from '../../src/cli/tally.js';
import { loadServerKey } from '../../src/cli/commands/serverKey.js';
import { toHex } from '../../src/codecs/bytes.js';
import { encodeLedgerEntry, encodeLedgerEntryBody, EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { signCheckpoint } from '../../src/crypto/checkpoint.js';
import { sha256, signMessage } from '../../src/crypto/ed25519.js';
import { loadDeviceKey } from '../../src/terminal/deviceKey.js';
import { verifyLedgerEntries } from '../../src/crypto/ledgerChain.js';
import { tempDir } from '../../src/scenario/CardWorld.js';
import { Terminal } from '../../src/terminal/Terminal.js';

const TALLY = join(__dirname, '../../dist/src/cli/tally.js');
const DAY = 86_400_000;

async function tally(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** An investor, a batch of 5 and a provisioned terminal T-1 with the batch loaded and one use, all as card files */
async function world() {
  const dir = tempDir('tally-clockjump-');
  const reg = ['--registry', join(dir, 'issuing.db')];
  const mother = join(dir, 'mother.json');
  expect((await tally('issue', 'mother', '--card', mother, '--pin', '123456', '--investor', 'Acme', ...reg)).code).toBe(0);
  expect((await tally('issue', 'white', '--mother', mother, '--mother-pin', '123456', '--card', join(dir, 'white.json'), '--pin', '4321', '--quota', '2', ...reg)).code).toBe(0);
  expect((await tally('issue', 'batch', '--white', join(dir, 'white.json'), '--white-pin', '4321', '--card', join(dir, 'batch.json'), '--clinic', 'C1', '--count', '5', '--out-dir', join(dir, 'cards'), ...reg)).code).toBe(0);
  const data = join(dir, 'terminal');
  expect((await tally('terminal', 'provision', '--data', data, '--mother', mother, '--pin', '123456', '--terminal-id', 'T-1', '--clinic', 'C1')).code).toBe(0);
  expect((await tally('terminal', 'swipe', '--data', data, '--card', join(dir, 'batch.json'))).code).toBe(0);
  const cards = readdirSync(join(dir, 'cards')).sort().map((f) => join(dir, 'cards', f));
  expect((await tally('terminal', 'swipe', '--data', data, '--card', cards[0]!)).code).toBe(0);
  return { dir, data, mother, cards };
}

function entries(data: string) {
  const db = new Database(join(data, 'terminal.db'), { readonly: true });
  try {
    return (db.prepare('SELECT entry FROM ledger ORDER BY seq').all() as { entry: Buffer }[]).map((r) => parseLedgerEntry(new Uint8Array(r.entry)));
  } finally {
    db.close();
  }
}

function mark(data: string): number {
  const db = new Database(join(data, 'terminal.db'), { readonly: true });
  try {
    return Number((db.prepare("SELECT value FROM meta WHERE key = 'clock_high_water'").get() as { value: Buffer } | undefined)?.value.toString() ?? 0);
  } finally {
    db.close();
  }
}

/** The database shape a terminal bricked before this rule had: its persisted mark ten years ahead */
function brick(data: string): number {
  const ahead = Date.now() + 3650 * DAY;
  const db = new Database(join(data, 'terminal.db'));
  db.prepare("INSERT INTO meta (key, value) VALUES ('clock_high_water', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(Buffer.from(String(ahead)));
  db.close();
  return ahead;
}

describe('a clock that jumps far ahead', () => {
  it("one swipe under faketime -f '+3650d' moves no mark: refused CLOCK_AHEAD, recorded once; back at the real time the terminal serves", async () => {
    const { data, cards } = await world();
    const before = Math.max(mark(data), ...entries(data).map((e) => e.time));
    const ahead = spawnSync('faketime', ['-f', '+3650d', process.execPath, TALLY, 'terminal', 'swipe', '--data', data, '--card', cards[1]!], { encoding: 'utf8', timeout: 60_000 });
    expect(ahead.error).toBeUndefined();
    expect(ahead.status, ahead.stderr).toBe(3);
    expect(ahead.stdout).toContain('[CLOCK_AHEAD]');
    const status = spawnSync('faketime', ['-f', '+3650d', process.execPath, TALLY, 'terminal', 'status', '--data', data], { encoding: 'utf8', timeout: 60_000 });
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/NOT trusted: it jumped far ahead of the high-water mark/);
    expect(status.stdout).toMatch(/clock event +clock\.refused at seq \d+.*local .* days ahead of the mark/);
    // the mark did not move: nothing the jumped clock said is kept
    expect(mark(data)).toBeLessThan(before + DAY);
    const refused = entries(data).filter((e) => e.type === EntryType.CLOCK_REFUSED);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.clockTrusted).toBe(false);

    // back at the real time: granted, trusted, the ledger verifies
    const swipe = await tally('terminal', 'swipe', '--data', data, '--card', cards[1]!);
    expect(swipe.code, swipe.err).toBe(0);
    const back = JSON.parse((await tally('terminal', 'status', '--data', data, '--json')).out);
    expect(back).toMatchObject({ clockTrusted: true, clock: { state: 'trusted', lastEvent: { type: 'clock.refused' } } });
    const verify = await tally('ledger', 'verify', '--data', data);
    expect(verify.code, verify.out).toBe(0);
  });

  it("a mark already far ahead: the server's time is refused and recorded, then its signed checkpoint of that entry resets the mark", async () => {
    const { dir, data, mother, cards } = await world();
    const keyFile = join(dir, 'server-key.json');
    expect((await tally('server', 'certify-key', '--server-id', 'SRV-1', '--key', keyFile, '--mother', mother, '--mother-pin', '123456')).code).toBe(0);
    const bricked = brick(data);
    const terminal = Terminal.open({ dataDir: data });
    onTestFinished(() => terminal.close());
    const root = terminal.identity()!.rootPublicKey;
    const signer = loadServerKey(keyFile, root);
    expect(terminal.status()).toMatchObject({ clockTrusted: false, clock: { state: 'behind' } });

    const now = Date.now();
    expect(() => terminal.adoptServerTime(now)).toThrow(/behind the time this terminal has already recorded/);
    const refusedSeq = terminal.ledger.lastSeq();
    expect(terminal.ledger.lastClockEvent()).toMatchObject({ seq: refusedSeq, type: 'clock.refused' });
    // the same refusal again writes nothing new
    expect(() => terminal.adoptServerTime(now)).toThrow();
    expect(terminal.ledger.lastSeq()).toBe(refusedSeq);

    // a checkpoint of a head before the refusal (an old one, replayed) resets nothing
    const old = signCheckpoint(signer.key, signer.certificate, { terminalId: 'T-1', seq: refusedSeq - 1, headHash: toHex(terminal.ledger.entryHashAt(refusedSeq - 1)!), time: now });
    terminal.adoptCheckpoint(old);
    expect(terminal.ledger.highWaterMark()).toBe(bricked);

    const fresh = signCheckpoint(signer.key, signer.certificate, { terminalId: 'T-1', seq: refusedSeq, headHash: toHex(terminal.ledger.entryHashAt(refusedSeq)!), time: now });
    terminal.adoptCheckpoint(fresh);
    expect(terminal.ledger.highWaterMark()).toBe(now);
    expect(terminal.ledger.lastClockEvent()).toMatchObject({ seq: refusedSeq + 1, type: 'clock.reset', time: now });
    expect(terminal.status()).toMatchObject({ clockTrusted: true, clock: { state: 'trusted', source: 'server' } });
    terminal.close();

    expect((await tally('terminal', 'swipe', '--data', data, '--card', cards[1]!)).code).toBe(0);
    const verify = await tally('ledger', 'verify', '--data', data);
    expect(verify.code, verify.out).toBe(0);
    const python = spawnSync('python3', [join(__dirname, '../../scripts/verify_ledger.py'), '--db', join(data, 'terminal.db'), '--root', toHex(root)], { encoding: 'utf8' });
    expect(python.status, python.stdout + python.stderr).toBe(0);
  });

  it('a mark already far ahead: tally terminal clock-reset with the mother card and its PIN resets it; the statement is good once', async () => {
    const { data, mother, cards } = await world();
    brick(data);
    const refused = await tally('terminal', 'swipe', '--data', data, '--card', cards[1]!);
    expect(refused.code).toBe(3);
    expect(refused.out).toContain('[EXPIRED]');
    const wrongPin = await tally('terminal', 'clock-reset', '--data', data, '--mother', mother, '--pin', '999999');
    expect(wrongPin.err).toContain('PIN_WRONG');
    const reset = await tally('terminal', 'clock-reset', '--data', data, '--mother', mother, '--pin', '123456');
    expect(reset.code, reset.err).toBe(0);
    expect(reset.out).toMatch(/clock high-water mark .* -> .* \(clock\.reset, seq \d+, signed by the mother card\)/);
    const status = await tally('terminal', 'status', '--data', data);
    expect(status.out).toMatch(/clock event +clock\.reset at seq \d+.*mother card/);
    expect(JSON.parse((await tally('terminal', 'status', '--data', data, '--json')).out)).toMatchObject({ clockTrusted: true });
    expect((await tally('terminal', 'swipe', '--data', data, '--card', cards[1]!)).code).toBe(0);
    expect((await tally('ledger', 'verify', '--data', data)).code).toBe(0);

    // the verifier checks the proof: the same statement replayed after a later entry does not hold
    const all = entries(data);
    const resetEntry = all.find((e) => e.type === EntryType.CLOCK_RESET)!;
    const last = all.at(-1)!;
    const key = loadDeviceKey(data)!;
    const body = encodeLedgerEntryBody({ seq: last.seq + 1, prevHash: sha256(last.raw), type: EntryType.CLOCK_RESET, time: resetEntry.time, clockTrusted: true, terminalId: 'T-1', card: resetEntry.card!, detail: 'replayed' });
    const replayed = encodeLedgerEntry(body, signMessage(key, body));
    const terminal = Terminal.open({ dataDir: data });
    const root = terminal.identity()!.rootPublicKey;
    terminal.close();
    expect(verifyLedgerEntries(all.map((e) => e.raw), root)).toMatchObject({ ok: true });
    // the Python verifier, written from the spec, agrees
    const python = spawnSync('python3', [join(__dirname, '../../scripts/verify_ledger.py'), '--db', join(data, 'terminal.db'), '--root', toHex(root)], { encoding: 'utf8' });
    expect(python.status, python.stdout + python.stderr).toBe(0);
    expect(verifyLedgerEntries([...all.map((e) => e.raw), replayed], root)).toMatchObject({ ok: false, problem: { seq: last.seq + 1, code: 'CLOCK_RESET_INVALID' } });
  });
});
