// Lint: typescript-eslint's recommended rules plus the import rules that keep
// the layers apart (docs/architecture.md), from the one table in lint/layers.mjs.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { layersRule } from './lint/layers.mjs';

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
  {
    // the layers of docs/architecture.md, at every folder depth (lint/layers.mjs)
    files: ['src/**/*.ts'],
    plugins: { tally: { rules: { layers: layersRule } } },
    rules: { 'tally/layers': 'error' },
  },
);
