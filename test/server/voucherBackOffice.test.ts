/**
 * The voucher back office as an operator runs it (`tally server voucher ...`, in process, on a SQLite store):
 * certify-key with the mother card file, a batch that needs booking, sent to a community centre, issued to a
 * wallet with its QR image, a slot booked (the voucher signed again with the booking). Each PNG is decoded with
 * jsqr and with Debian's zbarimg (a decoder no one here wrote); what zbarimg read is fed to the scanner pty of a
 * terminal with the trust list the CLI signed; the terminal's ledger reaches the ingest, the voucher is written
 * off in the back office, leaves the wallet and counts in the statistics. Refusals print their codes.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import jsqrModule from 'jsqr';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { startSimScanner } from '../../src/cli/commands/simScanner.js';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { terminalTopic } from '../../src/codecs/mqtt/topics.js';
import type { SwipeTiming } from '../../src/daemon/TerminalDaemon.js';
import { SerialScanner } from '../../src/readers/scanner/SerialScanner.js';
import { DEMO_MOTHER_PIN, Issuer } from '../../src/scenario/CardWorld.js';
import { SerialRig } from '../../src/scenario/SerialRig.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { Ingest } from '../../src/server/ingest/Ingest.js';
import { saveCardFile } from '../../src/sim/cardFile.js';
import { openSerialTransport } from '../../src/transports/SerialPortTransport.js';
import { systemClock } from '../../src/util/clock.js';
import { tally } from '../support/cliLedger.js';
import { useScratch } from '../support/scratch.js';

const { cleanups, scratch } = useScratch();
const CLINIC = 'CLINIC-9';
// jsqr is CommonJS with a default export: the function itself or under .default, by the loader
type JsQr = typeof jsqrModule.default;
const jsQR: JsQr = typeof jsqrModule === 'function' ? (jsqrModule as unknown as JsQr) : jsqrModule.default;

function decodeWithJsqr(path: string): string {
  const png = PNG.sync.read(readFileSync(path));
  const found = jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.byteLength), png.width, png.height);
  if (!found) throw new Error(`jsqr found no QR code in ${path}`);
  return found.data;
}

function decodeWithZbar(path: string): string {
  // --raw: the text alone; -q: no statistics
  return execFileSync('zbarimg', ['--raw', '-q', path], { encoding: 'utf8' }).replace(/\n$/, '');
}

async function ok(...args: string[]): Promise<string> {
  const r = await tally(...args);
  if (r.code !== 0) throw new Error(`tally ${args.slice(0, 3).join(' ')} exited ${r.code}: ${r.err || r.out}`);
  return r.out;
}

describe('the voucher back office from the command line', () => {
  it('issues, books, renders QR images both decoders read, and the scanned voucher comes back written off', { timeout: 120_000 }, async () => {
    const dir = scratch();
    const issuer = await new Issuer(dir).init();
    cleanups.push(() => issuer.close());
    const motherFile = join(dir, 'mother.json');
    saveCardFile(motherFile, issuer.mother);
    const store = ['--store', join(dir, 'server.db')];
    const keyFile = join(dir, 'voucher-key.json');
    const key = ['--voucher-key', keyFile];

    const certified = await ok('server', 'voucher', 'certify-key', '--key', keyFile, '--mother', motherFile, '--mother-pin', DEMO_MOTHER_PIN);
    expect(certified).toContain(`investor root key ${Buffer.from(issuer.motherInfo.rootPublicKey).toString('hex')}`);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);

    expect(await ok('server', 'voucher', 'batch', 'VB-EYE', '--exam', 'OCT', '--clinic', CLINIC, '--count', '3', '--booking', ...store)).toMatch(/vouchers 1000001\.\.1000003 generated/);
    expect(await ok('server', 'voucher', 'send', 'VB-EYE', '--centre', 'CC-XW', '--community', 'Xuanwu', '--count', '2', ...store)).toContain('2 vouchers');

    // a centre that holds nothing cannot issue; the right one can, and the wallet gets a QR code
    const wrong = await tally('server', 'voucher', 'issue', '1000001', '--centre', 'CC-OTHER', '--wallet', 'W-LI', ...key, ...store);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain('VOUCHER_STATE_REFUSED 6305');
    const issuedPng = join(dir, 'issued.png');
    const issued = await ok('server', 'voucher', 'issue', '1000001', '--centre', 'CC-XW', '--wallet', 'W-LI', '--png', issuedPng, ...key, ...store);
    const issuedQr = /QR (TV1:\S.*)$/m.exec(issued)![1]!;
    expect(decodeWithJsqr(issuedPng)).toBe(issuedQr);
    expect(decodeWithZbar(issuedPng)).toBe(issuedQr);
    await ok('server', 'voucher', 'issue', '1000002', '--centre', 'CC-XW', '--wallet', 'W-WANG', ...key, ...store);

    // one seat: the first booking gets it, the second is refused
    const now = Date.now();
    await ok('server', 'voucher', 'slot', 'add', '7', '--clinic', CLINIC, '--department', 'Eye', '--doctor', 'Dr Zhao', '--start', new Date(now - 5 * 60_000).toISOString(), '--minutes', '30', '--capacity', '1', ...store);
    const bookedPng = join(dir, 'booked.png');
    const booked = await ok('server', 'voucher', 'book', '1000001', '--wallet', 'W-LI', '--slot', '7', '--png', bookedPng, ...key, ...store);
    const full = await tally('server', 'voucher', 'book', '1000002', '--wallet', 'W-WANG', '--slot', '7', ...key, ...store);
    expect(full.err).toContain('VOUCHER_SLOT_FULL 6304');
    const notMine = await tally('server', 'voucher', 'book', '1000002', '--wallet', 'W-LI', '--slot', '7', ...key, ...store);
    expect(notMine.err).toContain('VOUCHER_NOT_BOOKABLE 6303');
    const bookedQr = /QR (TV1:\S.*)$/m.exec(booked)![1]!;
    expect(bookedQr).not.toBe(issuedQr);
    expect(decodeWithJsqr(bookedPng)).toBe(bookedQr);
    const scannedText = decodeWithZbar(bookedPng);
    expect(scannedText).toBe(bookedQr);

    const trustFile = join(dir, 'trust.bin');
    await ok('server', 'voucher', 'trust-list', '--out', trustFile, ...key, ...store);

    // the terminal: the trust list installed, the text zbarimg read typed by the simulated scanner on a pty
    const sim = await startSimScanner({}, { out: () => undefined, err: () => undefined });
    cleanups.push(() => sim.stop());
    const scanner = new SerialScanner(await openSerialTransport(sim.daemonPath));
    cleanups.push(() => scanner.close());
    const rig = await SerialRig.start({ dataDir: scratch(), scanner, device: { startDelayMs: 2, runMs: 5 } }, async (r) => {
      await r.provision(issuer.mother, { terminalId: 'T-EYE', clinicCode: CLINIC, pin: DEMO_MOTHER_PIN, expectedRootFingerprint: issuer.motherInfo.rootFingerprint });
    });
    cleanups.push(() => rig.close());
    expect(rig.terminal.adoptTrustList(new Uint8Array(readFileSync(trustFile)))).toMatchObject({ installed: true });
    const decided = new Promise<SwipeTiming>((resolve) => {
      const off = rig.daemon.onSwipe((t) => {
        off();
        resolve(t);
      });
    });
    await sim.command(`scan ${scannedText}`);
    expect((await decided).outcome).toMatchObject({ ok: true, action: 'voucher', serial: 1000001, claimed: 'offline' });
    await rig.daemon.settled();
    await rig.deviceIdle();

    // the ledger reaches the server: written off in the back office, gone from the wallet, counted
    const server = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
    cleanups.push(() => void server.close());
    const ingest = new Ingest({ store: server, rootPublicKey: issuer.motherInfo.rootPublicKey, clock: systemClock });
    const pending = rig.terminal.ledger.pending(1000);
    const outcome = await ingest.handle(terminalTopic('T-EYE', 'report'), encodeReport({ transaction: 1, certificate: rig.terminal.ledger.terminalCertificate(), entries: pending.map((p) => p.raw) }));
    expect(outcome.rejectedEntries).toEqual([]);
    expect(await server.vouchers.voucher(1000001)).toMatchObject({ state: 'written_off', terminalId: 'T-EYE', clinicCode: CLINIC });

    const shown = JSON.parse(await ok('server', 'voucher', 'show', '1000001', '--json', ...key, ...store)) as { state: string; qr?: string };
    expect(shown.state).toBe('written_off');
    expect(shown.qr).toBeUndefined();
    const wallet = JSON.parse(await ok('server', 'voucher', 'wallet', 'W-LI', '--json', ...key, ...store)) as unknown[];
    expect(wallet).toEqual([]);
    expect(JSON.parse(await ok('server', 'voucher', 'wallet', 'W-WANG', '--json', ...key, ...store))).toMatchObject([{ serial: 1000002, state: 'issued', shown: 'to-book' }]);

    await ok('server', 'voucher', 'void', '1000003', '--reason', 'recalled', ...store);
    const byClinic = JSON.parse(await ok('server', 'voucher', 'stats', '--by', 'clinic', '--period', 'day', '--json', ...store)) as Array<{ key: string; writtenOff: number }>;
    expect(byClinic.find((r) => r.key === CLINIC)).toMatchObject({ writtenOff: 1 });
    const byCommunity = JSON.parse(await ok('server', 'voucher', 'stats', '--by', 'community', '--period', 'month', '--json', ...store)) as Array<{ key: string; generated: number; sent: number; voided: number; writtenOff: number }>;
    expect(byCommunity.find((r) => r.key === 'Xuanwu')).toMatchObject({ generated: 2, sent: 2, writtenOff: 1 });
    expect(byCommunity.find((r) => r.key === '')).toMatchObject({ generated: 1, sent: 0, voided: 1 });

    // the next trust list revokes the voided serial
    await ok('server', 'voucher', 'trust-list', '--out', trustFile, ...key, ...store);
    const { verifyTrustList } = await import('../../src/crypto/voucher.js');
    expect(verifyTrustList(new Uint8Array(readFileSync(trustFile)), issuer.motherInfo.rootPublicKey).revoked).toEqual([1000003]);
    expect((await tally('server', 'voucher', 'show', '999', ...store)).err).toContain('VOUCHER_UNKNOWN 6302');
  });
});
