/**
 * A voucher scanned for real: `tally sim scanner` on a socat pty pair, the
 * daemon's serial scanner on the other end (reader.scanner.path), the terminal
 * beside a simulated relay board. The scan closes the relay, the ledger holds
 * the write-off and the device session by ref, the display says so; a barcode
 * and a scanner without AIM identifiers are refused on the display.
 */
import { describe, expect, it } from 'vitest';
import { startSimScanner } from '../../src/cli/commands/simScanner.js';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { operatorMessage } from '../../src/errors.js';
import type { SwipeTiming } from '../../src/daemon/TerminalDaemon.js';
import { SerialScanner } from '../../src/readers/scanner/SerialScanner.js';
import { DEMO_MOTHER_PIN, Issuer } from '../../src/scenario/CardWorld.js';
import { SerialRig } from '../../src/scenario/SerialRig.js';
import { VoucherAuthority } from '../../src/scenario/VoucherWorld.js';
import { openSerialTransport } from '../../src/transports/SerialPortTransport.js';
import { useScratch } from '../support/scratch.js';

const { cleanups, scratch } = useScratch();
const CLINIC = 'CLINIC-7';

describe('a voucher through the serial scanner', () => {
  it('scans on a pty, writes off, runs the device and shows the outcome; refuses a barcode and a line without AIM', async () => {
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
    const sim = await startSimScanner({}, io);
    cleanups.push(() => sim.stop());
    const scanner = new SerialScanner(await openSerialTransport(sim.daemonPath));
    cleanups.push(() => scanner.close());
    const issuer = await new Issuer(scratch()).init();
    cleanups.push(() => issuer.close());
    const rig = await SerialRig.start({ dataDir: scratch(), scanner, locale: 'zh', device: { startDelayMs: 2, runMs: 5 } }, async (r) => {
      await r.provision(issuer.mother, { terminalId: 'T-SCAN', clinicCode: CLINIC, pin: DEMO_MOTHER_PIN, expectedRootFingerprint: issuer.motherInfo.rootFingerprint });
    });
    cleanups.push(() => rig.close());
    const authority = await VoucherAuthority.create(issuer);
    rig.terminal.adoptTrustList(authority.trustList());
    const v = authority.voucher({ scope: CLINIC });
    const decided = new Promise<SwipeTiming>((resolve) => {
      const off = rig.daemon.onSwipe((t) => {
        off();
        resolve(t);
      });
    });
    sim.scanner.splitWrites = true;
    await sim.command(`scan ${v.qr}`);
    const timing = await decided;
    expect(timing.outcome).toMatchObject({ ok: true, action: 'voucher', serial: v.fields.serial });
    await rig.daemon.settled();
    expect(rig.firmware.panel.lines.join(' ')).toContain(`券号 ${v.fields.serial}`);
    await rig.deviceIdle();
    const reserveSeq = timing.outcome.ok ? timing.outcome.seq : 0;
    const types = [reserveSeq, reserveSeq + 1, reserveSeq + 2].map((seq) => parseLedgerEntry(rig.terminal.ledger.entryAt(seq)!).type);
    expect(types).toEqual([EntryType.VOUCHER_RESERVED, EntryType.USE_STARTED, EntryType.USE_COMPLETED]);
    expect(rig.terminal.ledger.voucherUse(v.fields.serial)).toMatchObject({ state: 'completed' });

    for (const line of ['barcode 4006381333931', 'no-aim TV1:ABC']) {
      const refused = new Promise<void>((resolve) => {
        const off = scanner.onRefused(() => {
          off();
          resolve();
        });
      });
      await sim.command(line);
      await refused;
      await rig.daemon.settled();
      expect(rig.firmware.panel.lines.join(' ')).toContain(operatorMessage('SCAN_NOT_QR', 'zh'));
    }
    // the same voucher again: refused on the display, nothing written
    const again = new Promise<SwipeTiming>((resolve) => {
      const off = rig.daemon.onSwipe((t) => {
        off();
        resolve(t);
      });
    });
    const seq = rig.terminal.ledger.lastSeq();
    await sim.command(`scan ${v.qr}`);
    expect((await again).outcome).toMatchObject({ ok: false, code: 'VOUCHER_WRITTEN_OFF' });
    await rig.daemon.settled();
    expect(rig.firmware.panel.lines.join(' ')).toContain(operatorMessage('VOUCHER_WRITTEN_OFF', 'zh'));
    expect(rig.terminal.ledger.lastSeq()).toBe(seq);
  });
});
