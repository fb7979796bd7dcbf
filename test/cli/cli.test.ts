import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/tally.js';
import { tempDir } from '../../src/scenario/CardWorld.js';
import { runDemo } from '../../src/scenario/demo.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

async function tally(...args: string[]) {
  const c = capture();
  const code = await main(args, c.io);
  return { code, out: c.out.join('\n'), err: c.err.join('\n') };
}

describe('tally CLI', () => {
  it('runs the issuing, provisioning, swipe and audit flow on card files', async () => {
    const dir = tempDir('tally-cli-');
    const reg = ['--registry', join(dir, 'issuing.db')];
    const mother = await tally('issue', 'mother', '--card', join(dir, 'mother.json'), '--pin', '123456', '--investor', 'Acme Capital', ...reg);
    expect(mother.code).toBe(0);
    const fingerprint = /fingerprint ([0-9a-f]{64})/.exec(mother.out)![1]!;

    const wrongPin = await tally('issue', 'white', '--mother', join(dir, 'mother.json'), '--mother-pin', '999999', '--card', join(dir, 'white.json'), '--pin', '4321', '--quota', '1', ...reg);
    expect(wrongPin.code).toBe(1);
    expect(wrongPin.err).toContain('PIN_WRONG');

    expect((await tally('issue', 'white', '--mother', join(dir, 'mother.json'), '--mother-pin', '123456', '--card', join(dir, 'white2.json'), '--pin', '4321', '--quota', '1', ...reg)).code).toBe(0);
    const batch = await tally('issue', 'batch', '--white', join(dir, 'white2.json'), '--white-pin', '4321', '--card', join(dir, 'batch.json'), '--clinic', 'C1', '--count', '3', '--out-dir', join(dir, 'cards'), ...reg);
    expect(batch.code).toBe(0);
    expect(readdirSync(join(dir, 'cards'))).toHaveLength(3);
    const overQuota = await tally('issue', 'batch', '--white', join(dir, 'white2.json'), '--white-pin', '4321', '--card', join(dir, 'batch2.json'), '--clinic', 'C1', '--count', '3', '--out-dir', join(dir, 'cards2'), ...reg);
    expect(overQuota.err).toContain('ISSUE_QUOTA');

    const data = join(dir, 'terminal');
    const wrongRoot = await tally('terminal', 'provision', '--data', data, '--mother', join(dir, 'mother.json'), '--pin', '123456', '--terminal-id', 'T-9', '--clinic', 'C1', '--root-fingerprint', '00'.repeat(32));
    expect(wrongRoot.err).toContain('ROOT_MISMATCH');
    expect((await tally('terminal', 'provision', '--data', data, '--mother', join(dir, 'mother.json'), '--pin', '123456', '--terminal-id', 'T-9', '--clinic', 'C1', '--root-fingerprint', fingerprint)).code).toBe(0);
    expect((await tally('terminal', 'swipe', '--data', data, '--card', join(dir, 'batch.json'))).out).toContain('Batch 1 loaded');
    const card = join(dir, 'cards', readdirSync(join(dir, 'cards')).sort()[0]!);
    expect((await tally('terminal', 'swipe', '--data', data, '--card', card)).code).toBe(0);
    const again = await tally('terminal', 'swipe', '--data', data, '--card', card, '--locale', 'zh');
    expect(again.code).toBe(3);
    expect(again.out).toContain('卡片已使用');
    // the reason once (the operator message), then only this case's particulars
    expect(again.err).toMatch(/^serial \d+ used at seq \d+/);
    const englishAgain = await tally('terminal', 'swipe', '--data', data, '--card', card);
    expect(englishAgain.out.match(/already used/gi)).toHaveLength(1);
    expect(englishAgain.err).not.toMatch(/already used/i);

    const status = JSON.parse((await tally('terminal', 'status', '--data', data, '--json')).out);
    expect(status.batches[0]).toMatchObject({ count: 3, used: 1, remaining: 2 });
    const verify = await tally('ledger', 'verify', '--data', data);
    expect(verify.code).toBe(0);
    expect(verify.out).toContain('intact: 5 entries');

    // an auditor altering nothing but one byte of one entry is told where
    const db = new Database(join(data, 'terminal.db'));
    const row = db.prepare('SELECT entry FROM ledger WHERE seq = 3').get() as { entry: Buffer };
    row.entry[20] = row.entry[20]! ^ 0x01;
    db.prepare('UPDATE ledger SET entry = ? WHERE seq = 3').run(row.entry);
    db.close();
    const broken = await tally('ledger', 'verify', '--data', data);
    expect(broken.code).toBe(4);
    expect(broken.out).toMatch(/BROKEN at seq 3/);
    expect(existsSync(join(data, 'device.key'))).toBe(true);
  });

  it('answers --help for every command and rejects unknown ones', async () => {
    for (const group of ['demo', 'issue mother', 'issue white', 'issue batch', 'terminal provision', 'terminal swipe', 'ledger verify', 'card new']) {
      const r = await tally(...group.split(' '), '--help');
      expect(r.code).toBe(0);
      expect(r.out).toContain(`tally ${group}`);
    }
    expect((await tally('frobnicate')).code).toBe(2);
    expect((await tally('issue', 'mother', '--nonsense')).err).toContain('USAGE');
  });
});

describe('the demo', () => {
  it('tells the whole story and ends with a verified ledger', async () => {
    const lines: string[] = [];
    const summary = await runDemo({ out: (l) => lines.push(l) });
    // 20 one-time cards and one service voucher
    expect(summary).toMatchObject({ uses: 21, batchRemaining: 0, ledgerIntact: true, serverMatches: true });
    expect(summary.refusals).toMatchObject({ ALREADY_USED: 1, CLONED_CARD: 1, FORGED: 1, WRONG_CLINIC: 1, BATCH_NOT_LOADED: 2, VOUCHER_WRITTEN_OFF: 1, VOUCHER_NOT_BOOKED: 1 });
    expect(lines.join('\n')).toContain('1 written off at CLINIC-001 in the back office');
    expect(lines.join('\n')).toContain('wrong mother-card PIN refused');
    expect(lines.join('\n')).toMatch(/server +65 entries stored, 65 identical/);
  });
});
