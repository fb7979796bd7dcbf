/**
 * The JSON Schemas of the configuration files, for editors (the
 * yaml-language-server's `# yaml-language-server: $schema=...` comment):
 * generated from the TypeBox schemas of src/config, which the programs read
 * with. test/config/configSchemas.test.ts fails while a file under schemas/
 * differs from what this generates (UPDATE_DOCS=1 rewrites them).
 */
import { editorSchema } from '../src/config/schema.js';
import { SERVER_SETTINGS } from '../src/config/serverSettings.js';
import { TERMINAL_SETTINGS } from '../src/config/terminalSettings.js';

const BASE = 'https://tallystick.invalid/schemas';

/** File name under schemas/ -> its text */
export function configSchemaFiles(): Record<string, string> {
  const files = {
    'terminal-config.schema.json': editorSchema(TERMINAL_SETTINGS, {
      id: `${BASE}/terminal-config.schema.json`,
      title: 'tallystick terminal daemon configuration',
      description: 'tally terminal run --config FILE (YAML or JSON); every setting also TALLY_<SECTION>_<NAME>; tally terminal run --settings lists them',
    }),
    'server-config.schema.json': editorSchema(SERVER_SETTINGS, {
      id: `${BASE}/server-config.schema.json`,
      title: 'tallystick ingest server configuration',
      description: 'tally server run --config FILE (YAML or JSON); every setting also TALLY_<SECTION>_<NAME>; a command line flag wins',
    }),
  };
  return Object.fromEntries(Object.entries(files).map(([name, schema]) => [name, `${JSON.stringify(schema, null, 2)}\n`]));
}
