/** Reading a configuration file: YAML or JSON (JSON is YAML) */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './schema.js';

/** Reads a YAML or JSON file (JSON is YAML); ConfigError (CONFIG_FILE_UNREADABLE) when it cannot */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [{ field: '(file)', problem: (err as Error).message, code: 'CONFIG_FILE_UNREADABLE' }]);
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new ConfigError(path, [{ field: '(file)', problem: `not YAML or JSON: ${(err as Error).message}`, code: 'CONFIG_FILE_UNREADABLE' }]);
  }
}
