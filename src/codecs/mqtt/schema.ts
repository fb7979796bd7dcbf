/**
 * A tiny hand-written validator for the JSON payloads: about 100 lines, no
 * dependency, and each failure names the path of the bad field. Schemas are
 * values; `check` returns the typed value or throws PayloadError('schema').
 * Pure.
 */
import { PayloadError } from './PayloadError.js';

export type Schema<T> = (value: unknown, path: string) => T;
export type Infer<S> = S extends Schema<infer T> ? T : never;

function fail(path: string, expected: string, value: unknown): never {
  const shown = value === undefined ? 'missing' : JSON.stringify(value)?.slice(0, 40);
  throw new PayloadError('schema', `${path || 'payload'}: expected ${expected}, got ${shown}`, path.replace(/^\./, ''));
}

export function integer(min = 0, max = Number.MAX_SAFE_INTEGER): Schema<number> {
  return (value, path) => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) fail(path, `an integer in ${min}..${max}`, value);
    return value;
  };
}

export function number(min: number, max: number): Schema<number> {
  return (value, path) => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) fail(path, `a number in ${min}..${max}`, value);
    return value;
  };
}

export function string(maxLength: number, pattern?: RegExp): Schema<string> {
  return (value, path) => {
    if (typeof value !== 'string' || value.length > maxLength || (pattern && !pattern.test(value))) {
      fail(path, `a string${pattern ? ` matching ${pattern}` : ''} of at most ${maxLength} chars`, value);
    }
    return value;
  };
}

export function boolean(): Schema<boolean> {
  return (value, path) => {
    if (typeof value !== 'boolean') fail(path, 'a boolean', value);
    return value;
  };
}

export function literal<const L extends string | number | boolean>(...allowed: L[]): Schema<L> {
  return (value, path) => {
    if (!allowed.includes(value as L)) fail(path, `one of ${allowed.join(', ')}`, value);
    return value as L;
  };
}

export function array<T>(item: Schema<T>, maxItems: number): Schema<T[]> {
  return (value, path) => {
    if (!Array.isArray(value) || value.length > maxItems) fail(path, `an array of at most ${maxItems} items`, value);
    return value.map((v, i) => item(v, `${path}[${i}]`));
  };
}

export function optional<T>(inner: Schema<T>): Schema<T | undefined> & { optional: true } {
  const schema = ((value: unknown, path: string) => (value === undefined ? undefined : inner(value, path))) as Schema<T | undefined> & { optional: true };
  schema.optional = true;
  return schema;
}

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends { optional: true } ? K : never }[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
export type ObjectOf<S extends Shape> = { readonly [K in RequiredKeys<S>]: Infer<S[K]> } & { readonly [K in OptionalKeys<S>]?: Infer<S[K]> };

/** A plain object with exactly these keys: unknown keys are refused, so a typo in a config is not silently ignored */
export function object<S extends Shape>(shape: S): Schema<ObjectOf<S>> {
  return (value, path) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, 'an object', value);
    const input = value as Record<string, unknown>;
    for (const key of Object.keys(input)) {
      if (!(key in shape)) fail(`${path}.${key}`, 'no such field', input[key]);
    }
    const out: Record<string, unknown> = {};
    for (const [key, schema] of Object.entries(shape)) {
      const parsed = schema(input[key], path ? `${path}.${key}` : key);
      if (parsed !== undefined) out[key] = parsed;
    }
    return out as ObjectOf<S>;
  };
}

export function union<A, B>(a: Schema<A>, b: Schema<B>): Schema<A | B> {
  return (value, path) => {
    try {
      return a(value, path);
    } catch {
      return b(value, path);
    }
  };
}
