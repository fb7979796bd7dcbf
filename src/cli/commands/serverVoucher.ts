/**
 * `tally server voucher ...`: the voucher back office on the server's machine (seed 004, voucher-format.md):
 * certify-key with the mother card, then batches, centres, wallets, slots, bookings, voids, statistics and the
 * trust list, over the server's store (--store, as tally server run). Every change is the store's conditional
 * update; a refusal prints its code.
 */
import { writeFileSync } from 'node:fs';
import { toHex } from '../../codecs/bytes.js';
import { KeyRole } from '../../codecs/voucher.js';
import { generateSigningKey } from '../../crypto/ed25519.js';
import { TallyError } from '../../errors.js';
import { certifyVoucherKey } from '../../issuing/certifyVoucherKey.js';
import { createServerStore } from '../../server/createServerStore.js';
import { loadVoucherKey, saveVoucherKey, VoucherOffice, type WalletVoucher } from '../../server/voucher/VoucherOffice.js';
import { voucherQrPng } from '../../server/voucher/voucherQrImage.js';
import { integer, parseWithPositionals, pin, required } from '../args.js';
import { READER_HELP, READER_OPTIONS, withCardSource } from '../cardSource.js';
import type { CliCommand, CliIo } from '../command.js';
import { formatTable, storeOptions } from './server.js';

const DAY = 86_400;

const HELP = `tally server voucher certify-key --key FILE [--key-id N] [--valid-days D] [--issuer NAME] (--mother FILE | --reader SPEC) --mother-pin PIN
tally server voucher batch ID --exam TYPE (--clinic CODE | --device-class CLASS) --count N [--valid-days D] [--booking] --store S
tally server voucher send BATCH --centre ID --community NAME --count N --store S
tally server voucher issue SERIAL --centre ID --wallet ID --voucher-key FILE [--png FILE] --store S
tally server voucher slot add ID --clinic CODE --department D --doctor NAME --start ISO --minutes M --capacity N --store S
tally server voucher slots [--clinic CODE] --store S
tally server voucher book SERIAL --wallet ID --slot ID --voucher-key FILE [--png FILE] --store S
tally server voucher show SERIAL [--voucher-key FILE] [--png FILE] --store S [--json]
tally server voucher wallet ID [--voucher-key FILE] --store S [--json]
tally server voucher void SERIAL --reason TEXT --store S
tally server voucher void-expired --store S
tally server voucher stats [--by community|clinic] [--period day|week|month] [--from ISO] [--until ISO] --store S [--json]
tally server voucher trust-list --voucher-key FILE --out FILE [--valid-days D] [--grace-days D] --store S

certify-key makes the back office's voucher key (Ed25519) and has the mother
card certify it after its PIN (voucher-format.md §3: roles vouchers and trust
lists). FILE (mode 0600) holds the key, its certificate and the root public key;
give it to tally server run --voucher-key FILE and to the commands here.

A batch's vouchers are generated with fresh serials, sent to a community
centre, issued by the centre to a person's wallet (the voucher is signed for
that wallet: its QR text is printed, --png writes the QR image), booked into a
slot (signed again with the booking, as the terminal checks it offline), and
written off by a terminal. void revokes a serial (the next trust list lists it);
void-expired voids every voucher past its validity. stats counts generated,
sent, voided and written off per period and community (or clinic).
trust-list signs the list the terminals check vouchers against; tally server
run publishes it to every terminal (retained) when given --voucher-key.
  --store S   the server's store: a SQLite file or postgres://...
${READER_HELP}`;

const OPTIONS = {
  store: { type: 'string' },
  key: { type: 'string' },
  'key-id': { type: 'string' },
  'valid-days': { type: 'string' },
  'grace-days': { type: 'string' },
  issuer: { type: 'string' },
  mother: { type: 'string' },
  'mother-pin': { type: 'string' },
  exam: { type: 'string' },
  clinic: { type: 'string' },
  'device-class': { type: 'string' },
  count: { type: 'string' },
  booking: { type: 'boolean' },
  centre: { type: 'string' },
  community: { type: 'string' },
  wallet: { type: 'string' },
  'voucher-key': { type: 'string' },
  png: { type: 'string' },
  department: { type: 'string' },
  doctor: { type: 'string' },
  start: { type: 'string' },
  minutes: { type: 'string' },
  capacity: { type: 'string' },
  slot: { type: 'string' },
  reason: { type: 'string' },
  by: { type: 'string' },
  period: { type: 'string' },
  from: { type: 'string' },
  until: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  ...READER_OPTIONS,
} as const;

type Values = Record<string, string | boolean | undefined>;

function seconds(iso: string, name: string): number {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) throw new TallyError('USAGE', `--${name}: an ISO 8601 time (2026-12-04T09:00:00Z)`);
  return Math.floor(ms / 1000);
}

function serialOf(text: string | undefined): number {
  const n = Number(text);
  if (!text || !Number.isSafeInteger(n) || n < 1) throw new TallyError('USAGE', 'SERIAL: the voucher serial (a positive integer)');
  return n;
}

function positional(positionals: string[], i: number, what: string): string {
  const v = positionals[i];
  if (!v) throw new TallyError('USAGE', `${what} is required (tally server voucher --help)`);
  return v;
}

async function withOffice<T>(values: Values, fn: (office: VoucherOffice, store: Awaited<ReturnType<typeof createServerStore>>) => Promise<T>): Promise<T> {
  const key = typeof values['voucher-key'] === 'string' ? loadVoucherKey(values['voucher-key']) : undefined;
  const store = await createServerStore(storeOptions(required(values, 'store')));
  try {
    return await fn(new VoucherOffice(store.vouchers, key), store);
  } finally {
    await store.close();
  }
}

async function printVoucher(io: CliIo, v: WalletVoucher, values: Values): Promise<void> {
  if (values.json) io.out(JSON.stringify(v, null, 2));
  else {
    io.out(`voucher ${v.serial} (${v.examType} at ${v.scope}, batch ${v.batchId}): ${v.state}, shown as ${v.shown}, valid until ${new Date(v.validUntil * 1000).toISOString()}`);
    if (v.walletId) io.out(`  wallet ${v.walletId}${v.centreId ? ` (from centre ${v.centreId})` : ''}`);
    if (v.slot) io.out(`  slot ${v.slot.slotId}: ${v.slot.clinicCode} ${v.slot.department} ${v.slot.doctor} ${new Date(v.slot.start * 1000).toISOString()}`);
    if (v.terminalId) io.out(`  written off at ${v.terminalId}`);
    if (v.qr) io.out(`  QR ${v.qr}`);
  }
  if (typeof values.png === 'string') {
    if (!v.qr) throw new TallyError('VOUCHER_STATE_REFUSED', `voucher ${v.serial} has no QR code to show (${v.state}${values['voucher-key'] ? '' : ', no --voucher-key'})`);
    writeFileSync(values.png, await voucherQrPng(v.qr));
    if (!values.json) io.out(`  QR image written to ${values.png}`);
  }
}

export const serverVoucherCommand: CliCommand = {
  path: ['server', 'voucher'],
  summary: 'the voucher back office: certify-key, batch, send, issue, slot, book, show, wallet, void, stats, trust-list',
  help: HELP,
  async run(args, io) {
    const [what, ...rest] = args;
    const { values, positionals } = parseWithPositionals(rest, OPTIONS);
    switch (what) {
      case 'certify-key': {
        const keyPath = required(values, 'key');
        const keyId = integer(values, 'key-id', 1);
        if (keyId < 1 || keyId > 0xffff) throw new TallyError('USAGE', '--key-id 1..65535');
        const motherPin = pin(values, 'mother-pin');
        const now = Math.floor(Date.now() / 1000);
        const pair = generateSigningKey();
        const fields = { keyId, roles: KeyRole.VOUCHERS | KeyRole.TRUST_LISTS, validFrom: now - DAY, validUntil: now + integer(values, 'valid-days', 3 * 365) * DAY, publicKey: pair.publicKey, issuer: typeof values.issuer === 'string' ? values.issuer : 'voucher back office' };
        const result = await withCardSource(values, io, async (source) =>
          certifyVoucherKey(await source.card({ name: 'the mother card', signer: true, ...(typeof values.mother === 'string' ? { file: values.mother } : {}), fileOption: 'mother' }), motherPin, fields),
        );
        saveVoucherKey(keyPath, { key: pair.privateKey, certificate: result.certificate }, result.rootPublicKey);
        io.out(`voucher key ${keyId} ${toHex(pair.publicKey)} certified by the mother card (vouchers and trust lists, until ${new Date(fields.validUntil * 1000).toISOString()}); written to ${keyPath}`);
        io.out(`investor root key ${toHex(result.rootPublicKey)}`);
        return 0;
      }
      case 'batch': {
        const batchId = positional(positionals, 0, 'ID');
        const clinic = typeof values.clinic === 'string' ? values.clinic : undefined;
        const deviceClass = typeof values['device-class'] === 'string' ? values['device-class'] : undefined;
        if ((clinic === undefined) === (deviceClass === undefined)) throw new TallyError('USAGE', 'give --clinic CODE or --device-class CLASS');
        const now = Math.floor(Date.now() / 1000);
        const made = await withOffice(values, (office) =>
          office.generate({
            batchId,
            examType: required(values, 'exam'),
            scopeKind: clinic !== undefined ? 1 : 2,
            scope: (clinic ?? deviceClass)!,
            count: integer(values, 'count'),
            validFrom: now,
            validUntil: now + integer(values, 'valid-days', 90) * DAY,
            bookingRequired: values.booking === true,
          }),
        );
        io.out(`batch ${made.batchId}: vouchers ${made.first}..${made.last} generated`);
        return 0;
      }
      case 'send': {
        const batchId = positional(positionals, 0, 'BATCH');
        const sent = await withOffice(values, (office) => office.send(batchId, required(values, 'centre'), required(values, 'community'), integer(values, 'count')));
        io.out(`${sent} vouchers of ${batchId} sent to centre ${String(values.centre)}`);
        return 0;
      }
      case 'issue': {
        const serial = serialOf(positionals[0]);
        await withOffice(values, async (office) => printVoucher(io, await office.issue(serial, required(values, 'centre'), required(values, 'wallet')), values));
        return 0;
      }
      case 'book': {
        const serial = serialOf(positionals[0]);
        await withOffice(values, async (office) => printVoucher(io, await office.book(serial, required(values, 'wallet'), integer(values, 'slot')), values));
        return 0;
      }
      case 'show': {
        const serial = serialOf(positionals[0]);
        await withOffice(values, async (office) => printVoucher(io, await office.show(serial), values));
        return 0;
      }
      case 'wallet': {
        const walletId = positional(positionals, 0, 'ID');
        const vouchers = await withOffice(values, (office) => office.wallet(walletId));
        if (values.json) io.out(JSON.stringify(vouchers, null, 2));
        else for (const line of formatTable(vouchers.map((v) => ({ serial: v.serial, exam: v.examType, scope: v.scope, state: v.state, shown: v.shown, validUntil: new Date(v.validUntil * 1000).toISOString(), slot: v.slot?.slotId })))) io.out(line);
        return 0;
      }
      case 'slot': {
        if (positionals[0] !== 'add') throw new TallyError('USAGE', 'tally server voucher slot add ID ...');
        const slotId = serialOf(positionals[1]);
        const start = seconds(required(values, 'start'), 'start');
        const added = await withOffice(values, (_office, store) =>
          store.vouchers.addSlot({ slotId, clinicCode: required(values, 'clinic'), department: required(values, 'department'), doctor: required(values, 'doctor'), start, end: start + integer(values, 'minutes') * 60, capacity: integer(values, 'capacity') }),
        );
        if (!added) throw new TallyError('VOUCHER_STATE_REFUSED', `slot ${slotId} exists`);
        io.out(`slot ${slotId} added`);
        return 0;
      }
      case 'slots': {
        const slots = await withOffice(values, (_office, store) => store.vouchers.slots(Math.floor(Date.now() / 1000), typeof values.clinic === 'string' ? values.clinic : undefined));
        if (values.json) io.out(JSON.stringify(slots, null, 2));
        else for (const line of formatTable(slots.map((s) => ({ ...s, start: new Date(s.start * 1000).toISOString(), end: new Date(s.end * 1000).toISOString() })))) io.out(line);
        return 0;
      }
      case 'void': {
        const serial = serialOf(positionals[0]);
        await withOffice(values, (office) => office.void(serial, required(values, 'reason')));
        io.out(`voucher ${serial} voided: the next trust list revokes it`);
        return 0;
      }
      case 'void-expired': {
        const n = await withOffice(values, (office) => office.voidExpired());
        io.out(`${n} expired vouchers voided`);
        return 0;
      }
      case 'stats': {
        const by = values.by ?? 'community';
        const period = values.period ?? 'month';
        if (by !== 'community' && by !== 'clinic') throw new TallyError('USAGE', '--by community or clinic');
        if (period !== 'day' && period !== 'week' && period !== 'month') throw new TallyError('USAGE', '--period day, week or month');
        const from = typeof values.from === 'string' ? seconds(values.from, 'from') : 0;
        const until = typeof values.until === 'string' ? seconds(values.until, 'until') : Math.floor(Date.now() / 1000) + DAY;
        const rows = await withOffice(values, (_office, store) => store.vouchers.periodStatistics({ by, period, from, until }));
        if (values.json) io.out(JSON.stringify(rows, null, 2));
        else for (const line of formatTable(rows.map((r) => ({ period: r.period, [by]: r.key, generated: r.generated, sent: r.sent, voided: r.voided, writtenOff: r.writtenOff, completed: r.completed })))) io.out(line);
        return 0;
      }
      case 'trust-list': {
        const out = required(values, 'out');
        required(values, 'voucher-key');
        const raw = await withOffice(values, (office) => office.trustList({ validDays: integer(values, 'valid-days', 7), graceDays: integer(values, 'grace-days', 7) }));
        writeFileSync(out, raw);
        io.out(`trust list (${raw.length} bytes) written to ${out}; install with tally terminal trust-list --file ${out}`);
        return 0;
      }
      default:
        throw new TallyError('USAGE', 'tally server voucher certify-key | batch | send | issue | slot add | slots | book | show | wallet | void | void-expired | stats | trust-list (--help)');
    }
  },
};
