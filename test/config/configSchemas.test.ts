/**
 * The configuration files' JSON Schemas for editors (schemas/*.schema.json) are generated from the TypeBox
 * schemas the programs read with, and stay so (UPDATE_DOCS=1 rewrites them); every example under config/
 * validates against its schema with a standard validator (Ajv, draft 7) and names it for the
 * yaml-language-server; a wrong example fails.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { configSchemaFiles } from '../../scripts/configSchemas.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLES: Record<string, string> = {
  'terminal-serial.yaml': 'terminal-config.schema.json',
  'terminal-pcsc.yaml': 'terminal-config.schema.json',
  'terminal-simulated.yaml': 'terminal-config.schema.json',
  'server.yaml': 'server-config.schema.json',
};

function validator(schemaFile: string) {
  return new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(readFileSync(`${ROOT}schemas/${schemaFile}`, 'utf8')) as object);
}

describe('configuration JSON Schemas', () => {
  it('are generated from src/config and up to date', () => {
    for (const [name, text] of Object.entries(configSchemaFiles())) {
      const path = `${ROOT}schemas/${name}`;
      if (process.env.UPDATE_DOCS === '1') writeFileSync(path, text);
      expect(readFileSync(path, 'utf8'), `schemas/${name} is stale: UPDATE_DOCS=1 npx vitest run test/config/configSchemas.test.ts`).toBe(text);
    }
  });

  it('every example in config/ validates against its schema and names it for the editor', () => {
    const examples = readdirSync(`${ROOT}config`).filter((n) => n.endsWith('.yaml'));
    expect(examples.sort()).toEqual(Object.keys(EXAMPLES).sort());
    for (const [example, schemaFile] of Object.entries(EXAMPLES)) {
      const text = readFileSync(`${ROOT}config/${example}`, 'utf8');
      expect(text.split('\n')[0], example).toBe(`# yaml-language-server: $schema=../schemas/${schemaFile}`);
      const validate = validator(schemaFile);
      expect(validate(parseYaml(text)), `${example}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });

  it('a wrong field fails the schema: an unknown key, a bound, a value not allowed, a type', () => {
    const terminal = validator('terminal-config.schema.json');
    expect(terminal({ reader: { backend: 'serial', serial: { baudRate: 9600 } }, log: { levels: { sync: 'debug' } } })).toBe(true);
    for (const wrong of [{ nonsense: 1 }, { reader: { serial: { baudRate: 5 } } }, { terminal: { locale: 'fr' } }, { sync: { enabled: 'yes' } }, { log: { levels: { sync: 'loud' } } }]) {
      expect(terminal(wrong), JSON.stringify(wrong)).toBe(false);
    }
    const server = validator('server-config.schema.json');
    expect(server({ http: { port: 8080 }, mqtt: { brokerUrl: 'mqtt://127.0.0.1:1883' } })).toBe(true);
    expect(server({ http: { port: 70_000 } })).toBe(false);
    expect(server({ server: { signatureCheck: 'sometimes' } })).toBe(false);
  });
});
