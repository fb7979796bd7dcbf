/**
 * A coded failure prints the operator's line and the other language's line; its JSON cli-refused event
 * goes to the log, i.e. to standard error when that is not a terminal, and at a terminal only with
 * --log-json or TALLY_LOG=json (docs/cli.md). In process through main(), and the built CLI on a pipe and
 * on a real pty (script(1)), so the entry point's own test of standard error is what is checked.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { main } from '../../src/cli/tally.js';
import { tempDir } from '../../src/scenario/CardWorld.js';
import { TALLY_CLI } from '../support/tallyProcess.js';

const run = promisify(execFile);
const CODE = `[DATABASE_CANTOPEN ${ErrorCodes.DATABASE_CANTOPEN.code}]`;
/** A command that fails with a code (not USAGE, which prints its line alone): no registry there */
const failing = (): string[] => ['issue', 'list', '--registry', join(tempDir('tally-refusal-'), 'none.db')];

async function tally(args: string[], errIsTerminal: boolean) {
  const err: string[] = [];
  const code = await main(args, { out: () => {}, err: (line) => err.push(...line.split('\n')), errIsTerminal });
  return { code, err };
}

const events = (lines: readonly string[]) => lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

afterEach(() => {
  delete process.env.TALLY_LOG;
});

describe('a coded failure', () => {
  it('at a terminal: the two languages, no JSON event', async () => {
    const r = await tally(failing(), true);
    expect(r.code).toBe(1);
    expect(r.err).toHaveLength(2);
    expect(r.err[0]).toContain(CODE);
    expect(r.err[1]).toContain(ErrorCodes.DATABASE_CANTOPEN.zh);
    expect(r.err[1]).toContain(CODE);
    expect(events(r.err)).toEqual([]);
  });

  it('at a terminal with --log-json or TALLY_LOG=json: the event too', async () => {
    const flagged = await tally([...failing(), '--log-json'], true);
    expect(flagged.code).toBe(1);
    expect(events(flagged.err)).toMatchObject([{ level: 'error', event: 'cli-refused', command: 'issue list', code: 'DATABASE_CANTOPEN', numericCode: ErrorCodes.DATABASE_CANTOPEN.code }]);
    process.env.TALLY_LOG = 'json';
    const viaEnv = await tally(failing(), true);
    expect(viaEnv.err).toHaveLength(3);
    expect(events(viaEnv.err)).toMatchObject([{ event: 'cli-refused', code: 'DATABASE_CANTOPEN' }]);
  });

  it('not at a terminal: the two languages and the event', async () => {
    const r = await tally(failing(), false);
    expect(r.err).toHaveLength(3);
    expect(r.err[0]).toContain(CODE);
    expect(events(r.err)).toMatchObject([{ event: 'cli-refused', command: 'issue list', code: 'DATABASE_CANTOPEN' }]);
  });

  it('the built CLI: the event on a pipe, none on a pty', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, TALLY_LOCALE: 'en' };
    delete env.TALLY_LOG;
    const piped = await run(process.execPath, [TALLY_CLI, ...failing()], { env }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(piped?.code).toBe(1);
    expect(piped!.stderr).toContain(CODE);
    expect(events(piped!.stderr.trim().split('\n'))).toMatchObject([{ event: 'cli-refused', code: 'DATABASE_CANTOPEN' }]);
    // script(1) runs it on a new pty: standard error is a terminal there
    const line = [process.execPath, TALLY_CLI, ...failing()].map((w) => `'${w}'`).join(' ');
    const onPty = await run('script', ['-qec', line, '/dev/null'], { env }).then(
      () => undefined,
      (e: { code: number; stdout: string }) => e,
    );
    expect(onPty?.code).toBe(1);
    const shown = onPty!.stdout.replace(/\r/g, '').trim().split('\n');
    expect(shown.filter((l) => l.includes(CODE))).toHaveLength(2);
    expect(onPty!.stdout).not.toContain('cli-refused');
  });
});
