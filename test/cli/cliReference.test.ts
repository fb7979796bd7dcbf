/**
 * The CLI's help is made from its option tables (src/cli/options.ts,
 * command.ts): docs/cli.md is generated from them and up to date
 * (UPDATE_DOCS=1 rewrites it); every option a command's parser takes is in its
 * help, every option its help (and the README) names is one the parser takes.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { optionsOf, type CliCommand, type CommandSpec } from '../../src/cli/command.js';
import { cliReferenceMarkdown, usageLines } from '../../src/cli/help.js';
import { optionSynopsis } from '../../src/cli/options.js';
import { loadCommands } from '../../src/cli/tally.js';
import { isTallyError } from '../../src/errors.js';

const DOC = fileURLToPath(new URL('../../docs/cli.md', import.meta.url));
const README = fileURLToPath(new URL('../../README.md', import.meta.url));
const COMMANDS_DIR = fileURLToPath(new URL('../../src/cli/commands/', import.meta.url));

let commands: CliCommand[];
let specs: CommandSpec[];
beforeAll(async () => {
  commands = await loadCommands();
  specs = commands.flatMap((c) => (c.spec ? [c.spec] : []));
});

/** Each (subcommand, table) a command parses with: its own table, and each subcommand's */
function tablesOf(spec: CommandSpec): { sub: string | undefined; names: string[] }[] {
  const subs = spec.subcommands ?? [];
  if (subs.length === 0) return [{ sub: undefined, names: Object.keys(optionsOf(spec)) }];
  return subs.map((s) => ({ sub: s.name, names: Object.keys(optionsOf(spec, s.name)) }));
}

/** The command a line names (`tally issue white ...`, longest path first) and the words after its path */
function commandOfLine(words: string[]): { spec: CommandSpec; rest: string[] } | undefined {
  let best: CommandSpec | undefined;
  for (const spec of specs) {
    const path = spec.path.split(' ');
    if (path.every((w, i) => words[i] === w) && (!best || path.length > best.path.split(' ').length)) best = spec;
  }
  return best && { spec: best, rest: words.slice(best.path.split(' ').length) };
}

/** A command of `tally` without a declaration (its help still hand-written) that a line names */
function undeclaredCommandOfLine(words: string[]): boolean {
  return commands.some((c) => !c.spec && c.path.every((w, i) => words[i] === w));
}

/** The options a command line may use: the subcommand's when it names one */
function optionsForLine(spec: CommandSpec, rest: string[]): Set<string> {
  const sub = spec.subcommands?.find((s) => s.name === rest[0]);
  const names = sub ? Object.keys(optionsOf(spec, sub.name)) : [...new Set(tablesOf(spec).flatMap((t) => t.names))];
  return new Set(names);
}

/**
 * Every --option a text names, with the command it belongs to: this command, or the
 * `tally OTHER COMMAND` named before it on the same line (a cross-reference)
 */
function optionMentions(spec: CommandSpec, text: string): { option: string; spec: CommandSpec; rest: string[]; line: string }[] {
  const found: { option: string; spec: CommandSpec; rest: string[]; line: string }[] = [];
  for (const line of text.split('\n')) {
    let owner: { spec: CommandSpec; rest: string[] } = { spec, rest: [] };
    const tokens = line.split(/[\s(),;:|[\]`'"]+/).filter(Boolean);
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (token === 'tally') {
        const named = commandOfLine(tokens.slice(i + 1));
        if (named) owner = named;
        // a command not yet declared with defineCommand: its options cannot be checked here
        else if (undeclaredCommandOfLine(tokens.slice(i + 1))) break;
        continue;
      }
      const m = /^--([a-z][a-z0-9-]*)(=.*)?$/.exec(token);
      if (m) found.push({ option: m[1]!, spec: owner.spec, rest: owner.rest, line });
    }
  }
  return found;
}

describe('the CLI reference', () => {
  it('docs/cli.md is generated from the option tables and up to date', () => {
    const expected = cliReferenceMarkdown(specs);
    if (process.env.UPDATE_DOCS === '1') writeFileSync(DOC, expected);
    expect(readFileSync(DOC, 'utf8'), 'docs/cli.md is stale: UPDATE_DOCS=1 npx vitest run test/cli/cliReference.test.ts').toBe(expected);
  });

  it("lists every option a command parses in its help, with its description", () => {
    for (const command of commands) {
      if (!command.spec) continue;
      for (const { sub, names } of tablesOf(command.spec)) {
        const table = optionsOf(command.spec, sub);
        for (const name of names) {
          const row = command.help.split('\n').find((l) => l.trimStart().startsWith(`${optionSynopsis(name, table[name]!)} `) || l.trim() === optionSynopsis(name, table[name]!));
          expect(row, `tally ${command.spec.path} --help lists --${name}`).toBeDefined();
        }
      }
    }
  });

  it("names only options the command's parser takes, in its usage, prose and examples", () => {
    const wrong: string[] = [];
    for (const spec of specs) {
      const text = [...usageLines(spec), spec.about ?? '', ...(spec.examples ?? []), spec.epilogue ?? ''].join('\n');
      for (const m of optionMentions(spec, text)) {
        if (!optionsForLine(m.spec, m.rest).has(m.option)) wrong.push(`tally ${spec.path}: --${m.option} (of tally ${m.spec.path}) in "${m.line.trim()}"`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("has every option its help lists accepted by the command's parser", async () => {
    const refused: string[] = [];
    const io = { out: () => {}, err: () => {} };
    for (const command of commands) {
      if (!command.spec) continue;
      for (const { sub, names } of tablesOf(command.spec)) {
        const table = optionsOf(command.spec, sub);
        for (const name of names) {
          if (name === 'help') continue;
          const value = table[name]!.type === 'string' ? [name === 'locale' ? 'en' : 'x'] : [];
          const args = [...(sub ? [sub] : []), `--${name}`, ...value, '--not-an-option'];
          let message = 'ran without refusing --not-an-option';
          try {
            await command.run(args, io);
          } catch (err) {
            message = isTallyError(err) ? err.message : String(err);
          }
          // the parser reads the options in order: --NAME is accepted when the refusal is of the next one
          if (!message.includes("'--not-an-option'")) refused.push(`tally ${command.spec.path} ${args.join(' ')}: ${message}`);
        }
      }
    }
    expect(refused).toEqual([]);
  });

  it('gives the commands a parser only through their declaration', () => {
    for (const file of readdirSync(COMMANDS_DIR)) {
      const source = readFileSync(`${COMMANDS_DIR}${file}`, 'utf8');
      if (/: CliCommand = \{/.test(source)) continue; // not yet declared with defineCommand
      expect(source, `${file} parses with its own table`).not.toMatch(/from 'node:util'[^\n]*|import \{[^}]*\bparse(WithPositionals)?\b[^}]*\} from '\.\.\/args\.js'/);
      expect(source, `${file}`).not.toMatch(/\bparseArgs\(/);
    }
  });

  it("uses only options in the README's command lines that their commands take", () => {
    const wrong: string[] = [];
    const lines = readFileSync(README, 'utf8').split('\n');
    for (const raw of lines) {
      const line = raw.replace(/^\s*(\$ )?(npx )?/, '').replace(/\s+#.*$/, '');
      if (!line.startsWith('tally ')) continue;
      const words = line.split(/\s+/).slice(1);
      const named = commandOfLine(words);
      if (!named) continue;
      const known = optionsForLine(named.spec, named.rest);
      for (const w of named.rest) {
        const m = /^--([a-z][a-z0-9-]*)/.exec(w);
        if (m && !known.has(m[1]!)) wrong.push(`--${m[1]} in README: ${raw.trim()}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
