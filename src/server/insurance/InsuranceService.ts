/**
 * Paying by medical-insurance e-credential at the server (docs/insurance.md), shaped like RFC 8628:
 *   start    the terminal asks for an authorisation: device code (its secret), user code, verification link
 *   poll     the terminal's token request: authorization_pending, slow_down, expired_token, access_denied, or the voucher
 *   open     a phone opens the link; the first phone holds it (a second gets INSURANCE_LINK_TAKEN)
 *   quote    the phone gives the e-credential; the platform's certificate says what it covers
 *   consent  a token bound to the order's hash is issued and spent on the settlement (once), or refuse
 * Every state change is one conditional update (InsuranceStore.transition). The settlement's idempotency key is
 * stored before the platform is called, so a timeout or a crash is resolved by asking the platform for that key
 * (settleOne, recover). A settled order whose use fails, or whose voucher expires unused, is reversed.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { SignedJson } from '../../codecs/checkpoint.js';
import { encodeSettlementVoucher, orderCanonical } from '../../codecs/settlementVoucher.js';
import { parseLedgerEntry } from '../../codecs/ledgerEntry.js';
import { signSettlementVoucher } from '../../crypto/settlementVoucher.js';
import { ErrorCodes, isTallyError, operatorMessage, TallyError, type ErrorName } from '../../errors.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import type { InsurancePlatform, PlatformSettlement, PlatformStatement } from './InsurancePlatform.js';
import type { InsuranceOrderRow, InsuranceStore } from './InsuranceStore.js';
import type { Alert } from '../ServerStore.js';

/** RFC 8628 section 6.1: no vowels, no look-alikes; 20^8 codes */
const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';
const ITEM = /^[A-Z0-9_]{1,16}$/;
const TERMINAL = /^[A-Za-z0-9._-]{1,64}$/;
const CLINIC = /^[A-Za-z0-9._-]{1,16}$/;

export interface InsuranceServiceOptions {
  readonly store: InsuranceStore;
  readonly platform: InsurancePlatform;
  /** The server key certified by the root (tally server certify-key); without it nothing is settled */
  readonly signer?: { readonly key: KeyObject; readonly certificate: SignedJson };
  /** Where phones reach the server, e.g. http://127.0.0.1:8080 (the link is BASE/pay?code=...) */
  readonly baseUrl: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Lifetime of the device and user codes, ms (default 5 min) */
  readonly codeTtlMs?: number;
  /** Poll interval, s (default 5) */
  readonly intervalS?: number;
  /** How long the terminal may take to use a voucher, ms (default 10 min) */
  readonly voucherTtlMs?: number;
  /**
   * How long past a voucher's expiry the sweep waits before reversing it unused (default 10 min): a terminal that
   * committed the use just before the expiry may still be delivering its ledger entry.
   */
  readonly reverseGraceMs?: number;
  /** How long a paid service order (seed 001) may wait for its terminal, ms (default 7 days) */
  readonly serviceOrderTtlMs?: number;
  /**
   * How long after its creation an order may stay between consent and a recorded settlement, ms (default 30 min).
   * Past it a settling order is ended by its key (failed when the platform holds nothing under it, an alert when the
   * platform cannot be asked), and a service order a crash left before its settlement key is failed unpaid.
   */
  readonly settleAgeLimitMs?: number;
  /** The server's alerts (ServerStore.raiseAlert): a settlement nobody can resolve needs a person; true when new */
  readonly raiseAlert?: (alert: Alert) => Promise<boolean>;
  /** Called once an order is settled (its voucher made): the server pushes the voucher to the terminal */
  readonly onSettled?: (order: InsuranceOrderRow) => void;
}

export interface DeviceAuthorization {
  readonly orderId: string;
  readonly device_code: string;
  readonly user_code: string;
  readonly verification_uri: string;
  readonly verification_uri_complete: string;
  readonly expires_in: number;
  readonly interval: number;
  /** Shown on the terminal and on the phone, against remote phishing: the order's short id and the amount */
  readonly binding_code: string;
}

export type PollAnswer =
  | { readonly error: 'authorization_pending' | 'expired_token'; readonly interval: number }
  | { readonly error: 'slow_down'; readonly interval: number }
  | { readonly error: 'access_denied'; readonly reason: ErrorName; readonly interval: number }
  | { readonly voucher: string; readonly orderId: string };

export interface PhoneView {
  readonly orderId: string;
  readonly bindingCode: string;
  readonly item: string;
  readonly amountFen: number;
  readonly state: string;
  readonly insurerFen?: number;
  readonly patientFen?: number;
  readonly maskedName?: string;
  readonly failure?: string;
}

/** A service order as the booking app sees it: the result fed back, and the code the patient redeems it with */
export interface ServiceOrderView {
  readonly orderId: string;
  readonly state: string;
  readonly clinicCode: string;
  readonly item: string;
  readonly amountFen: number;
  readonly insurerFen?: number;
  readonly patientFen?: number;
  /** Shown to the terminal's operator (typed or scanned) once paid */
  readonly redeemCode?: string;
  readonly bindingCode: string;
  readonly validUntil: number;
  readonly redeemedAt?: string;
  readonly failure?: string;
  /** The failure's operator message in English and Chinese, for the booking app to show in its language */
  readonly failureMessage?: string;
  readonly failureZh?: string;
}

function serviceOrderView(order: InsuranceOrderRow): ServiceOrderView {
  const paid = order.state === 'settled' || order.state === 'used';
  return {
    orderId: order.orderId,
    state: order.state,
    clinicCode: order.clinicCode!,
    item: order.item,
    amountFen: order.amountFen,
    ...(order.insurerFen !== undefined ? { insurerFen: order.insurerFen } : {}),
    ...(order.patientFen !== undefined ? { patientFen: order.patientFen } : {}),
    ...(paid && order.state === 'settled' && order.terminalId === '' ? { redeemCode: `${order.userCode.slice(0, 4)}-${order.userCode.slice(4)}` } : {}),
    bindingCode: bindingCode(order),
    validUntil: order.expiresAt,
    ...(order.terminalId !== '' ? { redeemedAt: order.terminalId } : {}),
    ...(order.failure !== undefined ? { failure: order.failure } : {}),
    ...(order.failure !== undefined && order.failure in ErrorCodes ? { failureMessage: operatorMessage(order.failure as ErrorName, 'en'), failureZh: operatorMessage(order.failure as ErrorName, 'zh') } : {}),
  };
}

export interface ReconcileMismatch {
  readonly kind:
    | 'platform-settlement-without-order'
    | 'settled-at-platform-not-here'
    | 'settled-here-not-at-platform'
    | 'amount-differs'
    | 'reversed-at-platform-not-here'
    | 'used-without-ledger-use'
    | 'ledger-use-without-settlement'
    | 'settled-not-used'
    | 'order-with-several-ledger-uses';
  readonly orderId?: string;
  readonly settlementId?: string;
  readonly detail: string;
  /** order-with-several-ledger-uses: every ledger use naming the order */
  readonly uses?: readonly LedgerUseRef[];
}

/** One ledger use (a settlement.reserved entry not released): which terminal's ledger, which seq */
export interface LedgerUseRef {
  readonly terminalId: string;
  readonly seq: number;
}

/**
 * The ledgers' uses of a day by the order they name. Each settlement is to match exactly one use, so the uses are
 * kept per order, not folded into a set. A plain set of order ids (one use each) is accepted too.
 */
export type LedgerUses = ReadonlyMap<string, readonly LedgerUseRef[]>;

function usesByOrder(uses: LedgerUses | ReadonlySet<string>): LedgerUses {
  if (uses instanceof Map) return uses as LedgerUses;
  return new Map([...(uses as ReadonlySet<string>)].map((orderId) => [orderId, [{ terminalId: '', seq: 0 }]]));
}

const sha256hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** A fresh order id and user code; the store's unique constraints refuse a clash, and the caller draws again */
function drawOrderCodes(): { orderId: string; userCode: string } {
  return { orderId: `INS-${randomBytes(6).toString('hex')}`, userCode: Array.from({ length: 8 }, () => USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)]).join('') };
}
const fenText = (fen: number): string => `${Math.floor(fen / 100)}.${String(fen % 100).padStart(2, '0')}`;

export function bindingCode(order: Pick<InsuranceOrderRow, 'orderId' | 'amountFen'>): string {
  return `${order.orderId.slice(-4).toUpperCase()} ¥${fenText(order.amountFen)}`;
}

export function normaliseUserCode(text: string): string {
  return text.toUpperCase().replace(/[^A-Z]/g, '');
}

export class InsuranceService {
  private readonly store: InsuranceStore;
  private readonly platform: InsurancePlatform;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly codeTtlMs: number;
  private readonly intervalS: number;
  private readonly voucherTtlMs: number;
  private readonly serviceOrderTtlMs: number;
  private readonly settleAgeLimitMs: number;

  constructor(private readonly options: InsuranceServiceOptions) {
    this.store = options.store;
    this.platform = options.platform;
    this.clock = options.clock ?? systemClock;
    this.log = (options.logger ?? silentLogger).child({ module: 'insurance' });
    this.codeTtlMs = options.codeTtlMs ?? 5 * 60_000;
    this.intervalS = options.intervalS ?? 5;
    this.voucherTtlMs = options.voucherTtlMs ?? 10 * 60_000;
    this.serviceOrderTtlMs = options.serviceOrderTtlMs ?? 7 * 86_400_000;
    this.settleAgeLimitMs = options.settleAgeLimitMs ?? 30 * 60_000;
  }

  private refuse(code: ErrorName, detail: string, context: Record<string, unknown> = {}): never {
    this.log.warn({ event: 'insurance.refused', code, ...context }, detail);
    throw new TallyError(code, detail, context);
  }

  async start(request: { terminalId: string; item: string; amountFen: number }): Promise<DeviceAuthorization> {
    if (!this.options.signer) this.refuse('INSURANCE_NO_SIGNING_KEY', 'the server has no signing key');
    if (!TERMINAL.test(request.terminalId) || !ITEM.test(request.item) || !Number.isSafeInteger(request.amountFen) || request.amountFen < 1 || request.amountFen > 100_000_000) {
      throw new TallyError('BAD_INPUT', 'terminalId, item (A-Z 0-9 _) and amountFen (1..100000000) are required');
    }
    const now = this.clock.now();
    for (let attempt = 0; attempt < 5; attempt++) {
      const { orderId, userCode } = drawOrderCodes();
      const deviceCode = randomBytes(32).toString('base64url');
      const orderHash = sha256hex(orderCanonical({ orderId, ...request }));
      const created = await this.store.createOrder({ orderId, terminalId: request.terminalId, item: request.item, amountFen: request.amountFen, orderHash, deviceCodeHash: sha256hex(deviceCode), userCode, intervalS: this.intervalS, expiresAt: now + this.codeTtlMs, createdAt: now });
      if (!created) continue;
      const shown = `${userCode.slice(0, 4)}-${userCode.slice(4)}`;
      const link = `${this.options.baseUrl.replace(/\/+$/, '')}/pay`;
      this.log.info({ event: 'insurance.started', orderId, terminalId: request.terminalId, item: request.item, amountFen: request.amountFen }, 'insurance payment started');
      return {
        orderId,
        device_code: deviceCode,
        user_code: shown,
        verification_uri: link,
        verification_uri_complete: `${link}?code=${shown}`,
        expires_in: Math.round(this.codeTtlMs / 1000),
        interval: this.intervalS,
        binding_code: bindingCode({ orderId, amountFen: request.amountFen }),
      };
    }
    throw new TallyError('INTERNAL', 'could not draw unique codes');
  }

  /** The terminal's token request (RFC 8628 section 3.4/3.5) */
  async poll(deviceCode: string, terminalId?: string): Promise<PollAnswer> {
    const order = await this.store.orderByDeviceCodeHash(sha256hex(deviceCode));
    if (!order || (terminalId !== undefined && order.terminalId !== terminalId)) this.refuse('INSURANCE_UNKNOWN_ORDER', 'no authorisation for this device code', { terminalId });
    const now = this.clock.now();
    if (order.lastPollAt !== undefined && now - order.lastPollAt < order.intervalS * 1000) {
      const interval = order.intervalS + 5;
      await this.store.recordPoll(order.orderId, order.lastPollAt, now, interval);
      return { error: 'slow_down', interval };
    }
    // a concurrent poll that won the compare-and-set counts as this one's too-early twin
    if (!(await this.store.recordPoll(order.orderId, order.lastPollAt, now, order.intervalS))) return { error: 'slow_down', interval: order.intervalS + 5 };
    return this.answerFor(order, now);
  }

  private async answerFor(order: InsuranceOrderRow, now: number): Promise<PollAnswer> {
    const interval = order.intervalS;
    switch (order.state) {
      case 'pending':
      case 'opened':
        if (now >= order.expiresAt && (await this.store.transition(order.orderId, ['pending', 'opened'], 'expired', { failure: 'INSURANCE_CODE_EXPIRED' }, now))) {
          this.log.info({ event: 'insurance.expired', orderId: order.orderId }, 'authorisation expired');
          return { error: 'expired_token', interval };
        }
        return now >= order.expiresAt ? this.answerFor((await this.store.order(order.orderId))!, now) : { error: 'authorization_pending', interval };
      case 'consented':
      case 'settling':
        return { error: 'authorization_pending', interval };
      case 'settled':
      case 'used':
        return { voucher: order.voucher!, orderId: order.orderId };
      case 'expired':
        return { error: 'expired_token', interval };
      case 'refused':
        return { error: 'access_denied', reason: 'INSURANCE_REFUSED_BY_PATIENT', interval };
      case 'failed':
      case 'reversed':
        return { error: 'access_denied', reason: (order.failure as ErrorName | undefined) ?? 'INSURANCE_FAILED', interval };
    }
  }

  private async phoneOrder(userCode: string, phoneId: string): Promise<InsuranceOrderRow> {
    const order = await this.store.orderByUserCode(normaliseUserCode(userCode));
    if (!order) this.refuse('INSURANCE_UNKNOWN_ORDER', 'no payment with this code');
    if (order.phoneId !== undefined && order.phoneId !== phoneId) this.refuse('INSURANCE_LINK_TAKEN', 'another phone holds this link', { orderId: order.orderId });
    if ((order.state === 'pending' || order.state === 'opened') && this.clock.now() >= order.expiresAt) {
      await this.store.transition(order.orderId, ['pending', 'opened'], 'expired', { failure: 'INSURANCE_CODE_EXPIRED' }, this.clock.now());
      this.refuse('INSURANCE_CODE_EXPIRED_SERVER', 'the code expired', { orderId: order.orderId });
    }
    if (order.state === 'expired') this.refuse('INSURANCE_CODE_EXPIRED_SERVER', 'the code expired', { orderId: order.orderId });
    return order;
  }

  private view(order: InsuranceOrderRow, maskedName?: string): PhoneView {
    return {
      orderId: order.orderId,
      bindingCode: bindingCode(order),
      item: order.item,
      amountFen: order.amountFen,
      state: order.state,
      ...(order.insurerFen !== undefined ? { insurerFen: order.insurerFen, patientFen: order.patientFen! } : {}),
      ...(maskedName !== undefined ? { maskedName } : {}),
      ...(order.failure !== undefined ? { failure: order.failure } : {}),
    };
  }

  /** A phone opens the link: the first phone holds it */
  async open(userCode: string, phoneId: string): Promise<PhoneView> {
    const order = await this.phoneOrder(userCode, phoneId);
    const now = this.clock.now();
    if (!(await this.store.claimPhone(order.orderId, phoneId, now))) this.refuse('INSURANCE_LINK_TAKEN', 'another phone holds this link', { orderId: order.orderId });
    await this.store.transition(order.orderId, ['pending'], 'opened', {}, now);
    return this.view((await this.store.order(order.orderId))!);
  }

  /** The e-credential: the platform's certificate and what it pays of this order */
  async quote(userCode: string, phoneId: string, credential: string): Promise<PhoneView> {
    const order = await this.phoneOrder(userCode, phoneId);
    if (order.state !== 'opened') this.refuse('INSURANCE_STATE', `order is ${order.state}`, { orderId: order.orderId });
    if (typeof credential !== 'string' || credential.length < 1 || credential.length > 128) throw new TallyError('BAD_INPUT', 'credential: 1..128 characters');
    const cert = await this.platform.queryCertificate({ credential, item: order.item, amountFen: order.amountFen });
    const now = this.clock.now();
    if (!(await this.store.update(order.orderId, ['opened'], { certificateId: cert.certificateId, insurerFen: cert.insurerFen, patientFen: cert.patientFen }, now))) {
      this.refuse('INSURANCE_STATE', 'the order moved on', { orderId: order.orderId });
    }
    return this.view((await this.store.order(order.orderId))!, cert.maskedName);
  }

  async refuseOnPhone(userCode: string, phoneId: string): Promise<PhoneView> {
    const order = await this.phoneOrder(userCode, phoneId);
    if (!(await this.store.transition(order.orderId, ['pending', 'opened'], 'refused', { failure: 'INSURANCE_REFUSED_BY_PATIENT' }, this.clock.now()))) {
      this.refuse('INSURANCE_STATE', `order is ${order.state}`, { orderId: order.orderId });
    }
    this.log.info({ event: 'insurance.refused-by-patient', orderId: order.orderId }, 'the patient refused');
    return this.view((await this.store.order(order.orderId))!);
  }

  /** Consent: a token bound to the order's hash, spent at once on the settlement */
  async consent(userCode: string, phoneId: string): Promise<PhoneView> {
    const order = await this.phoneOrder(userCode, phoneId);
    if (order.state !== 'opened' || order.certificateId === undefined) this.refuse('INSURANCE_STATE', `order is ${order.state}${order.certificateId ? '' : ' without a certificate'}`, { orderId: order.orderId });
    const token = randomBytes(32).toString('base64url');
    if (!(await this.store.transition(order.orderId, ['opened'], 'consented', { tokenHash: sha256hex(`${token}\n${order.orderHash}`) }, this.clock.now()))) {
      this.refuse('INSURANCE_STATE', 'the order moved on', { orderId: order.orderId });
    }
    await this.settle(order.orderId, token);
    return this.view((await this.store.order(order.orderId))!);
  }

  /** Spends the token: one conditional update consented -> settling (a second use finds it spent), then the platform */
  async settle(orderId: string, token: string): Promise<InsuranceOrderRow> {
    const order = await this.store.order(orderId);
    if (!order) this.refuse('INSURANCE_UNKNOWN_ORDER', 'no such order');
    if (order.tokenHash === undefined || sha256hex(`${token}\n${order.orderHash}`) !== order.tokenHash) this.refuse('INSURANCE_TOKEN_INVALID', 'token does not match the order', { orderId });
    const settleKey = `${orderId}:settle`;
    if (!(await this.store.transition(orderId, ['consented'], 'settling', { settleKey }, this.clock.now()))) this.refuse('INSURANCE_TOKEN_USED', `order is ${order.state}`, { orderId });
    return this.settleOne({ ...order, state: 'settling', settleKey });
  }

  /** One settlement call under the order's key; a timeout is resolved by looking the key up */
  private async settleOne(order: InsuranceOrderRow): Promise<InsuranceOrderRow> {
    const key = order.settleKey!;
    let settlement: PlatformSettlement | undefined;
    try {
      settlement = await this.platform.settle({ idempotencyKey: key, certificateId: order.certificateId!, item: order.item, amountFen: order.amountFen, orderRef: order.orderId });
    } catch (err) {
      // no answer (late, or the connection dropped): the platform may have settled; only its record under the key tells
      if (isTallyError(err, 'INSURANCE_PLATFORM_TIMEOUT') || isTallyError(err, 'INSURANCE_PLATFORM_NO_ANSWER')) {
        this.log.warn({ event: 'insurance.settle-timeout', orderId: order.orderId, code: err.code }, 'settlement not answered: looking it up by its key');
        settlement = await this.platform.findSettlement(key).catch(() => undefined);
        // unresolved: the order stays settling, and recover() asks again
        if (!settlement) return (await this.store.order(order.orderId))!;
      } else {
        const code: ErrorName = isTallyError(err) ? err.code : 'INSURANCE_PLATFORM_ERROR';
        await this.store.transition(order.orderId, ['settling'], 'failed', { failure: code }, this.clock.now());
        this.log.warn({ event: 'insurance.settle-failed', orderId: order.orderId, code }, 'settlement failed: nothing charged');
        return (await this.store.order(order.orderId))!;
      }
    }
    return this.recordSettlement(order, settlement);
  }

  /** The settlement voucher for the order's terminal, valid voucherTtlMs from now */
  private voucherFor(order: InsuranceOrderRow, terminalId: string, settlement: Pick<PlatformSettlement, 'settlementId' | 'insurerFen' | 'patientFen'>, now: number): string {
    const signer = this.options.signer!;
    return encodeSettlementVoucher(
      signSettlementVoucher(signer.key, signer.certificate, {
        orderId: order.orderId,
        orderHash: order.orderHash,
        terminalId,
        item: order.item,
        amountFen: order.amountFen,
        insurerFen: settlement.insurerFen,
        patientFen: settlement.patientFen,
        settlementId: settlement.settlementId,
        issuedAt: now,
        expiresAt: now + this.voucherTtlMs,
      }),
    );
  }

  private async recordSettlement(order: InsuranceOrderRow, settlement: PlatformSettlement): Promise<InsuranceOrderRow> {
    const now = this.clock.now();
    // a service order has no terminal yet: its voucher is signed for the terminal that redeems it
    const serviceOrder = order.clinicCode !== undefined;
    const changes = { settlementId: settlement.settlementId, insurerFen: settlement.insurerFen, patientFen: settlement.patientFen, ...(serviceOrder ? {} : { voucher: this.voucherFor(order, order.terminalId, settlement, now) }) };
    const recorded = await this.store.transition(order.orderId, ['settling', 'failed'], 'settled', changes, now);
    const settled = (await this.store.order(order.orderId))!;
    if (recorded && serviceOrder) {
      this.log.info({ event: 'insurance.service-order-paid', orderId: order.orderId, clinicCode: order.clinicCode, walletId: order.walletId, settlementId: settlement.settlementId, insurerFen: settlement.insurerFen }, 'service order paid with the platform');
    } else if (recorded) {
      this.log.info({ event: 'insurance.settled', orderId: order.orderId, settlementId: settlement.settlementId, insurerFen: settlement.insurerFen }, 'settled with the platform');
      try {
        this.options.onSettled?.(settled);
      } catch (err) {
        this.log.warn({ event: 'insurance.push-failed', orderId: order.orderId, err: (err as Error).message }, 'voucher not pushed: the terminal polls for it');
      }
    }
    return settled;
  }

  /** At start (and from time to time): settlements left unresolved are looked up by their key */
  async recover(): Promise<{ settled: number; failed: number; unresolved: number }> {
    const counts = { settled: 0, failed: 0, unresolved: 0 };
    for (const order of await this.store.ordersIn(['settling'])) {
      let found: PlatformSettlement | undefined;
      try {
        found = await this.platform.findSettlement(order.settleKey!);
      } catch (err) {
        counts.unresolved++;
        // past the age limit the order may be charged or not and only the platform knows: a person has to ask it
        if (this.clock.now() >= order.createdAt + this.settleAgeLimitMs) await this.alertUnresolved(order, isTallyError(err) ? err.code : 'INSURANCE_PLATFORM_ERROR');
        continue;
      }
      if (found && found.status === 'settled') {
        await this.recordSettlement(order, found);
        counts.settled++;
        this.log.info({ event: 'insurance.recovered', orderId: order.orderId, settlementId: found.settlementId }, 'a settlement made before a crash, found by its key');
      } else if (!found) {
        // never made: the platform has nothing under the key, so nothing was charged
        await this.store.transition(order.orderId, ['settling'], 'failed', { failure: 'INSURANCE_FAILED' }, this.clock.now());
        counts.failed++;
      }
    }
    return counts;
  }

  /** One alert per order (its key makes raising it again a no-op); the order stays settling and is asked again */
  private async alertUnresolved(order: InsuranceOrderRow, lookupFailure: ErrorName): Promise<void> {
    const ageMin = Math.floor((this.clock.now() - order.createdAt) / 60_000);
    const detail = `insurance order ${order.orderId} settling for ${ageMin} min: the platform cannot be asked about key ${order.settleKey} (${lookupFailure}); check it with the platform`;
    const alert: Alert = { at: this.clock.now(), kind: 'insurance-settlement-unresolved', terminalId: order.terminalId || `clinic:${order.clinicCode ?? ''}`, key: `insurance-unresolved:${order.orderId}`, detail };
    const raised = this.options.raiseAlert ? await this.options.raiseAlert(alert).catch(() => true) : true;
    if (raised) {
      this.log.error({ event: 'insurance.settlement-unresolved', code: 'INSURANCE_SETTLEMENT_UNRESOLVED', orderId: order.orderId, settleKey: order.settleKey, lookupFailure, ageMin }, detail);
    }
  }

  /**
   * Seed 001: the patient's booking app pays a service order (an exam at a clinic) with the patient's e-credential.
   * The order, the platform's certificate and the settlement under the order's idempotency key, then the result
   * fed back; the terminal that redeems the code later gets the voucher (redeem). The wallet is the session's.
   */
  async payServiceOrder(request: { walletId: string; clinicCode: string; item: string; amountFen: number; credential: string }): Promise<ServiceOrderView> {
    if (!this.options.signer) this.refuse('INSURANCE_NO_SIGNING_KEY', 'the server has no signing key');
    if (!CLINIC.test(request.clinicCode) || !ITEM.test(request.item) || !Number.isSafeInteger(request.amountFen) || request.amountFen < 1 || request.amountFen > 100_000_000 || request.credential.length < 1 || request.credential.length > 128) {
      throw new TallyError('BAD_INPUT', 'clinicCode, item (A-Z 0-9 _), amountFen (1..100000000) and credential (1..128) are required');
    }
    const now = this.clock.now();
    let order: InsuranceOrderRow | undefined;
    for (let attempt = 0; attempt < 5 && !order; attempt++) {
      const { orderId, userCode } = drawOrderCodes();
      const orderHash = sha256hex(orderCanonical({ orderId, terminalId: `clinic:${request.clinicCode}`, item: request.item, amountFen: request.amountFen }));
      // no device polls a service order: its device code is a random secret nobody holds
      const created = await this.store.createOrder({ orderId, terminalId: '', clinicCode: request.clinicCode, walletId: request.walletId, item: request.item, amountFen: request.amountFen, orderHash, deviceCodeHash: sha256hex(randomBytes(32).toString('base64url')), userCode, intervalS: this.intervalS, expiresAt: now + this.serviceOrderTtlMs, createdAt: now });
      if (created) order = await this.store.order(orderId);
    }
    if (!order) throw new TallyError('INTERNAL', 'could not draw unique codes');
    this.log.info({ event: 'insurance.service-order', orderId: order.orderId, walletId: request.walletId, clinicCode: request.clinicCode, item: request.item, amountFen: request.amountFen }, 'service order from a booking app');
    try {
      const cert = await this.platform.queryCertificate({ credential: request.credential, item: order.item, amountFen: order.amountFen });
      const token = randomBytes(32).toString('base64url');
      if (!(await this.store.transition(order.orderId, ['pending'], 'consented', { certificateId: cert.certificateId, insurerFen: cert.insurerFen, patientFen: cert.patientFen, tokenHash: sha256hex(`${token}\n${order.orderHash}`) }, this.clock.now()))) {
        this.refuse('INSURANCE_STATE', 'the order moved on', { orderId: order.orderId });
      }
      await this.settle(order.orderId, token);
    } catch (err) {
      // the certificate refused (not insured, not covered) or the platform down: nothing charged, the order ends failed
      const code: ErrorName = isTallyError(err) ? err.code : 'INSURANCE_PLATFORM_ERROR';
      await this.store.transition(order.orderId, ['pending', 'consented'], 'failed', { failure: code }, this.clock.now());
      this.log.warn({ event: 'insurance.service-order-failed', orderId: order.orderId, code }, 'service order not paid: nothing charged');
    }
    return serviceOrderView((await this.store.order(order.orderId))!);
  }

  /** A service order of this wallet, as the booking app shows it */
  async serviceOrder(orderId: string, walletId: string): Promise<ServiceOrderView> {
    const order = await this.store.order(orderId);
    if (!order || order.clinicCode === undefined || order.walletId !== walletId) this.refuse('INSURANCE_UNKNOWN_ORDER', 'no such service order in this wallet', { orderId, walletId });
    return serviceOrderView(order);
  }

  /**
   * A terminal redeems a paid service order by its code (the patient shows it, as a voucher): the order is bound to
   * this terminal in one conditional update and its settlement voucher signed for it. The same terminal asking
   * again (a lost answer) gets the same voucher; another terminal, or a terminal of another clinic, is refused.
   */
  async redeem(code: string, terminalId: string, terminalClinic: string | undefined): Promise<{ orderId: string; voucher: string }> {
    const order = await this.store.orderByUserCode(normaliseUserCode(code));
    if (!order || order.clinicCode === undefined) this.refuse('INSURANCE_UNKNOWN_ORDER', 'no paid service order has this code', { terminalId });
    const context = { orderId: order.orderId, terminalId };
    if (order.terminalId === terminalId && order.voucher && order.state === 'settled') return { orderId: order.orderId, voucher: order.voucher };
    if (order.terminalId !== '') this.refuse('INSURANCE_SERVICE_ORDER_REDEEMED', `redeemed at ${order.terminalId}`, context);
    if (order.state !== 'settled') this.refuse('INSURANCE_STATE', `order is ${order.state}`, context);
    if (terminalClinic !== order.clinicCode) this.refuse('INSURANCE_SERVICE_ORDER_OTHER_CLINIC', `booked for ${order.clinicCode}, the terminal is in ${terminalClinic ?? 'no known clinic'}`, { ...context, clinicCode: order.clinicCode });
    const now = this.clock.now();
    if (now >= order.expiresAt) this.refuse('INSURANCE_CODE_EXPIRED_SERVER', 'the service order is past its validity', context);
    const voucher = this.voucherFor(order, terminalId, { settlementId: order.settlementId!, insurerFen: order.insurerFen!, patientFen: order.patientFen! }, now);
    if (!(await this.store.redeemServiceOrder(order.orderId, terminalId, voucher, now))) {
      const current = (await this.store.order(order.orderId))!;
      if (current.terminalId === terminalId && current.voucher) return { orderId: order.orderId, voucher: current.voucher };
      this.refuse('INSURANCE_SERVICE_ORDER_REDEEMED', `redeemed at ${current.terminalId || 'no terminal'} (${current.state})`, context);
    }
    this.log.info({ event: 'insurance.service-order-redeemed', ...context, clinicCode: order.clinicCode }, 'service order redeemed at the terminal');
    return { orderId: order.orderId, voucher };
  }

  /** The terminal's outcome: the use ran (used), or it did not (the settlement is reversed) */
  async outcome(orderId: string, terminalId: string, ran: boolean): Promise<InsuranceOrderRow> {
    const order = await this.store.order(orderId);
    if (!order || order.terminalId !== terminalId) this.refuse('INSURANCE_UNKNOWN_ORDER', 'no such order for this terminal', { orderId, terminalId });
    if (ran) {
      await this.store.transition(orderId, ['settled'], 'used', {}, this.clock.now());
      return (await this.store.order(orderId))!;
    }
    return this.reverse(order, 'INSURANCE_FAILED');
  }

  private async reverse(order: InsuranceOrderRow, why: ErrorName): Promise<InsuranceOrderRow> {
    const reverseKey = `${order.orderId}:reverse`;
    await this.store.update(order.orderId, ['settled', 'used'], { reverseKey }, this.clock.now());
    const current = (await this.store.order(order.orderId))!;
    if (current.reverseKey === undefined || current.settlementId === undefined) return current;
    await this.platform.reverse(reverseKey, current.settlementId);
    await this.store.transition(order.orderId, ['settled', 'used'], 'reversed', { failure: why }, this.clock.now());
    this.log.info({ event: 'insurance.reversed', orderId: order.orderId, settlementId: current.settlementId, why }, 'settlement reversed with the platform');
    return (await this.store.order(order.orderId))!;
  }

  /** Codes past their life expire; vouchers past theirs and never used are reversed (also at start) */
  async sweep(): Promise<{ expired: number; reversed: number; failed: number }> {
    const now = this.clock.now();
    let expired = 0;
    let reversed = 0;
    let failed = 0;
    // consented: a server that died between the consent and the settlement's key (one update) never called the platform
    for (const order of await this.store.ordersIn(['pending', 'opened', 'consented'])) {
      // a service order is pending or consented only while payServiceOrder runs: past the age limit it was cut off
      // before its settlement key, so the platform was never asked to settle and nothing was charged
      if (order.clinicCode !== undefined && now >= order.createdAt + this.settleAgeLimitMs && now < order.expiresAt) {
        if (await this.store.transition(order.orderId, ['pending', 'consented'], 'failed', { failure: 'INSURANCE_SETTLEMENT_INTERRUPTED' }, now)) {
          failed++;
          this.log.warn({ event: 'insurance.service-order-interrupted', code: 'INSURANCE_SETTLEMENT_INTERRUPTED', orderId: order.orderId, clinicCode: order.clinicCode, walletId: order.walletId, was: order.state }, 'service order cut off before its settlement: failed, nothing charged');
        }
        continue;
      }
      if (now >= order.expiresAt && (await this.store.transition(order.orderId, ['pending', 'opened', 'consented'], 'expired', { failure: 'INSURANCE_CODE_EXPIRED' }, now))) expired++;
    }
    const grace = this.options.reverseGraceMs ?? 10 * 60_000;
    for (const order of await this.store.ordersIn(['settled'])) {
      if (now >= useBy(order) + grace) {
        // the terminal's ledger is the authority: a use it recorded (and reported) is not reversed, whatever its outcome message did
        const day = new Date(order.createdAt).toISOString().slice(0, 10);
        if ((await ledgerUseOrders(this.store, day)).has(order.orderId)) {
          await this.store.transition(order.orderId, ['settled'], 'used', {}, now);
          continue;
        }
        await this.reverse(order, 'SETTLEMENT_VOUCHER_EXPIRED').catch((err: unknown) => this.log.warn({ event: 'insurance.reverse-failed', orderId: order.orderId, code: isTallyError(err) ? err.code : 'INTERNAL' }, 'reversal failed: retried at the next sweep'));
        reversed++;
      }
    }
    return { expired, reversed, failed };
  }

  /**
   * The daily reconciliation: the platform's statement of a UTC day against our orders of that day and the ledger
   * uses the terminals reported (order ids of their settlement.reserved entries that did not end released or failed).
   */
  async reconcile(day: string, ledgerUses: LedgerUses | ReadonlySet<string>): Promise<{ day: string; orders: number; platformSettlements: number; mismatches: ReconcileMismatch[] }> {
    const from = Date.parse(`${day}T00:00:00Z`);
    if (!Number.isFinite(from)) throw new TallyError('BAD_INPUT', 'day: YYYY-MM-DD');
    const statement: PlatformStatement = await this.platform.statement(day);
    const orders = await this.store.ordersBetween(from - 86_400_000, from + 86_400_000);
    return { day, orders: orders.length, platformSettlements: statement.settlements.length, mismatches: reconcile(statement, orders, ledgerUses, this.clock.now()) };
  }
}

/**
 * When a settled order's use is due by: its voucher's expiry, or a service order not yet redeemed its validity's
 * end; a settled order with neither (none is made so) is due at once
 */
export function useBy(order: InsuranceOrderRow): number {
  if (order.voucher) return (JSON.parse(JSON.parse(order.voucher).body) as { expiresAt: number }).expiresAt;
  return order.clinicCode !== undefined ? order.expiresAt : 0;
}

/** Pure: every disagreement between the platform's statement, our orders and the ledgers' uses */
export function reconcile(statement: PlatformStatement, orders: readonly InsuranceOrderRow[], uses: LedgerUses | ReadonlySet<string>, now: number): ReconcileMismatch[] {
  const ledgerUses = usesByOrder(uses);
  const mismatches: ReconcileMismatch[] = [];
  const byId = new Map(orders.map((o) => [o.orderId, o]));
  const seen = new Set<string>();
  for (const s of statement.settlements) {
    const order = byId.get(s.orderRef);
    seen.add(s.orderRef);
    if (!order) {
      if (s.status === 'settled') mismatches.push({ kind: 'platform-settlement-without-order', settlementId: s.settlementId, detail: `the platform settled ${s.orderRef}, which this server does not know` });
      continue;
    }
    const ours = order.state === 'settled' || order.state === 'used';
    if (s.status === 'settled' && !ours) mismatches.push({ kind: 'settled-at-platform-not-here', orderId: order.orderId, settlementId: s.settlementId, detail: `the platform settled it; here it is ${order.state}` });
    if (s.status === 'reversed' && ours) mismatches.push({ kind: 'reversed-at-platform-not-here', orderId: order.orderId, settlementId: s.settlementId, detail: `the platform reversed it; here it is ${order.state}` });
    if (ours && order.insurerFen !== s.insurerFen) mismatches.push({ kind: 'amount-differs', orderId: order.orderId, settlementId: s.settlementId, detail: `platform ${s.insurerFen} fen, here ${order.insurerFen ?? 'none'}` });
  }
  const dayStart = Date.parse(`${statement.day}T00:00:00Z`);
  for (const order of orders) {
    const ours = order.state === 'settled' || order.state === 'used';
    const sameDay = order.createdAt >= dayStart && order.createdAt < dayStart + 86_400_000;
    if (ours && sameDay && !seen.has(order.orderId)) mismatches.push({ kind: 'settled-here-not-at-platform', orderId: order.orderId, detail: `here ${order.state}, the platform's statement has no settlement` });
    if (order.state === 'used' && !ledgerUses.has(order.orderId)) mismatches.push({ kind: 'used-without-ledger-use', orderId: order.orderId, detail: 'the terminal said it ran; no ledger use names the order' });
    if (order.state === 'settled' && now >= useBy(order)) {
      mismatches.push({ kind: 'settled-not-used', orderId: order.orderId, detail: order.voucher ? 'the voucher expired unused: to be reversed' : 'the service order was not redeemed in its validity: to be reversed' });
    }
  }
  for (const [orderId, refs] of ledgerUses) {
    const order = byId.get(orderId);
    if (!order || (order.state !== 'used' && order.state !== 'settled')) mismatches.push({ kind: 'ledger-use-without-settlement', orderId, detail: `a ledger use names it; here it is ${order?.state ?? 'unknown'}` });
    // one settlement pays one use: a second use of the same order ran the device unpaid
    if (refs.length > 1) {
      mismatches.push({ kind: 'order-with-several-ledger-uses', orderId, uses: refs, detail: `${refs.length} ledger uses name it: ${refs.map((r) => `${r.terminalId} seq ${r.seq}`).join(', ')}` });
    }
  }
  return mismatches;
}

/** The order ids the ledgers' unreleased settlement.reserved entries of a day name (their detail field) */
export async function ledgerUseOrders(store: InsuranceStore, day: string): Promise<LedgerUses> {
  const ids = new Map<string, LedgerUseRef[]>();
  for (const use of await store.ledgerSettlementUses(day)) {
    try {
      const detail = parseLedgerEntry(use.raw).detail;
      if (detail) ids.set(detail, [...(ids.get(detail) ?? []), { terminalId: use.terminalId, seq: use.seq }]);
    } catch {
      // an entry the ingest stored verified; one that does not parse here is listed by the ledger audit, not here
    }
  }
  return ids;
}
