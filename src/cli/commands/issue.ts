import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { toHex } from '../../codecs/bytes.js';
import { KIND_NAMES, type RecordKindValue } from '../../codecs/cardRecord.js';
import { TallyError } from '../../errors.js';
import { IssuingRegistry } from '../../issuing/IssuingRegistry.js';
import { IssuingStation } from '../../issuing/IssuingStation.js';
import { newCardFile, openCardFile } from '../../sim/cardFile.js';
import { directChannel } from '../../scenario/CardWorld.js';
import { integer, parse, pin, required } from '../args.js';
import type { CliCommand } from '../command.js';

const REGISTRY_HELP = '  --registry FILE   the issuing station registry (default ./issuing.db)';

function openStation(values: Record<string, unknown>): { station: IssuingStation; registry: IssuingRegistry } {
  const registry = IssuingRegistry.open(typeof values.registry === 'string' ? values.registry : 'issuing.db');
  return { registry, station: new IssuingStation(registry) };
}

/** A card file to write on: an existing blank card, or a new blank one */
function targetCard(path: string) {
  return existsSync(path) ? openCardFile(path) : newCardFile(path);
}

export const issueMotherCommand: CliCommand = {
  path: ['issue', 'mother'],
  summary: "personalise the investor's unique mother card",
  help: `tally issue mother --card FILE --pin PIN --investor NAME [--registry FILE]

Makes the investor's root key ON the card (it never leaves it), sets the PIN
(4-12 digits; 3 wrong tries block the card) and records the card.
  --pin -           read the PIN from standard input
${REGISTRY_HELP}`,
  async run(args, io) {
    const values = parse(args, { card: { type: 'string' }, pin: { type: 'string' }, investor: { type: 'string' }, registry: { type: 'string' } });
    const { station, registry } = openStation(values);
    try {
      const result = await station.personaliseMother(directChannel(targetCard(required(values, 'card'))), { pin: pin(values, 'pin'), investor: required(values, 'investor') });
      io.out(`mother card ${result.cardId} personalised`);
      io.out(`root key fingerprint ${result.rootFingerprint}`);
      io.out('give the fingerprint to the factory: terminals check it at provisioning');
      return 0;
    } finally {
      registry.close();
    }
  },
};

export const issueWhiteCommand: CliCommand = {
  path: ['issue', 'white'],
  summary: 'make a white card (signed by the mother card) with a batch-card quota',
  help: `tally issue white --mother FILE --mother-pin PIN --card FILE --pin PIN --quota N [--valid-days D] [--registry FILE]

The white card makes its own key; the mother card signs its record after its
PIN. The white card can sign at most N batch cards (the card itself counts).
  --valid-days D    default 365
${REGISTRY_HELP}`,
  async run(args, io) {
    const values = parse(args, {
      mother: { type: 'string' },
      'mother-pin': { type: 'string' },
      card: { type: 'string' },
      pin: { type: 'string' },
      quota: { type: 'string' },
      'valid-days': { type: 'string' },
      registry: { type: 'string' },
    });
    const { station, registry } = openStation(values);
    try {
      const result = await station.makeWhite(
        { channel: directChannel(openCardFile(required(values, 'mother'))), pin: pin(values, 'mother-pin') },
        { channel: directChannel(targetCard(required(values, 'card'))), pin: pin(values, 'pin'), quota: integer(values, 'quota'), validDays: integer(values, 'valid-days', 365) },
      );
      io.out(`white card ${result.cardId}: quota ${result.quota} batch cards, valid until ${new Date(result.validUntil * 1000).toISOString().slice(0, 10)}`);
      return 0;
    } finally {
      registry.close();
    }
  },
};

export const issueBatchCommand: CliCommand = {
  path: ['issue', 'batch'],
  summary: 'make a batch card for a clinic and its one-time cards',
  help: `tally issue batch --white FILE --white-pin PIN --card FILE --clinic CODE --count N --out-dir DIR [--valid-days D] [--registry FILE]

Signs a batch card with the white card (one of its quota) and writes the
batch's one-time cards, serials 1..N, as DIR/onetime-<batch>-<serial>.json.
  --valid-days D    default 90
${REGISTRY_HELP}`,
  async run(args, io) {
    const values = parse(args, {
      white: { type: 'string' },
      'white-pin': { type: 'string' },
      card: { type: 'string' },
      clinic: { type: 'string' },
      count: { type: 'string' },
      'out-dir': { type: 'string' },
      'valid-days': { type: 'string' },
      registry: { type: 'string' },
    });
    const outDir = required(values, 'out-dir');
    mkdirSync(outDir, { recursive: true });
    const { station, registry } = openStation(values);
    try {
      const batchNo = registry.nextBatchNo();
      const result = await station.makeBatch(
        { channel: directChannel(openCardFile(required(values, 'white'))), pin: pin(values, 'white-pin') },
        directChannel(targetCard(required(values, 'card'))),
        { clinicCode: required(values, 'clinic'), count: integer(values, 'count'), validDays: integer(values, 'valid-days', 90) },
        async (serial) => directChannel(targetCard(join(outDir, `onetime-${batchNo}-${String(serial).padStart(4, '0')}.json`))),
      );
      io.out(`batch ${result.batchNo} (${result.batchId}) for clinic ${result.clinicCode}: ${result.written.length} of ${result.count} one-time cards written to ${outDir}`);
      for (const failed of result.notWritten) io.err(`serial ${failed.serial} not written: ${failed.reason} (tally issue rewrite)`);
      return result.notWritten.length === 0 ? 0 : 1;
    } finally {
      registry.close();
    }
  },
};

export const issueRewriteCommand: CliCommand = {
  path: ['issue', 'rewrite'],
  summary: 'write a registered one-time card onto a new blank card',
  help: `tally issue rewrite --batch N --serial S --card FILE [--registry FILE]

For a one-time card that was spoiled or never written: the signed record is in
the registry, so no key is needed.`,
  async run(args, io) {
    const values = parse(args, { batch: { type: 'string' }, serial: { type: 'string' }, card: { type: 'string' }, registry: { type: 'string' } });
    const { station, registry } = openStation(values);
    try {
      await station.rewriteOneTime(directChannel(targetCard(required(values, 'card'))), integer(values, 'batch'), integer(values, 'serial'));
      io.out(`one-time card ${integer(values, 'serial')} of batch ${integer(values, 'batch')} written`);
      return 0;
    } finally {
      registry.close();
    }
  },
};

export const issueListCommand: CliCommand = {
  path: ['issue', 'list'],
  summary: 'list every card the issuing station made',
  help: `tally issue list [--registry FILE] [--json]`,
  async run(args, io) {
    const values = parse(args, { registry: { type: 'string' }, json: { type: 'boolean' } });
    const path = typeof values.registry === 'string' ? values.registry : 'issuing.db';
    if (!existsSync(path)) throw new TallyError('USAGE', `no registry at ${path}`);
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
};
