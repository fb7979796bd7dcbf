/** Reading rows the same way from SQLite and PostgreSQL (BIGINT may come back as a string, BYTEA as a Buffer). */
export type Row = Record<string, unknown>;

export const num = (v: unknown): number => Number(v);
export const bytes = (v: unknown): Uint8Array => new Uint8Array(v as Buffer);
export const has = (v: unknown): boolean => v !== null && v !== undefined;
export const optionalNumber = (v: unknown): number | undefined => (has(v) ? Number(v) : undefined);

/** Only the keys whose column is not NULL */
export function optional<T>(key: string, v: unknown, map: (v: unknown) => T): Record<string, T> {
  return has(v) ? { [key]: map(v) } : {};
}
