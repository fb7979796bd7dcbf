/**
 * The demo: the whole story of the card hierarchy on simulated cards, told
 * for a person. Issuing, factory provisioning, batch loading, swipes, and the
 * refusals a clinic will meet, one service voucher from the back office to the
 * terminal, then a summary checked against the ledger.
 */
import { toHex } from '../codecs/bytes.js';
import { operatorMessage, isTallyError, type Locale, TallyError } from '../errors.js';
import { SimulatedCard } from '../sim/SimulatedCard.js';
import type { SwipeOutcome } from '../terminal/Terminal.js';
import type { ServerStore } from '../server/ServerStore.js';
import { silentLogger } from '../util/logger.js';
import { DEMO_MOTHER_PIN, Issuer, tempDir } from './CardWorld.js';
import { startEmbeddedServer } from './embeddedServer.js';
import { SerialRig } from './SerialRig.js';
import { startTerminalSync, type TerminalSync } from '../daemon/startSync.js';
import { sha256 } from '../crypto/ed25519.js';
import { bytesEqual } from '../codecs/bytes.js';
import { randomBytes } from 'node:crypto';
import { plural } from '../util/plural.js';
import { directChannel } from '../card/ApduChannel.js';
import { KeyRole } from '../codecs/voucher.js';
import { generateSigningKey } from '../crypto/ed25519.js';
import { certifyVoucherKey } from '../issuing/certifyVoucherKey.js';
import { VoucherOffice } from '../server/voucher/VoucherOffice.js';
import { addUser, saveAgent } from '../server/access/accessAdmin.js';
import { issueLoginToken } from '../server/access/consoleAuth.js';

export interface DemoOptions {
  readonly locale?: Locale;
  readonly out: (line: string) => void;
  readonly workDir?: string;
  readonly cards?: number;
  /** Print every serial frame in hex */
  readonly trace?: boolean;
  /**
   * Keep the server and its dashboard up at the end (npm run demo -- --serve): the dashboard's address and a
   * one-time login for the demo's top authority are printed, then `serve` is awaited (the CLI: until Ctrl-C)
   */
  readonly serve?: { readonly port?: number; readonly until: (dashboard: { url: string; loginUrl: string; store: ServerStore }) => Promise<void> };
}

export interface DemoSummary {
  readonly uses: number;
  readonly refusals: Record<string, number>;
  readonly batchRemaining: number;
  readonly ledgerEntries: number;
  readonly ledgerIntact: boolean;
  readonly workDir: string;
  /** The server holds exactly the terminal's entries, and counts the same uses */
  readonly serverMatches: boolean;
}

const OK = '  ✓';
const LABEL_WIDTH = 34;
const NO = '  ✗';

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const say = options.out;
  const locale = options.locale ?? 'en';
  const workDir = options.workDir ?? tempDir('tally-demo-');
  const count = options.cards ?? 20;
  const clinic = 'CLINIC-001';
  say('tallystick demo: the card hierarchy end to end, on simulated cards');
  say(`working folder: ${workDir}`);
  say('');

  say('1. Issuing station (the investor)');
  const issuer = new Issuer(workDir);
  await issuer.init({ investor: 'Demo Investor', whiteQuota: 10 });
  say(`${OK} mother card personalised: root key made on the card, PIN set (fingerprint ${issuer.motherInfo.rootFingerprint.slice(0, 16)}...)`);
  say(`${OK} white card made with a quota of 10 batch cards, signed by the mother card`);
  const batch = await issuer.makeBatch(clinic, count, 90);
  say(`${OK} batch card ${batch.result.batchNo} for ${clinic}: ${batch.result.written.length} one-time cards, serials 1..${count}, valid 90 days`);
  const otherClinic = await issuer.makeBatch('CLINIC-999', 3, 90);
  say(`${OK} batch card ${otherClinic.result.batchNo} for another clinic, CLINIC-999`);
  say('');

  say('2. Factory: provisioning terminal T-0001 with the mother card in its own reader');
  say('   (the terminal talks to its microcontroller board over the serial protocol; --trace shows the frames)');
  const dataDir = `${workDir}/terminal-T-0001`;
  const request = { terminalId: 'T-0001', clinicCode: clinic, expectedRootFingerprint: issuer.motherInfo.rootFingerprint };
  const rig = await SerialRig.start(
    { dataDir, locale, ...(options.trace ? { trace: (line: string) => say(`      ${line}`) } : {}) },
    async (r) => {
      try {
        await r.provision(issuer.mother, { ...request, pin: '000000' });
      } catch (err) {
        if (!isTallyError(err, 'PIN_WRONG')) throw err;
        const left = Number(err.context.triesLeft);
        const tries = locale === 'zh' ? `剩余 ${left} 次，用完后卡片锁定` : `${left} ${left === 1 ? 'try' : 'tries'} left before the card blocks`;
        say(`${NO} wrong mother-card PIN refused: ${operatorMessage('PIN_WRONG', locale)} (${tries})`);
      }
      await r.provision(issuer.mother, { ...request, pin: DEMO_MOTHER_PIN });
    },
  );
  say(`${OK} right PIN: the terminal made its device key and the mother card signed its certificate (the PIN is never stored)`);
  say('');

  say("3. The investor's server, and the terminal's link to it");
  const server = await startEmbeddedServer({ dir: workDir, rootPublicKey: issuer.motherInfo.rootPublicKey, ...(options.serve ? { httpPort: options.serve.port ?? 0 } : {}) });
  say(`${OK} MQTT broker on ${server.broker.url} (in-process; production: Mosquitto with mutual TLS), ingest server with its SQLite store`);
  const startLink = (): TerminalSync =>
    startTerminalSync({ ledger: rig.terminal.ledger, dataDir, settings: { brokerUrl: server.broker.url, protocolVersion: 4, maxEntriesPerSecond: 100_000, pollMs: 50 }, log: silentLogger });
  let link: TerminalSync | undefined = startLink();
  rig.daemon.onSwipe(() => link?.client.notify());
  say(`${OK} terminal reporting its ledger over MQTT (QoS 1, application-level acks from the server)`);
  say('');

  // the labels fit the column: the messages start in one column
  const show = (label: string, outcome: SwipeOutcome): void => {
    if (label.length > LABEL_WIDTH) throw new TallyError('INTERNAL', `demo label wider than its column: ${label}`);
    say(`${outcome.ok ? OK : NO} ${label.padEnd(LABEL_WIDTH)} ${outcome.message}${outcome.ok ? '' : ` [${outcome.code}]`}`);
  };

  say('4. At the clinic');
  show('one-time card before any batch', await rig.swipe(batch.oneTimeCards[0]!.clone()));
  show(`batch card ${batch.result.batchNo}`, await rig.swipe(batch.batchCard));
  show(`batch card ${batch.result.batchNo} again`, await rig.swipe(batch.batchCard));
  show('batch card of CLINIC-999', await rig.swipe(otherClinic.batchCard));
  const half = Math.floor(count / 2);
  for (let serial = 1; serial <= half; serial++) show(`one-time card ${serial}`, await rig.swipe(batch.oneTimeCards[serial - 1]!));
  show('one-time card 3 replayed', await rig.swipe(batch.oneTimeCards[2]!));
  show('copy of card 5 (bytes, not key)', await rig.swipe(batch.oneTimeCards[4]!.copyWithoutKey()));
  show('forged card (serial altered)', await rig.swipe(forge(batch.oneTimeCards[half]!)));
  show('one-time card of CLINIC-999', await rig.swipe(otherClinic.oneTimeCards[0]!));
  show('the white card', await rig.swipe(issuer.white));
  await link.stop();
  link = undefined;
  say(`  -- the GPRS link goes down: the terminal keeps deciding offline; ${plural(rig.terminal.ledger.pendingCount(), 'entry', 'entries')} waiting in its outbox --`);
  for (let serial = half + 1; serial <= count; serial++) show(`one-time card ${serial}`, await rig.swipe(batch.oneTimeCards[serial - 1]!));
  show(`one-time card ${count} again`, await rig.swipe(batch.oneTimeCards[count - 1]!));
  const backlog = rig.terminal.ledger.pendingCount();
  link = startLink();
  await link.client.drained(30_000);
  await server.ingest.idle();
  say(`  -- the link is back: ${plural(backlog, 'entry', 'entries')} queued offline delivered and acknowledged --`);
  say('');

  await voucherJourney(issuer, server, rig, clinic, say, show, () => link?.client.notify());
  await link.client.drained(30_000);
  await server.ingest.idle();

  const status = rig.terminal.status();
  const verification = rig.terminal.ledger.verify();
  const loaded = status.batches[0];
  const summary: DemoSummary = {
    uses: verification.uses - verification.releases,
    refusals: status.refusals,
    batchRemaining: loaded?.remaining ?? 0,
    ledgerEntries: verification.entries,
    ledgerIntact: verification.ok,
    workDir,
    serverMatches: false,
  };
  say('6. Summary');
  say(`  uses granted        ${summary.uses}`);
  say(`  refusals by reason  ${Object.entries(summary.refusals).map(([code, n]) => `${code} ${n}`).join(', ')}`);
  say(`  batch ${loaded?.batchNo ?? '-'} remaining   ${summary.batchRemaining} of ${loaded?.count ?? 0}`);
  say(`  ledger              ${summary.ledgerEntries} entries, ${summary.ledgerIntact ? 'chain and signatures verified' : `BROKEN at ${verification.problem?.seq}: ${verification.problem?.problem}`}`);
  const serverView = await compareWithServer(server.store, rig.terminal.ledger.entries(), 'T-0001');
  say(`  outbox              ${plural(rig.terminal.ledger.pendingCount(), 'entry', 'entries')} waiting for the server`);
  say(`  server              ${serverView.stored} entries stored, ${serverView.matching} identical to the terminal's; ${plural(serverView.serverUses, 'card use')} counted; alerts ${serverView.alerts}`);
  const voucherStats = await server.store.vouchers.periodStatistics({ by: 'clinic', period: 'month', from: 0, until: Math.floor(Date.now() / 1000) + 86_400 });
  const writtenOff = voucherStats.filter((r) => r.key === clinic).reduce((n, r) => n + r.writtenOff, 0);
  const completed = voucherStats.filter((r) => r.key === clinic).reduce((n, r) => n + r.completed, 0);
  say(`  vouchers            ${writtenOff} written off at ${clinic} in the back office (from the terminal's ledger, claimed offline), ${completed} exam complete (its use.completed); the wallet no longer lists it; the income split charges it as a use`);
  // the server counts card uses in its daily roll-up and vouchers in the back office: together the terminal's uses
  (summary as { serverMatches: boolean }).serverMatches = serverView.stored === verification.entries && serverView.matching === verification.entries && serverView.serverUses + writtenOff === summary.uses;
  await link.stop();
  if (options.serve && server.ingest.httpUrl) await serveDashboard(server.store, server.ingest.httpUrl, clinic, say, options.serve.until);
  await server.close();
  await rig.close();
  say(`  serial link         ${rig.backend.stats.framesOut} frames out, ${rig.backend.stats.framesIn} in, ${rig.firmware.stats.apdus} APDUs to cards, ${rig.backend.stats.resends} resends`);
  say(`  terminal display    "${rig.firmware.panel.lines.join(' / ')}"`);
  say('');
  // npx runs the project's own bin from anywhere inside the repository (npm run tally -- works only at its root)
  say(`Try: npx tally ledger show --data ${dataDir}`);
  say(`     npx tally ledger verify --data ${dataDir}`);

  issuer.close();
  return summary;
}

/**
 * One service voucher end to end (seed 004): the back office's key certified by the mother card, a batch that
 * needs booking, sent to a community centre, issued to a wallet, a slot booked (the voucher signed again), the
 * terminal given the trust list; scanned, written off offline in the ledger, and written off in the back office
 * when the entry reaches the server.
 */
async function voucherJourney(
  issuer: Issuer,
  server: Awaited<ReturnType<typeof startEmbeddedServer>>,
  rig: SerialRig,
  clinic: string,
  say: (line: string) => void,
  show: (label: string, outcome: SwipeOutcome) => void,
  notify: () => void,
): Promise<void> {
  say('5. A service voucher: back office, community centre, wallet, booking, terminal');
  const now = Math.floor(Date.now() / 1000);
  const pair = generateSigningKey();
  const { certificate } = await certifyVoucherKey(directChannel(issuer.mother), DEMO_MOTHER_PIN, {
    keyId: 1,
    roles: KeyRole.VOUCHERS | KeyRole.TRUST_LISTS,
    validFrom: now - 86_400,
    validUntil: now + 365 * 86_400,
    publicKey: pair.publicKey,
    issuer: 'demo back office',
  });
  const office = new VoucherOffice(server.store.vouchers, { key: pair.privateKey, certificate });
  say(`${OK} voucher key ${certificate.keyId} certified by the mother card (tally server voucher certify-key)`);
  const made = await office.generate({ batchId: 'VB-DEMO', examType: 'OCT', scopeKind: 1, scope: clinic, count: 5, validFrom: now - 60, validUntil: now + 30 * 86_400, bookingRequired: true });
  await office.send('VB-DEMO', 'CC-XUANWU', 'Xuanwu', 5);
  say(`${OK} batch VB-DEMO: vouchers ${made.first}..${made.last} for an OCT exam at ${clinic}, booking required, sent to community centre CC-XUANWU`);
  await office.issue(made.first, 'CC-XUANWU', 'W-LI-MEI');
  await server.store.vouchers.addSlot({ slotId: 1, clinicCode: clinic, department: 'Ophthalmology', doctor: 'Dr Zhao', start: now - 5 * 60, end: now + 25 * 60, capacity: 1 });
  const booked = await office.book(made.first, 'W-LI-MEI', 1);
  say(`${OK} voucher ${made.first} issued to wallet W-LI-MEI, slot 1 booked (capacity 1): the wallet shows its QR code (${booked.qr!.length} characters, TV1: Base45)`);
  rig.terminal.adoptTrustList(await office.trustList());
  say(`${OK} the terminal holds the trust list the back office signed`);
  show(`voucher ${made.first} scanned`, await rig.terminal.handleVoucher(booked.qr!));
  await rig.deviceIdle();
  show(`voucher ${made.first} scanned again`, await rig.terminal.handleVoucher(booked.qr!));
  notify();
  const other = await office.issue(made.first + 1, 'CC-XUANWU', 'W-WANG');
  show(`voucher ${made.first + 1} (not booked)`, await rig.terminal.handleVoucher((other.qr ?? '')));
  say('');
}

/**
 * The demo's console: its clinic in the registry, an agent that placed the terminal there, and the investor's top
 * authority as a user with a random password nobody is told (no default password): the printed one-time link logs in
 */
async function serveDashboard(store: ServerStore, url: string, clinic: string, say: (line: string) => void, until: NonNullable<DemoOptions['serve']>['until']): Promise<void> {
  const now = Date.now();
  await store.registry.putClinic({ clinicCode: clinic, name: 'Demo Eye Clinic', addedAt: now });
  await saveAgent(store, { agentCode: 'DEMO-AGENT', name: 'Demo Sales Agent', share: 0.1, clinics: [clinic] }, now);
  await addUser(store, { username: 'demo-authority', role: 'authority', password: randomBytes(24).toString('base64url') }, now, { username: 'demo', role: 'operator', address: 'demo' });
  const loginUrl = `${url}/api/session/once?token=${await issueLoginToken(store, 'demo-authority', now)}`;
  say('');
  say(`Dashboard: ${url}/`);
  say(`One-time login for the demo's top authority (valid 10 minutes, once): ${loginUrl}`);
  say('Serving until Ctrl-C.');
  await until({ url, loginUrl, store });
}

/** A copy of a one-time card with one byte of its record changed: the signature no longer matches */
function forge(card: SimulatedCard): SimulatedCard {
  const state = card.snapshot();
  const record = Buffer.from(state.record!, 'hex');
  // the serial is the u32 just before the 66-byte signature TLV; raise it by 100
  const serialOffset = record.length - 66 - 4;
  record.writeUInt32BE(record.readUInt32BE(serialOffset) + 100, serialOffset);
  return SimulatedCard.fromState({ ...state, record: toHex(record), chipUid: toHex(new Uint8Array(8).fill(0xee)) });
}

/** The server's view of one terminal against the terminal's own ledger, entry for entry */
async function compareWithServer(store: ServerStore, terminalEntries: Iterable<Uint8Array>, terminalId: string) {
  const local = [...terminalEntries];
  const stored = await store.entries(terminalId, 1, local.length + 100);
  let matching = 0;
  for (const row of stored) {
    const mine = local[row.seq - 1];
    if (mine && bytesEqual(sha256(mine), row.hash) && bytesEqual(mine, row.raw)) matching++;
  }
  const serverUses = (await store.usesPerDay()).filter((d) => d.terminalId === terminalId).reduce((n, d) => n + d.uses, 0);
  return { stored: stored.length, matching, serverUses, alerts: (await store.alerts()).length };
}
