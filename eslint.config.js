// Lint: typescript-eslint's recommended rules plus the import rules that keep
// the layers apart (docs/architecture.md). A layer lists what it must not import.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const IO_PACKAGES = ['serialport', '@serialport/*', 'pcsclite', 'mqtt', 'better-sqlite3', 'pg', 'pino', 'aedes', 'node-forge', 'yaml'];
const ROOTS = ['**/cli/*', '**/cli/**'];

function layer(files, forbidden, message) {
  return {
    files,
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: forbidden, message }] }],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'firmware-protocol/c/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // plain Node scripts (scripts/*.mjs, eslint.config.js)
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { console: 'readonly', process: 'readonly', URL: 'readonly' } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  layer(
    ['src/codecs/**'],
    ['node:*', 'fs', 'net', 'crypto', ...IO_PACKAGES, '../*', '!../errors.js', '!../codecs/*'],
    'codecs are pure: bytes in, values out; no I/O, no clock, no other layer',
  ),
  layer(['src/crypto/**'], ['node:fs', 'node:net', ...IO_PACKAGES, '../card/*', '../readers/*', '../ledger/*', '../terminal/*', '../issuing/*', '../sync/*', '../server/*', '../sim/*', ...ROOTS], 'crypto uses codecs and node:crypto only'),
  layer(['src/card/**'], ['node:fs', 'node:net', ...IO_PACKAGES, '../readers/*', '../transports/*', '../ledger/*', '../terminal/*', '../issuing/*', '../sync/*', '../server/*', '../sim/*', ...ROOTS], 'card logic reaches a card only through an ApduChannel'),
  layer(['src/transports/**'], ['../card/*', '../ledger/*', '../terminal/*', '../issuing/*', '../sync/*', '../server/*', '../sim/*', ...ROOTS], 'a transport moves bytes and knows nothing above it'),
  layer(['src/readers/**'], ['../scenario/*', '../ledger/*', '../terminal/*', '../issuing/*', '../sync/*', '../server/*', '../sim/*', ...ROOTS], 'readers sit below the ledger and the terminal'),
  layer(['src/ledger/**'], ['../scenario/*', '../readers/*', '../transports/*', '../terminal/*', '../issuing/*', '../sync/*', '../server/*', '../sim/*', 'mqtt', 'serialport', 'pcsclite', ...ROOTS], 'the ledger owns SQLite and nothing else'),
  layer(['src/terminal/**'], ['../scenario/*', '../readers/*/**', '../readers/*Backend*', '../transports/*', '../issuing/*', '../sync/*', '../server/*', '../sim/*', 'mqtt', 'serialport', 'pcsclite', ...ROOTS], 'the terminal sees only the reader interface, never a backend'),
  layer(['src/issuing/**'], ['../scenario/*', '../readers/*/**', '../transports/*', '../ledger/*', '../terminal/*', '../sync/*', '../server/*', '../sim/*', 'mqtt', ...ROOTS], 'the issuing station talks to cards through ApduChannel'),
  layer(['src/sync/**'], ['../scenario/*', '../readers/*', '../transports/*', '../terminal/*', '../issuing/*', '../server/*', '../sim/*', 'serialport', 'pcsclite', ...ROOTS], 'sync owns MQTT on the terminal side'),
  layer(['src/server/**'], ['../scenario/*', '../readers/*', '../transports/*', '../terminal/*', '../ledger/*', '../issuing/*', '../sync/*', '../sim/*', 'serialport', 'pcsclite', ...ROOTS], 'the server is its own root and shares only codecs and crypto with the terminal'),
  layer(['src/daemon/**'], ['../scenario/*', '../server/*', '../issuing/*', ...ROOTS], 'the daemon composes the terminal side only'),
  layer(['src/config/**'], ['../card/*', '../readers/*', '../transports/*', '../ledger/*', '../terminal/*', '../issuing/*', '../sync/*', '../server/*', '../sim/*', '../daemon/*', ...ROOTS], 'configuration is read by the roots and knows no layer'),
  layer(['src/logging/**', 'src/pki/**', 'src/util/**'], ['../card/*', '../readers/*', '../transports/*', '../ledger/*', '../terminal/*', '../issuing/*', '../sync/*', '../server/*', '../sim/*', '../daemon/*', '../scenario/*', ...ROOTS], 'shared utilities know no layer'),
  layer(['src/sim/**'], ['../scenario/*', '../ledger/*', '../terminal/*', '../issuing/*', '../server/*', ...ROOTS], 'simulators speak the real bytes and sit below the roots'),
);
