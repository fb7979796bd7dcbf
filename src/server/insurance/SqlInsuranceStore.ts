/** InsuranceStore over the server's SqlDriver: SQLite and PostgreSQL, one SQL text. */
import type { SqlDriver, SqlValue } from '../store/SqlDriver.js';
import type { InsuranceChanges, InsuranceOrderRow, InsuranceState, InsuranceStore, NewInsuranceOrder } from './InsuranceStore.js';

const COLUMNS: Record<keyof InsuranceChanges, string> = {
  certificateId: 'certificate_id',
  insurerFen: 'insurer_fen',
  patientFen: 'patient_fen',
  tokenHash: 'token_hash',
  settleKey: 'settle_key',
  settlementId: 'settlement_id',
  reverseKey: 'reverse_key',
  voucher: 'voucher',
  failure: 'failure',
};

interface Row {
  order_id: string;
  terminal_id: string;
  item: string;
  amount_fen: number | string;
  order_hash: string;
  device_code_hash: string;
  user_code: string;
  state: InsuranceState;
  interval_s: number | string;
  last_poll_at: number | string | null;
  expires_at: number | string;
  phone_id: string | null;
  certificate_id: string | null;
  insurer_fen: number | string | null;
  patient_fen: number | string | null;
  token_hash: string | null;
  settle_key: string | null;
  settlement_id: string | null;
  reverse_key: string | null;
  voucher: string | null;
  failure: string | null;
  clinic_code: string | null;
  wallet_id: string | null;
  created_at: number | string;
  updated_at: number | string;
}

// PostgreSQL's BIGINT comes back as a string
const num = (v: number | string): number => Number(v);
const opt = <T>(key: string, v: T | null, map: (x: T) => unknown = (x) => x): Record<string, unknown> => (v === null ? {} : { [key]: map(v) });

function fromRow(r: Row): InsuranceOrderRow {
  return {
    orderId: r.order_id,
    terminalId: r.terminal_id,
    item: r.item,
    amountFen: num(r.amount_fen),
    orderHash: r.order_hash,
    deviceCodeHash: r.device_code_hash,
    userCode: r.user_code,
    state: r.state,
    intervalS: num(r.interval_s),
    expiresAt: num(r.expires_at),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    ...opt('lastPollAt', r.last_poll_at, num),
    ...opt('phoneId', r.phone_id),
    ...opt('certificateId', r.certificate_id),
    ...opt('insurerFen', r.insurer_fen, num),
    ...opt('patientFen', r.patient_fen, num),
    ...opt('tokenHash', r.token_hash),
    ...opt('settleKey', r.settle_key),
    ...opt('settlementId', r.settlement_id),
    ...opt('reverseKey', r.reverse_key),
    ...opt('voucher', r.voucher),
    ...opt('failure', r.failure),
    ...opt('clinicCode', r.clinic_code),
    ...opt('walletId', r.wallet_id),
  } as InsuranceOrderRow;
}

const placeholders = (n: number): string => Array.from({ length: n }, () => '?').join(', ');

export class SqlInsuranceStore implements InsuranceStore {
  constructor(private readonly db: SqlDriver) {}

  async createOrder(o: NewInsuranceOrder): Promise<boolean> {
    // a clash on order id, device code or user code inserts nothing: the caller draws new codes
    const n = await this.db.run(
      `INSERT INTO insurance_orders (order_id, terminal_id, item, amount_fen, order_hash, device_code_hash, user_code, state, interval_s, expires_at, created_at, updated_at, clinic_code, wallet_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      [o.orderId, o.terminalId, o.item, o.amountFen, o.orderHash, o.deviceCodeHash, o.userCode, o.intervalS, o.expiresAt, o.createdAt, o.createdAt, o.clinicCode ?? null, o.walletId ?? null],
    );
    return n === 1;
  }

  private async one(where: string, value: string): Promise<InsuranceOrderRow | undefined> {
    const rows = await this.db.all<Row>(`SELECT * FROM insurance_orders WHERE ${where} = ?`, [value]);
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  order(orderId: string) {
    return this.one('order_id', orderId);
  }

  orderByDeviceCodeHash(hash: string) {
    return this.one('device_code_hash', hash);
  }

  orderByUserCode(userCode: string) {
    return this.one('user_code', userCode);
  }

  private sets(changes: InsuranceChanges): { sql: string; params: SqlValue[] } {
    const keys = (Object.keys(changes) as (keyof InsuranceChanges)[]).filter((k) => changes[k] !== undefined);
    return { sql: keys.map((k) => `, ${COLUMNS[k]} = ?`).join(''), params: keys.map((k) => changes[k] as SqlValue) };
  }

  async transition(orderId: string, from: readonly InsuranceState[], to: InsuranceState, changes: InsuranceChanges, at: number): Promise<boolean> {
    const set = this.sets(changes);
    const n = await this.db.run(`UPDATE insurance_orders SET state = ?, updated_at = ?${set.sql} WHERE order_id = ? AND state IN (${placeholders(from.length)})`, [to, at, ...set.params, orderId, ...from]);
    return n === 1;
  }

  async update(orderId: string, inStates: readonly InsuranceState[], changes: InsuranceChanges, at: number): Promise<boolean> {
    const set = this.sets(changes);
    const n = await this.db.run(`UPDATE insurance_orders SET updated_at = ?${set.sql} WHERE order_id = ? AND state IN (${placeholders(inStates.length)})`, [at, ...set.params, orderId, ...inStates]);
    return n === 1;
  }

  async recordPoll(orderId: string, previous: number | undefined, at: number, intervalS: number): Promise<boolean> {
    const n =
      previous === undefined
        ? await this.db.run('UPDATE insurance_orders SET last_poll_at = ?, interval_s = ? WHERE order_id = ? AND last_poll_at IS NULL', [at, intervalS, orderId])
        : await this.db.run('UPDATE insurance_orders SET last_poll_at = ?, interval_s = ? WHERE order_id = ? AND last_poll_at = ?', [at, intervalS, orderId, previous]);
    return n === 1;
  }

  async claimPhone(orderId: string, phoneId: string, at: number): Promise<boolean> {
    await this.db.run('UPDATE insurance_orders SET phone_id = ?, updated_at = ? WHERE order_id = ? AND phone_id IS NULL', [phoneId, at, orderId]);
    return (await this.order(orderId))?.phoneId === phoneId;
  }

  async ordersIn(states: readonly InsuranceState[]): Promise<InsuranceOrderRow[]> {
    return (await this.db.all<Row>(`SELECT * FROM insurance_orders WHERE state IN (${placeholders(states.length)}) ORDER BY created_at, order_id`, [...states])).map(fromRow);
  }

  async redeemServiceOrder(orderId: string, terminalId: string, voucher: string, at: number): Promise<boolean> {
    const n = await this.db.run(
      "UPDATE insurance_orders SET terminal_id = ?, voucher = ?, updated_at = ? WHERE order_id = ? AND state = 'settled' AND clinic_code IS NOT NULL AND terminal_id = '' AND voucher IS NULL",
      [terminalId, voucher, at, orderId],
    );
    return n === 1;
  }

  async ledgerSettlementUses(day: string): Promise<Array<{ terminalId: string; seq: number; raw: Uint8Array }>> {
    const rows = await this.db.all<{ terminal_id: string; seq: number | string; raw: Uint8Array }>(
      `SELECT e.terminal_id, e.seq, e.raw FROM entries e WHERE e.type = 14 AND e.day = ?
        AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.terminal_id = e.terminal_id AND r.type = 6 AND r.ref = e.seq) ORDER BY e.terminal_id, e.seq`,
      [day],
    );
    return rows.map((r) => ({ terminalId: r.terminal_id, seq: num(r.seq), raw: new Uint8Array(r.raw) }));
  }

  async ordersBetween(from: number, to: number): Promise<InsuranceOrderRow[]> {
    return (await this.db.all<Row>('SELECT * FROM insurance_orders WHERE created_at >= ? AND created_at < ? ORDER BY created_at, order_id', [from, to])).map(fromRow);
  }
}
