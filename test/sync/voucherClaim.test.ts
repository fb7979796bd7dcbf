/**
 * The online voucher claim over MQTT (voucher-format.md §6): the first
 * terminal's write-off is granted by the back office's one conditional update,
 * the same voucher on a second terminal is refused at once naming the holder,
 * and the server raises an alert; a voucher the back office never issued is refused.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { directChannel } from '../../src/card/ApduChannel.js';
import { KeyRole } from '../../src/codecs/voucher.js';
import { generateSigningKey } from '../../src/crypto/ed25519.js';
import { verifyTrustList } from '../../src/crypto/voucher.js';
import { startTerminalSync, type TerminalSync } from '../../src/daemon/startSync.js';
import { certifyVoucherKey } from '../../src/issuing/certifyVoucherKey.js';
import { DEMO_MOTHER_PIN, Issuer, provisionTerminal, tempDir } from '../../src/scenario/CardWorld.js';
import { startEmbeddedServer, type EmbeddedServer } from '../../src/scenario/embeddedServer.js';
import { VoucherAuthority } from '../../src/scenario/VoucherWorld.js';
import { Terminal } from '../../src/terminal/Terminal.js';
import { silentLogger } from '../../src/util/logger.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const step of cleanups.reverse()) await step();
});

async function onlineTerminal(issuer: Issuer, server: EmbeddedServer, id: string, onTrustList?: (raw: Uint8Array) => void): Promise<Terminal> {
  const dataDir = tempDir();
  (await provisionTerminal(issuer, { dataDir, terminalId: id, clinicCode: 'C1' })).terminal.close();
  const holder: { sync?: TerminalSync } = {};
  const terminal = Terminal.open({ dataDir, claimVoucher: (claim) => holder.sync?.claimVoucher(claim) ?? Promise.resolve(undefined) });
  const sync = startTerminalSync({ ledger: terminal.ledger, dataDir, settings: { brokerUrl: server.broker.url, protocolVersion: 4, maxEntriesPerSecond: 100_000, pollMs: 50 }, log: silentLogger, ...(onTrustList ? { onTrustList } : {}) });
  holder.sync = sync;
  for (let i = 0; i < 200 && !sync.client.subscribed(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(sync.client.subscribed()).toBe(true);
  cleanups.push(async () => {
    await sync.stop();
    terminal.close();
  });
  return terminal;
}

describe('the online voucher claim', () => {
  it('grants the first terminal, refuses the second naming the holder, alerts, and refuses a voucher never issued', async () => {
    const dir = tempDir('tally-voucher-claim-');
    const issuer = await new Issuer(dir).init();
    cleanups.push(() => issuer.close());
    const server = await startEmbeddedServer({ dir, rootPublicKey: issuer.motherInfo.rootPublicKey });
    cleanups.push(() => server.close());
    const authority = await VoucherAuthority.create(issuer);
    const v = authority.voucher({ scope: 'C1' });
    const never = authority.voucher({ scope: 'C1' });
    const now = Math.floor(Date.now() / 1000);
    const vouchers = server.store.vouchers;
    await vouchers.generateBatch({ batchId: 'VB-1', examType: 'OCT', scopeKind: 1, scope: 'C1', count: 2, validFrom: now - 86_400, validUntil: now + 86_400, bookingRequired: false, firstSerial: v.fields.serial }, now);
    await vouchers.sendToCentre('VB-1', 'CC-1', 'Xuanwu', 1, now);
    expect(await vouchers.issueToWallet(v.fields.serial, 'CC-1', 'W-1', now)).toBe(true);

    const first = await onlineTerminal(issuer, server, 'T-FIRST');
    const second = await onlineTerminal(issuer, server, 'T-SECOND');
    for (const t of [first, second]) t.adoptTrustList(authority.trustList());
    expect(await first.handleVoucher(v.qr)).toMatchObject({ ok: true, claimed: 'online' });
    const refused = await second.handleVoucher(v.qr);
    expect(refused).toMatchObject({ ok: false, code: 'VOUCHER_WRITTEN_OFF' });
    expect(refused.ok ? '' : refused.detail).toContain('T-FIRST');
    expect(second.ledger.voucherUse(v.fields.serial)).toBeUndefined();
    expect((await server.store.alerts()).some((a) => a.kind === 'voucher-written-off-twice' && a.terminalId === 'T-SECOND')).toBe(true);
    expect(await second.handleVoucher(never.qr)).toMatchObject({ ok: false, code: 'VOUCHER_NOT_ISSUED' });
    expect(await vouchers.voucher(v.fields.serial)).toMatchObject({ state: 'written_off', terminalId: 'T-FIRST' });
  }, 60_000);

  it('gives a terminal that comes online the trust list the back office signs, retained, revoking what it voided', async () => {
    const dir = tempDir('tally-voucher-trust-');
    const issuer = await new Issuer(dir).init();
    cleanups.push(() => issuer.close());
    const now = Math.floor(Date.now() / 1000);
    const pair = generateSigningKey();
    const { certificate } = await certifyVoucherKey(directChannel(issuer.mother), DEMO_MOTHER_PIN, { keyId: 7, roles: KeyRole.VOUCHERS | KeyRole.TRUST_LISTS, validFrom: now - 60, validUntil: now + 86_400, publicKey: pair.publicKey, issuer: 'back office' });
    const server = await startEmbeddedServer({ dir, rootPublicKey: issuer.motherInfo.rootPublicKey, voucherKey: { key: pair.privateKey, certificate } });
    cleanups.push(() => server.close());
    await server.store.vouchers.generateBatch({ batchId: 'VB-T', examType: 'OCT', scopeKind: 1, scope: 'C1', count: 2, validFrom: now - 60, validUntil: now + 86_400, bookingRequired: false, firstSerial: 5_000_001 }, now);
    expect(await server.store.vouchers.void(5_000_002, 'recalled', now)).toBe(true);
    let delivered: (raw: Uint8Array) => void = () => undefined;
    const received = new Promise<Uint8Array>((resolve) => (delivered = resolve));
    // the terminal too, not only the list: its cleanup must be registered before afterAll closes the
    // server, which waits for the terminal's connection (the list can arrive before the subscription)
    const [raw] = await Promise.all([received, onlineTerminal(issuer, server, 'T-TRUST', (list) => delivered(list))]);
    const list = verifyTrustList(raw, issuer.motherInfo.rootPublicKey);
    expect(list.revoked).toEqual([5_000_002]);
    expect(list.keyCertificates.map((k) => k.keyId)).toEqual([7]);
  }, 60_000);
});
