/**
 * The voucher back office on the console's HTTP API (httpApi.ts registers these with its own `get` and `write`,
 * so every route names a permission, a session write carries its CSRF token and is audit-logged):
 *   GET  /api/vouchers/stats?by=community|clinic&period=day|week|month&from=&until=   (ISO days or times)
 *   GET  /api/vouchers?serial=, /api/vouchers/batches, /api/vouchers/slots?clinic=, /api/vouchers/centre?centre=
 *   POST /api/vouchers/batches {batchId, examType, scopeKind, scope, count, validDays, bookingRequired}
 *   POST /api/vouchers/send {batchId, centreId, community, count}
 *   POST /api/vouchers/issue {serial, centreId, walletId}   -> the voucher with its QR text and SVG image
 *   POST /api/vouchers/slots {slotId, clinicCode, department, doctor, start, minutes, capacity}
 *   POST /api/vouchers/book {serial, walletId, slotId}        -> the booked voucher, signed again
 *   POST /api/vouchers/void {serial, reason}, /api/vouchers/void-expired {}
 *   GET  /api/wallet                 (a patient user) its wallet: the vouchers with their QR codes, the slots to book
 *   POST /api/wallet/book {serial, slotId}   (a patient user) books a slot for a voucher of its own wallet
 * A clinic user sees the statistics of its clinics only (by clinic) and adds slots for its clinics only.
 * Refusals answer the project's code (number and zh ride along): unknown 404, a state that does not allow it 422, no key 503.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { boolean, integer, literal, object, optional, string, type Infer } from '../../codecs/mqtt/schema.js';
import { isTallyError } from '../../errors.js';
import type { Logger } from '../../util/logger.js';
import type { Permission, Principal } from '../access/roles.js';
import { seesClinic } from '../access/roles.js';
import { HttpError } from '../httpError.js';
import { checkInput } from '../registry/registryAdmin.js';
import type { SqlVoucherStore } from './SqlVoucherStore.js';
import type { VoucherOffice, WalletVoucher } from './VoucherOffice.js';
import { voucherQrSvg } from './voucherQrImage.js';

const DAY = 86_400;
const label = string(16, /^[A-Za-z0-9._-]+$/);
const id = (max: number) => string(max, /^[A-Za-z0-9._-]+$/);
const text = (max: number) => string(max, /^\S(?:[^\p{Cc}]*\S)?$/u);
const serial = integer(1, 2 ** 48 - 1);

export const VoucherInputs = {
  batch: object({ batchId: id(40), examType: label, scopeKind: literal(1, 2), scope: label, count: integer(1, 100_000), validDays: integer(1, 3650), bookingRequired: boolean() }),
  send: object({ batchId: id(40), centreId: id(64), community: text(100), count: integer(1, 100_000) }),
  issue: object({ serial, centreId: id(64), walletId: optional(id(64)), personalQr: optional(string(400, /^TW1:[0-9A-Z $%*+\-./:]+$/)) }),
  slot: object({ slotId: integer(1, 2 ** 31 - 1), clinicCode: label, department: text(100), doctor: text(100), start: integer(0, 2 ** 32 - 1), minutes: integer(1, 24 * 60), capacity: integer(1, 10_000) }),
  book: object({ serial, walletId: id(64), slotId: integer(1, 2 ** 31 - 1) }),
  void: object({ serial, reason: text(200) }),
  voidExpired: object({}),
  walletBook: object({ serial, slotId: integer(1, 2 ** 31 - 1) }),
} as const;

const loose = (description: string): TSchema => Type.Object({}, { additionalProperties: true, description });
const list = (s: TSchema): TSchema => ({ type: 'array', items: s }) as unknown as TSchema;
const bodyDoc = (description: string): TSchema => Type.Object({}, { additionalProperties: true, description });

export interface VoucherRouteKit {
  readonly get: (url: string, permission: Permission, summary: string, data: TSchema, handler: (query: Record<string, string | undefined>, principal: Principal) => Promise<unknown>, querystring?: TSchema) => void;
  readonly write: (
    url: string,
    permission: Permission,
    summary: string,
    bodySchema: TSchema,
    answer: TSchema,
    handler: (body: unknown, request: FastifyRequest) => Promise<{ status: number; data: unknown; audit: { action: string; target: string } }>,
  ) => void;
  readonly principal: (request: FastifyRequest) => Principal;
  /** Where a refused personal QR code is logged (wallet-qr.refused) */
  readonly log?: Logger;
  readonly store: SqlVoucherStore;
  readonly office: VoucherOffice;
  readonly nowSeconds: () => number;
}

/** A back office refusal as the HTTP answer, with the project's code */
async function answering<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!isTallyError(err) || err instanceof HttpError) throw err;
    // a refusal of the request's meaning (a state that does not allow it, a full slot) is 422, as an import refused
    const status = err.code === 'VOUCHER_UNKNOWN' ? 404 : err.code === 'VOUCHER_KEY_MISSING' ? 503 : err.code === 'USAGE' ? 400 : 422;
    throw new HttpError(status, err.code, err.message, undefined, err.code);
  }
}

function seconds(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new HttpError(400, 'invalid', `${name}: an ISO 8601 day or time`, name);
  return Math.floor(ms / 1000);
}

/** A voucher as the pages show it: with its QR code as SVG markup while it can be used */
export async function withQrImage(v: WalletVoucher): Promise<WalletVoucher & { qrSvg?: string }> {
  return v.qr ? { ...v, qrSvg: await voucherQrSvg(v.qr) } : v;
}

export function registerVoucherRoutes(kit: VoucherRouteKit): void {
  const { get, write, store, office, nowSeconds } = kit;
  get(
    '/api/vouchers/stats',
    'vouchers.stats',
    'vouchers generated, sent, voided and written off per period and community or clinic',
    list(loose('counts of one period and community (or clinic)')),
    async (query, principal) => {
      const scoped = principal.clinics !== undefined;
      const by = scoped ? 'clinic' : query.by === 'clinic' ? 'clinic' : 'community';
      const period = query.period === 'day' || query.period === 'week' ? query.period : 'month';
      const rows = await store.periodStatistics({ by, period, from: seconds(query.from, 'from', 0), until: seconds(query.until, 'until', nowSeconds() + DAY) });
      return scoped ? rows.filter((r) => seesClinic(principal, r.key)) : rows;
    },
    Type.Object({ by: Type.Optional(Type.String()), period: Type.Optional(Type.String()), from: Type.Optional(Type.String()), until: Type.Optional(Type.String()) }),
  );
  get('/api/vouchers/batches', 'vouchers.read', 'voucher batches', list(loose('a voucher batch')), () => store.batches());
  get(
    '/api/vouchers/slots',
    'vouchers.slots',
    'booking slots not ended yet, of one clinic or all',
    list(loose('a booking slot')),
    async (query, principal) => (await store.slots(nowSeconds(), query.clinic)).filter((s) => seesClinic(principal, s.clinicCode)),
    Type.Object({ clinic: Type.Optional(Type.String()) }),
  );
  get(
    '/api/vouchers',
    'vouchers.read',
    'one voucher by serial (state, holder, slot, and its QR code while usable), or the newest 500',
    list(loose('a voucher')),
    async (query) => {
      if (query.serial === undefined) return store.latest();
      const serialNo = Number(query.serial);
      if (!Number.isSafeInteger(serialNo) || serialNo < 1) throw new HttpError(400, 'invalid', 'serial: a positive integer', 'serial');
      return [await answering(async () => withQrImage(await office.show(serialNo)))];
    },
    Type.Object({ serial: Type.Optional(Type.String()) }),
  );
  get(
    '/api/vouchers/centre',
    'vouchers.issue',
    'what a community centre holds and whom it issued each voucher to',
    list(loose('a voucher of the centre')),
    async (query) => store.centreVouchers(query.centre ?? ''),
    Type.Object({ centre: Type.Optional(Type.String()) }),
  );

  const post = <S extends keyof typeof VoucherInputs>(
    url: string,
    permission: Permission,
    summary: string,
    schema: S,
    handler: (input: Infer<(typeof VoucherInputs)[S]>, principal: Principal) => Promise<{ data: unknown; action: string; target: string; status?: number }>,
  ): void =>
    write(url, permission, summary, bodyDoc(summary), loose('the answer'), async (body, request) => {
      const input = checkInput(VoucherInputs[schema] as (v: unknown, p: string) => Infer<(typeof VoucherInputs)[S]>, body);
      const done = await answering(() => handler(input, kit.principal(request)));
      return { status: done.status ?? 200, data: done.data, audit: { action: done.action, target: done.target } };
    });

  post('/api/vouchers/batches', 'vouchers.write', 'generate a batch of vouchers with fresh serials', 'batch', async (input) => {
    const now = nowSeconds();
    const made = await office.generate({ batchId: input.batchId, examType: input.examType, scopeKind: input.scopeKind, scope: input.scope, count: input.count, validFrom: now, validUntil: now + input.validDays * DAY, bookingRequired: input.bookingRequired });
    return { status: 201, data: made, action: 'voucher.batch', target: input.batchId };
  });
  post('/api/vouchers/send', 'vouchers.write', "send a batch's vouchers to a community centre", 'send', async (input) => ({
    data: { sent: await office.send(input.batchId, input.centreId, input.community, input.count) },
    action: 'voucher.send',
    target: input.batchId,
  }));
  post('/api/vouchers/issue', 'vouchers.issue', "the centre issues a voucher to a person's wallet: named, or read from the person's QR code (personalQr)", 'issue', async (input) => {
    if ((input.walletId === undefined) === (input.personalQr === undefined)) throw new HttpError(400, 'invalid', 'give walletId or personalQr (the text of the person\'s QR code), one of them', 'walletId');
    const walletId =
      input.walletId ??
      (await office.takePersonalQr(input.personalQr!).catch((err: unknown) => {
        if (isTallyError(err)) kit.log?.warn({ event: 'wallet-qr.refused', code: err.code, centreId: input.centreId, serial: input.serial }, "a person's QR code was refused at a community centre");
        throw err;
      }));
    return { data: await withQrImage(await office.issue(input.serial, input.centreId, walletId)), action: 'voucher.issue', target: String(input.serial) };
  });
  post('/api/vouchers/slots', 'vouchers.slots', 'add a booking slot with its capacity', 'slot', async (input, principal) => {
    if (!seesClinic(principal, input.clinicCode)) throw new HttpError(403, 'forbidden', `clinic ${input.clinicCode} is not yours`, 'clinicCode');
    const added = await store.addSlot({ slotId: input.slotId, clinicCode: input.clinicCode, department: input.department, doctor: input.doctor, start: input.start, end: input.start + input.minutes * 60, capacity: input.capacity });
    if (!added) throw new HttpError(422, 'VOUCHER_STATE_REFUSED', `slot ${input.slotId} exists`, 'slotId', 'VOUCHER_STATE_REFUSED');
    return { status: 201, data: await store.slot(input.slotId), action: 'voucher.slot', target: String(input.slotId) };
  });
  post('/api/vouchers/book', 'vouchers.issue', 'book a slot for a wallet\'s voucher (the centre books for the person)', 'book', async (input) => ({
    data: await withQrImage(await office.book(input.serial, input.walletId, input.slotId)),
    action: 'voucher.book',
    target: String(input.serial),
  }));
  post('/api/vouchers/void', 'vouchers.write', 'void a voucher (the next trust list revokes it)', 'void', async (input) => {
    await office.void(input.serial, input.reason);
    return { data: { voided: input.serial }, action: 'voucher.void', target: String(input.serial) };
  });
  // the patient's own wallet (seed 004's personal terminal): the wallet is the session's, never a parameter
  const walletOf = (principal: Principal): string => {
    if (!principal.walletId) throw new HttpError(403, 'forbidden', 'this user holds no wallet');
    return principal.walletId;
  };
  get(
    '/api/wallet',
    'wallet.read',
    "the patient's wallet: its vouchers (state, validity, slot, the QR code while usable) and the slots open for booking",
    loose('{ walletId, vouchers, slots }'),
    async (_query, principal) => {
      const walletId = walletOf(principal);
      const vouchers = await answering(async () => Promise.all((await office.wallet(walletId)).map(withQrImage)));
      const clinics = new Set(vouchers.filter((v) => v.shown === 'to-book').map((v) => v.scope));
      const slots = (await store.slots(nowSeconds())).filter((s) => clinics.has(s.clinicCode) && s.booked < s.capacity);
      // the person's own code (wallet-qr.md), fresh at every call, while the back office has its key
      const personal = await answering(async () => office.personalQr(walletId)).catch(() => undefined);
      return { walletId, vouchers, slots, ...(personal ? { personalQr: personal.text, personalQrValidUntil: personal.validUntil, personalQrSvg: await voucherQrSvg(personal.text) } : {}) };
    },
  );
  post('/api/wallet/book', 'wallet.book', 'book a slot for a voucher of your own wallet', 'walletBook', async (input, principal) => ({
    data: await withQrImage(await office.book(input.serial, walletOf(principal), input.slotId)),
    action: 'wallet.book',
    target: String(input.serial),
  }));
  post('/api/vouchers/void-expired', 'vouchers.write', 'void every voucher past its validity', 'voidExpired', async () => ({ data: { voided: await office.voidExpired() }, action: 'voucher.void-expired', target: '*' }));
}
