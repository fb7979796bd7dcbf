/**
 * The service's own stop path: SIGTERM (what systemd sends) at random moments
 * around swipes. Every stop must be clean (exit 0), and afterwards the ledger
 * verifies, no serial is charged twice, and every use the daemon reported is
 * in the ledger.
 */
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { queryStatus } from '../../src/daemon/StatusServer.js';
import { Ledger } from '../../src/ledger/Ledger.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { saveCardFile } from '../../src/sim/cardFile.js';
import { systemClock } from '../../src/util/clock.js';

const TALLY = join(__dirname, '../../dist/src/cli/tally.js');
const STOPS = Number(process.env.STOP_PATH_STOPS ?? 8);

describe('SIGTERM through the service stop path', () => {
  it(`stops cleanly ${STOPS} times at random moments around swipes, losing and doubling nothing`, async () => {
    const dir = tempDir('tally-stop-');
    const issuer = await new Issuer(dir).init();
    const batch = await issuer.makeBatch('C1', STOPS);
    const dataDir = join(dir, 'data');
    const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-STOP', clinicCode: 'C1' });
    await rig.swipe(batch.batchCard);
    rig.terminal.close();
    const config = join(dir, 'terminal.yaml');
    writeFileSync(config, `terminal: {dataDir: ${dataDir}, locale: en}\nreader: {backend: simulated}\nlog: {level: info}\n`);
    const slot = join(dataDir, 'sim-slot');
    const socket = join(dataDir, 'status.sock');

    let cleanStops = 0;
    let grantedSeen = 0;
    for (let i = 0; i < STOPS; i++) {
      const child = spawn(process.execPath, [TALLY, 'terminal', 'run', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      onTestFinished(() => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      for (let t = 0; t < 200 && !(await queryStatus(socket, 200)); t++) await new Promise((r) => setTimeout(r, 25));
      // card i goes in; SIGTERM lands somewhere between before the read and the device session
      saveCardFile(join(slot, `card-${i}.json`), batch.oneTimeCards[i]!);
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 500)));
      const live = (await queryStatus(socket, 500)) as { lastSwipe?: { ok: boolean } } | undefined;
      if (live?.lastSwipe?.ok) grantedSeen++;
      child.kill('SIGTERM');
      const code = await exited;
      if (code === 0 && stderr.includes('stopped cleanly')) cleanStops++;
      else throw new Error(`stop ${i}: exit ${code}\n${stderr}`);
      rmSync(join(slot, `card-${i}.json`), { force: true });
    }

    // reopening runs the recovery of uses whose device session the stop interrupted
    const reopened = await provisionTerminal(issuer, { dataDir, terminalId: 'T-STOP', clinicCode: 'C1' });
    const ledger = reopened.terminal.ledger;
    const verification = ledger.verify();
    expect(cleanStops).toBe(STOPS);
    expect(verification.ok).toBe(true);
    expect(ledger.openUses()).toHaveLength(0);
    const charged = verification.uses - verification.releases;
    // every grant the daemon reported is in the ledger (a grant the stop interrupted before the device started is released, not lost)
    expect(verification.uses).toBeGreaterThanOrEqual(grantedSeen);
    expect(charged).toBeLessThanOrEqual(STOPS);
    // every card not charged can still be used; every charged one is refused
    let grantedNow = 0;
    for (const card of batch.oneTimeCards) if ((await reopened.swipe(card)).ok) grantedNow++;
    expect(charged + grantedNow).toBe(STOPS);
    reopened.terminal.close();
    const check = Ledger.openReadOnly(join(dataDir, 'terminal.db'), systemClock);
    expect(check.verify()).toMatchObject({ ok: true });
    check.close();
    issuer.close();
    console.log(`stop path: ${STOPS} SIGTERMs, ${cleanStops} clean, ${grantedSeen} grants seen, ${verification.uses} uses recorded, ${verification.releases} released, ${charged} charged before the stops, ${grantedNow} after; lost 0, doubled 0`);
  }, 180_000);
});
