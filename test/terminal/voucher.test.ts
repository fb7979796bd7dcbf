/**
 * Service vouchers at the terminal (voucher-format.md §6, §8): every refusal
 * with its code and both operator messages and nothing written; an accepted
 * voucher written off in the ledger (entry 12, then the two-phase use by ref),
 * once; the online claim before the entry; the trust list's rules.
 */
import { describe, expect, it } from 'vitest';
import { EntryType, parseLedgerEntry } from '../../src/codecs/ledgerEntry.js';
import { encodeVoucherQr, VoucherScope } from '../../src/codecs/voucher.js';
import { generateSigningKey } from '../../src/crypto/ed25519.js';
import { openVoucherUse, signVoucher } from '../../src/crypto/voucher.js';
import { operatorMessage, type ErrorName } from '../../src/errors.js';
import { Issuer, provisionTerminal } from '../../src/scenario/CardWorld.js';
import { VoucherAuthority } from '../../src/scenario/VoucherWorld.js';
import { SimulatedDevice } from '../../src/sim/SimulatedDevice.js';
import { Terminal } from '../../src/terminal/Terminal.js';
import { useScratch } from '../support/scratch.js';

const { cleanups, scratch } = useScratch();
const CLINIC = 'CLINIC-7';
const DAY = 86_400;

async function world(options: { device?: SimulatedDevice } = {}) {
  const issuer = await new Issuer(scratch()).init();
  cleanups.push(() => issuer.close());
  const rig = await provisionTerminal(issuer, { dataDir: scratch(), terminalId: 'T-V1', clinicCode: CLINIC, ...(options.device ? { device: options.device } : {}) });
  cleanups.push(() => rig.terminal.close());
  const authority = await VoucherAuthority.create(issuer);
  return { issuer, terminal: rig.terminal, authority };
}

describe('vouchers at the terminal', () => {
  it('writes a voucher off once: entry 12 with the key certificate and voucher, completed by ref, the ledger verifies', async () => {
    const { terminal, authority } = await world();
    terminal.adoptTrustList(authority.trustList());
    const v = authority.voucher({ scope: CLINIC });
    const before = terminal.ledger.lastSeq();
    const outcome = await terminal.handleVoucher(v.qr);
    expect(outcome).toMatchObject({ ok: true, action: 'voucher', serial: v.fields.serial, examType: 'OCT', claimed: 'offline', trustListGrace: false });
    const entries = [before + 1, before + 2, before + 3].map((seq) => parseLedgerEntry(terminal.ledger.entryAt(seq)!));
    expect(entries.map((e) => e.type)).toEqual([EntryType.VOUCHER_RESERVED, EntryType.USE_STARTED, EntryType.USE_COMPLETED]);
    expect(entries[1]!.ref).toBe(before + 1);
    const use = openVoucherUse(entries[0]!.card!, terminal.identity()!.rootPublicKey);
    expect(use.voucher.serial).toBe(v.fields.serial);
    expect(entries[0]!.detail).toBe('claimed offline; trust list 1');
    expect(terminal.ledger.verify()).toMatchObject({ ok: true, uses: 1 });
    // the same QR code again, and the same serial re-signed with a booking: written off already
    expect(await terminal.handleVoucher(v.qr)).toMatchObject({ ok: false, code: 'VOUCHER_WRITTEN_OFF' });
    expect(terminal.ledger.lastSeq()).toBe(before + 3);
  });

  it('refuses each bad voucher with its code and both messages, writing nothing', async () => {
    const { terminal, authority } = await world();
    const now = Math.floor(Date.now() / 1000);
    const missing = await terminal.handleVoucher(authority.voucher({ scope: CLINIC }).qr);
    expect(missing).toMatchObject({ ok: false, code: 'TRUST_LIST_MISSING' });
    const revokedVoucher = authority.voucher({ scope: CLINIC });
    terminal.adoptTrustList(authority.trustList({ revoked: [revokedVoucher.fields.serial] }));
    const forged = authority.voucher({ scope: CLINIC }).raw.slice();
    forged[20] = forged[20]! ^ 0x01;
    const stranger = generateSigningKey();
    const cases: [string, string, ErrorName][] = [
      ['not a voucher', 'https://example.com/pay?x=1', 'VOUCHER_MALFORMED'],
      ['forged', encodeVoucherQr(forged), 'VOUCHER_FORGED'],
      ['unknown key', encodeVoucherQr(signVoucher(stranger.privateKey, { ...authority.voucher({ scope: CLINIC }).fields, keyId: 9 })), 'VOUCHER_UNKNOWN_KEY'],
      ['claims key 1, signed by a stranger', encodeVoucherQr(signVoucher(stranger.privateKey, authority.voucher({ scope: CLINIC }).fields)), 'VOUCHER_FORGED'],
      ['expired', authority.voucher({ scope: CLINIC, validFrom: now - 40 * DAY, validUntil: now - DAY }).qr, 'VOUCHER_EXPIRED'],
      ['revoked', revokedVoucher.qr, 'VOUCHER_REVOKED'],
      ['another clinic', authority.voucher({ scope: 'CLINIC-8' }).qr, 'VOUCHER_WRONG_CLINIC'],
      ['another device class', authority.voucher({ scope: 'CT', scopeKind: VoucherScope.DEVICE_CLASS }).qr, 'VOUCHER_WRONG_CLINIC'],
      ['booking required, none', authority.voucher({ scope: CLINIC, bookingRequired: true }).qr, 'VOUCHER_NOT_BOOKED'],
      ['booked for tomorrow', authority.voucher({ scope: CLINIC, bookingRequired: true, booking: { slotId: 1, start: now + DAY, end: now + DAY + 1800 } }).qr, 'VOUCHER_NOT_BOOKED'],
    ];
    const seq = terminal.ledger.lastSeq();
    for (const [name, qr, code] of cases) {
      const outcome = await terminal.handleVoucher(qr);
      expect(outcome, name).toMatchObject({ ok: false, code, message: operatorMessage(code, 'en') });
      expect(operatorMessage(code, 'zh')).toMatch(/[\u4e00-\u9fff]/);
    }
    expect(terminal.ledger.lastSeq()).toBe(seq);
    expect(terminal.status().refusals).toMatchObject({ VOUCHER_FORGED: 2, VOUCHER_WRONG_CLINIC: 2, VOUCHER_NOT_BOOKED: 2 });
    // a booking for now is accepted
    const booked = authority.voucher({ scope: CLINIC, bookingRequired: true, booking: { slotId: 2, start: now - 600, end: now + 1200 } });
    expect(await terminal.handleVoucher(booked.qr)).toMatchObject({ ok: true, serial: booked.fields.serial });
  });

  it('enforces the trust list: a stale one refuses, one in its grace accepts and says so, an older or altered one is not installed', async () => {
    const { terminal, authority } = await world();
    const now = Math.floor(Date.now() / 1000);
    terminal.adoptTrustList(authority.trustList({ issuedAt: now - 20 * DAY, validDays: 7, graceDays: 7 }));
    expect(await terminal.handleVoucher(authority.voucher({ scope: CLINIC }).qr)).toMatchObject({ ok: false, code: 'TRUST_LIST_STALE', message: operatorMessage('TRUST_LIST_STALE') });
    terminal.adoptTrustList(authority.trustList({ issuedAt: now - 10 * DAY, validDays: 7, graceDays: 7 }));
    const inGrace = await terminal.handleVoucher(authority.voucher({ scope: CLINIC }).qr);
    expect(inGrace).toMatchObject({ ok: true, trustListGrace: true });
    expect(inGrace.ok && inGrace.message).toContain('Trust list out of date');
    const fresh = authority.trustList();
    const older = authority.trustList({ revoked: [1] });
    // seq 4 installed; seq 3 (made before it) is not: an old list would bring back revoked vouchers
    expect(terminal.adoptTrustList(older)).toEqual({ listSeq: 4, installed: true });
    expect(terminal.adoptTrustList(fresh)).toEqual({ listSeq: 4, installed: false });
    const altered = older.slice();
    altered[altered.length - 70] = altered[altered.length - 70]! ^ 0x01;
    expect(() => terminal.adoptTrustList(altered)).toThrow(expect.objectContaining({ code: 'TRUST_LIST_INVALID' }));
    expect(terminal.voucherTrustList()?.listSeq).toBe(4);
  });

  it('two-phase with a relay: a device that never starts releases the voucher, which can then be scanned again', async () => {
    const device = new SimulatedDevice();
    const { terminal, authority } = await world({ device });
    terminal.adoptTrustList(authority.trustList());
    const v = authority.voucher({ scope: CLINIC });
    device.behaviour = 'fault-before-start';
    const first = await terminal.handleVoucher(v.qr);
    expect(first).toMatchObject({ ok: true });
    expect(terminal.ledger.voucherUse(v.fields.serial)).toMatchObject({ state: 'released' });
    device.behaviour = 'normal';
    expect(await terminal.handleVoucher(v.qr)).toMatchObject({ ok: true });
    expect(terminal.ledger.voucherUse(v.fields.serial)).toMatchObject({ state: 'completed' });
    expect(terminal.ledger.verify()).toMatchObject({ ok: true, uses: 2, releases: 1 });
  });
});

describe('the online claim', () => {
  it('asks the server first: granted writes off online, refused writes nothing, no answer writes off offline', async () => {
    const issuer = await new Issuer(scratch()).init();
    cleanups.push(() => issuer.close());
    let answer: { granted: boolean; code?: ErrorName } | undefined;
    const claims: number[] = [];
    const dataDir = scratch();
    const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-V2', clinicCode: CLINIC });
    rig.terminal.close();
    const terminal = Terminal.open({ dataDir, claimVoucher: async (claim) => (claims.push(claim.serial), answer) });
    cleanups.push(() => terminal.close());
    const authority = await VoucherAuthority.create(issuer);
    terminal.adoptTrustList(authority.trustList());
    answer = { granted: false, code: 'VOUCHER_VOIDED' };
    const voided = authority.voucher({ scope: CLINIC });
    const seq = terminal.ledger.lastSeq();
    expect(await terminal.handleVoucher(voided.qr)).toMatchObject({ ok: false, code: 'VOUCHER_VOIDED' });
    answer = { granted: false, code: 'VOUCHER_WRITTEN_OFF' };
    expect(await terminal.handleVoucher(authority.voucher({ scope: CLINIC }).qr)).toMatchObject({ ok: false, code: 'VOUCHER_WRITTEN_OFF' });
    expect(terminal.ledger.lastSeq()).toBe(seq);
    answer = { granted: true };
    const online = await terminal.handleVoucher(authority.voucher({ scope: CLINIC }).qr);
    expect(online).toMatchObject({ ok: true, claimed: 'online' });
    answer = undefined;
    expect(await terminal.handleVoucher(authority.voucher({ scope: CLINIC }).qr)).toMatchObject({ ok: true, claimed: 'offline' });
    expect(claims).toHaveLength(4);
    // a voucher the terminal refuses offline is never claimed
    expect(await terminal.handleVoucher(authority.voucher({ scope: 'CLINIC-8' }).qr)).toMatchObject({ ok: false, code: 'VOUCHER_WRONG_CLINIC' });
    expect(claims).toHaveLength(4);
  });
});

describe('tally terminal trust-list', () => {
  it('installs a list file for an offline terminal, once; refuses an altered one', async () => {
    const { terminalTrustListCommand } = await import('../../src/cli/commands/terminalTrustList.js');
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const issuer = await new Issuer(scratch()).init();
    cleanups.push(() => issuer.close());
    const dataDir = scratch();
    const rig = await provisionTerminal(issuer, { dataDir, terminalId: 'T-V3', clinicCode: CLINIC });
    rig.terminal.close();
    const authority = await VoucherAuthority.create(issuer);
    const file = join(scratch(), 'trust.bin');
    const list = authority.trustList();
    writeFileSync(file, list);
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
    expect(await terminalTrustListCommand.run(['--file', file, '--data', dataDir], io)).toBe(0);
    expect(out.at(-1)).toMatch(/^trust list 1 installed: 2 keys, 0 revoked/);
    expect(await terminalTrustListCommand.run(['--file', file, '--data', dataDir], io)).toBe(3);
    list[list.length - 1] = list[list.length - 1]! ^ 0x01;
    writeFileSync(file, list);
    await expect(terminalTrustListCommand.run(['--file', file, '--data', dataDir], io)).rejects.toMatchObject({ code: 'TRUST_LIST_INVALID' });
    const terminal = Terminal.open({ dataDir });
    cleanups.push(() => terminal.close());
    expect(await terminal.handleVoucher(authority.voucher({ scope: CLINIC }).qr)).toMatchObject({ ok: true });
  });
});
