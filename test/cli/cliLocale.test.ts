/** --locale zh: the CLI's prompts and error lines carry no English words (codes, options and file names aside) */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasChinesePhrase, prompt } from '../../src/cli/cliLocale.js';
import { errorLine, main } from '../../src/cli/tally.js';
import { TallyError } from '../../src/errors.js';
import { setCliLocale } from '../../src/cli/cliLocale.js';

const cliSources = (): string[] => {
  const dir = join(process.cwd(), 'src', 'cli');
  return [...readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => join(dir, f)), ...readdirSync(join(dir, 'commands')).map((f) => join(dir, 'commands', f))].map((f) => readFileSync(f, 'utf8'));
};
/** English words left in a Chinese line, once --options, [CODES] and names the user gave are taken out */
const english = (text: string): string[] => text.replace(/--[a-z-]+/g, '').replace(/\[[A-Z_]+ \d+\]/g, '').replace(/tally pki token|PIN/g, '').match(/[A-Za-z]{2,}/g) ?? [];

describe('the CLI in Chinese', () => {
  it('every PIN, token and password the tools ask for, and every card they ask for, has its Chinese phrase', () => {
    const asked = new Set<string>();
    for (const src of cliSources()) {
      for (const m of src.matchAll(/pin\(values, '[a-z-]+', (?:"([^"]+)"|'([^']+)'|`([^`]+)`)\)/g)) asked.add((m[1] ?? m[2] ?? m[3]!).replace('${username}', 'admin'));
      for (const m of src.matchAll(/name: '(the [a-z -]+card[a-z ]*)'/g)) asked.add(m[1]!);
    }
    expect(asked.size).toBeGreaterThan(6);
    for (const phrase of asked) expect(hasChinesePhrase(phrase), phrase).toBe(true);
    expect(hasChinesePhrase('one-time card 7 of 20')).toBe(true);
  });

  it('prompts: insert, a blank card, again, remove, type a secret, tries left', () => {
    for (const p of [
      prompt({ kind: 'insert', name: 'the mother card' }, 'zh'),
      prompt({ kind: 'insert-blank', name: 'one-time card 7 of 20' }, 'zh'),
      prompt({ kind: 'insert-again', name: 'the white card' }, 'zh'),
      prompt({ kind: 'remove', name: 'the batch card' }, 'zh'),
      prompt({ kind: 'type', option: 'mother-pin', whose: "the mother card's PIN" }, 'zh'),
      prompt({ kind: 'tries-left', tries: 2 }, 'zh'),
    ]) {
      expect(english(p), p).toEqual([]);
      expect(p).toMatch(/[\u4e00-\u9fff]/);
    }
    expect(prompt({ kind: 'insert-blank', name: 'one-time card 7 of 20' }, 'en')).toBe('insert a blank card for one-time card 7 of 20');
    expect(prompt({ kind: 'tries-left', tries: 1 }, 'en')).toBe('1 try left before the card blocks');
  });

  it('a wrong PIN: 错误 and the tries left, no English; the English line unchanged', () => {
    const err = new TallyError('PIN_WRONG', '2 tries left before the card blocks (VERIFY answered 63C2)', { triesLeft: 2, detailZh: prompt({ kind: 'tries-left', tries: 2 }, 'zh') });
    expect(errorLine(err, 'zh')).toBe('PIN 错误（剩余 2 次，用完后卡片锁定）');
    expect(errorLine(err, 'en')).toBe(err.message);
  });

  it('--locale zh on a command: the error line in Chinese, the particulars on their own line', async () => {
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
    expect(await main(['terminal', 'provision', '--data', '/nonexistent/term', '--mother', '/nonexistent/mother.json', '--pin', '123456', '--terminal-id', 'T-1', '--clinic', 'C1', '--locale', 'zh'], io)).not.toBe(0);
    const [first, detail] = lines.join('\n').split('\n');
    expect(first).toMatch(/^tally terminal provision: /);
    expect(english(first!.replace('tally terminal provision: ', '')), first).toEqual([]);
    expect(detail).toMatch(/^ {2}详情：/);
    lines.length = 0;
    setCliLocale('en');
    expect(await main(['issue', 'white', '--locale', 'fr'], io)).toBe(2);
    expect(lines.join('\n')).toContain('--locale en or zh');
  });
});
