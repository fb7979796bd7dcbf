/**
 * A small declarative configuration schema: every setting once, with its type,
 * default, environment override and description. Validation reports every
 * wrong field at once. Pure: the caller reads files and the environment.
 */

export type FieldType = 'string' | 'integer' | 'boolean' | 'enum' | 'map';

export interface FieldSpec {
  readonly type: FieldType;
  readonly doc: string;
  readonly default?: unknown;
  readonly values?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  /** Never printed: shown as "***" */
  readonly secret?: boolean;
  /** Must be given (no default) */
  readonly required?: boolean;
}

export type Schema = Record<string, FieldSpec>;

export interface ConfigProblem {
  readonly field: string;
  readonly problem: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly source: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(`${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  ${p.field}: ${p.problem}`).join('\n')}`);
  }
}

/** TALLY_ + the dotted key in upper snake case: reader.serial.path -> TALLY_READER_SERIAL_PATH */
export function envName(key: string): string {
  return `TALLY_${key.replace(/([a-z])([A-Z])/g, '$1_$2').replace(/\./g, '_').toUpperCase()}`;
}

function flatten(value: unknown, prefix: string, out: Map<string, unknown>, schema: Schema): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && schema[prefix]?.type !== 'map') {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out, schema);
  } else if (prefix) {
    out.set(prefix, value);
  }
}

function coerceFromEnv(spec: FieldSpec, raw: string): unknown {
  switch (spec.type) {
    case 'integer':
      return /^-?\d+$/.test(raw) ? Number(raw) : raw;
    case 'boolean':
      return raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
    case 'map':
      // "a=1,b=2"
      return Object.fromEntries(raw.split(',').filter(Boolean).map((pair) => pair.split('=').map((s) => s.trim()) as [string, string]));
    default:
      return raw;
  }
}

function check(key: string, spec: FieldSpec, value: unknown): string | undefined {
  switch (spec.type) {
    case 'string':
      return typeof value === 'string' && value.length > 0 ? undefined : 'must be a non-empty string';
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) return 'must be a whole number';
      if (spec.min !== undefined && value < spec.min) return `must be at least ${spec.min}`;
      if (spec.max !== undefined && value > spec.max) return `must be at most ${spec.max}`;
      return undefined;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : 'must be true or false';
    case 'enum':
      return typeof value === 'string' && spec.values!.includes(value) ? undefined : `must be one of ${spec.values!.join(', ')}`;
    case 'map':
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return `must be a map of ${key} entries`;
      for (const [k, v] of Object.entries(value)) {
        if (spec.values && !spec.values.includes(String(v))) return `${k}: must be one of ${spec.values.join(', ')}`;
      }
      return undefined;
  }
}

/**
 * Resolves a configuration: defaults, then the file's values, then the
 * environment. Returns a flat map keyed by dotted names; throws ConfigError
 * listing every unknown, missing or wrong field.
 */
export function resolveConfig(schema: Schema, fileValues: unknown, env: Record<string, string | undefined>, source: string): Map<string, unknown> {
  const problems: ConfigProblem[] = [];
  const given = new Map<string, unknown>();
  if (fileValues !== undefined && fileValues !== null) {
    if (typeof fileValues !== 'object' || Array.isArray(fileValues)) problems.push({ field: '(file)', problem: 'must be a mapping of sections' });
    else flatten(fileValues, '', given, schema);
  }
  for (const key of given.keys()) {
    if (!schema[key]) problems.push({ field: key, problem: 'unknown setting' });
  }
  const resolved = new Map<string, unknown>();
  for (const [key, spec] of Object.entries(schema)) {
    let value = spec.default;
    if (given.has(key)) value = given.get(key);
    const fromEnv = env[envName(key)];
    if (fromEnv !== undefined) value = coerceFromEnv(spec, fromEnv);
    if (value === undefined) {
      if (spec.required) problems.push({ field: key, problem: `required (or set ${envName(key)})` });
      continue;
    }
    const problem = check(key, spec, value);
    // a value the environment set is reported against the variable, not the file's field
    const field = fromEnv !== undefined ? `${envName(key)} (environment, sets ${key})` : key;
    if (problem) problems.push({ field, problem: `${problem} (got ${spec.secret ? '***' : JSON.stringify(value)})` });
    else resolved.set(key, value);
  }
  if (problems.length > 0) throw new ConfigError(source, problems);
  return resolved;
}

/** The resolved configuration for logs and `--print-config`, secrets redacted */
export function redacted(schema: Schema, resolved: Map<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of resolved) out[key] = schema[key]?.secret ? '***' : value;
  return out;
}

/** TALLY_* variables read elsewhere than the settings schema (secrets and tools), so not typos */
export const OTHER_TALLY_VARIABLES: readonly string[] = ['TALLY_ADMIN_TOKEN', 'TALLY_CA_PASSPHRASE', 'TALLY_PCSCD_RUN_DIR', 'TALLY_PCSCD_QUICKACK', 'TALLY_PCSCD_DEBUG', 'TALLY_PCSCD_CONFIG'];

/** TALLY_* variables that name no setting (a typo is otherwise ignored silently), each with the closest setting's variable */
export function unknownEnvironment(schema: Schema, env: Record<string, string | undefined>): { variable: string; closest?: string }[] {
  const known = new Set([...Object.keys(schema).map(envName), ...OTHER_TALLY_VARIABLES]);
  const out: { variable: string; closest?: string }[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('TALLY_') || known.has(name) || env[name] === undefined) continue;
    let best: { name: string; d: number } | undefined;
    for (const k of known) {
      const d = distance(name, k);
      if (!best || d < best.d) best = { name: k, d };
    }
    out.push(best && best.d <= 3 ? { variable: name, closest: best.name } : { variable: name });
  }
  return out;
}

/** Levenshtein distance, for "did you mean" */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}
