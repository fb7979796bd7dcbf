/**
 * npm run demo -- --serve: after the story the demo keeps its server up with the dashboard, prints the address
 * and a one-time login for its top authority; the link logs in once (the dashboard then shows the demo's uses and
 * the income split with the demo agent's share, its voucher charged as a use, as the store has them), a second use is refused.
 */
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runDemo } from '../../src/scenario/demo.js';

describe('demo --serve', () => {
  it('prints the dashboard and a one-time login for the top authority, and serves until told to stop', async () => {
    const lines: string[] = [];
    const seen: Record<string, unknown> = {};
    const summary = await runDemo({
      out: (l) => lines.push(l),
      cards: 6,
      serve: {
        until: async ({ url, loginUrl }) => {
          const page = await fetch(`${url}/`);
          seen.csp = page.headers.get('content-security-policy');
          const first = await fetch(loginUrl, { redirect: 'manual' });
          seen.firstStatus = first.status;
          const cookie = (first.headers.get('set-cookie') ?? '').split(';')[0]!;
          seen.session = ((await (await fetch(`${url}/api/session`, { headers: { cookie } })).json()) as { data: unknown }).data;
          seen.income = ((await (await fetch(`${url}/api/income`, { headers: { cookie } })).json()) as { data: unknown }).data;
          seen.anonymous = (await fetch(`${url}/api/income`)).status;
          seen.secondStatus = (await fetch(loginUrl, { redirect: 'manual' })).status;
        },
      },
    });
    rmSync(summary.workDir, { recursive: true, force: true });
    expect(lines.find((l) => l.startsWith('Dashboard: http://127.0.0.1:'))).toBeDefined();
    expect(lines.find((l) => /^One-time login for the demo's top authority .*\/api\/session\/once\?token=/.test(l))).toBeDefined();
    expect(seen.csp).toContain("default-src 'none'");
    expect(seen.firstStatus).toBe(303);
    expect(seen.session).toMatchObject({ username: 'demo-authority', role: 'authority' });
    // the demo's one service voucher is charged as a use, at the card price, and counted apart
    const gross = summary.uses * 10_000;
    expect(seen.income).toEqual([{ clinicCode: 'CLINIC-001', uses: summary.uses, voucherUses: 1, gross, investor: Math.round(gross * 0.7) - Math.round(gross * 0.1), clinic: gross - Math.round(gross * 0.7), agentCode: 'DEMO-AGENT', agent: Math.round(gross * 0.1) }]);
    expect(seen.anonymous).toBe(401);
    expect(seen.secondStatus).toBe(401);
  });
});
