/**
 * The one interface our server sees of a medical-insurance settlement platform (seeds 000, 001). The first
 * implementation speaks to `tally sim insurance` over HTTP (HttpInsurancePlatform); a real provincial platform is a
 * second adapter behind the same interface (docs/insurance.md says what it must do: SM2 signatures over SM3 digests
 * of every request, SM4 for the personal fields, its own error codes mapped to ours).
 *
 * Every call that moves money carries an idempotency key chosen by us and kept in our store before the call: the
 * same key sent again returns the same settlement, never a second one, and findSettlement(key) tells whether a
 * call that timed out (or a server that crashed mid-call) was made. Money is in integer fen.
 * Failures are TallyErrors: INSURANCE_PLATFORM_DOWN (no connection), INSURANCE_PLATFORM_TIMEOUT (no answer in
 * time: the call may or may not have happened), INSURANCE_PLATFORM_ERROR (5xx), INSURANCE_NOT_INSURED,
 * INSURANCE_NOT_COVERED, INSURANCE_IDEMPOTENCY, INSURANCE_STATE (the platform refused the request as it is).
 */

export interface CertificateQuery {
  /** The patient's e-credential (the code their insurance app shows) */
  readonly credential: string;
  /** The covered item code, e.g. OCT */
  readonly item: string;
  readonly amountFen: number;
}

export interface SettlementCertificate {
  readonly certificateId: string;
  /** The insured's name as the platform shows it (masked) */
  readonly maskedName: string;
  readonly item: string;
  readonly amountFen: number;
  /** What the insurance would pay of amountFen now */
  readonly insurerFen: number;
  /** What is left for the patient (the co-payment, and whatever the annual cap does not cover) */
  readonly patientFen: number;
  readonly capLeftFen: number;
  readonly expiresAt: number;
}

export interface SettlementRequest {
  readonly idempotencyKey: string;
  readonly certificateId: string;
  readonly item: string;
  readonly amountFen: number;
  /** Our order id: the platform's statement names it, and the reconciliation matches on it */
  readonly orderRef: string;
}

export interface PlatformSettlement {
  readonly settlementId: string;
  readonly idempotencyKey: string;
  readonly orderRef: string;
  readonly item: string;
  readonly amountFen: number;
  readonly insurerFen: number;
  readonly patientFen: number;
  readonly at: number;
  readonly status: 'settled' | 'reversed';
}

export interface PlatformReversal {
  readonly reversalId: string;
  readonly settlementId: string;
  readonly at: number;
}

export interface PlatformStatement {
  readonly day: string;
  readonly settlements: readonly PlatformSettlement[];
  readonly reversals: readonly PlatformReversal[];
}

export interface InsurancePlatform {
  /** Which platform this is (logged, shown on the phone page) */
  readonly name: string;
  queryCertificate(query: CertificateQuery): Promise<SettlementCertificate>;
  settle(request: SettlementRequest): Promise<PlatformSettlement>;
  /** The settlement made under this key, or undefined when none was made */
  findSettlement(idempotencyKey: string): Promise<PlatformSettlement | undefined>;
  /** Reverses a settlement (the device never ran); idempotent under its own key */
  reverse(idempotencyKey: string, settlementId: string): Promise<PlatformReversal>;
  /** Settlements and reversals of one UTC day (YYYY-MM-DD), for the daily reconciliation */
  statement(day: string): Promise<PlatformStatement>;
}
