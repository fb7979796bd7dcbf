/**
 * The console's store (server/access) as one contract on SQLite and a real PostgreSQL: users and their scrypt
 * hashes, sessions shared through the database, failed-login counts, one-time logins used once, the first alert
 * acknowledgement standing, agents in the income split, and the audit log append-only: UPDATE, DELETE (and on
 * PostgreSQL TRUNCATE) refused by the database's trigger, whatever client sends them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../src/server/access/password.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { currentPricing, incomeSplit } from '../../src/server/httpApi.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { createPostgresDriver } from '../../src/server/store/postgresDriver.js';
import { POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS } from '../../src/server/store/schema.js';
import { createSqliteDriver } from '../../src/server/store/sqliteDriver.js';
import type { SqlDriver } from '../../src/server/store/SqlDriver.js';
import { storeBackends, type StoreBackend } from '../support/storeBackends.js';
import { buildConsoleWorld, PASSWORD, T0 } from './consoleFixture.js';

function contract(backend: StoreBackend): void {
  describe(`console access store: ${backend.name}`, () => {
    let store: ServerStore;
    let raw: SqlDriver;
    beforeAll(async () => {
      const place = await backend.place('access');
      store = await createServerStore(place);
      raw = place.kind === 'sqlite' ? createSqliteDriver(place.path, SQLITE_MIGRATIONS) : await createPostgresDriver(place.connectionString, POSTGRES_MIGRATIONS);
      await buildConsoleWorld(store);
    }, 120_000);
    afterAll(async () => {
      await raw?.close();
      await store?.close();
    });

    it('keeps users with scrypt hashes (never the password) and their scope', async () => {
      expect(await store.access.hasUsers()).toBe(true);
      const users = await store.access.users();
      expect(users.map((u) => `${u.username}:${u.role}:${u.scope ?? ''}`).sort()).toEqual(['admin:sysadmin:', 'agent-1:agent:AG-1', 'auditor:auditor:', 'boss:authority:', 'clinic-a:clinic:CL-A', 'issuer:issuer:', 'patient-1:patient:W-1']);
      expect(users.every((u) => !('passwordHash' in u))).toBe(true);
      const stored = (await store.access.user('boss'))!;
      expect(stored.passwordHash).toMatch(/^scrypt\$32768\$8\$1\$/);
      expect(stored.passwordHash).not.toContain(PASSWORD);
      expect(await verifyPassword(PASSWORD, stored.passwordHash)).toBe(true);
      expect(await verifyPassword('not the password', stored.passwordHash)).toBe(false);
      expect(await store.access.addUser({ ...stored })).toBe(false);
    });

    it('shares sessions, failed logins and one-time logins through the database', async () => {
      await store.access.createSession({ id: 'sid', username: 'boss', csrf: 'c', address: '127.0.0.1', createdAt: T0, lastSeenAt: T0, expiresAt: T0 + 1000 });
      await store.access.touchSession('sid', T0 + 5);
      expect(await store.access.session('sid')).toMatchObject({ username: 'boss', lastSeenAt: T0 + 5 });
      expect(await store.access.deleteExpiredSessions(T0 + 1000)).toBe(1);
      expect(await store.access.session('sid')).toBeUndefined();
      await store.access.recordLoginFailure(['account:x', 'address:1'], T0);
      await store.access.recordLoginFailure(['account:x'], T0 + 10);
      expect(await store.access.loginFailures('account:x', T0 - 1)).toBe(2);
      expect(await store.access.loginFailures('account:x', T0)).toBe(1);
      await store.access.clearLoginFailures('account:x');
      expect(await store.access.loginFailures('account:x', 0)).toBe(0);
      await store.access.createLoginToken('tok', 'boss', T0 + 100);
      const uses = await Promise.all([store.access.useLoginToken('tok', T0), store.access.useLoginToken('tok', T0)]);
      expect(uses.filter((u) => u === 'boss')).toHaveLength(1);
      await store.access.createLoginToken('late', 'boss', T0 + 100);
      expect(await store.access.useLoginToken('late', T0 + 100)).toBeUndefined();
    });

    it('keeps the first acknowledgement of an alert', async () => {
      expect(await store.access.acknowledgeAlert({ alertKey: 'alert-T-A', username: 'boss', note: 'first', at: T0 })).toBe(true);
      expect(await store.access.acknowledgeAlert({ alertKey: 'alert-T-A', username: 'admin', note: 'second', at: T0 + 1 })).toBe(false);
      expect(await store.access.alertAcks()).toEqual([{ alertKey: 'alert-T-A', username: 'boss', note: 'first', at: T0 }]);
    });

    it("splits the income three ways where an agent placed the devices, in integer fen", async () => {
      const rows = incomeSplit(await store.usesPerDay(), await currentPricing(store, { default: { pricePerUse: 1, investorShare: 0.5 } }));
      expect(rows).toEqual([
        { clinicCode: 'CL-A', uses: 5, gross: 50_000, investor: 30_000, clinic: 15_000, agentCode: 'AG-1', agent: 5_000 },
        { clinicCode: 'CL-B', uses: 3, gross: 30_000, investor: 21_000, clinic: 9_000 },
        { clinicCode: 'CL-C', uses: 2, gross: 20_000, investor: 12_000, clinic: 6_000, agentCode: 'AG-1', agent: 2_000 },
      ]);
      for (const r of rows) expect(r.investor + r.clinic + (r.agent ?? 0)).toBe(r.gross);
    });

    it('appends to the audit log and refuses any change or removal in the database itself', async () => {
      await store.access.appendAudit({ at: T0 + 1, username: 'boss', role: 'authority', action: 'registry.clinic.save', target: 'CL-A', detail: '{}', address: '127.0.0.1' });
      const log = await store.access.audit();
      expect(log[0]).toMatchObject({ action: 'registry.clinic.save', target: 'CL-A', username: 'boss', address: '127.0.0.1' });
      expect(log.filter((e) => e.action === 'user.add')).toHaveLength(7);
      await expect(raw.run("UPDATE audit_log SET username = 'someone else'")).rejects.toThrow(/append-only/);
      await expect(raw.run('DELETE FROM audit_log')).rejects.toThrow(/append-only/);
      if (backend.name === 'postgres') await expect(raw.run('TRUNCATE audit_log')).rejects.toThrow(/append-only/);
      expect(await store.access.audit()).toEqual(log);
    });
  });
}

for (const backend of storeBackends('tally-access')) contract(backend);
