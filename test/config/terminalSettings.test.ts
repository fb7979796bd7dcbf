/**
 * The terminal's settings as one TypeBox schema (issue 11): the daemon's view is computed from the schema's
 * Static type, every wrong field is listed at once with the code of its problem, secrets stay redacted, and
 * --settings lists every setting with its meaning and variable.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, envName, redacted, settingsListing, settingsOf } from '../../src/config/schema.js';
import { loadTerminalConfig, TERMINAL_SETTINGS } from '../../src/config/terminalConfig.js';
import { isTallyError } from '../../src/errors.js';
import { tempDir } from '../../src/scenario/CardWorld.js';

function file(text: string): string {
  const path = join(tempDir('tally-settings-'), 'terminal.yaml');
  writeFileSync(path, text);
  return path;
}

function refusal(path: string, env: Record<string, string> = {}): ConfigError {
  try {
    loadTerminalConfig(path, env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('terminal settings', () => {
  it('the serial example resolves to the daemon view: durations in ms, the reader by its backend, sms and enrol only when given', () => {
    const { config, settings } = loadTerminalConfig('config/terminal-serial.yaml', {});
    expect(settings.reader.serial.baudRate).toBe(115200);
    expect(config.reader).toEqual({ backend: 'serial', path: '/dev/ttyS1', baudRate: 115200, reopenDelayMs: 500 });
    expect(config.device).toEqual({ maxSessionMs: 3_600_000, startTimeoutMs: 30_000, requireBoardWitness: false });
    expect(config.sms).toMatchObject({ modemPath: '/dev/ttyUSB2', afterDownMs: 7_200_000, everyMs: 28_800_000, retryMs: 300_000, maxPerDay: 3 });
    expect(config.sync.enrol).toEqual({ url: 'https://reports.example-investor.net:8443', renewDays: 60 });
    expect(config.sync.tls).toBeUndefined();
    expect(config.scanner).toBeUndefined();
    expect(config.statusSocket).toBe('/var/lib/tallystick/status.sock');
    const pcsc = loadTerminalConfig('config/terminal-pcsc.yaml', { TALLY_SYNC_TLS_CA: '/etc/ca.pem', TALLY_SYNC_PROTOCOL_VERSION: '4' }).config;
    expect(pcsc.reader).toEqual({ backend: 'pcsc', readerName: 'CCID' });
    expect(pcsc.sync.tls).toEqual({ ca: '/etc/ca.pem' });
    expect(pcsc.sync.protocolVersion).toBe(4);
  });

  it('lists every wrong field at once, each with the code of its problem, a secret never shown', () => {
    const err = refusal(file('terminal: {locale: fr}\nreader: {backend: usb, serial: {baudRate: 5}}\nnonsense: 1\nsync: {password: 3, enabled: yes please}\n'), { TALLY_DEVICE_MAX_SESSION_MINUTES: '0' });
    expect(isTallyError(err, 'CONFIG')).toBe(true);
    expect(err.numericCode).toBe(9002);
    const byField = Object.fromEntries(err.problems.map((p) => [p.field, p.code]));
    expect(byField).toEqual({
      nonsense: 'CONFIG_UNKNOWN_SETTING',
      'terminal.locale': 'CONFIG_NOT_ALLOWED',
      'reader.backend': 'CONFIG_NOT_ALLOWED',
      'reader.serial.baudRate': 'CONFIG_OUT_OF_RANGE',
      'TALLY_DEVICE_MAX_SESSION_MINUTES (environment, sets device.maxSessionMinutes)': 'CONFIG_OUT_OF_RANGE',
      'sync.enabled': 'CONFIG_WRONG_TYPE',
      'sync.password': 'CONFIG_WRONG_TYPE',
    });
    expect(err.message).toContain('7 problems');
    expect(err.message).toContain('  reader.serial.baudRate: must be at least 1200 (got 5) [CONFIG_OUT_OF_RANGE 9022]');
    expect(err.message).toContain('  sync.password: must be a non-empty string (got ***) [CONFIG_WRONG_TYPE 9021]');
    expect(err.message).not.toContain('got 3');
  });

  it('a file that is not YAML, or missing, is CONFIG_FILE_UNREADABLE', () => {
    expect(refusal(file('terminal: [unclosed\n')).problems[0]!.code).toBe('CONFIG_FILE_UNREADABLE');
    expect(refusal('/nonexistent/terminal.yaml').problems).toEqual([expect.objectContaining({ field: '(file)', code: 'CONFIG_FILE_UNREADABLE' })]);
  });

  it('--print-config redacts the secret; --settings lists each setting with its type, default, meaning and variable', () => {
    const { values } = loadTerminalConfig(undefined, { TALLY_SYNC_PASSWORD: 'hunter2-hunter2' });
    expect(redacted(TERMINAL_SETTINGS, values)['sync.password']).toBe('***');
    const lines = settingsListing(TERMINAL_SETTINGS);
    const keys = [...settingsOf(TERMINAL_SETTINGS).keys()];
    expect(keys).toHaveLength(36);
    expect(lines).toHaveLength(keys.length * 2);
    for (const key of keys) {
      const at = lines.findIndex((l) => l.startsWith(`${key} `));
      expect(at, key).toBeGreaterThanOrEqual(0);
      expect(lines[at + 1]).toMatch(new RegExp(`^ {30} \\S.* \\[${envName(key)}\\]$`));
    }
    expect(lines).toContain(`${'reader.backend'.padEnd(30)} serial|pcsc|simulated = "serial"`);
    expect(lines).toContain(`${'reader.serial.baudRate'.padEnd(30)} integer = 115200`);
  });
});
