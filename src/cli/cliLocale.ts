/**
 * The language of the CLI's own words: prompts, what a card step asks for, the
 * error line. `--locale en|zh` on any command (parse() takes it everywhere), else
 * TALLY_LOCALE, else English. Error messages come from src/errors.ts in both
 * languages; the phrases the tools put in their prompts are translated here.
 */
import type { Locale } from '../errors.js';

let current: Locale = process.env.TALLY_LOCALE === 'zh' ? 'zh' : 'en';

export function cliLocale(): Locale {
  return current;
}

export function setCliLocale(locale: Locale): void {
  current = locale;
}

/** The tools' phrases for cards and secrets, in Chinese */
const ZH: [RegExp, string][] = [
  [/^the mother card$/, '母卡'],
  [/^the white card$/, '白卡'],
  [/^the batch card$/, '批次卡'],
  [/^the card to swipe$/, '要刷的卡'],
  [/^one-time card (\d+) of (\d+)$/, '第 $1 张一次卡（共 $2 张）'],
  [/^the mother card's PIN$/, '母卡的 PIN'],
  [/^the white card's PIN$/, '白卡的 PIN'],
  [/^the new mother card's PIN \(4-12 digits, chosen now\)$/, '新母卡的 PIN（4-12 位数字，现在设定）'],
  [/^the new white card's PIN \(4-12 digits, chosen now\)$/, '新白卡的 PIN（4-12 位数字，现在设定）'],
  [/^the one-time enrolment token \(tally pki token\)$/, '一次性注册令牌（tally pki token）'],
  [/^the password for (.+)$/, '$1 的密码'],
];

/** A phrase in the CLI's language (unknown phrases stay as they are) */
export function phrase(en: string, locale: Locale = current): string {
  if (locale === 'en') return en;
  for (const [re, zh] of ZH) if (re.test(en)) return en.replace(re, zh);
  return en;
}

export function hasChinesePhrase(en: string): boolean {
  return ZH.some(([re]) => re.test(en));
}

type Prompt = { kind: 'insert' | 'insert-blank' | 'insert-again' | 'remove'; name: string } | { kind: 'type'; option: string; whose: string } | { kind: 'tries-left'; tries: number };

/** The CLI's prompts and the board display's lines for them */
export function prompt(p: Prompt, locale: Locale = current): string {
  const zh = locale === 'zh';
  switch (p.kind) {
    case 'insert':
      return zh ? `请插入${phrase(p.name, locale)}` : `insert ${p.name}`;
    case 'insert-blank':
      return zh ? `请插入一张空白卡，用作${phrase(p.name, locale)}` : `insert a blank card for ${p.name}`;
    case 'insert-again':
      return zh ? `请再次插入${phrase(p.name, locale)}` : `insert ${p.name} again`;
    case 'remove':
      return zh ? `请取出${phrase(p.name, locale)}` : `remove ${p.name}`;
    case 'type':
      return zh ? `--${p.option} -：请输入${phrase(p.whose, locale)}，然后按回车：` : `--${p.option} -: type ${p.whose}, then Enter: `;
    case 'tries-left':
      return zh ? `剩余 ${p.tries} 次，用完后卡片锁定` : `${p.tries} ${p.tries === 1 ? 'try' : 'tries'} left before the card blocks`;
  }
}
