/**
 * The help texts, made from the commands' declarations (command.ts,
 * options.ts): `tally X --help` and docs/cli.md (test/cli/cliReference.test.ts
 * fails while the page differs from cliReferenceMarkdown(); UPDATE_DOCS=1
 * rewrites it).
 */
import type { CommandSpec } from './command.js';
import { COMMON_OPTIONS, optionSynopsis, type OptionSpec, type OptionTable } from './options.js';

const WIDTH = 80;

/** The synopsis lines: as written, or `tally PATH --required X [--optional Y]` */
export function usageLines(spec: CommandSpec): string[] {
  const subs = (spec.subcommands ?? []).flatMap((s) => s.usage);
  if (spec.usage) return [...spec.usage, ...subs];
  if (subs.length > 0) return subs;
  const words = Object.entries(spec.options).map(([name, o]) => (o.required ? optionSynopsis(name, o) : `[${optionSynopsis(name, o)}]`));
  return [[`tally ${spec.path}`, ...words].join(' ')];
}

function note(o: OptionSpec): string {
  const notes = [o.required ? 'required' : '', o.default !== undefined ? `default ${o.default}` : '', o.multiple ? 'may be repeated' : ''].filter(Boolean);
  return notes.length ? ` (${notes.join('; ')})` : '';
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

function optionRows(table: OptionTable): string[] {
  const entries = Object.entries(table);
  const left = Math.min(28, Math.max(...entries.map(([name, o]) => optionSynopsis(name, o).length)));
  const rows: string[] = [];
  for (const [name, o] of entries) {
    const synopsis = optionSynopsis(name, o);
    const text = wrap(`${o.description}${note(o)}`, Math.max(30, WIDTH - 4 - left));
    if (synopsis.length > left) rows.push(`  ${synopsis}`, ...text.map((t) => `  ${' '.repeat(left)}  ${t}`));
    else rows.push(...text.map((t, i) => `  ${(i === 0 ? synopsis : '').padEnd(left)}  ${t}`));
  }
  return rows;
}

/** The option sections: the command's own, then each subcommand's own, then the common ones it does not declare itself */
export function optionSections(spec: CommandSpec, withCommon = true): { title: string; table: OptionTable }[] {
  const sections = [{ title: 'options', table: spec.options }];
  for (const sub of spec.subcommands ?? []) if (sub.options && Object.keys(sub.options).length) sections.push({ title: `options of ${sub.name}`, table: sub.options });
  const declared = new Set(sections.flatMap((s) => Object.keys(s.table)));
  if (withCommon) sections.push({ title: 'every command takes', table: Object.fromEntries(Object.entries(COMMON_OPTIONS).filter(([name]) => !declared.has(name))) });
  return sections.filter((s) => Object.keys(s.table).length > 0);
}

function optionTableMarkdown(table: OptionTable): string[] {
  return ['| option | required, default | what it is |', '| --- | --- | --- |', ...Object.entries(table).map(([name, o]) => `| \`${cell(optionSynopsis(name, o))}\` | ${note(o).slice(2, -1)} | ${cell(o.description)} |`)];
}

export function renderHelp(spec: CommandSpec): string {
  const parts = [usageLines(spec).join('\n')];
  if (spec.about) parts.push(spec.about);
  for (const section of optionSections(spec)) parts.push([`${section.title}:`, ...optionRows(section.table)].join('\n'));
  if (spec.examples?.length) parts.push(['examples:', ...spec.examples.map((e) => `  ${e}`)].join('\n'));
  if (spec.epilogue) parts.push(spec.epilogue);
  return parts.join('\n\n');
}

const cell = (text: string): string => text.replace(/\|/g, '\\|');

/** docs/cli.md: every command, its synopsis, prose, options and examples */
export function cliReferenceMarkdown(commands: readonly CommandSpec[]): string {
  const out = [
    '# The `tally` command line',
    '',
    'Generated from the option tables of src/cli/commands (the same tables the parser and `tally X --help` use):',
    'do not edit by hand; `UPDATE_DOCS=1 npx vitest run test/cli/cliReference.test.ts` rewrites it.',
    '',
    'A command that fails with a code prints the operator\'s line (in the language of `--locale`) and the other',
    "language's line on standard error, and exits 1 (2 for a usage error, which prints only the first line).",
    'When standard error is not a terminal (journald, a pipe, a file) a JSON line follows for the log:',
    '`{"level":"error","event":"cli-refused","command":...,"code":...,"numericCode":...,"detail":...}`.',
    'At a terminal it is left out; `--log-json` or `TALLY_LOG=json` writes it there too.',
    '',
    'Every command takes these, and its own options below:',
    '',
    ...optionTableMarkdown(COMMON_OPTIONS),
    '',
    '| command | what it does |',
    '| --- | --- |',
    ...commands.map((c) => `| [\`tally ${c.path}\`](#${anchor(c.path)}) | ${cell(c.summary)} |`),
  ];
  for (const c of commands) {
    out.push('', `## tally ${c.path}`, '', `${c.summary}.`.replace(/\.\.$/, '.'), '', '```', ...usageLines(c), '```');
    if (c.about) out.push('', '```text', c.about, '```');
    for (const section of optionSections(c, false)) out.push('', `${section.title[0]!.toUpperCase()}${section.title.slice(1)}:`, '', ...optionTableMarkdown(section.table));
    if (c.examples?.length) out.push('', 'Examples:', '', '```sh', ...c.examples, '```');
    if (c.epilogue) out.push('', '```text', c.epilogue, '```');
  }
  return `${out.join('\n')}\n`;
}

function anchor(path: string): string {
  return `tally-${path.replace(/ /g, '-')}`;
}
