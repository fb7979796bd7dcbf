/**
 * Settings from the environment (issue 10, finding 6): a bad TALLY_* value is reported against the
 * variable that set it, not the config file's field; a TALLY_* variable that names no setting (a
 * typo) is warned about with the closest setting's variable, by the loader and by tally terminal run.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/tally.js';
import { ConfigError } from '../../src/config/schema.js';
import { loadTerminalConfig } from '../../src/config/terminalConfig.js';
import { tempDir } from '../../src/scenario/CardWorld.js';

function configFile(): string {
  const file = join(tempDir('tally-env-'), 'terminal.yaml');
  writeFileSync(file, 'terminal:\n  dataDir: /tmp/tally-env-data\nsync:\n  maxEntriesPerSecond: 50\n');
  return file;
}

describe('settings from the environment', () => {
  it('names the variable that set a bad value, and the file field when the file set it', () => {
    const file = configFile();
    let caught: unknown;
    try {
      loadTerminalConfig(file, { TALLY_SYNC_MAX_ENTRIES_PER_SECOND: 'fast' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toContain('TALLY_SYNC_MAX_ENTRIES_PER_SECOND (environment, sets sync.maxEntriesPerSecond)');
    writeFileSync(file, 'terminal:\n  dataDir: /tmp/tally-env-data\nsync:\n  maxEntriesPerSecond: fast\n');
    expect(() => loadTerminalConfig(file, {})).toThrow(/sync\.maxEntriesPerSecond/);
    expect(() => loadTerminalConfig(file, {})).not.toThrow(/TALLY_SYNC_MAX_ENTRIES_PER_SECOND \(environment/);
  });

  it('warns about a TALLY_ variable that names no setting, with the closest one; known secrets are not warned about', () => {
    const { warnings } = loadTerminalConfig(configFile(), { TALLY_READER_BACKND: 'serial', TALLY_ADMIN_TOKEN: 'x', TALLY_LOG_LEVEL: 'info', PATH: '/bin' });
    expect(warnings).toEqual(['TALLY_READER_BACKND is not a tallystick setting and is ignored (did you mean TALLY_READER_BACKEND?) [CONFIG_UNKNOWN_ENV 9010]']);
  });

  it('tally terminal run prints the warning (here with --print-config, which starts nothing)', async () => {
    const err: string[] = [];
    const before = process.env.TALLY_SYNC_ENABLD;
    process.env.TALLY_SYNC_ENABLD = 'true';
    try {
      const code = await main(['terminal', 'run', '--config', configFile(), '--print-config'], { out: () => undefined, err: (l) => err.push(l) });
      expect(code).toBe(0);
    } finally {
      if (before === undefined) delete process.env.TALLY_SYNC_ENABLD;
      else process.env.TALLY_SYNC_ENABLD = before;
    }
    expect(err.join('\n')).toMatch(/warning: TALLY_SYNC_ENABLD is not a tallystick setting and is ignored \(did you mean TALLY_SYNC_ENABLED\?\)/);
  });
});
