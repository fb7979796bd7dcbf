import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { toHex } from '../../codecs/bytes.js';
import { KIND_NAMES, RecordKind, type RecordKindValue } from '../../codecs/cardRecord.js';
import { isTallyError, TallyError } from '../../errors.js';
import { IssuingRegistry } from '../../issuing/IssuingRegistry.js';
import { IssuingStation } from '../../issuing/IssuingStation.js';
import { exportRegistry } from '../../issuing/exportRegistry.js';
import { integer, pin, required } from '../args.js';
import { withCardSource } from '../cardSource.js';
import { defineCommand, type CliIo } from '../command.js';
import { CARD_READER_OPTIONS, JSON_OPTION, MOTHER_OPTIONS, REGISTRY_OPTION, requiredOption, valueOption } from '../options.js';
import { certificateFingerprint } from '../../pki/certificateAuthority.js';
import { PkiStore } from '../../pki/pkiStore.js';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Opens the station's registry; says where it is when this makes a new one (./issuing.db by default) */
function openStation(values: Record<string, unknown>, io?: CliIo): { station: IssuingStation; registry: IssuingRegistry } {
  const path = typeof values.registry === 'string' ? values.registry : 'issuing.db';
  const isNew = !existsSync(path);
  const registry = IssuingRegistry.open(path);
  if (isNew && io) io.err(`issuing registry ${resolve(path)} created (every card this station makes is recorded there; --registry FILE to keep it elsewhere)`);
  return { registry, station: new IssuingStation(registry) };
}

/** The mother card signing a step in this station's registry (certify-station, certify-ca) */
const MOTHER_SIGNS = {
  mother: MOTHER_OPTIONS.mother!,
  'mother-pin': requiredOption(MOTHER_OPTIONS['mother-pin']!),
  ...REGISTRY_OPTION,
  ...CARD_READER_OPTIONS,
};

const optional = (values: Record<string, unknown>, name: string): string | undefined => (typeof values[name] === 'string' ? values[name] : undefined);

export const issueMotherCommand = defineCommand(
  {
    path: 'issue mother',
    summary: "personalise the investor's unique mother card",
    usage: ['tally issue mother (--card FILE | --reader SPEC) --pin PIN --investor NAME [--registry FILE]'],
    about: `Makes the investor's root key ON the card (it never leaves it), sets the PIN
(4-12 digits; 3 wrong tries block the card) and records the card.`,
    options: {
      card: valueOption('FILE', 'the blank card file to make the mother card of (with --reader file)'),
      pin: valueOption('PIN', "the new mother card's PIN, chosen now (- reads it from standard input)", { required: true }),
      investor: valueOption('NAME', "the investor's name, in the card's record", { required: true }),
      ...REGISTRY_OPTION,
      ...CARD_READER_OPTIONS,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const request = { pin: pin(values, 'pin', "the new mother card's PIN (4-12 digits, chosen now)"), investor: required(values, 'investor') };
    const { station, registry } = openStation(values, io);
    try {
      const result = await withCardSource(values, io, (source) =>
        station.personaliseMother(source.channel({ name: 'the mother card', blank: true, file: optional(values, 'card'), fileOption: 'card' }), request),
      );
      io.out(`mother card ${result.cardId} personalised`);
      io.out(`root key fingerprint ${result.rootFingerprint}`);
      io.out(`investor root key ${Buffer.from(result.rootPublicKey).toString('hex')} (the server checks terminals and exports with it: tally server run --root)`);
      io.out('give the fingerprint to the factory: terminals check it at provisioning');
      return 0;
    } finally {
      registry.close();
    }
  },
);

export const issueWhiteCommand = defineCommand(
  {
    path: 'issue white',
    summary: 'make a white card (signed by the mother card) with a batch-card quota',
    usage: ['tally issue white (--mother FILE --card FILE | --reader SPEC) --mother-pin PIN --pin PIN --quota N [--valid-days D] [--registry FILE]'],
    about: `The white card makes its own key; the mother card signs its record after its
PIN. The white card can sign at most N batch cards (the card itself counts).
With one reader slot the tool asks for the mother card and the blank card in
turn, as each step needs them; with --signer-reader the mother card stays in
that second reader.`,
    options: {
      mother: MOTHER_OPTIONS.mother!,
      'mother-pin': requiredOption(MOTHER_OPTIONS['mother-pin']!),
      card: valueOption('FILE', 'the blank card file to make the white card of (with --reader file)'),
      pin: valueOption('PIN', "the new white card's PIN, chosen now (- reads it from standard input)", { required: true }),
      quota: valueOption('N', 'how many batch cards it may sign', { required: true }),
      'valid-days': valueOption('D', 'how long it is valid', { default: '365' }),
      ...REGISTRY_OPTION,
      ...CARD_READER_OPTIONS,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const motherPin = pin(values, 'mother-pin', "the mother card's PIN");
    const white = { pin: pin(values, 'pin', "the new white card's PIN (4-12 digits, chosen now)"), quota: integer(values, 'quota'), validDays: integer(values, 'valid-days', 365) };
    const { station, registry } = openStation(values, io);
    try {
      const result = await withCardSource(values, io, (source) =>
        station.makeWhite(
          { channel: source.channel({ name: 'the mother card', signer: true, file: optional(values, 'mother'), fileOption: 'mother' }), pin: motherPin },
          { channel: source.channel({ name: 'the white card', blank: true, file: optional(values, 'card'), fileOption: 'card' }), ...white },
        ),
      );
      io.out(`white card ${result.cardId}: quota ${result.quota} batch cards, valid until ${new Date(result.validUntil * 1000).toISOString().slice(0, 10)}`);
      return 0;
    } finally {
      registry.close();
    }
  },
);

export const issueBatchCommand = defineCommand(
  {
    path: 'issue batch',
    summary: 'make a batch card for a clinic and its one-time cards',
    usage: ['tally issue batch (--white FILE --card FILE --out-dir DIR | --reader SPEC) --white-pin PIN --clinic CODE --count N [--valid-days D] [--registry FILE]'],
    about: `Signs a batch card with the white card (one of its quota) and writes the
batch's one-time cards, serials 1..N: as DIR/onetime-<batch>-<serial>.json
with card files, or card by card in the reader slot as the tool asks. A
one-time card that was not written waits in the registry: tally issue rewrite.`,
    options: {
      white: valueOption('FILE', 'the white card file (with --reader file)'),
      'white-pin': valueOption('PIN', "the white card's PIN (- reads a line of standard input)", { required: true }),
      card: valueOption('FILE', 'the blank card file to make the batch card of (with --reader file)'),
      clinic: valueOption('CODE', 'the clinic the batch is for', { required: true }),
      count: valueOption('N', 'how many one-time cards', { required: true }),
      'out-dir': valueOption('DIR', 'where the one-time card files go (required with card files)'),
      'valid-days': valueOption('D', 'how long the batch is valid', { default: '90' }),
      ...REGISTRY_OPTION,
      ...CARD_READER_OPTIONS,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const outDir = optional(values, 'out-dir');
    const whitePin = pin(values, 'white-pin', "the white card's PIN");
    const request = { clinicCode: required(values, 'clinic'), count: integer(values, 'count'), validDays: integer(values, 'valid-days', 90) };
    const { station, registry } = openStation(values, io);
    try {
      const batchNo = registry.nextBatchNo();
      const result = await withCardSource(values, io, async (source) => {
        if (source.spec.backend === 'file') {
          if (!outDir) throw new TallyError('USAGE', '--out-dir is required with card files');
          mkdirSync(outDir, { recursive: true });
        }
        // after a card that never came, the rest are not waited for one by one: they go to the registry for rewrite
        let abandoned: Error | undefined;
        // the station goes on after a card it could not write: say so at once, not only in the summary
        const reportIfNotWritten = (serial: number): void => {
          const batch = registry.batchByNo(batchNo);
          const card = batch && registry.oneTimeCardsOfBatch(batch.batchId).find((c) => c.serial === serial);
          // a version 2 serial that was not written has no record at all (it would name the chip's own key)
          if (!card?.written && !abandoned) io.err(`✗ one-time card ${serial} of ${request.count} not written (see below; tally issue rewrite)`);
        };
        return station.makeBatch(
          { channel: source.channel({ name: 'the white card', signer: true, file: optional(values, 'white'), fileOption: 'white' }), pin: whitePin },
          source.channel({ name: 'the batch card', blank: true, file: optional(values, 'card'), fileOption: 'card' }),
          request,
          async (serial) => {
            if (source.spec.backend !== 'file' && serial > 1) reportIfNotWritten(serial - 1);
            if (abandoned) throw new TallyError('READER_TIMEOUT', `not attempted: ${abandoned.message}`);
            const channel = source.channel({
              name: `one-time card ${serial} of ${request.count}`,
              blank: true,
              ...(outDir ? { file: join(outDir, `onetime-${batchNo}-${String(serial).padStart(4, '0')}.json`) } : {}),
              fileOption: 'out-dir',
            });
            return {
              transmit: (apdu) =>
                channel.transmit(apdu).catch((err: unknown) => {
                  if (isTallyError(err, 'READER_TIMEOUT')) abandoned = err;
                  throw err;
                }),
            };
          },
        );
      });
      io.out(`batch ${result.batchNo} (${result.batchId}) for clinic ${result.clinicCode}: ${result.written.length} of ${result.count} one-time cards written${outDir ? ` to ${outDir}` : ''}`);
      for (const failed of result.notWritten) io.err(`serial ${failed.serial} not written: ${failed.reason} (tally issue rewrite)`);
      return result.notWritten.length === 0 ? 0 : 1;
    } finally {
      registry.close();
    }
  },
);

export const issueRewriteCommand = defineCommand(
  {
    path: 'issue rewrite',
    summary: 'write a registered one-time card onto a new blank card',
    usage: ['tally issue rewrite --batch N --serial S (--card FILE | --reader SPEC) [--registry FILE]'],
    about: `For a one-time card that was spoiled or never written: the signed record is in
the registry, so no key is needed.`,
    options: {
      batch: valueOption('N', 'the batch number', { required: true }),
      serial: valueOption('S', "the one-time card's serial in the batch", { required: true }),
      card: valueOption('FILE', 'the blank card file to write (with --reader file)'),
      ...REGISTRY_OPTION,
      ...CARD_READER_OPTIONS,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const batchNo = integer(values, 'batch');
    const serial = integer(values, 'serial');
    const { station, registry } = openStation(values, io);
    try {
      await withCardSource(values, io, (source) =>
        station.rewriteOneTime(source.channel({ name: `one-time card ${serial} of batch ${batchNo}`, blank: true, file: optional(values, 'card'), fileOption: 'card' }), batchNo, serial),
      );
      io.out(`one-time card ${serial} of batch ${batchNo} written`);
      return 0;
    } finally {
      registry.close();
    }
  },
);

export const issueListCommand = defineCommand(
  {
    path: 'issue list',
    summary: 'list every card the issuing station made',
    options: { ...REGISTRY_OPTION, ...JSON_OPTION },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const path = typeof values.registry === 'string' ? values.registry : 'issuing.db';
    if (!existsSync(path)) throw new TallyError('DATABASE_CANTOPEN', `no registry at ${path}`);
    const registry = IssuingRegistry.open(path);
    try {
      const cards = registry.cards().map((c) => ({
        kind: KIND_NAMES[c.kind as RecordKindValue],
        cardId: toHex(c.cardId),
        ...(c.clinicCode ? { clinic: c.clinicCode } : {}),
        ...(c.batchNo !== undefined ? { batch: c.batchNo } : {}),
        ...(c.serial !== undefined ? { serial: c.serial } : {}),
        issued: new Date(c.issuedAt * 1000).toISOString(),
        written: c.written,
      }));
      if (values.json) io.out(JSON.stringify(cards, null, 2));
      else for (const c of cards) io.out(`${c.kind.padEnd(9)} ${c.cardId}  ${c.clinic ?? ''} ${c.batch !== undefined ? `batch ${c.batch}` : ''} ${c.serial !== undefined ? `#${c.serial}` : ''} ${c.written ? '' : '(not written)'}`.trimEnd());
      return 0;
    } finally {
      registry.close();
    }
  },
);

export const issueCertifyStationCommand = defineCommand(
  {
    path: 'issue certify-station',
    summary: "give this issuing station a key of its own, certified by the mother card (for signed exports)",
    usage: ['tally issue certify-station --station-id ID (--mother FILE | --reader SPEC) --mother-pin PIN [--registry FILE]'],
    about: `Makes the station a signing key (kept in its registry) and has the mother card
sign a certificate for it after the mother PIN. The key signs registry exports
(tally issue export) and nothing else: it cannot make a card. The server trusts
an export through this certificate and the investor root alone. Certifying
again replaces the key.`,
    options: {
      'station-id': valueOption('ID', '1..64 of A-Z a-z 0-9 . _ - (e.g. ST-HQ-1)', { required: true }),
      ...MOTHER_SIGNS,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const stationId = required(values, 'station-id');
    const motherPin = pin(values, 'mother-pin', "the mother card's PIN");
    const { station, registry } = openStation(values, io);
    try {
      const result = await withCardSource(values, io, (source) =>
        station.certifyStation({ channel: source.channel({ name: 'the mother card', signer: true, file: optional(values, 'mother'), fileOption: 'mother' }), pin: motherPin }, stationId),
      );
      io.out(`station ${result.stationId} certified by mother card ${result.motherCardId}; station key ${result.publicKey}`);
      io.out(`investor root key ${result.rootPublicKey} (the server checks exports with it: --root)`);
      return 0;
    } finally {
      registry.close();
    }
  },
);

export const issueCertifyCaCommand = defineCommand(
  {
    path: 'issue certify-ca',
    summary: "have the mother card certify the investor's TLS CA (terminals trust the broker only through it)",
    usage: ['tally issue certify-ca (--pki DIR | --ca-cert FILE --out FILE) (--mother FILE | --reader SPEC) --mother-pin PIN [--registry FILE]'],
    about: `The mother card (after its PIN) signs a record naming the SHA-256 fingerprint
of the TLS CA certificate (tally pki init made it). Terminals check the
broker's certificate chain only against a CA whose record verifies with the
investor root they got at provisioning; tally terminal enrol fetches the CA
and this record from the server. With --pki DIR the record is written to
DIR/ca-record.json, where the server serves it.`,
    options: {
      pki: valueOption('DIR', 'the PKI directory tally pki init made (its CA, and where the record goes)'),
      'ca-cert': valueOption('FILE', "or the CA's certificate (PEM)"),
      out: valueOption('FILE', 'where the record goes (with --ca-cert)'),
      ...MOTHER_SIGNS,
    },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const pki = typeof values.pki === 'string' ? PkiStore.open(values.pki) : undefined;
    const caPem = pki ? pki.caCertPem : readFileSync(required(values, 'ca-cert'), 'utf8');
    const out = pki ? undefined : required(values, 'out');
    const motherPin = pin(values, 'mother-pin', "the mother card's PIN");
    const fingerprint = certificateFingerprint(caPem);
    const { station, registry } = openStation(values, io);
    try {
      const result = await withCardSource(values, io, (source) =>
        station.certifyTlsCa({ channel: source.channel({ name: 'the mother card', signer: true, file: optional(values, 'mother'), fileOption: 'mother' }), pin: motherPin }, { fingerprint, subject: new X509Certificate(caPem).subject.replace(/\n/g, ', ') }),
      );
      if (pki) pki.writeCaRecord(result.recordJson);
      else writeFileSync(out!, result.recordJson);
      io.out(`TLS CA ${fingerprint} certified by mother card ${result.motherCardId}`);
      io.out(`record written to ${pki ? PkiStore.paths(pki.dir).record : out!}`);
      return 0;
    } finally {
      registry.close();
    }
  },
);

export const issueExportCommand = defineCommand(
  {
    path: 'issue export',
    summary: "write the station's registry as a signed export for the server",
    about: `Every mother, white and batch card this station made, and per batch how many
one-time cards it wrote, signed with the station key (tally issue
certify-station first). Take the file to the server: tally server registry
import FILE, or POST it to /api/registry/import. Every export is complete, so
importing it twice, or an older one after a newer one, changes nothing.`,
    options: { out: valueOption('FILE', 'where the export goes', { required: true }), ...REGISTRY_OPTION },
  },
  async (args, io, cli) => {
    const values = cli.parse(args);
    const out = required(values, 'out');
    const path = typeof values.registry === 'string' ? values.registry : 'issuing.db';
    if (!existsSync(path)) throw new TallyError('DATABASE_CANTOPEN', `no registry at ${path}`);
    const registry = IssuingRegistry.open(path);
    try {
      const text = exportRegistry(registry, Date.now());
      writeFileSync(out, text, { mode: 0o644 });
      const cards = registry.cards();
      io.out(`registry of station ${registry.station()!.stationId} exported to ${out}: ${cards.filter((c) => c.kind !== RecordKind.ONE_TIME).length} cards, ${registry.oneTimeSummary().length} one-time batches`);
      return 0;
    } finally {
      registry.close();
    }
  },
);
