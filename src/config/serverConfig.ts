/**
 * The ingest server's configuration file (`tally server run --config FILE`),
 * read by the same schema system as the terminal's: YAML or JSON, TALLY_*
 * environment overrides (TALLY_MQTT_BROKER_URL sets mqtt.brokerUrl), every
 * wrong field listed at once. A command line flag wins over both: the file and
 * the environment give the flags' values the command line did not.
 */
import { readConfigFile } from './configFile.js';
import { resolveConfig, settingsOf, unknownEnvironmentWarnings } from './schema.js';
import { SERVER_SETTINGS, type ServerSettings } from './serverSettings.js';
import { TERMINAL_SETTINGS } from './terminalSettings.js';

export { SERVER_SETTINGS, type ServerSettings } from './serverSettings.js';

export interface LoadedServerConfig {
  readonly settings: ServerSettings;
  /** The flags the file and the environment set (not defaults), as the command line would give them */
  readonly flags: Record<string, string | boolean>;
  readonly warnings: string[];
}

export function loadServerConfig(path: string | undefined, env: Record<string, string | undefined> = process.env): LoadedServerConfig {
  const fileValues = path ? readConfigFile(path) : undefined;
  const { settings, values, given } = resolveConfig(SERVER_SETTINGS, fileValues, env, path ?? '(environment)');
  const flags: Record<string, string | boolean> = {};
  for (const [key, leaf] of settingsOf(SERVER_SETTINGS)) {
    const value = values.get(key);
    if (!leaf.flag || !given.has(key) || value === undefined) continue;
    if (typeof value === 'boolean') {
      if (value) flags[leaf.flag] = true;
    } else {
      flags[leaf.flag] = String(value);
    }
  }
  return { settings, flags, warnings: unknownEnvironmentWarnings([SERVER_SETTINGS, TERMINAL_SETTINGS], env) };
}
