import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { queryStatus } from '../../src/daemon/StatusServer.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { saveCardFile } from '../../src/sim/cardFile.js';
import { Ledger } from '../../src/ledger/Ledger.js';
import { systemClock } from '../../src/util/clock.js';

const TALLY = join(__dirname, '../../dist/src/cli/tally.js');

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('tally terminal run (the daemon as a process)', () => {
  it('serves live status, handles a swipe on the simulated board, and stops cleanly on SIGTERM', async () => {
    const dir = tempDir('tally-run-');
    const issuer = await new Issuer(dir).init();
    const batch = await issuer.makeBatch('C1', 3);
    const dataDir = join(dir, 'data');
    const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-RUN', clinicCode: 'C1' });
    rig.terminal.close();
    const config = join(dir, 'terminal.yaml');
    writeFileSync(config, `terminal: {dataDir: ${dataDir}, locale: en}\nreader: {backend: simulated}\nlog: {level: info}\n`);

    const child = spawn(process.execPath, [TALLY, 'terminal', 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    // a failing expectation must not leave the daemon running
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let logs = '';
    child.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
    const exited = exitOf(child);
    const socket = join(dataDir, 'status.sock');
    const first = (await until('status socket', () => queryStatus(socket))) as Record<string, unknown>;
    expect(first).toMatchObject({ terminalId: 'T-RUN', provisioned: true, reader: { backend: 'simulated', state: 'ready', cardPresent: false } });

    saveCardFile(join(dataDir, 'sim-slot', 'batch.json'), batch.batchCard);
    // the swipe's outcome is reported after the ledger commit and the card's marker write
    await until('swipe reported', async () => ((await queryStatus(socket)) as { lastSwipe?: unknown }).lastSwipe);
    const after = (await queryStatus(socket)) as { lastSwipe: { ok: boolean }; batches: { count: number }[]; reader: { cardPresent: boolean } };
    expect(after.lastSwipe.ok).toBe(true);
    expect(after.batches).toHaveLength(1);
    expect(after.reader.cardPresent).toBe(true);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(logs).toContain('stopped cleanly');
    expect(logs).not.toContain('246810');
    expect(existsSync(socket)).toBe(false);
    const ledger = Ledger.openReadOnly(join(dataDir, 'terminal.db'), systemClock);
    expect(ledger.verify().ok).toBe(true);
    expect(ledger.batches()).toHaveLength(1);
    ledger.close();
    issuer.close();
  });

  it('refuses a bad configuration with every wrong field listed', async () => {
    const dir = tempDir('tally-run-');
    const config = join(dir, 'bad.yaml');
    writeFileSync(config, 'terminal: {locale: fr}\nreader: {backend: usb}\nnonsense: 1\n');
    const child = spawn(process.execPath, [TALLY, 'terminal', 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    expect(await exitOf(child)).toBe(78);
    expect(err).toContain('3 problems');
    for (const field of ['terminal.locale', 'reader.backend', 'nonsense']) expect(err).toContain(field);
  });
});
