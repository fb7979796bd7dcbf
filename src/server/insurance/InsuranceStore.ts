/**
 * The insurance orders as the server keeps them (migration 7). An order's life:
 *
 *   pending ──phone opens link──▶ opened ──consent──▶ consented ──settle call──▶ settling ──▶ settled ──voucher used──▶ used
 *      │                            │                                              │            │
 *      └──expiry──▶ expired         └──refuse──▶ refused                           └──▶ failed  └──device failed/voucher unused──▶ reversed
 *
 * Every change is one conditional update (`transition`: WHERE order_id = ? AND state IN (...)); the caller that
 * loses the race gets false and reads the row again. Nothing here calls the platform.
 */
export type InsuranceState = 'pending' | 'opened' | 'consented' | 'settling' | 'settled' | 'used' | 'refused' | 'expired' | 'failed' | 'reversed';

export interface InsuranceOrderRow {
  readonly orderId: string;
  readonly terminalId: string;
  readonly item: string;
  readonly amountFen: number;
  /** Hex SHA-256 of the order's canonical text: the token and the voucher are bound to it */
  readonly orderHash: string;
  readonly deviceCodeHash: string;
  readonly userCode: string;
  readonly state: InsuranceState;
  /** The poll interval the terminal must keep, seconds (RFC 8628 interval; raised by slow_down) */
  readonly intervalS: number;
  readonly lastPollAt?: number;
  readonly expiresAt: number;
  /** The first phone that opened the link: the only one served after */
  readonly phoneId?: string;
  readonly certificateId?: string;
  readonly insurerFen?: number;
  readonly patientFen?: number;
  readonly tokenHash?: string;
  readonly settleKey?: string;
  readonly settlementId?: string;
  readonly reverseKey?: string;
  /** The signed settlement voucher (JSON text), once settled */
  readonly voucher?: string;
  readonly failure?: string;
  /**
   * A service order (seed 001): paid from the patient's booking app for an exam at this clinic, redeemed later by
   * one of its terminals (terminalId is '' until then; expiresAt is the end of its validity)
   */
  readonly clinicCode?: string;
  /** The patient user's wallet that paid the service order */
  readonly walletId?: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export type NewInsuranceOrder = Pick<InsuranceOrderRow, 'orderId' | 'terminalId' | 'item' | 'amountFen' | 'orderHash' | 'deviceCodeHash' | 'userCode' | 'intervalS' | 'expiresAt' | 'createdAt'> & Partial<Pick<InsuranceOrderRow, 'clinicCode' | 'walletId'>>;

/** Columns a transition may set alongside the state */
export type InsuranceChanges = Partial<Pick<InsuranceOrderRow, 'certificateId' | 'insurerFen' | 'patientFen' | 'tokenHash' | 'settleKey' | 'settlementId' | 'reverseKey' | 'voucher' | 'failure'>>;

export interface InsuranceStore {
  /** false when the user code or device code is taken (the caller draws again) */
  createOrder(order: NewInsuranceOrder): Promise<boolean>;
  order(orderId: string): Promise<InsuranceOrderRow | undefined>;
  orderByDeviceCodeHash(hash: string): Promise<InsuranceOrderRow | undefined>;
  orderByUserCode(userCode: string): Promise<InsuranceOrderRow | undefined>;
  /** One conditional update: the state moves from one of `from` to `to`, with the changes; false when it was not in `from` */
  transition(orderId: string, from: readonly InsuranceState[], to: InsuranceState, changes: InsuranceChanges, at: number): Promise<boolean>;
  /** Sets the changes where the order is in one of the states (no state move) */
  update(orderId: string, inStates: readonly InsuranceState[], changes: InsuranceChanges, at: number): Promise<boolean>;
  /** Compare-and-set of the last poll: true when the previous poll was `previous` (undefined: none) */
  recordPoll(orderId: string, previous: number | undefined, at: number, intervalS: number): Promise<boolean>;
  /** Claims the link for a phone; true when this phone holds it (first, or again) */
  claimPhone(orderId: string, phoneId: string, at: number): Promise<boolean>;
  ordersIn(states: readonly InsuranceState[]): Promise<InsuranceOrderRow[]>;
  /**
   * A settled service order taken by the terminal that redeems it: terminal id and its voucher set in one
   * conditional update (settled, no terminal yet); false when another redemption (or nothing) got there first
   */
  redeemServiceOrder(orderId: string, terminalId: string, voucher: string, at: number): Promise<boolean>;
  /**
   * The ledgers' settlement.reserved entries (type 14) of a UTC day (YYYY-MM-DD) not released after (no type 6
   * naming them): the uses the reconciliation matches against the platform's settlements. Raw entry bytes.
   */
  ledgerSettlementUses(day: string): Promise<Array<{ terminalId: string; seq: number; raw: Uint8Array }>>;
  /** Orders created in [from, to) ms */
  ordersBetween(from: number, to: number): Promise<InsuranceOrderRow[]>;
}
