/**
 * The settings schema system: every setting once, as a TypeBox schema with its
 * type, default, bounds and description, so the resolved type is derived from it
 * (`Static<typeof SCHEMA>`) and the same schema is exported as JSON Schema for
 * editors (schemas/*.schema.json). Resolution takes the defaults, then a file's
 * values, then the TALLY_* environment, and reports every wrong field at once.
 * Pure: the caller reads files and the environment.
 */
import { Kind, Type, type Static, type TBoolean, type TInteger, type TLiteral, type TObject, type TOptional, type TProperties, type TRecord, type TSchema, type TString, type TUnion } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ErrorCodes, TallyError, type ErrorName } from '../errors.js';

/** pino's levels, for the log.level settings */
export const LOG_LEVELS = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** The keywords this module adds to a TypeBox leaf: never printed (shown as "***") */
interface SettingKeywords {
  readonly secret?: boolean;
  /** The command line flag that sets it too (and wins over the file), where a command has one */
  readonly flag?: string;
}

type Literals<V extends readonly string[]> = TUnion<TLiteral<V[number]>[]>;

function literals<const V extends readonly string[]>(values: V): Literals<V> {
  return Type.Union(values.map((v) => Type.Literal(v))) as unknown as Literals<V>;
}

/**
 * Leaf constructors. A setting with a default is always present once resolved; one without is optional
 * (its Static type says so).
 */
export const Setting = {
  text: ((doc: string, options: { default?: string; secret?: boolean } = {}) => {
    const schema = Type.String({ minLength: 1, description: doc, ...(options.default !== undefined ? { default: options.default } : {}), ...(options.secret ? { secret: true, writeOnly: true } : {}) });
    return options.default !== undefined ? schema : Type.Optional(schema);
  }) as {
    (doc: string, options: { default: string }): TString;
    (doc: string, options?: { secret?: boolean }): TOptional<TString>;
  },
  integer: ((doc: string, options: { default?: number; min?: number; max?: number }) => {
    const schema = Type.Integer({
      description: doc,
      ...(options.default !== undefined ? { default: options.default } : {}),
      ...(options.min !== undefined ? { minimum: options.min } : {}),
      ...(options.max !== undefined ? { maximum: options.max } : {}),
    });
    return options.default !== undefined ? schema : Type.Optional(schema);
  }) as {
    (doc: string, options: { default: number; min?: number; max?: number }): TInteger;
    (doc: string, options: { min?: number; max?: number }): TOptional<TInteger>;
  },
  boolean: (doc: string, value: boolean): TBoolean => Type.Boolean({ description: doc, default: value }),
  oneOf: <const V extends readonly string[]>(values: V, doc: string, value: V[number]): Literals<V> =>
    Type.Union(values.map((v) => Type.Literal(v)), { description: doc, default: value }) as unknown as Literals<V>,
  /** A map of names to one of `values` (in the environment: "a=x,b=y") */
  mapOf: <const V extends readonly string[]>(values: V, doc: string): TRecord<TString, Literals<V>> => Type.Record(Type.String(), literals(values), { description: doc, default: {} }),
};

/** The setting as `--name` also sets it (the flag wins over the file and the environment) */
export function withFlag<T extends TSchema>(name: string, schema: T): T {
  return { ...schema, flag: name };
}

/** A section of settings: a mapping that holds no other key */
export function Section<P extends TProperties>(properties: P, doc?: string): TObject<P> {
  return Type.Object(properties, { additionalProperties: false, ...(doc ? { description: doc } : {}) });
}

export interface ConfigProblem {
  readonly field: string;
  readonly problem: string;
  /** What kind of problem (src/errors.ts, 902x) */
  readonly code: ErrorName;
}

/**
 * A configuration that cannot be used: every problem listed, each with its field and code. Its message is the
 * list itself (the CLI prints it as it is); its code CONFIG.
 */
export class ConfigError extends TallyError {
  override readonly name: string = 'ConfigError';
  constructor(
    readonly source: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    const list = `${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  ${p.field}: ${p.problem} [${p.code} ${ErrorCodes[p.code].code}]`).join('\n')}`;
    super('CONFIG', list, { source, problems: problems.map((p) => ({ ...p })) });
    this.message = list;
  }
}

/** TALLY_ + the dotted key in upper snake case: reader.serial.path -> TALLY_READER_SERIAL_PATH */
export function envName(key: string): string {
  return `TALLY_${key.replace(/([a-z])([A-Z])/g, '$1_$2').replace(/\./g, '_').toUpperCase()}`;
}

export type Leaf = TSchema & SettingKeywords & { readonly description?: string; readonly default?: unknown };

/** The settings of a schema by dotted key, in the schema's order */
export function settingsOf(schema: TObject): Map<string, Leaf> {
  const out = new Map<string, Leaf>();
  const walk = (node: TObject, prefix: string): void => {
    for (const [name, child] of Object.entries(node.properties)) {
      const key = prefix ? `${prefix}.${name}` : name;
      if (child[Kind] === 'Object') walk(child as TObject, key);
      else out.set(key, child as Leaf);
    }
  };
  walk(schema, '');
  return out;
}

function kindOf(leaf: Leaf): 'string' | 'integer' | 'boolean' | 'enum' | 'map' {
  switch (leaf[Kind]) {
    case 'Integer':
      return 'integer';
    case 'Boolean':
      return 'boolean';
    case 'Union':
      return 'enum';
    case 'Record':
      return 'map';
    default:
      return 'string';
  }
}

function valuesOf(union: TSchema): string[] {
  return ((union as TUnion).anyOf ?? []).map((l) => String((l as TLiteral).const));
}

function mapValues(leaf: Leaf): string[] {
  const record = leaf as unknown as { patternProperties: Record<string, TSchema> };
  return valuesOf(Object.values(record.patternProperties)[0]!);
}

function flatten(value: unknown, prefix: string, out: Map<string, unknown>, leaves: Map<string, Leaf>): void {
  const leaf = leaves.get(prefix);
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !(leaf && kindOf(leaf) === 'map')) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out, leaves);
  } else if (prefix) {
    out.set(prefix, value);
  }
}

function coerceFromEnv(leaf: Leaf, raw: string): unknown {
  switch (kindOf(leaf)) {
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

/** What is wrong with `value` for `leaf` (TypeBox decides; the words say what it wanted), or undefined */
function problemOf(key: string, leaf: Leaf, value: unknown): { problem: string; code: ErrorName } | undefined {
  if (Value.Check(leaf, value)) return undefined;
  const wrongType = (problem: string) => ({ problem, code: 'CONFIG_WRONG_TYPE' as const });
  switch (kindOf(leaf)) {
    case 'string':
      return wrongType('must be a non-empty string');
    case 'integer': {
      if (typeof value !== 'number' || !Number.isInteger(value)) return wrongType('must be a whole number');
      const { minimum, maximum } = leaf as TInteger;
      if (minimum !== undefined && value < minimum) return { problem: `must be at least ${minimum}`, code: 'CONFIG_OUT_OF_RANGE' };
      return { problem: `must be at most ${maximum}`, code: 'CONFIG_OUT_OF_RANGE' };
    }
    case 'boolean':
      return wrongType('must be true or false');
    case 'enum':
      return { problem: `must be one of ${valuesOf(leaf).join(', ')}`, code: 'CONFIG_NOT_ALLOWED' };
    case 'map': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return wrongType(`must be a map of ${key} entries`);
      const allowed = mapValues(leaf);
      const bad = Object.entries(value).find(([, v]) => !allowed.includes(String(v)));
      return { problem: `${bad ? bad[0] : '(entry)'}: must be one of ${allowed.join(', ')}`, code: 'CONFIG_NOT_ALLOWED' };
    }
  }
}

export interface ResolvedConfig<S extends TObject> {
  /** The settings as the schema's type: every section present, every setting with a default set */
  readonly settings: Static<S>;
  /** The same by dotted key (the settings given or defaulted), for `--print-config` */
  readonly values: Map<string, unknown>;
  /** The dotted keys a file or the environment set (not defaults) */
  readonly given: ReadonlySet<string>;
}

/**
 * Resolves a configuration: defaults, then the file's values, then the environment. Throws ConfigError listing
 * every unknown, missing or wrong field. `required` lists settings that must be given.
 */
export function resolveConfig<S extends TObject>(schema: S, fileValues: unknown, env: Record<string, string | undefined>, source: string, required: readonly string[] = []): ResolvedConfig<S> {
  const leaves = settingsOf(schema);
  const problems: ConfigProblem[] = [];
  const fromFile = new Map<string, unknown>();
  if (fileValues !== undefined && fileValues !== null) {
    if (typeof fileValues !== 'object' || Array.isArray(fileValues)) problems.push({ field: '(file)', problem: 'must be a mapping of sections', code: 'CONFIG_WRONG_TYPE' });
    else flatten(fileValues, '', fromFile, leaves);
  }
  for (const key of fromFile.keys()) {
    if (!leaves.has(key)) problems.push({ field: key, problem: 'unknown setting', code: 'CONFIG_UNKNOWN_SETTING' });
  }
  const values = new Map<string, unknown>();
  const given = new Set<string>();
  for (const [key, leaf] of leaves) {
    let value = leaf.default;
    if (fromFile.has(key)) value = fromFile.get(key);
    const fromEnv = env[envName(key)];
    if (fromEnv !== undefined) value = coerceFromEnv(leaf, fromEnv);
    if (fromFile.has(key) || fromEnv !== undefined) given.add(key);
    if (value === undefined) {
      if (required.includes(key)) problems.push({ field: key, problem: `required (or set ${envName(key)})`, code: 'CONFIG_REQUIRED' });
      continue;
    }
    const wrong = problemOf(key, leaf, value);
    // a value the environment set is reported against the variable, not the file's field
    const field = fromEnv !== undefined ? `${envName(key)} (environment, sets ${key})` : key;
    if (wrong) problems.push({ field, problem: `${wrong.problem} (got ${leaf.secret ? '***' : JSON.stringify(value)})`, code: wrong.code });
    else values.set(key, value);
  }
  if (problems.length > 0) throw new ConfigError(source, problems);
  const settings = nested(schema, values);
  if (!Value.Check(schema, settings)) throw new TallyError('INTERNAL', `${source}: resolved settings do not match their schema: ${[...Value.Errors(schema, settings)].map((e) => `${e.path} ${e.message}`).join('; ')}`);
  return { settings, values, given };
}

/** The dotted values as the schema's nested object, every section present */
function nested<S extends TObject>(schema: S, values: Map<string, unknown>): Static<S> {
  const build = (node: TObject, prefix: string): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [name, child] of Object.entries(node.properties)) {
      const key = prefix ? `${prefix}.${name}` : name;
      if (child[Kind] === 'Object') out[name] = build(child as TObject, key);
      else if (values.has(key)) out[name] = values.get(key);
    }
    return out;
  };
  // checked against the schema by the caller
  return build(schema, '') as Static<S>;
}

/** The resolved configuration for logs and `--print-config`, secrets redacted */
export function redacted(schema: TObject, values: Map<string, unknown>): Record<string, unknown> {
  const leaves = settingsOf(schema);
  const out: Record<string, unknown> = {};
  for (const [key, value] of values) out[key] = leaves.get(key)?.secret ? '***' : value;
  return out;
}

/** `--settings`: each setting, its type and default, then its meaning and variable */
export function settingsListing(schema: TObject): string[] {
  const lines: string[] = [];
  for (const [key, leaf] of settingsOf(schema)) {
    const kind = kindOf(leaf);
    lines.push(`${key.padEnd(30)} ${kind === 'enum' ? valuesOf(leaf).join('|') : kind}${leaf.default !== undefined ? ` = ${JSON.stringify(leaf.default)}` : ''}`);
    lines.push(`${''.padEnd(30)} ${leaf.description ?? ''} [${envName(key)}]`);
  }
  return lines;
}

/**
 * The schema as JSON Schema (draft 7) for editors (yaml-language-server's `$schema` comment): a file may leave
 * any setting out (defaults, the environment and command line flags fill it), so nothing is `required`.
 */
export function editorSchema(schema: TObject, meta: { id: string; title: string; description: string }): Record<string, unknown> {
  const strip = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(strip);
    if (node === null || typeof node !== 'object') return node;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) if (k !== 'required') out[k] = strip(v);
    return out;
  };
  return { $schema: 'http://json-schema.org/draft-07/schema#', $id: meta.id, title: meta.title, description: meta.description, ...(strip(JSON.parse(JSON.stringify(schema))) as Record<string, unknown>) };
}

/** TALLY_* variables read elsewhere than the settings schemas (secrets and tools), so not typos */
export const OTHER_TALLY_VARIABLES: readonly string[] = ['TALLY_ADMIN_TOKEN', 'TALLY_CA_PASSPHRASE', 'TALLY_LOCALE', 'TALLY_LOG', 'TALLY_CARD_TIMING', 'TALLY_PCSCD_RUN_DIR', 'TALLY_PCSCD_QUICKACK', 'TALLY_PCSCD_DEBUG', 'TALLY_PCSCD_CONFIG'];

/** TALLY_* variables that name no setting of `schemas` (a typo is otherwise ignored silently), each with the closest setting's variable */
export function unknownEnvironment(schemas: readonly TObject[], env: Record<string, string | undefined>): { variable: string; closest?: string }[] {
  const known = new Set([...schemas.flatMap((s) => [...settingsOf(s).keys()].map(envName)), ...OTHER_TALLY_VARIABLES]);
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

/** The CONFIG_UNKNOWN_ENV warnings for `env` */
export function unknownEnvironmentWarnings(schemas: readonly TObject[], env: Record<string, string | undefined>): string[] {
  return unknownEnvironment(schemas, env).map(
    (u) => `${u.variable} is not a tallystick setting and is ignored${u.closest ? ` (did you mean ${u.closest}?)` : ''} [CONFIG_UNKNOWN_ENV ${ErrorCodes.CONFIG_UNKNOWN_ENV.code}]`,
  );
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
