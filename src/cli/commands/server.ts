import { readFileSync } from 'node:fs';
import { loadVoucherKey } from '../../server/voucher/VoucherOffice.js';
import { createServerStore, type ServerStoreOptions } from '../../server/createServerStore.js';
import { HttpInsurancePlatform } from '../../server/insurance/HttpInsurancePlatform.js';
import { createIngestServer, type IngestServer } from '../../server/IngestServer.js';
import { smsStatus } from '../../server/sms/SmsInbox.js';
import { loadServerKey } from './serverKey.js';
import { adminTokenProblem, DEFAULT_PRICING, groupedUses, storeIncome, type IncomeRow } from '../../server/httpApi.js';
import {
  checkInput,
  ClinicInputSchema,
  RegistryInputError,
  RetireInputSchema,
  retireTerminal,
  saveClinic,
  saveTerminal,
  TerminalInputSchema,
} from '../../server/registry/registryAdmin.js';
import type { RegistryCardKind } from '../../server/registry/RegistryStore.js';
import { importRegistryExport, RegistryImportRefused } from '../../server/registry/verifyExport.js';
import { createLogger } from '../../logging/createLogger.js';
import { TallyError } from '../../errors.js';
import { integer, parse, required } from '../args.js';
import { SERVER_PKI_HELP, SERVER_PKI_OPTIONS, startServerPki } from './serverPki.js';
import type { CliCommand, CliIo } from '../command.js';
import { loadServerConfig } from '../../config/serverConfig.js';

export function storeOptions(value: string): ServerStoreOptions {
  if (value.startsWith('postgres://') || value.startsWith('postgresql://')) return { kind: 'postgres', connectionString: value };
  return { kind: 'sqlite', path: value.replace(/^sqlite:/, '') };
}

export function rootKey(values: Record<string, unknown>): Uint8Array {
  const hex = typeof values.root === 'string' ? values.root : typeof values['root-file'] === 'string' ? readFileSync(values['root-file'], 'utf8').trim() : undefined;
  if (!hex || !/^[0-9a-fA-F]{64}$/.test(hex)) throw new TallyError('USAGE', '--root HEX (the investor root public key, 64 hex digits) or --root-file FILE is required');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** --insurance-timing CODE,POLL,VOUCHER,GRACE,SWEEP (seconds; an empty field keeps its default) */
function insuranceTiming(text: unknown): { codeTtlMs?: number; intervalS?: number; voucherTtlMs?: number; reverseGraceMs?: number; sweepMs?: number } {
  if (typeof text !== 'string') return {};
  const fields = text.split(',');
  const seconds = fields.map((f) => (f.trim() === '' ? undefined : Number(f)));
  if (fields.length !== 5 || seconds.some((n) => n !== undefined && (!Number.isInteger(n) || n < 0 || n > 86_400)) || seconds[0] === 0 || seconds[1] === 0 || seconds[2] === 0 || seconds[4] === 0) {
    throw new TallyError('USAGE', '--insurance-timing CODE,POLL,VOUCHER,GRACE,SWEEP: five whole numbers of seconds (0..86400; only GRACE may be 0), e.g. 300,5,600,600,30');
  }
  const [code, poll, voucher, grace, sweep] = seconds;
  return {
    ...(code !== undefined ? { codeTtlMs: code * 1000 } : {}),
    ...(poll !== undefined ? { intervalS: poll } : {}),
    ...(voucher !== undefined ? { voucherTtlMs: voucher * 1000 } : {}),
    ...(grace !== undefined ? { reverseGraceMs: grace * 1000 } : {}),
    ...(sweep !== undefined ? { sweepMs: sweep * 1000 } : {}),
  };
}

/** The registry writes' bearer token: --admin-token-file FILE, else TALLY_ADMIN_TOKEN; undefined: writes refused */
function adminToken(values: Record<string, unknown>): string | undefined {
  const file = values['admin-token-file'];
  const token = typeof file === 'string' ? readFileSync(file, 'utf8').trim() : process.env.TALLY_ADMIN_TOKEN?.trim() || undefined;
  if (token === undefined) return undefined;
  const problem = adminTokenProblem(token);
  if (problem) throw new TallyError('USAGE', `${problem} (${typeof file === 'string' ? `--admin-token-file ${file}` : 'TALLY_ADMIN_TOKEN'})`);
  return token;
}

/** --config FILE and the TALLY_* environment give the flags the command line did not (schemas/server-config.schema.json) */
function withServerConfig(cli: Record<string, string | boolean | undefined>, io: CliIo): { values: Record<string, string | boolean | undefined>; logLevel: string } {
  const loaded = loadServerConfig(typeof cli.config === 'string' ? cli.config : undefined);
  for (const warning of loaded.warnings) io.err(`warning: ${warning}`);
  return { values: { ...loaded.flags, ...cli }, logLevel: loaded.settings.log.level };
}

export const serverRunCommand: CliCommand = {
  path: ['server', 'run'],
  summary: "the investor's ingest server: reports in, verified, stored once",
  help: `tally server run [--config FILE] --broker URL --store (FILE | postgres://...) (--root HEX | --root-file FILE)
                 [--ca F --cert F --key F] [--mqtt 4|5] [--http-port N [--https-proxy]] [--shared-group NAME] [--client-id ID]
                 [--signature-check chain-anchored|every-entry] [--admin-token-file FILE] [--worker-threads N]
                 [--signing-key FILE] [--insurance-url URL [--insurance-base-url URL] [--insurance-timing S,S,S,S,S]]
                 [--voucher-key FILE]

Subscribes to every terminal's reports, verifies each terminal's certificate
chain to the investor root, the entries' signatures and the hash chain, stores
each entry exactly once, asks for resends of gaps and raises alerts (batch on
two terminals, serial used twice, forks, impersonation) and, every 10 s, compares
the registry with the reports (batch-not-registered, terminal-wrong-clinic,
terminal-retired-reporting, terminal-not-registered).
With --http-port the report API and the console's dashboard (GET /, docs/console.md)
listen on 127.0.0.1 (--https-proxy: browsers reach it through an HTTPS proxy on this
machine; the session cookie is then Secure) (/api/uses, /api/batches,
/api/income, /api/alerts, /api/registry/*; POST /api/registry/import takes a
station export). The administrator's registry writes over HTTP (POST
/api/registry/clinics, /api/registry/terminals, /api/registry/terminals/retire)
need the bearer token read from --admin-token-file FILE or the environment
variable TALLY_ADMIN_TOKEN (at least 16 characters); without one they are
refused (403). With a token, POST /api/registry/import needs it too (its
signatures are checked either way).
Several workers share the load with the same --shared-group.

Signatures (--signature-check): chain-anchored (default) checks, in each run of
hash-linked entries, the last one's signature before storing (it vouches for
the run: forging any entry needs a SHA-256 collision) and every entry's own
signature in a background audit that raises bad-entry-signature; every-entry
checks each before storing, at about a quarter of the ingest rate.
With --insurance-url URL (tally sim insurance, or a platform adapter's
endpoint) the HTTP API also serves insurance payments (docs/insurance.md):
the phone page at /pay and /api/insurance/reconcile (a console login or
the admin token); terminals pay over MQTT, never HTTP. It needs --http-port and --signing-key (the key
signs the settlement vouchers). --insurance-base-url is where phones reach
the server (default http://127.0.0.1:PORT). --insurance-timing CODE,POLL,
VOUCHER,GRACE,SWEEP sets, in seconds, the life of a QR code (default 300), the
terminal's poll interval (5), the life of a settlement voucher (600), the wait
past a voucher's expiry before an unused one is reversed (600) and how often
the sweep runs (30).

With --voucher-key FILE (tally server voucher certify-key) the HTTP API
signs vouchers (the console's voucher pages, /api/vouchers/*) and every
terminal that comes online gets the current trust list, retained.

With --signing-key FILE (tally server certify-key) every ack carries the
server's signed checkpoint of the terminal's ledger (terminals keep the latest
as a rollback witness; terminals older than this version refuse such acks, so
turn it on once the fleet runs it).
Reports are parsed and verified on --worker-threads N threads (default: one per
CPU; 0: on the main thread, beside MQTT and the database).

With --config FILE (YAML or JSON: config/server.yaml, its schema
schemas/server-config.schema.json) every option above can be set in the file
instead, and by a variable TALLY_<SECTION>_<NAME> (mqtt.brokerUrl is
TALLY_MQTT_BROKER_URL); an option on the command line wins over both.
${SERVER_PKI_HELP}`,
  async run(args, io) {
    const cli = parse(args, {
      config: { type: 'string' },
      broker: { type: 'string' },
      store: { type: 'string' },
      root: { type: 'string' },
      'root-file': { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      mqtt: { type: 'string' },
      'http-port': { type: 'string' },
      'https-proxy': { type: 'boolean' },
      'shared-group': { type: 'string' },
      'client-id': { type: 'string' },
      'signature-check': { type: 'string' },
      'admin-token-file': { type: 'string' },
      'worker-threads': { type: 'string' },
      'signing-key': { type: 'string' },
      'voucher-key': { type: 'string' },
      'insurance-url': { type: 'string' },
      'insurance-base-url': { type: 'string' },
      'insurance-timing': { type: 'string' },
      ...SERVER_PKI_OPTIONS,
    });
    const { values, logLevel } = withServerConfig(cli, io);
    const token = adminToken(values);
    if (typeof values['admin-token-file'] === 'string' && typeof values['http-port'] !== 'string') throw new TallyError('USAGE', '--admin-token-file is for the HTTP API: give --http-port too');
    const signatureCheck = values['signature-check'] ?? 'chain-anchored';
    if (signatureCheck !== 'chain-anchored' && signatureCheck !== 'every-entry') throw new TallyError('USAGE', '--signature-check chain-anchored or every-entry');
    const workerThreads = typeof values['worker-threads'] === 'string' ? integer(values, 'worker-threads') : undefined;
    if (workerThreads !== undefined && (workerThreads < 0 || workerThreads > 64)) throw new TallyError('USAGE', '--worker-threads 0 to 64');
    const log = createLogger({ level: logLevel });
    const store = await createServerStore(storeOptions(required(values, 'store')));
    const rootPublicKey = rootKey(values);
    const signingKey = typeof values['signing-key'] === 'string' ? loadServerKey(values['signing-key'], rootPublicKey) : undefined;
    const voucherKey = typeof values['voucher-key'] === 'string' ? loadVoucherKey(values['voucher-key'], rootPublicKey) : undefined;
    const httpPort = typeof values['http-port'] === 'string' ? integer(values, 'http-port') : undefined;
    if (typeof values['insurance-url'] === 'string' && (httpPort === undefined || !signingKey)) throw new TallyError('USAGE', '--insurance-url needs --http-port and --signing-key (the key signs the settlement vouchers)');
    const timing = insuranceTiming(values['insurance-timing']);
    let server: IngestServer;
    try {
      server = await createIngestServer({
        store,
        rootPublicKey,
        brokerUrl: required(values, 'broker'),
        protocolVersion: integer(values, 'mqtt', 5) === 4 ? 4 : 5,
        mqttOptions: {
          ...(typeof values.ca === 'string' ? { ca: readFileSync(values.ca) } : {}),
          ...(typeof values.cert === 'string' ? { cert: readFileSync(values.cert) } : {}),
          ...(typeof values.key === 'string' ? { key: readFileSync(values.key) } : {}),
        },
        // the token (from the environment, say) only matters with the HTTP API
        ...(httpPort !== undefined ? { httpPort, ...(token !== undefined ? { adminToken: token } : {}), ...(values['https-proxy'] ? { httpsProxy: true } : {}) } : {}),
        ...(typeof values['shared-group'] === 'string' ? { sharedGroup: values['shared-group'] } : {}),
        ...(typeof values['client-id'] === 'string' ? { clientId: values['client-id'] } : {}),
        signatureCheck,
        ...(workerThreads !== undefined ? { workerThreads } : {}),
        ...(signingKey ? { checkpointSigner: { key: signingKey.key, certificate: signingKey.certificate } } : {}),
        ...(voucherKey ? { voucherKey } : {}),
        ...(typeof values['insurance-url'] === 'string'
          ? { insurance: { platform: new HttpInsurancePlatform({ url: values['insurance-url'] }), ...(typeof values['insurance-base-url'] === 'string' ? { baseUrl: values['insurance-base-url'] } : {}), ...timing } }
          : {}),
        logger: log,
      });
    } catch (err) {
      // the broker or the HTTP port cannot be had: nothing runs, the store is closed
      await store.close();
      throw err;
    }
    let serverPki: Awaited<ReturnType<typeof startServerPki>>;
    try {
      serverPki = await startServerPki(values, store, log);
    } catch (err) {
      await server.stop();
      await store.close();
      throw err;
    }
    if (serverPki) io.out(`PKI: revocation follows the registry${serverPki.estUrl ? `; EST at ${serverPki.estUrl}/.well-known/est/` : ''}`);
    io.out(`ingest server running (store ${store.kind})${server.httpUrl ? `, reports at ${server.httpUrl} (registry writes ${token ? 'on' : 'off'})` : ''}`);
    if (server.httpUrl) {
      const hasUsers = await store.access.hasUsers();
      io.out(`dashboard at ${server.httpUrl}/${hasUsers ? '' : ' (no console user yet: the API stays open on loopback as before; add one with tally server user add NAME --role sysadmin)'}`);
    }
    await new Promise<void>((resolve) => {
      const stop = () =>
        void (serverPki?.stop() ?? Promise.resolve())
          .then(() => server.stop())
          .then(() => store.close())
          .then(resolve);
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    return 0;
  },
};

export const serverReportCommand: CliCommand = {
  path: ['server', 'report'],
  summary: 'usage, batch reconciliation, income split and alerts from the server store',
  help: `tally server report (uses [--by terminal|clinic|day] | batches | income [--price N --share S] | terminals | alerts | rejections) --store (FILE | postgres://...) [--json]

Reads the server's store. Income: price per use in cents (default 10000) and
the investor's share (default 0.7); the clinic gets the rest. A clinic with its
own price or share in the registry (tally server registry add-clinic) uses it.
Terminals: each with its contiguous seq and how it is reachable: "reachable by
SMS only" when its last SMS report is newer than anything over the data link,
with the head and uses that report named.`,
  async run(args, io) {
    const what = args[0];
    if (!what || what.startsWith('-')) throw new TallyError('USAGE', 'say which report: uses, batches, income, terminals, alerts or rejections');
    const values = parse(args.slice(1), { store: { type: 'string' }, by: { type: 'string' }, price: { type: 'string' }, share: { type: 'string' }, json: { type: 'boolean' } });
    const store = await createServerStore(storeOptions(required(values, 'store')));
    try {
      let rows: unknown[];
      switch (what) {
        case 'uses': {
          const by = (values.by ?? 'day') as 'terminal' | 'clinic' | 'day';
          if (!['terminal', 'clinic', 'day'].includes(by)) throw new TallyError('USAGE', '--by terminal, clinic or day');
          rows = await groupedUses(store, by);
          break;
        }
        case 'batches':
          rows = await store.batchReconciliation();
          break;
        case 'income': {
          const share = typeof values.share === 'string' ? Number(values.share) : DEFAULT_PRICING.default.investorShare;
          const pricing = { default: { pricePerUse: integer(values, 'price', DEFAULT_PRICING.default.pricePerUse), investorShare: share } };
          rows = await storeIncome(store, pricing);
          break;
        }
        case 'terminals': {
          const bySms = new Map((await smsStatus(store, (id) => store.lastDataAt(id))).map((r) => [r.terminalId, r]));
          rows = (await store.terminals()).map((t) => {
            const sms = bySms.get(t.terminalId);
            return {
              terminalId: t.terminalId,
              clinicCode: t.clinicCode,
              contiguousSeq: t.contiguousSeq,
              reachability: sms?.smsOnly ? 'reachable by SMS only' : 'data link',
              ...(sms ? { lastSms: new Date(sms.lastSmsAt).toISOString(), smsHead: sms.headSeq, smsOutbox: sms.outboxDepth, smsUses: sms.batches.map((b) => `batch ${b.batchNo}: ${b.usesTotal}`).join(', '), ...(sms.contradicted ? { smsContradicted: sms.contradicted } : {}) } : {}),
            };
          });
          break;
        }
        case 'alerts':
          rows = await store.alerts();
          break;
        case 'rejections':
          rows = await store.rejections(100);
          break;
        default:
          throw new TallyError('USAGE', `no report "${what}"`);
      }
      if (values.json) io.out(JSON.stringify(rows, null, 2));
      else if (rows.length === 0) io.out('(none)');
      else for (const row of rows) io.out(Object.entries(row as Record<string, unknown>).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('  '));
      // uses a terminal recorded with an untrusted clock: counted, but their dates are the server's arrival days
      const untrusted = what === 'income' ? (rows as IncomeRow[]).reduce((n, r) => n + (r.untrustedUses ?? 0), 0) : 0;
      if (untrusted > 0 && !values.json) io.out(`of these, ${untrusted} ${untrusted === 1 ? 'use was' : 'uses were'} recorded with an untrusted terminal clock (dated by the day the server received them)`);
      return 0;
    } finally {
      await store.close();
    }
  },
};

/** Rows as an aligned table: a header of the keys of all rows, then one line a row */
export function formatTable(rows: readonly Record<string, unknown>[]): string[] {
  if (rows.length === 0) return ['(none)'];
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown): string => (v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: readonly string[]): string => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns), ...cells.map(line)];
}

const TIME_KEYS = new Set(['addedAt', 'firstSeenAt', 'issuedAt', 'validFrom', 'validUntil', 'certifiedAt', 'firstImportAt', 'lastImportAt', 'lastExportedAt']);

/** Times as ISO strings for the table; --json keeps the ms */
function readable(row: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, TIME_KEYS.has(k) && typeof v === 'number' ? new Date(v).toISOString().replace(/\.000Z$/, 'Z') : v]));
}

const REGISTRY_LISTS = ['clinics', 'terminals', 'cards', 'batches', 'stations', 'issuance'];

/** The options a registry write's fields come from, for the CLI's error messages */
const FIELD_OPTIONS: Readonly<Record<string, string>> = { clinicCode: 'CODE (or --clinic)', name: '--name', pricePerUse: '--price', investorShare: '--share', terminalId: 'ID', note: '--note' };

/** The HTTP API's checks on a registry write, with the CLI's names for the fields */
function checked<T>(schema: Parameters<typeof checkInput<T>>[0], value: unknown): T {
  try {
    return checkInput(schema, value);
  } catch (err) {
    if (!(err instanceof RegistryInputError)) throw err;
    throw new TallyError('USAGE', `${FIELD_OPTIONS[err.field] ?? err.field}${err.message.slice(err.field.length)}`);
  }
}

export const serverRegistryCommand: CliCommand = {
  path: ['server', 'registry'],
  summary: 'clinics, terminals and the cards the issuing stations made: list, import a station export, add, retire',
  help: `tally server registry (clinics | terminals | cards [--kind mother|white|batch] | batches | stations | issuance [--station ID]) --store S [--json]
tally server registry import FILE --store S (--root HEX | --root-file FILE) [--json]
tally server registry add-clinic CODE --name NAME [--price N] [--share S] --store S
tally server registry add-terminal ID --clinic CODE [--retired] [--note TEXT] --store S
tally server registry retire-terminal ID [--note TEXT] --store S

  --store S   the server store: FILE (SQLite) or postgres://...

The lists: clinics (with their price and share, which the income report uses);
terminals, registered and reporting together (state: expected, active,
wrong-clinic, unregistered, retired); cards and batches (with their serial
range, one-time cards written, the terminal that loaded it); stations; the
issuance log per station (what, when, signed by which card).

import verifies an issuing station's export (tally issue export) against the
investor root: its station certificate (the mother card's), the station's
signature, every card's own chain. A refused export changes nothing and says
why; importing the same export again changes nothing.

add-clinic and add-terminal add or update (an update replaces the row: a
price, share or note left out is cleared); retire-terminal marks a registered
terminal retired. The same checks as the HTTP API's writes: a clinic code of
1..16 bytes, a name of 1..100 characters, a price a whole number >= 0, a share
in 0..1, a terminal id as in its certificate, a note of 1..500 characters.`,
  async run(args, io) {
    const what = args[0];
    if (!what || what.startsWith('-')) throw new TallyError('USAGE', `say what: ${REGISTRY_LISTS.join(', ')}, import, add-clinic, add-terminal or retire-terminal`);
    const rest = args.slice(1);
    const operand = rest[0] && !rest[0].startsWith('-') ? rest.shift() : undefined;
    const values = parse(rest, {
      store: { type: 'string' },
      json: { type: 'boolean' },
      kind: { type: 'string' },
      station: { type: 'string' },
      root: { type: 'string' },
      'root-file': { type: 'string' },
      name: { type: 'string' },
      price: { type: 'string' },
      share: { type: 'string' },
      clinic: { type: 'string' },
      retired: { type: 'boolean' },
      note: { type: 'string' },
    });
    const needOperand = (label: string): string => {
      if (!operand) throw new TallyError('USAGE', `${what} needs ${label}`);
      return operand;
    };
    const store = await createServerStore(storeOptions(required(values, 'store')));
    const registry = store.registry;
    const print = (rows: readonly object[]): void => {
      if (values.json) io.out(JSON.stringify(rows, null, 2));
      else for (const line of formatTable(rows.map(readable))) io.out(line);
    };
    try {
      switch (what) {
        case 'clinics':
          print(await registry.clinics());
          return 0;
        case 'terminals':
          print(await registry.terminalRegistry());
          return 0;
        case 'cards': {
          const kind = typeof values.kind === 'string' ? values.kind : undefined;
          if (kind !== undefined && !['mother', 'white', 'batch'].includes(kind)) throw new TallyError('USAGE', '--kind mother, white or batch');
          print(await registry.cards(kind as RegistryCardKind | undefined));
          return 0;
        }
        case 'batches':
          print(await registry.batches());
          return 0;
        case 'stations':
          print(await registry.stations());
          return 0;
        case 'issuance':
          print(await registry.issuance(typeof values.station === 'string' ? values.station : undefined));
          return 0;
        case 'import': {
          const file = needOperand('the export FILE');
          try {
            const summary = await importRegistryExport(registry, readFileSync(file, 'utf8'), rootKey(values), Date.now());
            if (values.json) io.out(JSON.stringify(summary, null, 2));
            else if (summary.alreadyImported) io.out(`station ${summary.stationId}: this export was imported before; nothing changed`);
            else {
              io.out(
                `station ${summary.stationId}: ${summary.cardsAdded} cards added, ${summary.cardsUpdated} marked written, ` +
                  `${summary.oneTimeBatchesAdded} one-time batches added, ${summary.oneTimeBatchesUpdated} updated`,
              );
            }
            return 0;
          } catch (err) {
            if (!(err instanceof RegistryImportRefused)) throw err;
            io.err(`export refused (${err.reason}): ${err.message.slice(err.reason.length + 2)}; nothing imported`);
            return 2;
          }
        }
        case 'add-clinic': {
          const clinicCode = needOperand('the clinic CODE');
          const input = checked(ClinicInputSchema, {
            clinicCode,
            name: required(values, 'name'),
            ...(typeof values.price === 'string' ? { pricePerUse: integer(values, 'price') } : {}),
            ...(typeof values.share === 'string' ? { investorShare: Number(values.share) } : {}),
          });
          const { created } = await saveClinic(registry, input, Date.now());
          io.out(`clinic ${clinicCode} ${created ? 'added' : 'updated'}`);
          return 0;
        }
        case 'add-terminal': {
          const terminalId = needOperand('the terminal ID');
          const input = checked(TerminalInputSchema, {
            terminalId,
            clinicCode: required(values, 'clinic'),
            status: values.retired ? 'retired' : 'expected',
            ...(typeof values.note === 'string' ? { note: values.note } : {}),
          });
          const { created, row } = await saveTerminal(registry, input, Date.now());
          io.out(`terminal ${terminalId} ${created ? 'registered' : 'updated'} for clinic ${row.clinicCode}${row.status === 'retired' ? ' (retired)' : ''}`);
          return 0;
        }
        case 'retire-terminal': {
          const terminalId = needOperand('the terminal ID');
          const row = await retireTerminal(registry, checked(RetireInputSchema, { terminalId, ...(typeof values.note === 'string' ? { note: values.note } : {}) }), Date.now());
          if (!row) {
            io.err(`terminal ${terminalId} is not registered; nothing changed`);
            return 2;
          }
          io.out(`terminal ${terminalId} retired (clinic ${row.clinicCode})`);
          return 0;
        }
        default:
          throw new TallyError('USAGE', `no registry command "${what}": ${REGISTRY_LISTS.join(', ')}, import, add-clinic, add-terminal or retire-terminal`);
      }
    } finally {
      await store.close();
    }
  },
};
