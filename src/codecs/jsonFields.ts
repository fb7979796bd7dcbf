/**
 * Strict readers for the fields of a signed JSON statement (checkpoints, clock
 * resets): each throws the codec's own error, naming the field's path. Pure.
 */
export type FieldError = (detail: string, path?: string) => Error;

export interface JsonFields {
  json(text: string, what: string): unknown;
  object(value: unknown, where: string): Record<string, unknown>;
  text(o: Record<string, unknown>, key: string, where: string, pattern?: RegExp): string;
  whole(o: Record<string, unknown>, key: string, where: string, min: number): number;
  hex(o: Record<string, unknown>, key: string, where: string, bytes: number): string;
}

export function jsonFields(fail: FieldError): JsonFields {
  return {
    json(text, what) {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw fail(`${what} is not JSON`);
      }
    },
    object(value, where) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw fail(`${where} is not an object`, where);
      return value as Record<string, unknown>;
    },
    text(o, key, where, pattern) {
      const v = o[key];
      if (typeof v !== 'string' || (pattern && !pattern.test(v))) throw fail(`${where}.${key} is not a valid string`, `${where}.${key}`);
      return v;
    },
    whole(o, key, where, min) {
      const v = o[key];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw fail(`${where}.${key} is not a whole number >= ${min}`, `${where}.${key}`);
      return v;
    },
    hex(o, key, where, bytes) {
      const v = o[key];
      if (typeof v !== 'string' || !new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(v)) throw fail(`${where}.${key} is not ${bytes} bytes of lower-case hex`, `${where}.${key}`);
      return v;
    },
  };
}
