/**
 * Where the clinic checks identity (voucher.requireIdentity), through the real scanner line: `tally sim scanner`
 * on a socat pty pair, the daemon's serial scanner on the other end, a terminal beside a simulated relay board.
 * The voucher verifies and waits for its holder's personal QR code (wallet-qr.md §5); the terminal checks that
 * code offline (a voucher key of its trust list, the lifetime, the wallet the voucher is bound to) and refuses a
 * code scanned first, another person's, an expired one, a forged one and a voucher bound to no wallet, each with
 * its code and both messages, writing nothing; the holder's own code writes the voucher off and runs the device.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { startSimScanner } from '../../src/cli/commands/simScanner.js';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { decodeWalletQrText, encodeWalletQrText } from '../../src/codecs/walletQr.js';
import { signWalletQr, walletBinding } from '../../src/crypto/walletQr.js';
import { operatorMessage, type ErrorName } from '../../src/errors.js';
import type { SwipeTiming } from '../../src/daemon/TerminalDaemon.js';
import { SerialScanner } from '../../src/readers/scanner/SerialScanner.js';
import { DEMO_MOTHER_PIN, Issuer } from '../../src/scenario/CardWorld.js';
import { SerialRig } from '../../src/scenario/SerialRig.js';
import { VoucherAuthority } from '../../src/scenario/VoucherWorld.js';
import type { SwipeOutcome } from '../../src/terminal/Terminal.js';
import { openSerialTransport } from '../../src/transports/SerialPortTransport.js';
import { useScratch } from '../support/scratch.js';

const { cleanups, scratch } = useScratch();
const CLINIC = 'CLINIC-7';

describe('a voucher and its holder through the serial scanner', () => {
  it("writes off only with the holder's own personal QR code; refuses the others with their codes", { timeout: 60_000 }, async () => {
    const sim = await startSimScanner({}, { out: () => undefined, err: () => undefined });
    cleanups.push(() => sim.stop());
    const scanner = new SerialScanner(await openSerialTransport(sim.daemonPath));
    cleanups.push(() => scanner.close());
    const issuer = await new Issuer(scratch()).init();
    cleanups.push(() => issuer.close());
    const rig = await SerialRig.start({ dataDir: scratch(), scanner, locale: 'zh', voucherIdentityRequired: true, device: { startDelayMs: 2, runMs: 5 } }, async (r) => {
      await r.provision(issuer.mother, { terminalId: 'T-ID', clinicCode: CLINIC, pin: DEMO_MOTHER_PIN, expectedRootFingerprint: issuer.motherInfo.rootFingerprint });
    });
    cleanups.push(() => rig.close());
    const authority = await VoucherAuthority.create(issuer);
    rig.terminal.adoptTrustList(authority.trustList());
    const now = Math.floor(Date.now() / 1000);
    const personalQr = (walletId: string, issuedAt = now, key = authority.voucherKey) =>
      signWalletQr(key.key, { keyId: key.certificate.keyId, issuedAt, lifetime: 120, nonce: randomBytes(8), walletId }).text;

    const scan = async (text: string): Promise<SwipeOutcome> => {
      const decided = new Promise<SwipeTiming>((resolve) => {
        const off = rig.daemon.onSwipe((t) => {
          off();
          resolve(t);
        });
      });
      await sim.command(`scan ${text}`);
      const { outcome } = await decided;
      await rig.daemon.settled();
      return outcome;
    };
    const refused = async (text: string, code: ErrorName) => {
      const seq = rig.terminal.ledger.lastSeq();
      const outcome = await scan(text);
      expect(outcome).toMatchObject({ ok: false, code, message: operatorMessage(code, 'zh') });
      expect(operatorMessage(code, 'en')).not.toBe(operatorMessage(code, 'zh'));
      expect(rig.firmware.panel.lines.join(' ')).toContain(operatorMessage(code, 'zh'));
      expect(rig.terminal.ledger.lastSeq()).toBe(seq);
    };

    const voucher = authority.voucher({ scope: CLINIC, wallet: walletBinding('W-HOLDER') });
    await refused(personalQr('W-HOLDER'), 'WALLET_QR_NO_VOUCHER');
    await refused(voucher.qr, 'VOUCHER_IDENTITY_NEEDED');
    await refused(personalQr('W-SOMEONE-ELSE'), 'WALLET_QR_WRONG_PERSON');
    await refused(voucher.qr, 'VOUCHER_IDENTITY_NEEDED');
    await refused(personalQr('W-HOLDER', now - 600), 'WALLET_QR_EXPIRED');
    await refused(voucher.qr, 'VOUCHER_IDENTITY_NEEDED');
    // W-HOLDEX's code with the id's last byte rewritten: it names the holder, its signature is W-HOLDEX's
    const forged = decodeWalletQrText(personalQr('W-HOLDEX'));
    forged[forged.length - 64 - 1] = 'R'.charCodeAt(0);
    await refused(encodeWalletQrText(forged), 'WALLET_QR_FORGED');
    await refused(voucher.qr, 'VOUCHER_IDENTITY_NEEDED');
    await refused(personalQr('W-HOLDER', now, authority.trustKey), 'WALLET_QR_UNKNOWN_KEY'); // the trust-list key signs no personal codes
    await refused(authority.voucher({ scope: CLINIC }).qr, 'VOUCHER_HOLDER_UNNAMED');

    await refused(voucher.qr, 'VOUCHER_IDENTITY_NEEDED');
    const accepted = await scan(personalQr('W-HOLDER'));
    expect(accepted).toMatchObject({ ok: true, action: 'voucher', serial: voucher.fields.serial });
    await rig.deviceIdle();
    const reserveSeq = accepted.ok ? accepted.seq : 0;
    const types = [reserveSeq, reserveSeq + 1, reserveSeq + 2].map((seq) => parseLedgerEntry(rig.terminal.ledger.entryAt(seq)!).type);
    expect(types).toEqual([EntryType.VOUCHER_RESERVED, EntryType.USE_STARTED, EntryType.USE_COMPLETED]);
    // the same code again: no voucher waits for it
    await refused(personalQr('W-HOLDER'), 'WALLET_QR_NO_VOUCHER');
  });
});
