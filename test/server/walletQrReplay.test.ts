/**
 * A personal wallet QR code is taken once (wallet-qr.md §3), and the back office remembers it in its store, not
 * in the process: on SQLite and PostgreSQL, of 50 concurrent presentations of one code exactly one is taken, the
 * store closed and opened again still refuses it (WALLET_QR_REPLAYED), a fresh code of the same wallet is taken,
 * and codes are pruned once they have expired. Then `tally server run` as its own process: a community centre
 * takes a code over HTTP, the server is killed (SIGKILL) and started again, and the same code is refused.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/codecs/bytes.js';
import { KeyRole, openKeyCertificate } from '../../src/codecs/voucher.js';
import { generateSigningKey } from '../../src/crypto/ed25519.js';
import { signKeyCertificate } from '../../src/crypto/voucher.js';
import { signWalletQr } from '../../src/crypto/walletQr.js';
import { isTallyError } from '../../src/errors.js';
import { addUser } from '../../src/server/access/accessAdmin.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { saveVoucherKey, VoucherOffice, WALLET_QR_PRUNE_MARGIN_SECONDS, type VoucherKey } from '../../src/server/voucher/VoucherOffice.js';
import { freeLoopbackPort } from '../support/freePort.js';
import { startMosquitto, type RunningMosquitto } from '../support/mosquitto.js';
import { useScratch } from '../support/scratch.js';
import { storeBackends } from '../support/storeBackends.js';
import { TallyProcess } from '../support/tallyProcess.js';

const { cleanups, scratch } = useScratch();
const NOW = Math.floor(Date.now() / 1000);
const DAY = 86_400;
const root = generateSigningKey();

function makeVoucherKey(): VoucherKey {
  const pair = generateSigningKey();
  const raw = signKeyCertificate(root.privateKey, { keyId: 3, roles: KeyRole.VOUCHERS | KeyRole.TRUST_LISTS, validFrom: NOW - DAY, validUntil: NOW + 30 * DAY, publicKey: pair.publicKey, issuer: 'replay test' });
  return { key: pair.privateKey, certificate: openKeyCertificate(raw, () => undefined) };
}

/** A person's code as the wallet page shows it: signed by the back office's key, 120 s */
function personalCode(key: VoucherKey, walletId: string, issuedAt = NOW): string {
  return signWalletQr(key.key, { keyId: key.certificate.keyId, issuedAt, lifetime: 120, nonce: randomBytes(8), walletId }).text;
}

const refusal = (err: unknown): string => (isTallyError(err) ? err.code : String(err));

for (const backend of storeBackends('tally-wallet-qr')) {
  describe(`personal QR codes taken once (${backend.name})`, () => {
    it('one of 50 concurrent presentations is taken; reopened, the store still refuses it; expired codes are pruned', async () => {
      const place = await backend.place('taken');
      const key = makeVoucherKey();
      let now = NOW;
      const code = personalCode(key, 'W-7');
      let store = await createServerStore(place);
      try {
        const office = new VoucherOffice(store.vouchers, key, () => now);
        const outcomes = await Promise.all(Array.from({ length: 50 }, () => office.takePersonalQr(code).catch(refusal)));
        expect(outcomes.filter((o) => o === 'W-7')).toHaveLength(1);
        expect(outcomes.filter((o) => o === 'WALLET_QR_REPLAYED')).toHaveLength(49);
      } finally {
        await store.close();
      }
      store = await createServerStore(place);
      try {
        const office = new VoucherOffice(store.vouchers, key, () => now);
        await expect(office.takePersonalQr(code)).rejects.toMatchObject({ code: 'WALLET_QR_REPLAYED' });
        expect(await office.takePersonalQr(personalCode(key, 'W-7'))).toBe('W-7');
        expect(await store.vouchers.walletQrsRemembered()).toBe(2);
        // past the codes' expiry but within the margin: kept; past the margin: the next take prunes them
        now = NOW + 120 + WALLET_QR_PRUNE_MARGIN_SECONDS;
        expect(await office.takePersonalQr(personalCode(key, 'W-8', now))).toBe('W-8');
        expect(await store.vouchers.walletQrsRemembered()).toBe(3);
        now += 1;
        expect(await office.takePersonalQr(personalCode(key, 'W-9', now))).toBe('W-9');
        expect(await store.vouchers.walletQrsRemembered()).toBe(2);
        await expect(office.takePersonalQr(code)).rejects.toMatchObject({ code: 'WALLET_QR_EXPIRED' });
      } finally {
        await store.close();
      }
    });
  });
}

describe('tally server run restarted', () => {
  let broker: RunningMosquitto;
  beforeAll(async () => {
    broker = await startMosquitto();
  });
  afterAll(async () => {
    await broker?.close();
  });

  it('refuses a personal QR code taken before it was killed', { timeout: 120_000 }, async () => {
    const dir = scratch();
    const storeFile = join(dir, 'server.db');
    const keyFile = join(dir, 'voucher-key.json');
    const key = makeVoucherKey();
    saveVoucherKey(keyFile, key, root.publicKey);
    const password = 'centre-desk-password-1';
    const store = await createServerStore({ kind: 'sqlite', path: storeFile });
    let first: number;
    try {
      await addUser(store, { username: 'desk', role: 'issuer', password }, Date.now());
      const office = new VoucherOffice(store.vouchers, key);
      ({ first } = await office.generate({ batchId: 'B-R', examType: 'OCT', scopeKind: 1, scope: 'CLINIC-7', count: 3, validFrom: NOW - DAY, validUntil: NOW + 30 * DAY, bookingRequired: false }));
      expect(await office.send('B-R', 'CC-1', 'Gulou', 3)).toBe(3);
    } finally {
      await store.close();
    }

    const port = await freeLoopbackPort();
    const base = `http://127.0.0.1:${port}`;
    const server = new TallyProcess('server', ['server', 'run', '--broker', broker.url, '--store', storeFile, '--root', toHex(root.publicKey), '--http-port', String(port), '--voucher-key', keyFile, '--worker-threads', '0']);
    cleanups.push(() => server.kill());
    const ready = /dashboard at/;
    const login = async () => {
      const res = await fetch(`${base}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'desk', password }) });
      expect(res.status).toBe(200);
      return { cookie: res.headers.get('set-cookie')!.split(';')[0]!, csrf: ((await res.json()) as { data: { csrf: string } }).data.csrf };
    };
    const issue = async (session: { cookie: string; csrf: string }, serial: number, personalQr: string) => {
      const res = await fetch(`${base}/api/vouchers/issue`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: session.cookie, 'x-csrf-token': session.csrf },
        body: JSON.stringify({ serial, centreId: 'CC-1', personalQr }),
      });
      return { status: res.status, body: (await res.json()) as { data?: { walletId?: string }; error?: { code: string; number?: number; zh?: string } } };
    };

    const code = personalCode(key, 'W-RESTART');
    await server.start(ready);
    const taken = await issue(await login(), first, code);
    expect(taken).toMatchObject({ status: 200, body: { data: { walletId: 'W-RESTART' } } });
    expect(await issue(await login(), first + 1, code)).toMatchObject({ status: 422, body: { error: { code: 'WALLET_QR_REPLAYED' } } });

    await server.kill();
    await server.start(ready);
    const session = await login();
    const replayed = await issue(session, first + 1, code);
    expect(replayed).toMatchObject({ status: 422, body: { error: { code: 'WALLET_QR_REPLAYED', number: 6307, zh: '个人二维码已使用过：请在手机上刷新' } } });
    await server.waitForLine((l) => l.run === 2 && l.json?.event === 'wallet-qr.refused' && l.json.code === 'WALLET_QR_REPLAYED');
    expect(await issue(session, first + 1, personalCode(key, 'W-RESTART'))).toMatchObject({ status: 200, body: { data: { walletId: 'W-RESTART' } } });
    await server.stop();
  });
});
