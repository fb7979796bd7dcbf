/**
 * Time from the server, end to end: a real daemon process whose clock reads
 * 1970 (a board whose clock lost power), a real Mosquitto, the real ingest
 * server. Until the server's time arrives the terminal can only hold on to its
 * high-water mark; once it arrives, entries' times, clock trust and batch
 * validity follow the server, `tally terminal status` shows it, and a time
 * message far behind what the terminal has recorded is refused.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { encodeJsonPayload } from '../../src/codecs/mqtt/messages.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { queryStatus } from '../../src/daemon/StatusServer.js';
import { Ledger } from '../../src/ledger/Ledger.js';
import { Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { saveCardFile } from '../../src/sim/cardFile.js';
import type { SimulatedCard } from '../../src/sim/SimulatedCard.js';
import type { TerminalStatus } from '../../src/terminal/Terminal.js';
import { ManualClock, systemClock } from '../../src/util/clock.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { startServerRig, waitFor, type ServerRig } from '../support/syncHarness.js';

const TALLY = join(__dirname, '../../dist/src/cli/tally.js');
const BOARD_CLOCK = join(__dirname, 'boardClock.mjs');
const DAY = 86_400_000;

type LiveStatus = TerminalStatus & {
  lastSwipe?: { at: string; ok: boolean; code?: string };
  reader: { cardPresent: boolean };
  sync: { connected: boolean; refusals: { kind: string; reason: string; detail: string }[] };
};

describe('the daemon takes its time from the server', () => {
  let broker: RunningMosquitto;
  beforeAll(async () => {
    broker = await startMosquitto();
  });
  afterAll(async () => {
    await broker?.close();
  });

  it('with its clock reset to 1970: entries, trust and batch validity follow the server time, never going back past the high-water mark', async () => {
    const dir = tempDir('tally-time-');
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const realStart = Date.now();
    // the terminal was provisioned a month ago, when its clock was right
    const provisionedAt = realStart - 30 * DAY;
    const issuer = await new Issuer(dir).init();
    onTestFinished(() => issuer.close());
    // valid around provisioning, expired ten days ago by the real date
    const old = await issuer.makeBatch('C1', 2, 20, Math.floor((provisionedAt - DAY) / 1000));
    const fresh = await issuer.makeBatch('C1', 2);
    const dataDir = join(dir, 'data');
    const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-TIME', clinicCode: 'C1', clock: new ManualClock(provisionedAt) });
    rig.terminal.close();

    const config = join(dir, 'terminal.yaml');
    writeFileSync(
      config,
      `terminal: {dataDir: ${dataDir}, locale: en}\nreader: {backend: simulated}\nsync: {enabled: true, brokerUrl: '${broker.url}', protocolVersion: 5}\nlog: {level: info}\n`,
    );
    // the board's clock reads 1970-01-01 when the daemon starts
    const child: ChildProcess = spawn(process.execPath, ['--import', BOARD_CLOCK, TALLY, 'terminal', 'run', '--config', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, TALLY_TEST_CLOCK_START_MS: '0' },
    });
    let logs = '';
    child.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const socket = join(dataDir, 'status.sock');
    const status = async (): Promise<LiveStatus> => (await queryStatus(socket)) as LiveStatus;
    let swipes = 0;
    const swipe = async (card: SimulatedCard): Promise<{ ok: boolean; code?: string }> => {
      const file = join(dataDir, 'sim-slot', `card-${++swipes}.json`);
      const before = (await status()).lastSwipe?.at;
      saveCardFile(file, card);
      let outcome: LiveStatus['lastSwipe'];
      await waitFor(async () => ((outcome = (await status())?.lastSwipe), outcome !== undefined && outcome.at !== before), 15_000, `swipe ${swipes}`);
      rmSync(file);
      await waitFor(async () => !(await status()).reader.cardPresent, 5000, 'card removed');
      return outcome!;
    };
    await waitFor(async () => (await status())?.sync?.connected === true, 15_000, 'daemon connected to the broker');

    // 1. no server yet: the clock is the board's (1970), not trusted; validity holds at the high-water mark
    const offline = await status();
    expect(offline.clock.source).toBe('local');
    expect(offline.clockTrusted).toBe(false);
    expect(Date.parse(offline.clock.now)).toBeLessThan(Date.UTC(1971, 0, 1));
    expect(Date.parse(offline.clock.highWaterMark)).toBe(provisionedAt);
    // the old batch was valid at the last time the terminal trusted: it cannot know better yet
    expect(await swipe(old.batchCard)).toMatchObject({ ok: true });

    // 2. the server comes: it answers the terminal's (retained) online status with its time
    const server: ServerRig = await startServerRig({ rootPublicKey: issuer.motherInfo.rootPublicKey, brokerUrl: broker.url, gapCheckMs: 60_000 });
    onTestFinished(() => server.close());
    await waitFor(async () => (await status()).clock.source === 'server', 15_000, 'server time adopted');
    const serverTimeFrom = Date.now();
    const online = await status();
    expect(online.clockTrusted).toBe(true);
    expect(Math.abs(Date.parse(online.clock.now) - Date.now())).toBeLessThan(10_000);
    // the board's own clock is left alone, 56 years behind
    expect(Date.parse(online.clock.localClock)).toBeLessThan(Date.UTC(1971, 0, 1));
    expect(online.clock.offsetMs!).toBeGreaterThan(Date.now() - Date.UTC(1971, 0, 1));
    // the high-water mark moved up to the server's time at once
    expect(Date.parse(online.clock.highWaterMark)).toBeGreaterThanOrEqual(realStart);
    // validity follows the server's date now: the old batch's cards expired ten days ago
    expect(await swipe(old.oneTimeCards[0]!)).toMatchObject({ ok: false, code: 'EXPIRED' });
    expect(await swipe(fresh.batchCard)).toMatchObject({ ok: true });

    // 3. a time message a day behind what the terminal has recorded (a stale message, a server with a wrong clock) is refused
    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
    onTestFinished(() => void client.endAsync());
    await client.publishAsync(terminalTopic('T-TIME', 'time'), Buffer.from(encodeJsonPayload('time', { transaction: 77, serverTime: Date.now() - DAY })), { qos: 1 });
    await waitFor(async () => (await status()).sync.refusals.some((r) => r.kind === 'time'), 10_000, 'stale time refused');
    const afterStale = await status();
    expect(afterStale.sync.refusals.find((r) => r.kind === 'time')).toMatchObject({ reason: 'not-applied' });
    expect(afterStale.sync.refusals.find((r) => r.kind === 'time')!.detail).toContain('behind the time this terminal has already recorded');
    expect(Math.abs(Date.parse(afterStale.clock.now) - Date.now())).toBeLessThan(10_000);

    // 4. `tally terminal status` shows where the time comes from and how wrong the board's clock is
    const shown = spawnSync(process.execPath, [TALLY, 'terminal', 'status', '--config', config], { encoding: 'utf8' });
    expect(shown.status).toBe(0);
    expect(shown.stdout).toMatch(/clock +\S+, trusted, server time since /);
    expect(shown.stdout).toMatch(/local clock +1970-01-01T\S+ \(5\d(\.\d)? years behind the server's time/);

    child.kill('SIGTERM');
    await exited;
    expect(logs).toContain('terminal time follows the server');

    // the ledger: the entry made on the board's clock is marked untrusted, the one after the server's time is trusted and dated by it
    const ledger = Ledger.openReadOnly(join(dataDir, 'terminal.db'), systemClock);
    onTestFinished(() => ledger.close());
    expect(ledger.verify().ok).toBe(true);
    const loads = [...ledger.entries()].map(parseLedgerEntry).filter((e) => e.type === EntryType.BATCH_LOADED);
    expect(loads).toHaveLength(2);
    expect(loads[0]!.clockTrusted).toBe(false);
    expect(loads[0]!.time).toBeLessThan(Date.UTC(1971, 0, 1));
    expect(loads[1]!.clockTrusted).toBe(true);
    expect(loads[1]!.time).toBeGreaterThanOrEqual(serverTimeFrom - 10_000);
    expect(loads[1]!.time).toBeLessThanOrEqual(Date.now());
    // the mark survives the restart: a board back at 1970 cannot bring the old batch back
    expect(ledger.highWaterMark()).toBeGreaterThanOrEqual(realStart);
  }, 90_000);
});
